--- calloc-realloc: a large calloc is lazy; a large realloc remaps instead of copying.
-- glibc serves large blocks (128 KiB and up by default) with their own mmap.
-- Such memory is already zero, so calloc does not clear it: nothing is
-- written and RSS does not move until the program writes. Growing such a
-- block with realloc uses mremap(2): the kernel moves the page-table entries
-- to a bigger range (or extends it in place), so no byte is copied and RSS
-- does not double.
-- @module vmlab.experiments.calloc-realloc
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size

local function rss() return assert(vm.proc.status()).VmRSS end
local now = vm.now

-- Are the first, middle and last page of block h all `byte`?
local function all_bytes(h, byte, size)
  local want = string.rep(string.char(byte), PAGE)
  for _, off in ipairs({ 0, (size // 2) // PAGE * PAGE, size - PAGE }) do
    if h:read(off, PAGE) ~= want then return false end
  end
  return true
end

local M = {
  name = "calloc-realloc",
  summary = "a large calloc is lazy (no RSS until written); realloc of a large block remaps it instead of copying",
  params = { size = 256 * 1024 * 1024 },
  tour = { size = 128 * 1024 * 1024 },
  units = {
    size = "bytes", rss_growth_calloc = "bytes", calloc_zeros = "text", rss_growth_read = "bytes",
    rss_growth_write = "bytes", mmapped_blocks_growth = "count", old_address = "address", new_address = "address",
    moved = "text", rss_growth_realloc = "bytes", realloc_seconds = "seconds", write_seconds = "seconds",
    data_intact = "text",
  },
  fields = { "size", "rss_growth_calloc", "mmapped_blocks_growth", "calloc_zeros", "rss_growth_read",
             "rss_growth_write", "write_seconds", "old_address", "new_address", "moved", "realloc_seconds",
             "rss_growth_realloc", "data_intact" },
}

function M.run(opts)
  local size = opts.size
  assert(math.type(size) == "integer" and size >= 1024 * 1024, "size must be at least 1 MiB")
  size = size // PAGE * PAGE
  local result = { size = size }
  if os.getenv("VMLAB_SANITIZED") == "1" then
    result.note = "under AddressSanitizer, malloc is ASan's allocator: realloc always allocates anew and copies"
  end

  -- 1. calloc: zeroed memory at no cost until it is written.
  do
    local mi0, rss0 = vm.mallinfo(), rss()
    local h <close> = assert(vm.calloc(size // PAGE, PAGE))
    local mi1, rss1 = vm.mallinfo(), rss()
    result.rss_growth_calloc = rss1 - rss0
    result.mmapped_blocks_growth = mi1.mmapped_blocks - mi0.mmapped_blocks
    result.mmapped_growth = mi1.mmapped - mi0.mmapped
    result.calloc_zeros = all_bytes(h, 0, size)
    h:touch("read")
    local rss2 = rss()
    result.rss_growth_read = rss2 - rss1 -- reads map the shared zero page
    local t = h:touch("write")
    result.rss_growth_write = rss() - rss2
    result.write_faults = t.minor_faults
  end

  -- 2. realloc: a written block doubled in size.
  do
    local h <close> = assert(vm.malloc(size))
    local t0 = now()
    h:fill(0x5a)
    result.write_seconds = now() - t0 -- first touch and write of every byte, for scale
    local rss0 = rss()
    t0 = now()
    local _, old = assert(h:realloc(2 * size))
    result.realloc_seconds = now() - t0
    result.rss_growth_realloc = rss() - rss0
    result.old_address, result.new_address = old, h.address
    result.moved = h.address ~= old
    result.data_intact = all_bytes(h, 0x5a, size)
  end
  return result
end

function M.explain(res)
  local b = units.bytes
  local lines = {}
  local via = res.mmapped_blocks_growth > 0
    and (" and malloc counted %d new mmap'd block(s)"):format(res.mmapped_blocks_growth) or ""
  lines[#lines + 1] = ("calloc(%s): RSS grew by %s%s: fresh pages from the kernel are already zero, so calloc had "
    .. "nothing to clear and nothing was touched."):format(b(res.size), b(res.rss_growth_calloc), via)
  lines[#lines + 1] = ("Its bytes read as zero (%s); reading all of it grew RSS by %s (the shared zero page); writing "
    .. "it grew RSS by %s."):format(res.calloc_zeros and "yes" or "NO", b(res.rss_growth_read), b(res.rss_growth_write))
  lines[#lines + 1] = ("realloc of a written %s block to %s: 0x%x -> 0x%x (%s) in %s, RSS grew by %s; writing the "
    .. "block in the first place took %s."):format(b(res.size), b(2 * res.size), res.old_address, res.new_address,
    res.moved and "moved" or "grown in place", units.seconds(res.realloc_seconds), b(res.rss_growth_realloc),
    units.seconds(res.write_seconds))
  local intact = res.data_intact and "intact" or "NOT intact"
  if res.rss_growth_realloc < res.size // 2 and res.realloc_seconds < res.write_seconds / 5 then
    lines[#lines + 1] = "No copy: glibc grew the block with mremap(2), which moves the page-table entries to the new "
      .. "range; the data is " .. intact .. " and the new half is untouched."
  else
    lines[#lines + 1] = "This realloc copied the data (it took about as long as writing it, or RSS grew by its size); "
      .. "the data is " .. intact .. "."
  end
  if res.note then lines[#lines + 1] = "Note: " .. res.note end
  return lines
end

return M
