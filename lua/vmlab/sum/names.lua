--- vmlab.sum.names: unpredictable names for vmlab's shared-memory objects,
-- each carrying its creator's pid (/vmlab-<kind>-<pid>-<random>), and the
-- sweep that removes objects whose creator is gone (killed before it could
-- unlink them).
-- @module vmlab.sum.names
local vm = require "vmlab"

local names = {}

local PATTERN = "^/vmlab%-(%a+)%-(%d+)%-(%x+)$"
local USER_HZ = 100 -- the unit of /proc/<pid>/stat starttime on Linux

local function random_hex(bytes)
  local f = io.open("/dev/urandom", "rb")
  local raw = f and f:read(bytes)
  if f then f:close() end
  if not raw or #raw ~= bytes then -- no /dev/urandom: time and address entropy
    raw = string.pack("<d", os.time() + os.clock()) .. tostring({}):sub(-8)
  end
  return (raw:gsub(".", function(c) return ("%02x"):format(c:byte()) end)):sub(1, bytes * 2)
end

--- A fresh name "/vmlab-<kind>-<pid>-<16 hex digits>" (kind: letters only).
function names.unique(kind)
  assert(type(kind) == "string" and kind:match("^%a+$"), "kind must be letters")
  return ("/vmlab-%s-%d-%s"):format(kind, vm.getpid(), random_hex(8))
end

--- kind, pid of a name made by names.unique, or nil.
function names.parse(name)
  local kind, pid = name:match(PATTERN)
  if not kind then return nil end
  return kind, math.tointeger(tonumber(pid))
end

local function boot_time()
  for line in io.lines("/proc/stat") do
    local t = line:match("^btime (%d+)")
    if t then return tonumber(t) end
  end
  return nil
end

--- Is process `pid` alive, and could it be the creator of an object last
-- modified at `mtime` (it started before then)? A zombie counts as gone.
function names.creator_alive(pid, mtime)
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return false end
  local stat = f:read("a")
  f:close()
  local rest = stat and stat:match("%) (.*)$") -- after "(comm) "
  if not rest then return false end
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  if fields[1] == "Z" or fields[1] == "X" then return false end
  local start, btime = tonumber(fields[20]), boot_time() -- field 22 of stat(5)
  if mtime and start and btime and btime + start / USER_HZ > mtime + 2 then
    return false -- that pid now belongs to a process younger than the object
  end
  return true
end

--- Unlink vmlab objects (of `kind`, or of any kind) whose creator is gone.
-- Returns the list of names removed.
function names.sweep(kind)
  local removed = {}
  for _, o in ipairs(vm.shm_list("vmlab-")) do
    local k, pid = names.parse(o.name)
    if k and (kind == nil or k == kind) and pid ~= vm.getpid() and not names.creator_alive(pid, o.mtime) then
      if vm.shm_unlink(o.name) then removed[#removed + 1] = o.name end
    end
  end
  return removed
end

return names
