--- page-table: a virtual address, split the way the MMU walks it, and its frame.
-- The page table is a tree of tables one page each, of 8-byte entries: with
-- pages of P bytes the low log2(P) bits of an address are the offset inside
-- the page and each level takes the next log2(P / 8) bits, as many levels as
-- the user address bits need. On x86-64 with 4 KiB pages that is the seed's
-- 003 diagram: bits 47-39 index the PML4, 38-30 the page directory pointer
-- table, 29-21 the page directory, 20-12 the page table, 11-0 the offset.
-- The layout here comes from THIS machine's page size and addresses.
-- /proc/self/pagemap then gives the physical frame the walk ends at (the
-- frame number needs CAP_SYS_ADMIN; without it the claim is skipped).
-- @module vmlab.experiments.page-table
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size
-- The x86-64 names (PML4, PDP, PD, PT) and the seed's diagram are for pages of this size.
local X86_BASE_PAGE = 4 * 1024

local function log2(n)
  local b = 0
  while (1 << b) < n do b = b + 1 end
  return b
end

-- Bits needed to write n (the highest set bit, plus one).
local function bit_length(n)
  local b = 0
  while b < 63 and (n >> b) ~= 0 do b = b + 1 end
  return b
end

local function machine()
  local arch = vm.proc.sysctl("kernel.arch")
  if type(arch) ~= "string" then arch = nil end
  if not arch or arch == "" then
    local p = io.popen("uname -m 2>/dev/null")
    arch = p and p:read("l")
    if p then p:close() end
  end
  return arch or "unknown"
end

