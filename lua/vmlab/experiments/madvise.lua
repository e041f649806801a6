--- madvise: telling the kernel what you will (not) need, and watching RSS answer.
-- One anonymous mapping goes through madvise(2) advice after advice, with the
-- process's RSS after each step; then a file shows WILLNEED's read-ahead, and
-- the heap shows malloc_trim(3) giving freed memory back.
-- @module vmlab.experiments.madvise
local vm = require "vmlab"
local units = require "vmlab.units"
local pagecache = require "vmlab.pagecache"

local PAGE = vm.page_size

-- VmRSS in bytes.
local function rss() return assert(vm.proc.status()).VmRSS end

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

-- A file of `size` bytes in /tmp (os.tmpname), written through the page cache.
local function make_file(size)
  local path = os.tmpname()
  pagecache.fill(path, size, "v")
  return path
end

local now = vm.now

local function sanitized() return os.getenv("VMLAB_SANITIZED") == "1" end

local M = {
  name = "madvise",
  summary = "DONTNEED drops RSS (reads then see zeros), FREE, WILLNEED, POPULATE_WRITE; malloc_trim gives heap back",
  params = {
    size = 64 * 1024 * 1024,      -- the anonymous mapping
    file_size = 16 * 1024 * 1024, -- the file for WILLNEED
    heap_size = 64 * 1024 * 1024, -- malloc'd in small blocks for malloc_trim
    block = 64 * 1024,            -- below glibc's mmap threshold (128 KiB): from the heap
  },
  tour = { size = 32 * 1024 * 1024, file_size = 8 * 1024 * 1024, heap_size = 32 * 1024 * 1024 },
  units = {
    size = "bytes", pages = "count", block = "bytes", write_faults = "count", dontneed_rss_drop = "bytes",
    zeros_after_dontneed = "text", read_after_dontneed_rss_growth = "bytes", lazy_free = "bytes",
    free_rss_drop = "bytes", free_data_kept = "text", willneed_rss_growth = "bytes",
    populate_write_rss_growth = "bytes", populate_write_seconds = "seconds", populate_write_touch_faults = "count",
    heap_rss_growth = "bytes", heap_free_rss_drop = "bytes", trim_rss_drop = "bytes", trim_released = "text",
  },
  fields = { "size", "pages", "write_faults", "dontneed_rss_drop", "zeros_after_dontneed",
             "read_after_dontneed_rss_growth", "lazy_free", "free_rss_drop", "free_data_kept", "willneed_rss_growth",
             "populate_write_rss_growth", "populate_write_seconds", "populate_write_touch_faults", "willneed_file",
             "heap_rss_growth", "heap_free_rss_drop", "trim_rss_drop", "trim_released", "steps",
             -- inside willneed_file and steps:
             "cache_drop", "cached_before", "cached_after", "seconds", "major_faults",
             "step", "rss", "detail" },
}

