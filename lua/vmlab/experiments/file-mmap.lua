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
  for line in io.lines("/proc/self/mountinfo") do
    local mnt, fstype = line:match("^%S+ %S+ %S+ %S+ (%S+) .- %- (%S+) ")
    if mnt then
      mnt = mnt:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end)
      local prefix = mnt == "/" and "/" or mnt .. "/"
      if (path:sub(1, #prefix) == prefix or path == mnt) and #mnt > best_len then best, best_len = fstype, #mnt end
    end
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
    size = 32 * 1024 * 1024,
    dir = "auto", -- where the scratch file lives (removed at the end); auto: a disk-backed temp dir
  },
  tour = { size = 16 * 1024 * 1024 },
  units = {
    size = "bytes", pages = "count", fs_type = "text", dirty_before_sync = "bytes", dirty_after_sync = "bytes",
    visible_before_sync = "text", persisted = "text", cache_drop = "text", resident_before_read = "count",
    resident_after_read = "count", major_faults = "count", minor_faults = "count", read_seconds = "seconds",
    major_faults_readahead = "count", readahead_seconds = "seconds", major_faults_note = "text",
  },
  fields = { "size", "pages", "fs_type", "dirty_before_sync", "dirty_after_sync", "visible_before_sync", "persisted",
             "cache_drop", "resident_before_read", "resident_after_read", "major_faults", "minor_faults",
             "read_seconds", "major_faults_readahead", "readahead_seconds", "major_faults_note" },
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

  if result.resident_before_read > result.pages // 2 then
    result.major_faults_note = ("the page cache kept the file after the drop (%s on %s): %s keeps files in memory, "
      .. "so there is no disk to fault from"):format(result.cache_drop, tostring(result.fs_type),
      tostring(result.fs_type))
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

function M.explain(res)
  local b = units.bytes
  local lines = {}
  lines[#lines + 1] = ("A %s file (%s, on %s) mapped MAP_SHARED: two writes through the mapping left %s of dirty "
    .. "pages; after msync %s."):format(b(res.size), res.path, tostring(res.fs_type), b(res.dirty_before_sync),
    b(res.dirty_after_sync))
  if res.dirty_before_sync > 2 * PAGE then
    lines[#lines + 1] = ("(%s dirty for two short writes: the kernel tracks dirtiness per folio, and %s caches this "
      .. "file in large folios of many pages; msync writes each whole folio.)"):format(b(res.dirty_before_sync),
      tostring(res.fs_type))
  end
  lines[#lines + 1] = res.visible_before_sync
    and "read(2) saw the new bytes even before msync: the mapping and read(2) share the same page-cache pages."
    or "read(2) did not see the new bytes before msync (unexpected on Linux)."
  if res.in_memory_fs or (res.cached_after_drop or 0) > res.pages // 2 then
    lines[#lines + 1] = ("%s keeps files only in memory: msync has no disk to write to and the cache cannot be "
      .. "dropped, so the rest shows no disk reads."):format(tostring(res.fs_type))
  else
    lines[#lines + 1] = res.persisted
      and ("With the cache dropped (%s), reading the file from disk shows both writes: msync wrote them to the file.")
        :format(res.cache_drop)
      or ("After dropping the cache (%s), the file did NOT show the writes."):format(res.cache_drop)
  end
  lines[#lines + 1] = ("mincore: %d of %d pages cached before reading, %d after. Reading every page through the "
    .. "mapping (MADV_RANDOM, no read-ahead) took %s: %s major faults (the process waited for the disk), "
    .. "%s minor."):format(
    res.resident_before_read, res.pages, res.resident_after_read, units.seconds(res.read_seconds),
    units.count(res.major_faults), units.count(res.minor_faults))
  lines[#lines + 1] = ("With normal advice the kernel reads ahead: the same cold read took %s and only %s "
    .. "major fault(s).")
    :format(units.seconds(res.readahead_seconds), units.count(res.major_faults_readahead))
  if res.major_faults_note then lines[#lines + 1] = "Note: " .. res.major_faults_note end
  return lines
end

return M
