--- vmlab.proc: the kernel's memory accounting read from /proc and /sys.
-- Every size comes back in bytes (the files say kB; statm and stat count
-- pages). Each function reads its file once and parses it with string
-- patterns. `pid` is a positive integer or "self" (the default); a missing
-- file (no such process) gives `nil, message, errno`.
-- @module vmlab.proc
local core = require "vmlab.core"

local M = {}

local KB = 1024
local page_size = core.page_size
local open, tonumber, type = io.open, tonumber, type

-- Read a whole file: its text, or nil, msg, errno.
local function slurp(path)
  local f, err, code = open(path, "r")
  if not f then return nil, err, code end
  local text, rerr, rcode = f:read("a")
  f:close()
  if not text then return nil, path .. ": " .. tostring(rerr), rcode end
  return text
end

--- Small readers of /proc and /sys files, shared by the modules that probe the machine.
-- read_file(path): the whole text, or nil, msg, errno; first_line(path): its first line or nil;
-- number_at(path): the integer its text starts with, or nil; exists(path): it can be opened.
function M.read_file(path)
  if type(path) ~= "string" then error("bad argument #1 to 'read_file' (path expected)", 2) end
  return slurp(path)
end
function M.first_line(path)
  local s = M.read_file(path)
  return s and s:match("^[^\n]*") or nil
end
function M.number_at(path)
  local s = M.read_file(path)
  return s and math.tointeger(tonumber(s:match("^%s*(%-?%d+)"))) or nil
end
function M.exists(path)
  if type(path) ~= "string" then error("bad argument #1 to 'exists' (path expected)", 2) end
  local f = open(path, "r")
  if f then f:close() end
  return f ~= nil
end

-- "/proc/<pid>/<name>" after checking pid; level names the caller for errors.
local function proc_path(pid, name, fname)
  if pid == nil or pid == "self" then return "/proc/self/" .. name end
  if math.type(pid) == "integer" and pid > 0 then return "/proc/" .. pid .. "/" .. name end
  if type(pid) == "string" and pid:match("^%d+$") and #pid <= 19 then return "/proc/" .. pid .. "/" .. name end
  local shown = type(pid) == "string" and ("%q"):format(#pid > 40 and pid:sub(1, 40) .. "..." or pid)
    or (type(pid) == "number" or type(pid) == "boolean") and tostring(pid) or type(pid)
  error(("bad argument #%d to '%s' (pid must be a positive integer or \"self\", got %s)")
    :format(fname == "mapping_at" and 2 or 1, fname, shown), 3)
end

-- "Key:   123 kB" -> bytes; "Key: 7" -> 7; anything else stays a string.
local function value_of(v)
  local n = v:match("^(%d+) kB$")
  if n then return tonumber(n) * KB end
  n = v:match("^%-?%d+$")
  if n then return tonumber(n) end
  return v
end

-- Parse "Key: value" lines into a table.
local function key_values(text, t)
  t = t or {}
  for k, v in text:gmatch("([%w_()]+):[ \t]*([^\n]*)") do
    t[k] = value_of(v:gsub("%s+$", ""))
  end
  return t
end

-- status fields written in hexadecimal: kept as the file's strings (a mask
-- such as "0000000000200000" is not the decimal number it looks like).
local HEX_FIELDS = { SigPnd = true, ShdPnd = true, SigBlk = true, SigIgn = true, SigCgt = true,
  CapInh = true, CapPrm = true, CapEff = true, CapBnd = true, CapAmb = true,
  Cpus_allowed = true, Mems_allowed = true }

