--- vmlab.sum.names: unpredictable names for vmlab's shared-memory objects,
-- each carrying its creator's pid (/vmlab-<kind>-<pid>-<16 hex digits>),
-- and the sweep that removes objects whose creator is gone (killed before
-- it could unlink them).
--
-- The sweep trusts nothing it finds in /dev/shm (anyone may create files
-- there): a name is parsed defensively and must match the exact pattern,
-- the object must belong to the caller's own user, and its creator must be
-- dead; anything else is left alone.
-- @module vmlab.sum.names
local vm = require "vmlab"
local proc = require "vmlab.proc"
local args = require "vmlab.args"

local names = {}

local PATTERN = "^/vmlab%-(%a+)%-([1-9]%d*)%-(%x+)$"
local PID_MAX = 4194304 -- PID_MAX_LIMIT on 64-bit Linux: no pid is larger
local RANDOM_DIGITS = 16

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
  return ("/vmlab-%s-%d-%s"):format(kind, vm.getpid(), random_hex(RANDOM_DIGITS // 2))
end

--- kind, pid of a name made by names.unique, or nil for any other name
-- (another pattern, a pid that cannot exist, a random part of another length).
function names.parse(name)
  if type(name) ~= "string" or #name > 255 then return nil end
  local kind, digits, random = name:match(PATTERN)
  if not kind or #digits > 7 or #random ~= RANDOM_DIGITS or random:find("%u") then return nil end
  local pid = math.tointeger(tonumber(digits))
  if not pid or pid < 1 or pid > PID_MAX then return nil end
  return kind, pid
end

-- The effective uid of this process (the owner of the objects it creates).
local function my_uid()
  local st = proc.status("self")
  return st and st.euid
end

--- Is process `pid` alive, and could it be the creator of an object last
-- modified at `mtime` (it started before then)? A zombie counts as gone.
function names.creator_alive(pid, mtime)
  args.check("sum.names.creator_alive", 1, pid, "integer")
  args.check("sum.names.creator_alive", 2, mtime, "number", true)
  local st = proc.stat(pid)
  if not st then return proc.alive(pid) end -- gone, or there but unreadable: then assume alive, remove nothing
  if st.state == "Z" or st.state == "X" then return false end
  local btime = proc.boot_time()
  if mtime and st.starttime and btime and btime + st.starttime > mtime + 2 then
    return false -- that pid now belongs to a process younger than the object
  end
  return true
end

--- Unlink the caller's own vmlab objects of `kind` whose creator is gone.
-- Returns the list of names removed.
function names.sweep(kind)
  assert(type(kind) == "string" and kind:match("^%a+$"), "kind must be letters")
  local removed, uid, me = {}, my_uid(), vm.getpid()
  local list = uid and vm.shm_list("vmlab-" .. kind .. "-")
  for _, o in ipairs(list or {}) do
    local k, pid = names.parse(o.name)
    if k == kind and o.uid == uid and pid ~= me and not names.creator_alive(pid, o.mtime) then
      if vm.shm_unlink(o.name) then removed[#removed + 1] = o.name end
    end
  end
  return removed
end

return names