--- The page-table layout for pages of `page_size` bytes and user addresses of
-- `va_bits` bits: { page_size=, offset_bits=, index_bits=, levels=, names = {top .. bottom} }.
-- x86-64 names its levels PML4 (PML5), PDP, PD, PT; other machines get l<N> .. l1.
local function M_layout(page_size, va_bits, arch)
  local offset_bits = log2(page_size)
  local index_bits = log2(page_size // 8)
  local levels = math.max(1, (va_bits - offset_bits + index_bits - 1) // index_bits)
  local names = {}
  if arch == "x86_64" and page_size == X86_BASE_PAGE and (levels == 4 or levels == 5) then
    names = levels == 5 and { "pml5", "pml4", "pdp", "pd", "pt" } or { "pml4", "pdp", "pd", "pt" }
  else
    for i = levels, 1, -1 do names[#names + 1] = "l" .. i end
  end
  return { page_size = page_size, offset_bits = offset_bits, index_bits = index_bits, levels = levels,
           va_bits = va_bits, names = names, arch = arch }
end
local layout_of = M_layout

--- Split a virtual address into its page-table indices and page offset.
-- @param layout as from layout() (default: this machine's, for 47-bit user addresses)
-- @return { <level name> = index, ... }, offset
local function split(address, layout)
  local ix = {}
  local n = #layout.names
  for i, name in ipairs(layout.names) do
    local shift = layout.offset_bits + (n - i) * layout.index_bits
    ix[name] = (address >> shift) & ((1 << layout.index_bits) - 1)
  end
  return ix, address & (layout.page_size - 1)
end

-- Put the pieces back together (lower, user half).
local function join(ix, offset, layout)
  local a = offset
  local n = #layout.names
  for i, name in ipairs(layout.names) do
    a = a | (ix[name] << (layout.offset_bits + (n - i) * layout.index_bits))
  end
  return a
end

local function cpu_has(flag)
  local flags = vm.proc.cpu_flags()
  return flags ~= nil and flags[flag] == true
end

-- One row: the address, its indices and offset, and what pagemap says.
local function entry(name, address, layout)
  local ix, offset = split(address, layout)
  local e = { name = name, address = address, indices = ix, offset = offset,
              recombined = join(ix, offset, layout) == address }
  for k, v in pairs(ix) do e[k] = v end -- flat copies for the report's table
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
  summary = "split a virtual address into its page-table indices and page offset (this machine's page size and "
    .. "levels); translate it to physical via pagemap",
  params = {
    { name = "offset", default = 0x5a8, unit = "bytes", min = 0, max = PAGE - 1,
      help = "which byte of the mapped page to point at" },
  },
  fields = {
    { name = "arch", unit = "text", help = "the machine (uname -m)" },
    { name = "page_size", unit = "bytes", help = "bytes in a base page" },
    { name = "offset_bits", unit = "count", help = "bits of the page offset" },
    { name = "index_bits", unit = "count", help = "bits of each level's index" },
    { name = "va_bits", unit = "count", help = "user virtual address bits" },
    { name = "levels", unit = "count", help = "page-table levels" },
    { name = "level_names", unit = "list", of = "text", help = "the levels' names, top first" },
    { name = "la57", unit = "boolean", help = "the CPU has 5-level paging (la57)" },
    { name = "frames_visible", unit = "boolean", help = "pagemap showed physical frame numbers" },
    { name = "frames_note", unit = "text", optional = true, help = "why frames are hidden" },
    { name = "entries", unit = "table", help = "each address split into indices and offset", fields = {
      { name = "name", unit = "text", help = "what lives at the address" },
      { name = "address", unit = "address", help = "the virtual address" },
      { name = "pml5", unit = "integer", optional = true, help = "x86-64 level-5 index" },
      { name = "pml4", unit = "integer", optional = true, help = "x86-64 PML4 index" },
      { name = "pdp", unit = "integer", optional = true, help = "x86-64 page-directory-pointer index" },
      { name = "pd", unit = "integer", optional = true, help = "x86-64 page-directory index" },
      { name = "pt", unit = "integer", optional = true, help = "x86-64 page-table index" },
      { name = "l5", unit = "integer", optional = true, help = "level-5 index (other page sizes)" },
      { name = "l4", unit = "integer", optional = true, help = "level-4 index" },
      { name = "l3", unit = "integer", optional = true, help = "level-3 index" },
      { name = "l2", unit = "integer", optional = true, help = "level-2 index" },
      { name = "l1", unit = "integer", optional = true, help = "level-1 index" },
      { name = "offset", unit = "address", help = "the byte offset in its page" },
      { name = "present", unit = "boolean", optional = true, help = "a frame backs the page" },
      { name = "pfn", unit = "integer", optional = true, help = "the physical frame number" },
      { name = "physical_address", unit = "address", optional = true, help = "frame x page size + offset" },
      { name = "recombined", unit = "boolean", help = "indices and offset put back together give the address" },
      { name = "indices", unit = "map", of = { unit = "integer" }, text = false, help = "the indices by level name" },
      { name = "reason", unit = "text", optional = true, help = "why no frame is shown" },
    } },
  },
}
M.layout = layout_of

function M.run(opts)
  local offset = opts.offset
  offset = offset % PAGE
  local r <close> = assert(vm.mmap(2 * PAGE))
  r:advise("nohugepage") -- base pages: the untouched page must stay untouched whatever THP does
  r:write(offset, "x") -- the first page gets a frame; the second is never touched
  local h <close> = assert(vm.malloc(64))
  h:write(0, "y")
  local a = vm.addresses()
  -- the user address bits: enough for the highest address this process has (the stack)
  local top = math.max(a.stack, r.address, h.address, a.text, a.global)
  local layout = layout_of(PAGE, bit_length(top), machine())
  local result = { arch = layout.arch, page_size = PAGE, offset_bits = layout.offset_bits,
                   index_bits = layout.index_bits, va_bits = layout.va_bits, levels = layout.levels,
                   level_names = layout.names, la57 = cpu_has("la57"), entries = {} }
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
    result.entries[#result.entries + 1] = entry(row[1], row[2], layout)
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

local function layout_of_result(r)
  return { page_size = r.page_size, offset_bits = r.offset_bits, index_bits = r.index_bits, names = r.level_names }
end

local function by_name(r, name)
  for _, e in ipairs(r.entries) do if e.name == name then return e end end
end

local function indices_text(r, e)
  local parts = {}
  for _, n in ipairs(r.level_names) do parts[#parts + 1] = ("%s %d"):format(n:upper(), e.indices[n]) end
  return table.concat(parts, " | ")
end

M.claims = {
  { id = "split_recombines",
    text = "a virtual address splits into one index per page-table level and an offset inside the page; "
      .. "put back together they give the address",
    decide = function(r)
      local lay = layout_of_result(r)
      local ok, n = true, 0
      for _, e in ipairs(r.entries) do
        n = n + 1
        local ix, off = split(e.address, lay)
        ok = ok and e.recombined and off == e.address % r.page_size and join(ix, off, lay) == e.address
        for _, name in ipairs(r.level_names) do ok = ok and e.indices[name] < (1 << r.index_bits) end
      end
      return ok and n > 0, ("%d addresses, each = %d indices of %d bits (tables of %s entries) + a %d-bit offset "
        .. "(%s pages); all recombine: %s"):format(n, r.levels, r.index_bits, units.count(1 << r.index_bits),
        r.offset_bits, units.bytes(r.page_size), ok and "yes" or "NO")
    end },
  { id = "same_page_same_entry",
    text = "two bytes of one page share every index and the frame; only the offset differs",
    decide = function(r)
      local a, b = by_name(r, "mmap page"), by_name(r, "same page, byte 0")
      local same = true
      for _, n in ipairs(r.level_names) do same = same and a.indices[n] == b.indices[n] end
      local ev = ("%s: offsets 0x%x and 0x%x, indices %s"):format(indices_text(r, a), a.offset, b.offset,
        same and "equal" or "DIFFERENT")
      if a.pfn and b.pfn then ev = ev .. (", frames %s and %s"):format(units.count(a.pfn), units.count(b.pfn)) end
      return same and a.offset ~= b.offset and a.pfn == b.pfn, ev
    end },
  { id = "untouched_not_present",
    text = "a page never touched has no frame: its page-table entry is not present",
    decide = function(r)
      local u = by_name(r, "untouched page")
      return u.present == false, ("pagemap for the untouched page: %s"):format(u.present == false and "not present"
        or u.present and "present" or tostring(u.reason))
    end },
  { id = "translation",
    text = "pagemap ends the walk at a frame: physical address = frame number x page size + the same offset",
    requires = "pfns_visible",
    decide = function(r)
      local n, ok, present = 0, true, 0
      for _, e in ipairs(r.entries) do
        if e.present then present = present + 1 end
        if e.physical_address then
          n = n + 1
          ok = ok and e.pfn > 0 and e.physical_address == e.pfn * r.page_size + e.offset
        end
      end
      if n == 0 then return nil, ("%d present pages, no frame numbers"):format(present), r.frames_note end
      return ok and n == present, ("%d of %d present pages translated, each physical = frame x %d + offset: %s")
        :format(n, present, r.page_size, ok and "yes" or "NO")
    end,
    explain = function()
      return "Only the page number is translated; the offset passes through the walk unchanged."
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(res)
  local bits, lines = {}, {}
  local hi = res.offset_bits + res.levels * res.index_bits - 1
  for i, n in ipairs(res.level_names) do
    local top = hi - (i - 1) * res.index_bits
    bits[#bits + 1] = ("%s (bits %d-%d)"):format(n:upper(), top, top - res.index_bits + 1)
  end
  bits[#bits + 1] = ("offset (%d-0)"):format(res.offset_bits - 1)
  lines[#lines + 1] = ("%s, %s pages, user addresses up to bit %d: %s; each index picks one of %s entries of a "
    .. "one-page table."):format(res.arch, units.bytes(res.page_size), res.va_bits - 1, table.concat(bits, " | "),
    units.count(1 << res.index_bits))
  if res.page_size ~= X86_BASE_PAGE then
    lines[#lines + 1] = ("This machine's pages are %s, not the 4 KiB of the x86-64 diagram: the offset is %d bits "
      .. "and each level %d bits."):format(units.bytes(res.page_size), res.offset_bits, res.index_bits)
  end
  for _, e in ipairs(res.entries) do
    local phys
    if e.physical_address then
      phys = ("frame %s -> physical 0x%x"):format(units.count(e.pfn), e.physical_address)
    else
      phys = "no physical address: " .. tostring(e.reason)
    end
    lines[#lines + 1] = ("%-18s 0x%012x = %s | offset 0x%x; %s"):format(e.name, e.address, indices_text(res, e),
      e.offset, phys)
  end
  if not res.frames_visible and res.frames_note then
    lines[#lines + 1] = "No physical addresses: " .. res.frames_note
  end
  if res.la57 then
    lines[#lines + 1] = "This CPU can do 5-level paging (la57): where the kernel uses it, a fifth index sits above "
      .. "these, 0 for every address below 2^47 (Linux hands out higher ones only on request)."
  end
  return lines
end

M.split, M.join = split, join
-- No chart: the result is addresses split into page-table indices; the report's table says it all.
M.charts = { none = "its result is addresses split into page-table indices, which the report's table shows" }

return M