-- "0-3,6,8-9" -> {0, 1, 2, 3, 6, 8, 9}
local function cpu_list(list)
  local cpus = {}
  for a, b in (list or ""):gmatch("(%d+)%-?(%d*)") do
    for c = tonumber(a), b ~= "" and tonumber(b) or tonumber(a) do cpus[#cpus + 1] = c end
  end
  return cpus
end

--- All fields of /proc/PID/status; sizes (kB in the file) in bytes, single
-- integers as integers, the rest as strings (the hexadecimal masks such as
-- CapEff and SigBlk stay strings). Conveniences: `rss` (VmRSS),
-- `virt` (VmSize), `hwm` (VmHWM), `peak` (VmPeak), `data` (VmData),
-- `stack` (VmStk), `swap` (VmSwap), `rss_anon`, `rss_file`, `rss_shmem`, `threads`,
-- `uid` and `euid` (real and effective user id, integers), `cap_eff` (the
-- effective capability set as an integer bit mask) and `cpus_allowed` (the
-- list of CPU numbers in Cpus_allowed_list).
-- @param pid integer or "self"
-- @return table, or nil, msg, errno
function M.status(pid)
  local text, err, code = slurp(proc_path(pid, "status", "status"))
  if not text then return nil, err, code end
  local t = key_values(text)
  for k in pairs(HEX_FIELDS) do
    local raw = text:match("\n" .. k .. ":[ \t]*(%x+)")
    if raw then t[k] = raw end
  end
  t.rss, t.virt, t.hwm, t.peak = t.VmRSS, t.VmSize, t.VmHWM, t.VmPeak
  t.data, t.stack, t.swap = t.VmData, t.VmStk, t.VmSwap
  t.rss_anon, t.rss_file, t.rss_shmem, t.threads = t.RssAnon, t.RssFile, t.RssShmem, t.Threads
  local uid, euid = text:match("\nUid:%s*(%d+)%s+(%d+)")
  t.uid, t.euid = math.tointeger(tonumber(uid)), math.tointeger(tonumber(euid))
  t.cap_eff = t.CapEff and math.tointeger(tonumber(t.CapEff, 16)) or nil
  t.cpus_allowed = t.Cpus_allowed_list and cpu_list(tostring(t.Cpus_allowed_list)) or nil
  return t
end

--- This process's (or pid's) resident set size in bytes: the one RSS reader
-- (the second field of /proc/PID/statm, as VmRSS in status, read cheaply).
-- @return bytes, or nil, msg, errno
function M.rss(pid)
  local text, err, code = slurp(proc_path(pid, "statm", "rss"))
  if not text then return nil, err, code end
  local res = text:match("^%d+%s+(%d+)")
  if not res then return nil, "rss: cannot parse /proc statm" end
  return tonumber(res) * page_size
end

--- The path of `name` under /proc/PID (e.g. "exe" for the program to
-- re-execute), for the places that hand a /proc path to another program.
-- @return string
function M.path(pid, name)
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    error("bad argument #2 to 'path' (a /proc file name of letters, digits and _ expected)", 2)
  end
  return proc_path(pid, name, "path")
end

--- Does process `pid` exist (its /proc/PID/stat can be read)?
-- @return boolean
function M.alive(pid)
  return M.exists(proc_path(pid, "stat", "alive"))
end

