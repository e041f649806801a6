--- vmlab.undo: put back what an experiment changed on the machine (a sysfs
-- setting, a cgroup, a swap file), on every exit path, even when the process
-- that changed it is killed with SIGKILL.
--
--     local undo = require "vmlab.undo"
--     local u <close> = undo.new("ksm")                  -- closing it undoes
--     u:write_back("/sys/kernel/mm/ksm/run")            -- remember the value now ...
--     u:command("rmdir /sys/fs/cgroup/memory/vmlab-x")  -- ... or a shell command to run
--     assert(u:arm())                                   -- a watcher now guards the undo
--     -- change the settings, run the experiment
--     u:run()                                           -- undo now (also on close and __gc)
--
-- How: arm() starts a small shell watcher (`sh`, ignoring SIGINT, SIGTERM and
-- SIGHUP, so a Ctrl-C of the terminal does not take it along) that checks
-- every 0.2 s whether this process is still alive and, once it is gone for
-- whatever reason, runs the undo script. On a normal end the process runs the
-- same script itself and stops the watcher. The script only writes back
-- recorded values and removes what was made, so running it twice is harmless.
-- @module vmlab.undo
local core = require "vmlab.core"

local M = {}
local Undo = {}
Undo.__index = Undo
Undo.__name = "vmlab.Undo"

-- A method called on something that is not an undo list (u.script() for u:script()).
local function check_self(self, method)
  if getmetatable(self) ~= Undo then
    error(("calling '%s' on bad self (a vmlab.undo list expected, got %s; call it as u:%s(...))"):format(method,
      type(self), method), 3)
  end
end

-- A word for sh: single-quoted.
local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

--- A new, empty undo list; `what` names it in messages.
function M.new(what)
  return setmetatable({ what = tostring(what or "vmlab"), steps = {}, done = false, owner = core.getpid() },
    Undo)
end

--- Remember the first line of file `path` now, to be written back on undo.
-- @return the value read, or nil, message when the file cannot be read
function Undo:write_back(path)
  check_self(self, "write_back")
  if type(path) ~= "string" or path:find("\0", 1, true) then
    error("bad argument #1 to 'write_back' (a path without NUL bytes expected)", 2)
  end
  local f, err = io.open(path, "r")
  if not f then return nil, err end
  local text = f:read("a") or ""
  f:close()
  -- "[madvise]" style files: the bracketed word is what is written back
  local value = text:match("%[([^%]]+)%]") or text:match("^([^\n]*)")
  -- prepend: undo runs in the reverse order of the changes
  table.insert(self.steps, 1, ("printf '%%s\\n' %s > %s 2>/dev/null"):format(quote(value), quote(path)))
  return value
end

--- Add a shell command to the undo script (run before the steps added earlier).
function Undo:command(cmd)
  check_self(self, "command")
  if type(cmd) ~= "string" or cmd:find("\0", 1, true) then
    error("bad argument #1 to 'command' (a shell command without NUL bytes expected)", 2)
  end
  table.insert(self.steps, 1, tostring(cmd) .. " 2>/dev/null")
  return self
end

--- The undo script as one shell command line.
function Undo:script()
  check_self(self, "script")
  if #self.steps == 0 then return ":" end
  return table.concat(self.steps, "; ")
end

--- Start the watcher that undoes if this process dies before run().
-- @return true, or nil, message (then nothing should be changed)
function Undo:arm()
  check_self(self, "arm")
  if self.watcher then return true end
  local pid = core.getpid()
  local watch = ("trap '' INT TERM HUP; while kill -0 %d 2>/dev/null; do sleep 0.2; done; %s"):format(pid,
    self:script())
  local child, err = core.spawn({ "/bin/sh", "-c", watch }, { stdin = "null", stdout = "null", stderr = "null" })
  if not child then return nil, ("%s: cannot start the undo watcher: %s"):format(self.what, tostring(err)) end
  self.watcher = child
  return true
end

--- Undo now (once; later calls do nothing) and stop the watcher.
-- @return true, or nil, message when the script reported a failure
function Undo:run()
  check_self(self, "run")
  if self.done or core.getpid() ~= self.owner then return true end
  self.done = true
  local ok = os.execute(self:script())
  if self.watcher then
    pcall(self.watcher.kill, self.watcher, "KILL") -- at exit its own __gc may have ended it already
    pcall(self.watcher.wait, self.watcher)
    self.watcher = nil
  end
  if not ok then return nil, self.what .. ": the undo script failed: " .. self:script() end
  return true
end

Undo.__close = function(self) check_self(self, "__close"); self:run() end
Undo.__gc = function(self) check_self(self, "__gc"); self:run() end

return M
