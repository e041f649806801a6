--- page-table: a virtual address, split the way the MMU walks it, and its frame.
-- On x86-64 with 4-level paging, bits 47-39 index the PML4, 38-30 the page
-- directory pointer table, 29-21 the page directory, 20-12 the page table,
-- and 11-0 are the offset inside the 4 KiB page (the seed's 003 diagram).
-- /proc/self/pagemap then gives the physical frame the walk ends at.
-- @module vmlab.experiments.page-table
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size

--- Split a virtual address into its page-table indices and page offset.
-- @return { pml4=, pdp=, pd=, pt= }, offset
local function split(address)
  return {
    pml4 = (address >> 39) & 0x1ff,
    pdp = (address >> 30) & 0x1ff,
    pd = (address >> 21) & 0x1ff,
    pt = (address >> 12) & 0x1ff,
  }, address & 0xfff
end

-- Put the pieces back together (lower, user half: bits 63-48 are zero).
local function join(ix, offset)
  return (ix.pml4 << 39) | (ix.pdp << 30) | (ix.pd << 21) | (ix.pt << 12) | offset
end

local function cpu_has(flag)
  local f = io.open("/proc/cpuinfo")
  if not f then return false end
  for line in f:lines() do
    if line:match("^flags") then
      f:close()
      return (" " .. line .. " "):find(" " .. flag .. " ", 1, true) ~= nil
    end
  end
  f:close()
  return false
end

-- One row: the address, its indices and offset, and what pagemap says.
local function entry(name, address)
  local ix, offset = split(address)
  local e = {
    name = name, address = address, indices = ix, offset = offset, recombined = join(ix, offset) == address,
    pml4 = ix.pml4, pdp = ix.pdp, pd = ix.pd, pt = ix.pt, -- flat copies for the report's table
  }
  local pm, err = vm.pagemap(address)
  if not pm then
    e.reason = err
  elseif not pm.present then
    e.present = false
    e.reason = pm.swapped and "swapped out: the entry holds a swap location, not a frame"
      or "not present: no page-table entry points to a frame yet (never touched)"
  else
    e.present = true
    e.pfn, e.physical_address = pm.pfn, pm.physical_address
    if not pm.pfn then e.reason = pm.hidden or "frame number hidden" end
  end
  return e
end

local M = {
  name = "page-table",
  summary = "split a virtual address into PML4/PDP/PD/PT indices and offset; translate it to physical via pagemap",
  params = { offset = 0x5a8 }, -- where in the mapped page to point (any byte of the page)
  units = { page_size = "bytes", levels = "count", frames_visible = "text", offset = "address", pml4 = "count",
            pdp = "count", pd = "count", pt = "count", pfn = "count" },
  fields = { "page_size", "levels", "frames_visible", "entries",
             -- the columns of entries:
             "name", "address", "pml4", "pdp", "pd", "pt", "offset", "present", "pfn", "physical_address", "reason" },
}

function M.run(opts)
  local offset = opts.offset
  assert(math.type(offset) == "integer" and offset >= 0 and offset < PAGE, "offset must be inside a page")
  local result = { page_size = PAGE, la57 = cpu_has("la57"), entries = {} }
  -- Linux uses 5-level paging (bits 56-48 index a PML5) only for addresses above 2^47 that a program asks for.
  result.levels = 4

  local r <close> = assert(vm.mmap(2 * PAGE))
  r:write(offset, "x") -- the first page gets a frame; the second is never touched
  local h <close> = assert(vm.malloc(64))
  h:write(0, "y")
  local a = vm.addresses()
  local rows = {
    { "mmap page", r.address + offset },         -- a byte of a page just written
    { "same page, byte 0", r.address },          -- same indices, same frame, offset 0
    { "untouched page", r.address + PAGE + offset }, -- the next page, never touched: no frame
    { "heap block", h.address },                 -- a 64-byte malloc block
    { "stack", a.stack },                        -- a local variable of a C function
    { "C global", a.global },                    -- an initialised global of vmlab/core.so (.data)
    { "code", a.text },                          -- a C function of vmlab/core.so (.text)
  }
  for _, row in ipairs(rows) do
    result.entries[#result.entries + 1] = entry(row[1], row[2])
  end
  local seen = false
  for _, e in ipairs(result.entries) do
    if e.physical_address then seen = true end
  end
  result.frames_visible = seen
  if not seen then
    for _, e in ipairs(result.entries) do
      if e.present then result.frames_note = e.reason; break end
    end
  end
  return result
end

function M.explain(res)
  local lines = {
    "Each 48-bit user address = PML4 index (bits 47-39) | PDP (38-30) | PD (29-21) | PT (20-12) | offset (11-0); "
      .. "each index picks one of 512 entries of a 4 KiB table.",
  }
  for _, e in ipairs(res.entries) do
    local ix = e.indices
    local phys
    if e.physical_address then
      phys = ("frame %s -> physical 0x%x"):format(units.count(e.pfn), e.physical_address)
    else
      phys = "no physical address: " .. tostring(e.reason)
    end
    lines[#lines + 1] = ("%-18s 0x%012x = PML4 %3d | PDP %3d | PD %3d | PT %3d | offset 0x%03x; %s"):format(
      e.name, e.address, ix.pml4, ix.pdp, ix.pd, ix.pt, e.offset, phys)
  end
  if res.frames_visible then
    lines[#lines + 1] = "The physical address keeps the offset: only the page number is translated "
      .. "(physical = frame * 4096 + offset)."
  elseif res.frames_note then
    lines[#lines + 1] = "No physical addresses: " .. res.frames_note
  end
  if res.la57 then
    lines[#lines + 1] = "This CPU can do 5-level paging (la57): a PML5 index in bits 56-48 is used only for "
      .. "addresses above 2^47, which Linux hands out only on request."
  end
  return lines
end

M.split = split
return M