--- /proc/PID/cmdline: the argument vector as a list of strings.
-- @return list, or nil, msg, errno
function M.cmdline(pid)
  local text, err, code = slurp(proc_path(pid, "cmdline", "cmdline"))
  if not text then return nil, err, code end
  local words = {}
  for w in text:gmatch("([^%z]*)%z") do words[#words + 1] = w end
  return words
end

--- /proc/PID/cgroup: one entry per hierarchy, {id = integer, controllers =
-- {"memory", ...} (empty for the v2 hierarchy, id 0), path = "/user.slice/..."}.
-- @return list, or nil, msg, errno
function M.cgroup(pid)
  local text, err, code = slurp(proc_path(pid, "cgroup", "cgroup"))
  if not text then return nil, err, code end
  local list = {}
  for line in text:gmatch("[^\n]+") do
    local id, controllers, path = line:match("^(%d+):([^:]*):(.*)$")
    if id then
      local names = {}
      for c in controllers:gmatch("[^,]+") do names[#names + 1] = c end
      list[#list + 1] = { id = tonumber(id), controllers = names, path = path }
    end
  end
  return list
end

-- "\040" (how mountinfo writes a space in a path) -> " "
local function unescape(s)
  return (s:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end))
end

--- /proc/PID/mountinfo: one entry per mount, {id =, parent =, dev = "8:1",
-- root =, mountpoint =, options = "rw,relatime", fstype = "ext4", source =,
-- super_options =}; paths with their octal escapes decoded.
-- @return list, or nil, msg, errno
function M.mountinfo(pid)
  local text, err, code = slurp(proc_path(pid, "mountinfo", "mountinfo"))
  if not text then return nil, err, code end
  local list = {}
  for line in text:gmatch("[^\n]+") do
    local id, parent, dev, root, mnt, opts, fstype, source, sopts =
      line:match("^(%d+) (%d+) (%S+) (%S+) (%S+) (%S+) .-%- (%S+) (%S+) ?(%S*)")
    if id then
      list[#list + 1] = { id = tonumber(id), parent = tonumber(parent), dev = dev, root = unescape(root),
        mountpoint = unescape(mnt), options = opts, fstype = fstype, source = unescape(source),
        super_options = sopts }
    end
  end
  return list
end

--- /proc/PID/oom_score: the kernel's badness score for the OOM killer (0-1000 or so).
-- @return integer, or nil, msg, errno
function M.oom_score(pid)
  local text, err, code = slurp(proc_path(pid, "oom_score", "oom_score"))
  if not text then return nil, err, code end
  return math.tointeger(tonumber(text:match("%-?%d+") or ""))
end

--- /proc/PID/ksm_stat (Linux 6.1+): this process's KSM counters
-- ({ksm_rmap_items =, ksm_merging_pages =, ksm_zero_pages =, ...} as numbers;
-- yes/no fields as booleans).
-- @return table, or nil, msg, errno
function M.ksm_stat(pid)
  local text, err, code = slurp(proc_path(pid, "ksm_stat", "ksm_stat"))
  if not text then return nil, err, code end
  local t = {}
  for k, v in text:gmatch("(%S+)%s+(%S+)") do
    local n = math.tointeger(tonumber(v))
    if n then t[k] = n elseif v == "yes" or v == "no" then t[k] = v == "yes" else t[k] = v end
  end
  return t
end

--- /proc/PID/statm in bytes: size, resident, shared, text, data (and lib, dt, 0 since 2.6).
-- @return table, or nil, msg, errno
function M.statm(pid)
  local text, err, code = slurp(proc_path(pid, "statm", "statm"))
  if not text then return nil, err, code end
  local f = {}
  for n in text:gmatch("%d+") do f[#f + 1] = tonumber(n) * page_size end
  return { size = f[1], resident = f[2], shared = f[3], text = f[4], lib = f[5], data = f[6], dt = f[7] }
end

-- What a mapping is, from its path column.
local function kind_of(path)
  if path == "" then return "anon" end
  if path == "[heap]" then return "heap" end
  if path == "[stack]" or path:match("^%[stack:") then return "stack" end
  if path == "[vdso]" then return "vdso" end
  if path == "[vvar]" or path == "[vvar_vclock]" then return "vvar" end
  if path == "[vsyscall]" then return "vsyscall" end
  if path:match("^%[anon:") then return "anon" end
  if path:match("^%[anon_shmem:") then return "shm" end
  if path:match("^/dev/shm/") or path:match("^/SYSV%x+") or path:match("^/dev/zero") then return "shm" end
  if path:match("^/memfd:") then return "memfd" end
  if path:match("^/dev/hugepages/") or path:match("^/anon_hugepage") then return "hugetlb" end
  if path:sub(1, 1) == "/" then return "file" end
  if path:match("^%[") then return "special" end
  return "file"
end

local MAP_LINE = "^(%x+)%-(%x+) (%S+) (%x+) (%S+) (%d+)%s*(.*)$"

-- One maps/smaps header line -> entry table, or nil when it is not one.
local function map_entry(line)
  local s, e, perms, off, dev, inode, path = line:match(MAP_LINE)
  if not s then return nil end
  local start, finish = tonumber(s, 16), tonumber(e, 16)
  local deleted = false
  if path:sub(-10) == " (deleted)" then
    path, deleted = path:sub(1, -11), true
  end
  return {
    start = start, finish = finish, size = finish - start, perms = perms,
    offset = tonumber(off, 16), dev = dev, inode = tonumber(inode), path = path,
    kind = kind_of(path), deleted = deleted or nil,
    readable = perms:sub(1, 1) == "r", writable = perms:sub(2, 2) == "w",
    executable = perms:sub(3, 3) == "x", shared = perms:sub(4, 4) == "s",
  }
end

--- /proc/PID/maps as a list of {start=, finish=, size=, perms=, offset=, dev=,
-- inode=, path=, kind=, readable=, writable=, executable=, shared=, deleted=}.
-- kind is "heap", "stack", "vdso", "vvar", "vsyscall", "anon", "file", "shm",
-- "memfd", "hugetlb" or "special". Addresses are integers (the vsyscall page
-- lies above 2^63 and comes back negative; its size is still right).
-- @return list, or nil, msg, errno
function M.maps(pid)
  local text, err, code = slurp(proc_path(pid, "maps", "maps"))
  if not text then return nil, err, code end
  local list = {}
  for line in text:gmatch("[^\n]+") do
    local m = map_entry(line)
    if m then list[#list + 1] = m end
  end
  return list
end

-- The "Key: N kB" lines that follow a smaps header, into entry t.
local function smaps_field(t, k, v)
  if k == "VmFlags" then
    local flags = {}
    for f in v:gmatch("%S+") do flags[f] = true end
    t.VmFlags, t.flags = v:gsub("%s+$", ""), flags
  else
    t[k] = value_of(v:gsub("%s+$", ""))
  end
end

--- /proc/PID/smaps: the maps entries, each with its fields in bytes (Size,
-- Rss, Pss, Shared_Clean, Shared_Dirty, Private_Clean, Private_Dirty,
-- Referenced, Anonymous, AnonHugePages, Swap, Locked, ...), `VmFlags` as the
-- string and `flags` as a set ({rd=true, wr=true, ...}).
-- @return list, or nil, msg, errno
function M.smaps(pid)
  local text, err, code = slurp(proc_path(pid, "smaps", "smaps"))
  if not text then return nil, err, code end
  local list, cur = {}, nil
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^([%w_]+):%s*(.*)$")
    if k and cur then
      smaps_field(cur, k, v)
    else
      cur = map_entry(line)
      if cur then list[#list + 1] = cur end
    end
  end
  return list
end

--- The smaps entry of the mapping that holds `address` (start <= address < finish).
-- @return the entry, or nil (nothing mapped there), or nil, msg, errno
function M.mapping_at(address, pid)
  if math.type(address) ~= "integer" then
    error(("bad argument #1 to 'mapping_at' (address expected (an integer), got %s)")
      :format(math.type(address) or type(address)), 2)
  end
  proc_path(pid, "smaps", "mapping_at") -- checks pid, naming this function
  local list, err, code = M.smaps(pid)
  if not list then return nil, err, code end
  for _, m in ipairs(list) do
    if m.start <= address and address < m.finish then return m end
  end
  return nil
end

--- /proc/PID/smaps_rollup: the smaps fields summed over all mappings, in bytes.
-- @return table, or nil, msg, errno
function M.smaps_rollup(pid)
  local text, err, code = slurp(proc_path(pid, "smaps_rollup", "smaps_rollup"))
  if not text then return nil, err, code end
  return key_values((text:gsub("^[^\n]*\n", "")))
end

--- /proc/meminfo in bytes (HugePages_* counts stay counts). Conveniences:
-- total, free, available, cached, hugepage_size.
-- @return table, or nil, msg, errno
function M.meminfo()
  local text, err, code = slurp("/proc/meminfo")
  if not text then return nil, err, code end
  local t = key_values(text)
  t.total, t.free, t.available, t.cached = t.MemTotal, t.MemFree, t.MemAvailable, t.Cached
  t.hugepage_size = t.Hugepagesize
  return t
end

--- /proc/vmstat: the kernel's event and page counters, name -> integer.
-- @return table, or nil, msg, errno
function M.vmstat()
  local text, err, code = slurp("/proc/vmstat")
  if not text then return nil, err, code end
  local t = {}
  for k, v in text:gmatch("(%S+)%s+(%d+)") do t[k] = math.tointeger(tonumber(v)) end
  return t
end

--- /proc/swaps: the swap areas in use, {filename =, type = "file"|"partition",
-- size = bytes, used = bytes, priority = integer} (filename with escapes decoded).
-- @return list, or nil, msg, errno
function M.swaps()
  local text, err, code = slurp("/proc/swaps")
  if not text then return nil, err, code end
  local list = {}
  for line in text:gmatch("[^\n]+") do
    local name, kind, size, used, prio = line:match("^(%S+)%s+(%S+)%s+(%d+)%s+(%d+)%s+(%-?%d+)")
    if name then
      list[#list + 1] = { filename = unescape(name), type = kind, size = tonumber(size) * KB,
        used = tonumber(used) * KB, priority = tonumber(prio) }
    end
  end
  return list
end

--- The flags of the first CPU in /proc/cpuinfo as a set ({pse = true, ...}),
-- or an empty set where the file lists none.
-- @return table, or nil, msg, errno
function M.cpu_flags()
  local text, err, code = slurp("/proc/cpuinfo")
  if not text then return nil, err, code end
  local flags = {}
  for f in (text:match("\nflags%s*:([^\n]*)") or text:match("^flags%s*:([^\n]*)") or ""):gmatch("%S+") do
    flags[f] = true
  end
  return flags
end

--- A kernel setting from /proc/sys: `name` as sysctl(8) writes it
-- ("vm.overcommit_memory", "kernel.osrelease") or as its path below /proc/sys
-- ("vm/page-cluster"). The first line: an integer when it is one, else the text.
-- @return integer or string, or nil, msg, errno (no such setting, or not readable)
function M.sysctl(name)
  if type(name) ~= "string" or not name:match("^[%w_%-]+[%./][%w_%-%./]*$") or name:find("..", 1, true) then
    error(("bad argument #1 to 'sysctl' (a setting name such as \"vm.swappiness\" expected, got %s)")
      :format(type(name) == "string" and ("%q"):format(name:sub(1, 40)) or type(name)), 2)
  end
  local text, err, code = slurp("/proc/sys/" .. name:gsub("%.", "/"))
  if not text then return nil, err, code end
  text = text:match("^[^\n]*")
  return math.tointeger(tonumber(text:match("^%s*%-?%d+%s*$") and text or "")) or text
end

-- The first line of a small file: integer if it is one, else the string; nil if unreadable.
local function setting(path)
  local text = slurp(path)
  if not text then return nil end
  text = text:match("^[^\n]*")
  return tonumber(text:match("^%-?%d+$")) or text
end

-- "always [madvise] never" -> "madvise"
local function bracketed(path)
  local text = slurp(path)
  return text and text:match("%[([^%]]+)%]") or nil
end

local THP = "/sys/kernel/mm/transparent_hugepage/"

--- The kernel's memory policy: {overcommit_memory=, overcommit_ratio=,
-- overcommit_kbytes=, max_map_count=, min_free_kbytes=, swappiness=,
-- nr_hugepages=, thp_enabled= ("always"|"madvise"|"never"), thp_defrag=,
-- thp_shmem_enabled=, thp_pmd_size= (bytes of one transparent huge page),
-- page_size=, hugepage_size= (bytes), kernel= (the release)}. A setting whose
-- file is missing is nil.
-- @return table
function M.vm_settings()
  local sys = "/proc/sys/vm/"
  local mi = M.meminfo() or {}
  return {
    overcommit_memory = setting(sys .. "overcommit_memory"),
    overcommit_ratio = setting(sys .. "overcommit_ratio"),
    overcommit_kbytes = setting(sys .. "overcommit_kbytes"),
    max_map_count = setting(sys .. "max_map_count"),
    min_free_kbytes = setting(sys .. "min_free_kbytes"),
    swappiness = setting(sys .. "swappiness"),
    nr_hugepages = setting(sys .. "nr_hugepages"),
    thp_enabled = bracketed(THP .. "enabled"),
    thp_defrag = bracketed(THP .. "defrag"),
    thp_shmem_enabled = bracketed(THP .. "shmem_enabled"),
    thp_pmd_size = setting(THP .. "hpage_pmd_size"),
    page_size = page_size,
    hugepage_size = mi.Hugepagesize,
    kernel = setting("/proc/sys/kernel/osrelease"),
  }
end

-- /proc/PID/stat fields after "(comm)", in proc(5) order, from field 3.
local STAT_FIELDS = {
  "state", "ppid", "pgrp", "session", "tty_nr", "tpgid", "flags", "minflt", "cminflt", "majflt",
  "cmajflt", "utime", "stime", "cutime", "cstime", "priority", "nice", "num_threads",
  "itrealvalue", "starttime", "vsize", "rss", "rsslim", "startcode", "endcode", "startstack",
  "kstkesp", "kstkeip", "signal", "blocked", "sigignore", "sigcatch", "wchan", "nswap", "cnswap",
  "exit_signal", "processor", "rt_priority", "policy", "delayacct_blkio_ticks", "guest_time",
  "cguest_time", "start_data", "end_data", "start_brk", "arg_start", "arg_end", "env_start",
  "env_end", "exit_code",
}
local TICKS = { utime = true, stime = true, cutime = true, cstime = true, starttime = true,
  guest_time = true, cguest_time = true, delayacct_blkio_ticks = true }

--- The time the system booted, in seconds since the epoch (btime in /proc/stat).
-- @return integer, or nil, msg, errno
function M.boot_time()
  local text, err, code = slurp("/proc/stat")
  if not text then return nil, err, code end
  local btime = math.tointeger(tonumber(text:match("\nbtime (%d+)") or ""))
  if not btime then return nil, "boot_time: no btime line in /proc/stat" end
  return btime
end

--- /proc/PID/stat: {pid=, comm=, state=, ppid=, minflt=, majflt=, cminflt=,
-- cmajflt=, utime=, stime=, ... vsize= (bytes), rss= (bytes), rss_pages=,
-- num_threads=, ...}. Times (utime, stime, cutime, cstime, starttime, ...)
-- are in seconds; the raw clock ticks are kept as utime_ticks etc.
-- @return table, or nil, msg, errno
function M.stat(pid)
  local text, err, code = slurp(proc_path(pid, "stat", "stat"))
  if not text then return nil, err, code end
  local p, comm, rest = text:match("^(%d+) %((.*)%) (.*)$") -- comm may hold ") "
  if not p then return nil, "stat: cannot parse /proc stat line" end
  local t = { pid = tonumber(p), comm = comm }
  local i, hz = 1, core.clock_ticks or 100
  for v in rest:gmatch("%S+") do
    local name = STAT_FIELDS[i]
    if not name then break end
    local n = tonumber(v)
    if TICKS[name] and n then
      t[name .. "_ticks"], t[name] = n, n / hz
    else
      t[name] = n or v
    end
    i = i + 1
  end
  if t.rss then t.rss_pages, t.rss = t.rss, t.rss * page_size end
  return t
end

return M
