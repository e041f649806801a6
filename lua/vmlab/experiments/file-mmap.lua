--- file-mmap: a file mapped shared is the page cache seen as memory.
-- Writes through the mapping dirty page-cache pages that msync(2) writes to
-- the file; mincore(2) shows which pages of the file are cached; once the
-- cache is dropped (posix_fadvise DONTNEED), reading through the mapping costs
-- major faults: the kernel reads the file from disk while the process waits.
-- @module vmlab.experiments.file-mmap
local vm = require "vmlab"
local units = require "vmlab.units"
local pagecache = require "vmlab.pagecache"

local PAGE = vm.page_size

-- Sum of some fields (in bytes) of the smaps entry of the mapping that holds address.
local function smaps_sum(address, fields)
  local m = vm.proc.mapping_at(address)
  if not m then return nil end
  local sum = 0
  for k in pairs(fields) do sum = sum + (m[k] or 0) end
  return sum
end

-- The file system type holding path (longest mount point in /proc/self/mountinfo).
local function fs_type(path)
  local best, best_len = nil, -1
  for _, m in ipairs(vm.proc.mountinfo() or {}) do
    local mnt = m.mountpoint
    local prefix = mnt == "/" and "/" or mnt .. "/"
    if (path:sub(1, #prefix) == prefix or path == mnt) and #mnt > best_len then best, best_len = m.fstype, #mnt end
  end
  return best
end

-- File systems with no disk behind them: nothing to write back, nothing to fault in from.
local IN_MEMORY = { tmpfs = true, ramfs = true, hugetlbfs = true }

-- The directory for the scratch file: dir, or with "auto" the first of $TMPDIR,
-- /tmp and /var/tmp that is on a disk (/tmp is often tmpfs), else /tmp.
local function pick_dir(dir)
  if dir ~= "auto" then return dir end
  for _, d in ipairs({ os.getenv("TMPDIR") or false, "/tmp", "/var/tmp" }) do
    if d and d ~= "" then
      local probe = io.open(d .. "/.", "r")
      if probe then
        probe:close()
        local t = fs_type(d .. "/x")
        if t and not IN_MEMORY[t] then return d end
      end
    end
  end
  return "/tmp"
end

-- A new, empty file: os.tmpname() in /tmp, else a fresh name in dir.
local function new_file(dir)
  if dir == "/tmp" then return os.tmpname() end
  for _ = 1, 100 do
    local path = ("%s/vmlab-file-mmap-%08x"):format(dir, math.random(0, 0x7fffffff))
    if not io.open(path) then
      local f = io.open(path, "wb")
      if f then f:close(); return path end
      error("cannot create a file in " .. dir)
    end
  end
  error("no free file name in " .. dir)
end

local function read_file_at(path, offset, len)
  local f = assert(io.open(path, "rb"))
  f:seek("set", offset)
  local s = f:read(len)
  f:close()
  return s
end

local MARK_HEAD, MARK_TAIL = "written through the mapping", "and at its last page"
local DIRTY = { Shared_Dirty = true, Private_Dirty = true }

local M = {
  name = "file-mmap",
  summary = "a file mapped shared: writes reach the file after msync; page cache via mincore; major faults when cold",
  params = {
    { name = "size", default = 32 * 1024 * 1024, unit = "bytes", min = 2 * PAGE, max = 1 << 40,
      help = "the scratch file mapped shared (whole pages), removed at the end" },
    { name = "dir", default = "auto", unit = "text",
      help = "where the scratch file lives; auto: the first of $TMPDIR, /tmp, /var/tmp on a disk, else /tmp" },
  },
  tour = { size = 16 * 1024 * 1024 },
  fields = {
    { name = "size", unit = "bytes", help = "the file (whole pages)" },
    { name = "pages", unit = "count", help = "its pages" },
    { name = "path", unit = "text", help = "where the file was (removed)" },
    { name = "fs_type", unit = "text", help = "the file system it was on" },
    { name = "in_memory_fs", unit = "boolean", help = "that file system keeps files in memory (tmpfs: no disk reads)" },
    { name = "resident_after_create", unit = "count", optional = true,
      help = "file pages in the page cache after writing it" },
    { name = "dirty_before_sync", unit = "bytes", optional = true, help = "smaps dirty bytes before msync" },
    { name = "visible_before_sync", unit = "boolean", optional = true,
      help = "read(2) of the file saw the mapping's writes before msync" },
    { name = "dirty_after_sync", unit = "bytes", optional = true, help = "smaps dirty bytes after msync" },
    { name = "cache_drop", unit = "text", optional = true, help = "how the file was dropped from the page cache" },
    { name = "cached_after_drop", unit = "count", optional = true, help = "file pages still cached after the drop" },
    { name = "persisted", unit = "boolean", optional = true, help = "the file held the writes after unmapping" },
    { name = "resident_before_read", unit = "count", optional = true, help = "pages cached before the cold read" },
    { name = "resident_after_read", unit = "count", optional = true, help = "pages cached after it" },
    { name = "major_faults", unit = "count", optional = true, help = "major faults of the cold read (readahead off)" },
    { name = "minor_faults", unit = "count", optional = true, help = "minor faults of the cold read" },
    { name = "read_seconds", unit = "seconds", optional = true, help = "time of the cold read" },
    { name = "resident_before_readahead", unit = "count", optional = true,
      help = "pages cached before the read with readahead" },
    { name = "major_faults_readahead", unit = "count", optional = true, help = "major faults of that read" },
    { name = "minor_faults_readahead", unit = "count", optional = true, help = "minor faults of that read" },
    { name = "readahead_seconds", unit = "seconds", optional = true, help = "time of that read" },
  },
}

local function run(opts, path, result)
  local size = opts.size
  pagecache.fill(path, size, "a")

  -- 1. Write through a shared mapping: dirty page-cache pages until msync.
  do
    local r <close> = assert(vm.mmap(nil, { file = path, share = "shared" }))
    result.resident_after_create = r:resident()
    assert(r:sync()) -- start clean: write(2)'s own dirty pages go to disk first
    r:write(0, MARK_HEAD)
    r:write(size - PAGE, MARK_TAIL)
    result.dirty_before_sync = smaps_sum(r.address, DIRTY)
    -- read(2) goes through the same page cache, so it sees the bytes already.
    result.visible_before_sync = read_file_at(path, 0, #MARK_HEAD) == MARK_HEAD
    assert(r:sync())
    result.dirty_after_sync = smaps_sum(r.address, DIRTY)
    r:close() -- fadvise drops only pages no mapping holds
    local how, err = pagecache.drop(path)
    result.cache_drop = how or ("could not drop the cache: " .. tostring(err))
  end
  -- With the cache dropped, read(2) has to fetch the bytes from the disk.
  result.cached_after_drop = (vm.file_resident(path))
  result.persisted = read_file_at(path, 0, #MARK_HEAD) == MARK_HEAD
    and read_file_at(path, size - PAGE, #MARK_TAIL) == MARK_TAIL

  -- 2. Page-cache residency before and after reading through a mapping, one
  --    page at a time (MADV_RANDOM: no read-ahead), so each page is a major fault.
  do
    local r <close> = assert(vm.mmap(nil, { file = path, share = "shared", prot = "r" }))
    pagecache.drop(path)
    result.resident_before_read = r:resident()
    assert(r:advise("random"))
    local t = r:touch("read")
    result.resident_after_read = r:resident()
    result.major_faults, result.minor_faults, result.read_seconds = t.major_faults, t.minor_faults, t.seconds
  end

  -- 3. The same cold read with normal advice: read-ahead fetches ahead of the faults.
  do
    local r <close> = assert(vm.mmap(nil, { file = path, share = "shared", prot = "r" }))
    pagecache.drop(path)
    result.resident_before_readahead = r:resident()
    local t = r:touch("read")
    result.major_faults_readahead, result.minor_faults_readahead = t.major_faults, t.minor_faults
    result.readahead_seconds = t.seconds
  end

end

function M.run(opts)
  local size = opts.size
  assert(math.type(size) == "integer" and size >= 2 * PAGE, "size must be at least two pages")
  size = size // PAGE * PAGE
  local path = new_file(pick_dir(opts.dir))
  local result = { size = size, pages = size // PAGE, path = path, fs_type = fs_type(path) }
  result.in_memory_fs = IN_MEMORY[result.fs_type] or false
  local ok, err = pcall(run, { size = size }, path, result)
  os.remove(path)
  if not ok then error(err, 0) end
  return result
end

M.fs_type, M.pick_dir, M.new_file = fs_type, pick_dir, new_file

local b, count = units.bytes, units.count

-- Was the file really dropped from the page cache before the cold reads?
local function cold(res, resident)
  if resident <= res.pages // 20 then return true end
  return false, ("the page cache kept %s of %s pages after %s (%s on %s)"):format(count(resident),
    count(res.pages), tostring(res.cache_drop), res.in_memory_fs and "a file system that keeps files in memory"
    or "the drop did not take", tostring(res.fs_type))
end

M.claims = {
  { id = "one_page_cache",
    text = "read(2) sees writes made through a shared mapping at once, before msync: both use the same page cache",
    decide = function(r)
      return r.visible_before_sync == true, ("read(2) of the file right after the write through the mapping saw "
        .. "%s; %s of pages dirty"):format(r.visible_before_sync and "the new bytes" or "the OLD bytes",
        b(r.dirty_before_sync))
    end },
  { id = "msync_persists",
    text = "msync writes the dirty pages to the file: none stay dirty, and the file read back from disk holds the "
      .. "writes",
    decide = function(r)
      local ev = ("dirty %s before msync, %s after; %s of %s pages cached after the drop; the file read back %s")
        :format(b(r.dirty_before_sync), b(r.dirty_after_sync), count(r.cached_after_drop or 0), count(r.pages),
          r.persisted and "holds both writes" or "does NOT hold the writes")
      local ok, why = cold(r, r.cached_after_drop or 0)
      if not ok then return nil, ev, why .. ": the read-back did not come from the disk" end
      return r.dirty_before_sync > 0 and r.dirty_after_sync == 0 and r.persisted == true, ev
    end,
    explain = function(r)
      return r.dirty_before_sync > 2 * PAGE and ("(%s dirty for two short writes: the kernel tracks dirtiness per "
        .. "folio, and a folio can span many pages; msync writes each whole folio.)"):format(b(r.dirty_before_sync))
        or nil
    end },
  { id = "cold_major_faults",
    text = "reading a page that is not in the page cache is a major fault: with read-ahead off (MADV_RANDOM), one "
      .. "per page, and afterwards every page is cached (mincore)",
    decide = function(r)
      local ev = ("mincore: %s of %s pages cached before, %s after; %s major and %s minor faults in %s"):format(
        count(r.resident_before_read), count(r.pages), count(r.resident_after_read), count(r.major_faults),
        count(r.minor_faults), units.seconds(r.read_seconds))
      local ok, why = cold(r, r.resident_before_read)
      if not ok then return nil, ev, why end
      return r.major_faults >= r.pages * 0.9 and r.major_faults <= r.pages * 1.05
        and r.resident_after_read == r.pages, ev
    end,
    explain = function()
      return "Each major fault waited while the kernel read that page from the disk into the page cache."
    end },
  { id = "readahead_fewer_major",
    text = "with normal read-ahead the same cold read takes far fewer major faults: the kernel reads ahead of them",
    decide = function(r)
      local ev = ("%s of %s pages cached before; %s major and %s minor faults in %s (MADV_RANDOM: %s major)"):format(
        count(r.resident_before_readahead), count(r.pages), count(r.major_faults_readahead),
        count(r.minor_faults_readahead), units.seconds(r.readahead_seconds), count(r.major_faults))
      local ok, why = cold(r, r.resident_before_readahead)
      if not ok then return nil, ev, why end
      return r.major_faults_readahead >= 1 and r.major_faults_readahead <= r.pages // 4, ev
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(res)
  return {
    ("A %s file (%s, on %s) mapped MAP_SHARED; two writes through the mapping: %s dirty before msync, %s after.")
      :format(b(res.size), res.path, tostring(res.fs_type), b(res.dirty_before_sync), b(res.dirty_after_sync)),
    ("Cache drop: %s; %s of %s pages cached after it."):format(tostring(res.cache_drop),
      count(res.cached_after_drop or 0), count(res.pages)),
    ("MADV_RANDOM read of every page: %s cached before, %s after, %s major faults, %s minor, %s."):format(
      count(res.resident_before_read), count(res.resident_after_read), count(res.major_faults),
      count(res.minor_faults), units.seconds(res.read_seconds)),
    ("Normal read: %s cached before, %s major faults, %s minor, %s."):format(count(res.resident_before_readahead),
      count(res.major_faults_readahead), count(res.minor_faults_readahead), units.seconds(res.readahead_seconds)),
  }
end

-- Its chart (vmlab run file-mmap --plot FILE.svg|png, vmlab report): faults and time reading a file's pages
-- with and without readahead, and dirty pages before and after msync.
M.charts = {
  { kind = "bars", title = "a mapped file: page faults, time and dirty pages",
    panels = function(r)
      return {
        { title = "page faults reading it", unit = "faults", groups = {
          { label = "page by page", bars = { { name = "major", value = r.major_faults, color = "#d62728" },
            { name = "minor", value = r.minor_faults, color = "#2ca02c" } } },
          { label = "with readahead", bars = { { name = "major", value = r.major_faults_readahead },
            { name = "minor", value = r.minor_faults_readahead } } } } },
        { title = "time reading it", unit = "seconds", groups = {
          { label = "page by page", value = r.read_seconds },
          { label = "with readahead", value = r.readahead_seconds } } },
        { title = "dirty pages", unit = "bytes", axis = "Dirty", groups = {
          { label = "before msync", value = r.dirty_before_sync },
          { label = "after msync", value = r.dirty_after_sync } } },
      }
    end },
}

return M