--- Run the steps; each leaves a row {step=, rss=, detail=} in result.steps
-- (the RSS right after it); the numbers behind the details are result fields.
function M.run(opts)
  local size = opts.size
  assert(math.type(size) == "integer" and size >= PAGE, "size must be at least one page")
  local b = units.bytes
  local steps = {}
  local result = { size = size, pages = (size + PAGE - 1) // PAGE, steps = steps }
  local function step(name, detail)
    local row = { step = name, rss = rss(), detail = detail }
    steps[#steps + 1] = row
    return row
  end

  -- 1. An anonymous mapping, 4 KiB pages only (nohugepage), so RSS moves page by page.
  local r <close> = assert(vm.mmap(size))
  r:advise("nohugepage")
  step("mmap", b(size) .. " mapped, nothing touched")
  local t = r:touch("write", { value = 0xab, sample = 1 << 20 })
  result.write_faults = t.minor_faults
  result.timeline = t.timeline -- the first write, a sample every 1 MiB
  local written = step("write", ("every page written: %d faults"):format(t.minor_faults))

  -- 2. DONTNEED: the pages are gone at once; the mapping stays, and reads see zeros.
  assert(r:advise("dontneed"))
  local dropped = step("madvise dontneed", "the pages go back to the kernel at once")
  result.dontneed_rss_drop = written.rss - dropped.rss
  result.zeros_after_dontneed = reads_zeros(r)
  local reread = step("read after dontneed", result.zeros_after_dontneed and "reads see zeros (zero page)"
    or "reads do NOT see zeros")
  result.read_after_dontneed_rss_growth = reread.rss - dropped.rss

  -- 3. FREE: the kernel may take the pages when it needs memory; until then they stay.
  r:touch("write", { value = 0xab })
  local before_free = step("write again", "every page written again")
  local ok, err = r:advise("free")
  if ok then
    result.lazy_free = smaps_field(r.address, "LazyFree")
    result.free_data_kept = r:read(0, 1) == "\xab"
    local s = step("madvise free", ("%s LazyFree in smaps; the data is %s"):format(b(result.lazy_free),
      result.free_data_kept and "still there" or "gone"))
    result.free_rss_drop = before_free.rss - s.rss
  else
    result.free_error = err
    step("madvise free", "not available: " .. tostring(err))
  end

  -- 4. WILLNEED on anonymous memory: only swapped-out pages would be read back.
  assert(r:advise("dontneed"))
  local again = step("madvise dontneed", "dropped again")
  assert(r:advise("willneed"))
  local wn = step("madvise willneed", "anonymous memory: only swapped-out pages would be read back; maps nothing")
  result.willneed_rss_growth = wn.rss - again.rss

  -- 5. POPULATE_WRITE (Linux 5.14+): the kernel faults every page in now, so the touch costs none.
  local t0 = now()
  ok, err = r:advise("populate_write")
  if ok then
    result.populate_write_seconds = now() - t0
    local s = step("madvise populate_write", "every page faulted in by the kernel, no access")
    result.populate_write_rss_growth = s.rss - wn.rss
    result.populate_write_touch_faults = r:touch("write").minor_faults
  else
    result.populate_write_error = err
    step("madvise populate_write", "not available: " .. tostring(err))
  end
  r:close()
  step("munmap", "the mapping is gone")

  -- 6. WILLNEED on a file: read-ahead into the page cache before any access.
  local path = make_file(opts.file_size)
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
                             major_faults = touch.major_faults, cache_drop = how or derr }
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
  local filled = step("malloc + write", ("%d blocks of %s from the heap"):format(n, b(opts.block)))
  for i = 1, n do
    if i ~= top then blocks[i]:close() end
  end
  blocks = nil -- luacheck: ignore 311
  collectgarbage()
  local freed = step("free", ("all but the top block freed: malloc keeps %s free for reuse"):format(
    b(vm.mallinfo().free)))
  result.trim_released = vm.malloc_trim(0)
  local trimmed = step("malloc_trim(0)",
    result.trim_released and "free heap pages given back" or "nothing given back")
  fence:close()
  result.heap_rss_growth = filled.rss - heap_base
  result.heap_free_rss_drop = filled.rss - freed.rss
  result.trim_rss_drop = freed.rss - trimmed.rss
  if sanitized() then
    result.trim_note = "under AddressSanitizer malloc is ASan's allocator; glibc's malloc_trim has nothing of it "
      .. "to trim"
  end
  return result
end

function M.explain(res)
  local b = units.bytes
  local lines = {}
  local function find(name)
    for _, st in ipairs(res.steps or {}) do if st.step == name then return st end end
  end
  local w = find("write")
  lines[#lines + 1] = ("Writing %s made RSS %s; MADV_DONTNEED dropped it by %s at once: the pages went back to "
    .. "the kernel."):format(b(res.size), b(w.rss), b(res.dontneed_rss_drop))
  lines[#lines + 1] = res.zeros_after_dontneed
    and "Reading after DONTNEED sees zeros: the mapping is still there, the old data is not (fresh zero pages)."
    or "Reading after DONTNEED did NOT see zeros: unexpected for private anonymous memory."
  if res.lazy_free then
    local f = find("madvise free")
    lines[#lines + 1] = ("MADV_FREE did not lower RSS (%s after it) but marked %s LazyFree: the kernel takes those "
      .. "pages only under memory pressure, so the data is %s."):format(b(f.rss), b(res.lazy_free),
      res.free_data_kept and "still readable now" or "already gone here")
  else
    lines[#lines + 1] = "MADV_FREE is not available here: " .. tostring(res.free_error)
  end
  lines[#lines + 1] = ("WILLNEED on anonymous memory changed RSS by %s: it only starts reading swapped-out pages "
    .. "back in, and maps nothing."):format(b(res.willneed_rss_growth))
  if res.populate_write_rss_growth then
    lines[#lines + 1] = ("MADV_POPULATE_WRITE grew RSS by %s in one call (%s); writing every page afterwards cost "
      .. "%d faults."):format(b(res.populate_write_rss_growth), units.seconds(res.populate_write_seconds),
      res.populate_write_touch_faults)
  else
    lines[#lines + 1] = "MADV_POPULATE_WRITE is not available here: " .. tostring(res.populate_write_error)
  end
  local wf = res.willneed_file
  if wf then
    lines[#lines + 1] = ("On a file, WILLNEED started read-ahead: %d of %d pages cached before, %d within %s "
      .. "without a single access; reading it all then cost %d major fault(s)."):format(
      wf.cached_before, wf.pages, wf.cached_after, units.seconds(wf.seconds), wf.major_faults)
  end
  lines[#lines + 1] = ("free() of the small blocks gave back %s of RSS (glibc keeps freed heap memory for reuse); "
    .. "malloc_trim(0) then gave back %s."):format(b(res.heap_free_rss_drop), b(res.trim_rss_drop))
  if res.trim_note then lines[#lines + 1] = res.trim_note end
  return lines
end

return M
