--- madvise: telling the kernel what you will (not) need, and watching RSS answer.
-- One anonymous mapping goes through madvise(2) advice after advice, with the
-- process's RSS after each step; then a file shows WILLNEED's read-ahead, and
-- the heap shows malloc_trim(3) giving freed memory back. The claims below are
-- decided from those numbers (an LD_PRELOADed allocator such as jemalloc, or
-- AddressSanitizer's, does not use glibc's heap: the malloc_trim claim says so).
-- @module vmlab.experiments.madvise
local vm = require "vmlab"
local units = require "vmlab.units"
local pagecache = require "vmlab.pagecache"

local PAGE = vm.page_size

-- VmRSS in bytes.
local function rss() return assert(vm.proc.rss()) end

-- One field (in bytes) of the smaps entry of the mapping that holds address.
local function smaps_field(address, field)
  local m = vm.proc.mapping_at(address)
  return m and m[field]
end

local ZERO_PAGE = string.rep("\0", PAGE)

-- Are the first, middle and last page of r all zero bytes?
local function reads_zeros(r)
  local last = (r.size // PAGE - 1) * PAGE
  for _, off in ipairs({ 0, (r.size // 2) // PAGE * PAGE, last }) do
    if r:read(off, PAGE) ~= ZERO_PAGE then return false end
  end
  return true
end

-- A file of `size` bytes in a disk-backed temp directory (as file-mmap picks
-- it: a tmpfs /tmp keeps files in memory, so there is nothing to read ahead),
-- written through the page cache.
local function make_file(size)
  local fm = require "vmlab.experiments.file-mmap"
  local path = fm.new_file(fm.pick_dir("auto"))
  pagecache.fill(path, size, "v")
  return path, fm.fs_type(path)
end

-- What the first page of r reads as: "old" (the bytes `old`), "zeros" or "other".
local function first_page(r, old)
  local s = r:read(0, PAGE)
  if s == old then return "old" end
  if s == ZERO_PAGE then return "zeros" end
  return "other"
end

-- How many of the blocks lie in the brk heap ([heap] in /proc/self/maps).
local function in_brk_heap(blocks)
  local lo, hi
  for _, m in ipairs(vm.proc.maps() or {}) do
    if m.path == "[heap]" then lo, hi = m.start, m.finish end
  end
  local n = 0
  if lo then
    for _, blk in pairs(blocks) do
      if blk.address >= lo and blk.address < hi then n = n + 1 end
    end
  end
  return n
end

local now = vm.now

local M = {
  name = "madvise",
  summary = "DONTNEED drops RSS (reads then see zeros), FREE, WILLNEED, POPULATE_WRITE; malloc_trim gives heap back",
  params = {
    { name = "size", default = 64 * 1024 * 1024, unit = "bytes", min = PAGE, max = 1 << 40,
      help = "the anonymous mapping advised DONTNEED, FREE and POPULATE_WRITE" },
    { name = "file_size", default = 16 * 1024 * 1024, unit = "bytes", min = PAGE, max = 1 << 40,
      help = "the file advised WILLNEED" },
    { name = "heap_size", default = 64 * 1024 * 1024, unit = "bytes", min = PAGE, max = 1 << 40,
      help = "malloc'd in small blocks, freed, then malloc_trim" },
    { name = "block", default = 64 * 1024, unit = "bytes", min = 16, max = 1024 * 1024,
      help = "each heap block (below glibc's mmap threshold, 128KiB, it comes from the heap)" },
  },
  tour = { size = 32 * 1024 * 1024, file_size = 8 * 1024 * 1024, heap_size = 32 * 1024 * 1024 },
  fields = {
    { name = "size", unit = "bytes", help = "the anonymous mapping" },
    { name = "pages", unit = "count", help = "its pages" },
    { name = "block", unit = "bytes", help = "each heap block" },
    { name = "heap_size", unit = "bytes", help = "the heap memory malloc'd" },
    { name = "write_faults", unit = "count", help = "minor faults of writing the mapping" },
    { name = "dontneed_rss_drop", unit = "bytes", help = "VmRSS drop at MADV_DONTNEED" },
    { name = "zeros_after_dontneed", unit = "boolean", help = "the pages read as zeros after DONTNEED" },
    { name = "read_after_dontneed_rss_growth", unit = "bytes", help = "VmRSS growth reading them again" },
    { name = "lazy_free", unit = "bytes", optional = true, help = "smaps LazyFree after MADV_FREE" },
    { name = "free_rss_drop", unit = "bytes", optional = true, help = "VmRSS drop at MADV_FREE (none until pressure)" },
    { name = "free_read", unit = "text", optional = true,
      help = "what the first page read after FREE: old (data kept), zeros, other" },
    { name = "free_data_kept", unit = "boolean", optional = true, help = "the data was still there after FREE" },
    { name = "mem_available", unit = "bytes", optional = true, help = "MemAvailable at that moment" },
    { name = "free_error", unit = "text", optional = true, help = "why MADV_FREE failed" },
    { name = "willneed_rss_growth", unit = "bytes", help = "VmRSS growth at MADV_WILLNEED on the dropped pages" },
    { name = "populate_write_rss_growth", unit = "bytes", optional = true,
      help = "VmRSS growth at MADV_POPULATE_WRITE" },
    { name = "populate_write_seconds", unit = "seconds", optional = true, help = "time of MADV_POPULATE_WRITE" },
    { name = "populate_write_touch_faults", unit = "count", optional = true,
      help = "minor faults writing the populated pages" },
    { name = "populate_write_error", unit = "text", optional = true, help = "why MADV_POPULATE_WRITE failed" },
    { name = "willneed_file", unit = "object", optional = true, help = "MADV_WILLNEED on a cold file", fields = {
      { name = "pages", unit = "count", help = "pages of the file" },
      { name = "cached_before", unit = "count", help = "pages in the page cache before the advice" },
      { name = "cached_after", unit = "count", help = "pages in the page cache after it, with no access" },
      { name = "seconds", unit = "seconds", help = "until the cache stopped growing" },
      { name = "major_faults", unit = "count", help = "major faults reading the file afterwards" },
      { name = "cache_drop", unit = "text", help = "how the file was dropped from the cache first" },
      { name = "fs_type", unit = "text", optional = true, help = "the file system the file lives on" },
    } },
    { name = "heap_blocks", unit = "count", help = "heap blocks malloc'd" },
    { name = "heap_blocks_in_brk", unit = "count", help = "of them in the brk heap" },
    { name = "heap_rss_growth", unit = "bytes", help = "VmRSS growth writing the blocks" },
    { name = "heap_free_rss_drop", unit = "bytes", help = "VmRSS drop at free (little: the heap keeps it)" },
    { name = "trim_released", unit = "boolean", help = "malloc_trim(0) said it released memory" },
    { name = "trim_rss_drop", unit = "bytes", help = "VmRSS drop at malloc_trim" },
    { name = "steps", unit = "table", help = "VmRSS after each step", fields = {
      { name = "step", unit = "text", help = "the call" },
      { name = "rss", unit = "bytes", help = "VmRSS right after it" },
      { name = "detail", unit = "text", help = "what it did" },
    } },
    { name = "timeline", unit = "timeline", help = "the first write: RSS and faults every 1 MiB" },
  },
}

--- Run the steps; each leaves a row {step=, rss=, detail=} in result.steps
-- (the RSS right after it); the numbers behind the details are result fields.
function M.run(opts)
  local size = opts.size
  assert(math.type(size) == "integer" and size >= PAGE, "size must be at least one page")
  local b = units.bytes
  local steps = {}
  local result = { size = size, pages = (size + PAGE - 1) // PAGE, steps = steps, block = opts.block,
                   heap_size = opts.heap_size }
  local function step(name, detail)
    local row = { step = name, rss = rss(), detail = detail }
    steps[#steps + 1] = row
    return row
  end

  -- 1. An anonymous mapping, base pages only (nohugepage), so RSS moves page by page.
  local r <close> = assert(vm.mmap(size))
  r:advise("nohugepage")
  step("mmap", b(size) .. " mapped, nothing touched")
  local t = r:touch("write", { value = 0xab, sample = 1 << 20 })
  result.write_faults = t.minor_faults
  result.timeline = t.timeline -- the first write, a sample every 1 MiB
  local written = step("write", ("every page written: %d faults"):format(t.minor_faults))

  -- 2. DONTNEED: the pages go back to the kernel; the mapping stays.
  assert(r:advise("dontneed"))
  local dropped = step("madvise dontneed", ("RSS -%s"):format(b(written.rss - rss())))
  result.dontneed_rss_drop = written.rss - dropped.rss
  result.zeros_after_dontneed = reads_zeros(r)
  local reread = step("read after dontneed", result.zeros_after_dontneed
    and "the first, middle and last page read as zeros" or "the pages read back do NOT hold zeros")
  result.read_after_dontneed_rss_growth = reread.rss - dropped.rss

  -- 3. FREE: the kernel may take the pages when it needs memory; until then they stay.
  r:touch("write", { value = 0xab })
  local before_free = step("write again", "every page written again")
  local old_page = r:read(0, PAGE)
  local ok, err = r:advise("free")
  if ok then
    local s = step("madvise free", "")
    result.lazy_free = smaps_field(r.address, "LazyFree")
    result.free_read = first_page(r, old_page)
    result.free_data_kept = result.free_read == "old"
    result.mem_available = vm.proc.meminfo().MemAvailable
    s.detail = ("%s LazyFree in smaps; the first page reads %s"):format(b(result.lazy_free),
      ({ old = "the old data", zeros = "zeros", other = "neither the old data nor zeros" })[result.free_read])
    result.free_rss_drop = before_free.rss - s.rss
  else
    result.free_error = err
    step("madvise free", "not available: " .. tostring(err))
  end

  -- 4. WILLNEED on anonymous memory: only swapped-out pages would be read back.
  assert(r:advise("dontneed"))
  local again = step("madvise dontneed", "dropped again")
  assert(r:advise("willneed"))
  local wn = step("madvise willneed", "anonymous memory")
  result.willneed_rss_growth = wn.rss - again.rss
  wn.detail = ("anonymous memory: RSS %s%s"):format(result.willneed_rss_growth < 0 and "-" or "+",
    b(math.abs(result.willneed_rss_growth)))

  -- 5. POPULATE_WRITE (Linux 5.14+): the kernel faults every page in now, so the touch costs none.
  local t0 = now()
  ok, err = r:advise("populate_write")
  if ok then
    result.populate_write_seconds = now() - t0
    local s = step("madvise populate_write", ("RSS +%s in one call, no access"):format(b(rss() - wn.rss)))
    result.populate_write_rss_growth = s.rss - wn.rss
    result.populate_write_touch_faults = r:touch("write").minor_faults
  else
    result.populate_write_error = err
    step("madvise populate_write", "not available: " .. tostring(err))
  end
  r:close()
  step("munmap", "the mapping is gone")

  -- 6. WILLNEED on a file: read-ahead into the page cache before any access.
  local path, fstype = make_file(opts.file_size)
  do
    local f <close> = assert(vm.mmap(nil, { file = path, share = "shared" }))
    local how, derr = pagecache.drop(path, f)
    local cached0 = f:resident()
    local t1 = now()
    assert(f:advise("willneed"))
    -- Read-ahead runs in the background: watch the cache fill, touching nothing, until
    -- it holds the whole file or has not grown for 0.1 s (a second at most).
    local cached1, changed = f:resident(), now()
    while cached1 < f.pages and now() - changed < 0.1 and now() - t1 < 1 do
      local c = f:resident()
      if c ~= cached1 then cached1, changed = c, now() end
    end
    step("madvise willneed (file)", ("%s file: %d of %d pages cached before, %d after, no access"):format(
      b(opts.file_size), cached0, f.pages, cached1))
    local touch = f:touch("read")
    result.willneed_file = { pages = f.pages, cached_before = cached0, cached_after = cached1, seconds = changed - t1,
                             major_faults = touch.major_faults, cache_drop = how or derr, fs_type = fstype }
  end
  os.remove(path)

  -- 7. malloc_trim: small blocks come from the heap; freed, they stay resident
  --    behind one block still in use, until malloc_trim returns the free pages.
  -- Start from a heap with no free pages resident (earlier work in this process
  -- may have left some), so every block written is new RSS.
  vm.malloc_trim(0)
  local heap_base = rss()
  local blocks = {}
  local n = math.max(1, opts.heap_size // opts.block)
  for i = 1, n do
    blocks[i] = assert(vm.malloc(opts.block))
    blocks[i]:fill(1)
  end
  -- The block at the highest address stays in use: it pins the top of the heap,
  -- so free() of the others cannot shrink the heap from the top by itself.
  local top = 1
  for i = 2, n do
    if blocks[i].address > blocks[top].address then top = i end
  end
  local fence = blocks[top]
  result.heap_blocks, result.heap_blocks_in_brk = n, in_brk_heap(blocks)
  local filled = step("malloc + write", ("%d blocks of %s, %d of them in the brk heap"):format(n, b(opts.block),
    result.heap_blocks_in_brk))
  for i = 1, n do
    if i ~= top then blocks[i]:close() end
  end
  blocks = nil -- luacheck: ignore 311
  collectgarbage()
  local freed = step("free", ("all but the top block freed: mallinfo counts %s free in the heap"):format(
    b(vm.mallinfo().free)))
  result.trim_released = vm.malloc_trim(0)
  local trimmed = step("malloc_trim(0)", ("returned %s, RSS -%s"):format(
    result.trim_released and "1 (memory released)" or "0 (nothing released)", b(freed.rss - rss())))
  fence:close()
  result.heap_rss_growth = filled.rss - heap_base
  result.heap_free_rss_drop = filled.rss - freed.rss
  result.trim_rss_drop = freed.rss - trimmed.rss
  return result
end

local function near(x, want) return x ~= nil and x >= want * 0.9 and x <= want * 1.1 + (2 << 20) end

M.claims = {
  { id = "dontneed_drops_rss",
    text = "MADV_DONTNEED gives the pages back to the kernel at once: RSS drops by the size",
    decide = function(r)
      return near(r.dontneed_rss_drop, r.size), ("%s written, RSS -%s right after MADV_DONTNEED"):format(
        units.bytes(r.size), units.bytes(r.dontneed_rss_drop))
    end },
  { id = "dontneed_reads_zeros",
    text = "after MADV_DONTNEED the mapping stays, and the next read sees zeros: the old data is gone",
    decide = function(r)
      return r.zeros_after_dontneed == true, ("the first, middle and last page read %s after DONTNEED; reading "
        .. "them grew RSS by %s"):format(r.zeros_after_dontneed and "as zeros" or "NOT as zeros",
        units.bytes(r.read_after_dontneed_rss_growth))
    end,
    explain = function()
      return "The next touch of such a page faults in a fresh zeroed page, as for memory never written."
    end },
  { id = "free_is_lazy",
    text = "MADV_FREE frees lazily: the pages stay (RSS unchanged, LazyFree in smaps) until memory runs short, "
      .. "and a read sees the old data, or zeros once the kernel took them",
    decide = function(r)
      if r.free_error then return nil, nil, "madvise(MADV_FREE) was refused: " .. tostring(r.free_error) end
      local ev = ("LazyFree %s of %s, RSS -%s after MADV_FREE, the first page reads %s"):format(
        units.bytes(r.lazy_free), units.bytes(r.size), units.bytes(r.free_rss_drop),
        ({ old = "the old data", zeros = "zeros", other = "neither the old data nor zeros" })[r.free_read])
      local stayed = (r.lazy_free or 0) >= r.size * 0.5 and r.free_rss_drop < r.size * 0.5
      local why
      if not stayed and r.free_rss_drop >= r.size * 0.5 then
        why = ("the kernel took the pages at once (memory pressure? MemAvailable %s)"):format(
          units.bytes(r.mem_available))
      end
      return stayed and r.free_read ~= "other", ev, why
    end,
    explain = function(r)
      return r.free_read == "old"
        and "Nothing was taken yet: with memory to spare the data stays readable, and a write would cancel the advice."
        or "The kernel took the pages it needed: those read as zeros now."
    end },
  { id = "willneed_reads_ahead",
    text = "MADV_WILLNEED on a mapped file starts reading it into the page cache before any access",
    decide = function(r)
      local w = r.willneed_file
      if not w then return nil end
      local ev = ("%s file on %s: %s of %s pages cached before the advice, %s after (within %s), no access"):format(
        units.bytes(w.pages * PAGE), tostring(w.fs_type), units.count(w.cached_before), units.count(w.pages),
        units.count(w.cached_after), units.seconds(w.seconds))
      if w.cached_before > w.pages // 2 then
        return nil, ev, ("the page cache kept the file after %s (%s keeps files in memory?): nothing was left to "
          .. "read ahead"):format(tostring(w.cache_drop), tostring(w.fs_type))
      end
      return w.cached_after - w.cached_before >= math.max(1, w.pages // 8), ev
    end },
  { id = "populate_write_prefaults",
    text = "MADV_POPULATE_WRITE faults every page in at once: RSS grows by the size, "
      .. "and writing the pages afterwards faults nothing",
    requires = "madv_populate",
    decide = function(r)
      if r.populate_write_error then
        return nil, nil, "madvise(MADV_POPULATE_WRITE) was refused: " .. tostring(r.populate_write_error)
      end
      return near(r.populate_write_rss_growth, r.size)
          and r.populate_write_touch_faults <= math.max(8, r.pages // 100),
        ("RSS +%s in one call (%s); writing every page afterwards: %s faults for %s pages"):format(
          units.bytes(r.populate_write_rss_growth), units.seconds(r.populate_write_seconds),
          units.count(r.populate_write_touch_faults), units.count(r.pages))
    end },
  { id = "trim_returns_heap",
    text = "free() keeps small blocks' memory in the heap for reuse; malloc_trim(0) gives it back to the kernel",
    requires = "glibc_heap",
    decide = function(r)
      local kept = r.heap_rss_growth - r.heap_free_rss_drop
      local ev = ("%d blocks of %s (%d in the brk heap): RSS +%s written, -%s after free() of all but the top one, "
        .. "-%s after malloc_trim(0)"):format(r.heap_blocks, units.bytes(r.block), r.heap_blocks_in_brk,
        units.bytes(r.heap_rss_growth), units.bytes(r.heap_free_rss_drop), units.bytes(r.trim_rss_drop))
      if r.heap_rss_growth < r.heap_size * 0.8 then
        return false, ev, "writing the blocks did not grow RSS by their size"
      end
      if kept < r.heap_rss_growth * 0.5 then
        return false, ev, "free() itself gave most of it back: this allocator returns memory without malloc_trim"
      end
      return r.trim_rss_drop >= kept * 0.8, ev
    end,
    explain = function()
      return "glibc's malloc keeps freed chunks for the next malloc; malloc_trim(0) madvises the free pages away."
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(res)
  local b = units.bytes
  local lines = {}
  local function find(name)
    for _, st in ipairs(res.steps or {}) do if st.step == name then return st end end
  end
  local w = find("write")
  lines[#lines + 1] = ("Writing %s made RSS %s (%s faults); MADV_DONTNEED changed it by -%s; reading afterwards: %s.")
    :format(b(res.size), b(w.rss), units.count(res.write_faults), b(res.dontneed_rss_drop),
      res.zeros_after_dontneed and "zeros" or "not zeros")
  if res.lazy_free then
    lines[#lines + 1] = ("MADV_FREE: RSS -%s, LazyFree %s, the first page read back: %s."):format(
      b(res.free_rss_drop), b(res.lazy_free), res.free_read)
  else
    lines[#lines + 1] = "MADV_FREE was refused: " .. tostring(res.free_error)
  end
  lines[#lines + 1] = ("MADV_WILLNEED on anonymous memory (nothing swapped out) changed RSS by %s."):format(
    b(res.willneed_rss_growth))
  if res.populate_write_rss_growth then
    lines[#lines + 1] = ("MADV_POPULATE_WRITE: RSS +%s in one call (%s); writing every page afterwards: %d faults.")
      :format(b(res.populate_write_rss_growth), units.seconds(res.populate_write_seconds),
        res.populate_write_touch_faults)
  else
    lines[#lines + 1] = "MADV_POPULATE_WRITE was refused: " .. tostring(res.populate_write_error)
  end
  local wf = res.willneed_file
  if wf then
    lines[#lines + 1] = ("File WILLNEED: %d of %d pages cached before, %d within %s without an access; reading it "
      .. "all then: %d major fault(s)."):format(wf.cached_before, wf.pages, wf.cached_after,
      units.seconds(wf.seconds), wf.major_faults)
  end
  lines[#lines + 1] = ("Heap: %d blocks written, RSS +%s; free() of all but one: -%s; malloc_trim(0): -%s.")
    :format(res.heap_blocks, b(res.heap_rss_growth), b(res.heap_free_rss_drop), b(res.trim_rss_drop))
  return lines
end

-- Its charts (vmlab run madvise --plot FILE.svg|png, vmlab report): RSS after each step, then the first write
-- as a timeline.
M.charts = {
  { kind = "hbars", title = "RSS after each step", unit = "bytes", axis = "RSS",
    rows = function(r)
      local rows = {}
      for i, s in ipairs(r.steps or {}) do
        rows[#rows + 1] = { label = ("%d. %s"):format(i, tostring(s.step)), value = s.rss }
      end
      return rows
    end },
  { kind = "timeline", title = "RSS and faults while every page is first written" },
}

return M
