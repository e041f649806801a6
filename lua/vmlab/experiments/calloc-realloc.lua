--- calloc-realloc: a large calloc is lazy; a large realloc remaps instead of copying.
-- A C library serves a large block with a mapping of its own (glibc from
-- 128 KiB by default; other allocators choose their own thresholds, so the
-- run reads the block's mapping instead of assuming one). Fresh pages from
-- the kernel are already zero, so calloc need not clear them: nothing is
-- written and no memory is mapped until the program touches the block. Where
-- the kernel maps the shared zero page for reads, even reading it maps
-- nothing; writing gives every page a frame. Growing such a block with
-- realloc can use mremap(2): the kernel moves the page-table entries to a
-- bigger range (or extends it in place), so no byte is copied: the pages keep
-- their physical frames and the move takes no page faults. The claims say
-- which of this happened on this machine, with this allocator.
-- @module vmlab.experiments.calloc-realloc
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size
local SAMPLES = 16 -- pages read back to check contents / compare frames

local function rss() return assert(vm.proc.rss()) end
local function minor_faults() return vm.rusage("self").minor_faults end
local now = vm.now

-- Page offsets of SAMPLES pages spread over a block of `size` bytes (first and last included).
local function sample_offsets(size)
  local pages = size // PAGE
  local out, seen = {}, {}
  for i = 0, SAMPLES - 1 do
    local p = (pages - 1) * i // (SAMPLES - 1)
    if not seen[p] then seen[p] = true; out[#out + 1] = p * PAGE end
  end
  return out
end

-- How many of the sampled pages of block h read as `byte` throughout (and how many were read).
local function pages_of(h, byte, size)
  local want = string.rep(string.char(byte), PAGE)
  local ok, n = 0, 0
  for _, off in ipairs(sample_offsets(size)) do
    n = n + 1
    if h:read(off, PAGE) == want then ok = ok + 1 end
  end
  return ok, n
end

-- Pages of block h present in memory: PAGEMAP_SCAN (with pfnzero), else mincore.
local function present(h)
  local s = h:scan()
  if s then return s.present, s.pfnzero end
  return (h:resident()), nil
end

-- Frame numbers of the sampled pages (nil where pagemap hides them).
local function sampled_frames(h, size)
  local out = {}
  for i, off in ipairs(sample_offsets(size)) do
    local f = h:frames(off // PAGE, 1)
    if not f or not f[1] then return nil end
    out[i] = f[1]
  end
  return out
end

local M = {
  name = "calloc-realloc",
  summary = "a large calloc is lazy (no RSS until written); realloc of a large block remaps it instead of copying",
  params = {
    { name = "size", default = 256 * 1024 * 1024, unit = "bytes", min = 256 * PAGE, max = 1 << 40,
      help = "the calloc'd block, then grown by realloc (whole pages, at least 256)" },
  },
  tour = { size = 128 * 1024 * 1024 },
  fields = {
    { name = "size", unit = "bytes", help = "the block (whole pages)" },
    { name = "pages", unit = "count", help = "its pages" },
    { name = "mapping_size", unit = "bytes", optional = true, help = "the mapping malloc made for it" },
    { name = "mmapped_blocks_growth", unit = "count", optional = true, help = "mallinfo2 mmapped blocks added" },
    { name = "rss_growth_calloc", unit = "bytes", optional = true, help = "VmRSS growth at calloc" },
    { name = "calloc_present", unit = "count", optional = true, help = "pages present right after calloc" },
    { name = "zero_pages", unit = "count", optional = true, help = "sampled pages that read as zeros" },
    { name = "sampled_pages", unit = "count", optional = true, help = "pages sampled" },
    { name = "rss_growth_read", unit = "bytes", optional = true, help = "VmRSS growth reading every page" },
    { name = "read_present", unit = "count", optional = true, help = "pages present after the reads" },
    { name = "read_pfnzero", unit = "count", optional = true, help = "of them on the zero page (PAGEMAP_SCAN)" },
    { name = "rss_growth_write", unit = "bytes", optional = true, help = "VmRSS growth writing every page" },
    { name = "rss_growth_calloc_to_written", unit = "bytes", optional = true,
      help = "VmRSS growth from before calloc to written (the reads may have given pages frames first)" },
    { name = "write_faults", unit = "count", optional = true, help = "minor faults of that write" },
    { name = "fill_faults", unit = "count", optional = true, help = "minor faults filling the block for realloc" },
    { name = "write_seconds", unit = "seconds", optional = true, help = "time to fill it (for scale)" },
    { name = "old_address", unit = "address", optional = true, help = "the block before realloc" },
    { name = "new_address", unit = "address", optional = true, help = "the block after realloc" },
    { name = "moved", unit = "boolean", optional = true, help = "realloc moved it" },
    { name = "realloc_faults", unit = "count", optional = true, help = "minor faults of realloc" },
    { name = "frames_kept", unit = "count", optional = true, help = "sampled pages on the same frames after realloc" },
    { name = "frames_sampled", unit = "count", optional = true, help = "pages whose frames were compared" },
    { name = "realloc_seconds", unit = "seconds", optional = true, help = "time of realloc" },
    { name = "rss_growth_realloc", unit = "bytes", optional = true, help = "VmRSS growth over realloc" },
    { name = "intact_pages", unit = "count", optional = true, help = "sampled pages holding the old data after it" },
    { name = "note", unit = "text", optional = true, help = "what changes the picture on this build" },
  },
}

--- params: size (bytes, at least 256 pages; rounded down to whole pages)
function M.run(opts)
  local size = opts.size
  size = size // PAGE * PAGE
  local result = { size = size, pages = size // PAGE }
  if require("vmlab.kernel")().allocator == "asan" then -- the probe saw ASan's runtime in this process
    result.note = "under AddressSanitizer, malloc is ASan's allocator: realloc always allocates anew and copies"
  end

  -- 1. calloc, then write: zeroed memory at no cost until it is written.
  do
    local mi0 = vm.mallinfo and vm.mallinfo()
    local rss0 = rss()
    local h <close> = assert(vm.calloc(size // PAGE, PAGE))
    local rss1 = rss()
    local mi1 = vm.mallinfo and vm.mallinfo()
    result.rss_growth_calloc = rss1 - rss0
    result.calloc_present = present(h)
    if mi0 and mi1 then result.mmapped_blocks_growth = mi1.mmapped_blocks - mi0.mmapped_blocks end
    local m = vm.proc.mapping_at(h.address)
    result.mapping_size = m and m.size
    result.zero_pages, result.sampled_pages = pages_of(h, 0, size)
    local rss2 = rss()
    local t = h:touch("write")
    result.rss_growth_write = rss() - rss2
    -- from before the calloc: the sampled reads may have given pages frames already (no zero page, or
    -- a huge page under THP "always"), so what decides is the growth from calloc to written
    result.rss_growth_calloc_to_written = rss() - rss0
    result.write_faults = t.minor_faults
  end

  -- 2. calloc, then read every page: on the zero page, reading maps nothing.
  do
    local h <close> = assert(vm.calloc(size // PAGE, PAGE))
    local rss1 = rss()
    h:touch("read")
    result.rss_growth_read = rss() - rss1
    result.read_present, result.read_pfnzero = present(h)
  end

  -- 3. realloc: a written block doubled in size.
  do
    local h <close> = assert(vm.malloc(size))
    local f0, t0 = minor_faults(), now()
    h:fill(0x5a)
    result.write_seconds = now() - t0 -- first touch and write of every byte, for scale
    result.fill_faults = minor_faults() - f0
    local before = sampled_frames(h, size)
    local rss0 = rss()
    f0, t0 = minor_faults(), now()
    local _, old = assert(h:realloc(2 * size))
    result.realloc_seconds = now() - t0
    result.realloc_faults = minor_faults() - f0
    result.rss_growth_realloc = rss() - rss0
    result.old_address, result.new_address = old, h.address
    result.moved = h.address ~= old
    local after = before and sampled_frames(h, size)
    if before and after then
      local kept = 0
      for i = 1, #before do if before[i] == after[i] then kept = kept + 1 end end
      result.frames_kept, result.frames_sampled = kept, #before
    end
    result.intact_pages = pages_of(h, 0x5a, size)
  end
  return result
end

local u = units

M.claims = {
  { id = "calloc_lazy",
    text = "a large calloc is lazy: no memory is mapped for it until it is touched, RSS does not grow",
    decide = function(r)
      -- the block's own pages decide (a sanitizer's shadow memory grows the process's RSS, not the block's)
      local allowed = math.max(4, r.pages // 100) -- the allocator's header page or two
      return r.calloc_present <= allowed,
        ("%s of %s pages present after calloc, process RSS %s%s"):format(u.count(r.calloc_present),
          u.count(r.pages), r.rss_growth_calloc >= 0 and "+" or "", u.bytes(r.rss_growth_calloc)),
        r.calloc_present > allowed and "the allocator wrote the block at calloc (memory it had used before "
          .. "must be cleared)" or nil
    end,
    explain = function()
      return "Fresh pages from the kernel are zero already, so calloc had nothing to clear and touched nothing."
    end },
  { id = "calloc_zeros",
    text = "calloc'd memory reads as zeros",
    decide = function(r)
      return r.zero_pages == r.sampled_pages and r.sampled_pages > 0,
        ("%d of %d sampled pages read as zero throughout"):format(r.zero_pages, r.sampled_pages)
    end },
  { id = "read_maps_nothing",
    text = "reading calloc'd memory maps no memory: every page maps the shared zero page",
    requires = "zero_page",
    decide = function(r)
      local ev = ("reading every page: RSS %s%s"):format(r.rss_growth_read >= 0 and "+" or "",
        u.bytes(r.rss_growth_read))
      local holds = r.rss_growth_read < r.size / 32
      if r.read_pfnzero then
        ev = ev .. (", PAGEMAP_SCAN: %s of %s pages on the zero page"):format(u.count(r.read_pfnzero),
          u.count(r.pages))
        holds = holds and r.read_pfnzero >= r.pages * 0.9
      end
      return holds, ev
    end,
    explain = function()
      return "Every read mapped the kernel's one read-only page of zeros: no frame, no RSS."
    end },
  { id = "write_grows_rss",
    text = "once calloc'd memory is written, RSS has grown by its size: every page has a frame",
    decide = function(r)
      -- the write's own growth, or (where the sampled reads gave some pages frames first) the growth
      -- from calloc to written; RSS can also fall meanwhile (a sanitizer's quarantine), so the larger decides
      local g = math.max(r.rss_growth_calloc_to_written or r.rss_growth_write, r.rss_growth_write)
      return g >= r.size * 0.9 and g <= r.size * 1.1 + (4 << 20),
        ("from calloc to written: RSS +%s for %s (the write itself +%s, %s minor faults for %s pages)"):format(
          u.bytes(g), u.bytes(r.size), u.bytes(r.rss_growth_write), u.count(r.write_faults), u.count(r.pages))
    end },
  { id = "realloc_no_copy",
    text = "realloc of a large written block remaps its pages instead of copying them (mremap)",
    requires = "glibc_heap",
    decide = function(r)
      local ev = ("realloc to %s: %s page faults (writing the block took %s), 0x%x -> 0x%x (%s), %s (writing took %s)")
        :format(u.bytes(2 * r.size), u.count(r.realloc_faults), u.count(r.fill_faults), r.old_address,
          r.new_address, r.moved and "moved" or "grown in place", u.seconds(r.realloc_seconds),
          u.seconds(r.write_seconds))
      local holds
      if r.frames_kept then
        -- the frames decide: a copy puts the data on new frames
        ev = ("%d of %d sampled pages kept their physical frames; "):format(r.frames_kept, r.frames_sampled) .. ev
        holds = r.frames_kept == r.frames_sampled
      elseif r.fill_faults >= 16 then
        -- without frame numbers the faults decide: a copy writes every page of a fresh mapping
        holds = r.realloc_faults * 10 < r.fill_faults
      else
        return nil, ev, "neither frame numbers nor page faults tell a copy from a remap here"
      end
      if (r.intact_pages or 0) < (r.sampled_pages or 1) then holds = false end
      return holds, ev .. (", %d of %d sampled pages intact"):format(r.intact_pages or 0, r.sampled_pages or 0),
        not holds and r.note or nil
    end,
    explain = function()
      return "No byte was copied: the C library grew the block with mremap(2), which moves the page-table entries "
        .. "to the new range; the data stayed on its frames and the new half is untouched."
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(res)
  local b = u.bytes
  local function signed(n) return (n >= 0 and "+" or "") .. b(n) end
  local lines = {}
  lines[#lines + 1] = ("calloc(%s): %s of %s pages present, RSS %s; its mapping is %s%s."):format(b(res.size),
    u.count(res.calloc_present), u.count(res.pages), signed(res.rss_growth_calloc),
    res.mapping_size and b(res.mapping_size) or "unknown",
    res.mmapped_blocks_growth and (", malloc counted %d new mmap'd block(s)"):format(res.mmapped_blocks_growth)
      or "")
  lines[#lines + 1] = ("Reading a fresh one: RSS %s; writing one: RSS %s, %s minor faults.")
    :format(signed(res.rss_growth_read), signed(res.rss_growth_write), u.count(res.write_faults))
  lines[#lines + 1] = ("realloc of a written %s block to %s: 0x%x -> 0x%x in %s, %s page faults, RSS %s; writing "
    .. "the block in the first place took %s and %s faults."):format(b(res.size), b(2 * res.size), res.old_address,
    res.new_address, u.seconds(res.realloc_seconds), u.count(res.realloc_faults), signed(res.rss_growth_realloc),
    u.seconds(res.write_seconds), u.count(res.fill_faults))
  if res.note then lines[#lines + 1] = "Note: " .. res.note end
  return lines
end

-- Its chart (vmlab run calloc-realloc --plot FILE.svg|png, vmlab report): what calloc, reading, writing and
-- realloc each add to RSS, and the faults and time of the write against the realloc.
M.charts = {
  { kind = "bars", title = "calloc maps zeroed memory lazily; realloc moves the pages without copying",
    panels = function(r)
      return {
        { title = "RSS growth", unit = "bytes", axis = "RSS growth", groups = {
          { label = "calloc", value = r.rss_growth_calloc }, { label = "read", value = r.rss_growth_read },
          { label = "write", value = r.rss_growth_write }, { label = "realloc", value = r.rss_growth_realloc } } },
        { title = "page faults", unit = "faults", groups = {
          { label = "write", value = r.write_faults }, { label = "realloc", value = r.realloc_faults } } },
        { title = "time", unit = "seconds", groups = {
          { label = "write", value = r.write_seconds }, { label = "realloc", value = r.realloc_seconds } } },
      }
    end },
}

return M
