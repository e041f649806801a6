--- vmlab.sum.child: the child of `vmlab sum`, started by the parent with
-- fork + exec as `lua5.4 child_main.lua NAME OUT PARENT_PID`, with the
-- parent's shared-memory object as its standard input (a descriptor: the
-- name is normally gone already) and the output as its standard output.
--
-- It maps the object from descriptor 0 (which then becomes /dev/null),
-- checks the header, says it is attached, then takes batches of input from
-- the ring, sums each line and writes one result line per input line to
-- descriptor 1. Each batch's results go out as whole lines (vm.write_lines:
-- a failed write leaves only complete lines, and says how many got out), so
-- the count it keeps in the header ("written") is the number of lines in
-- the output; before it sleeps for more input everything it has summed is
-- written.
--
-- It stops when the parent says the input ended, when the parent asks it to
-- abort, when SIGINT/SIGTERM/SIGHUP arrive, or when its parent is gone
-- (getppid changes). When the parent dies the kernel kills the child
-- (PR_SET_PDEATHSIG = SIGKILL, set by the parent's vm.spawn), whatever it is
-- blocked on; the getppid check is the fallback.
-- @module vmlab.sum.child
local vm = require "vmlab"
local ring = require "vmlab.sum.ring"

local child = {}

local WAIT = 0.25 -- seconds between checks that the parent is still there

local function say(fmt, ...) io.stderr:write(("vmlab sum child %d: " .. fmt .. "\n"):format(vm.getpid(), ...)) end

--- Run the child. `args` = { name, out, parent_pid }. Returns the exit code:
-- 0 done (input ended, or stopped as asked), 1 failed or orphaned.
function child.main(args)
  if type(args) ~= "table" then
    error(("bad argument #1 to 'sum.child.main' (a table {name, out, parent_pid} expected, got %s)"):format(
      type(args)), 2)
  end
  vm.fill_std_fds() -- 1 and 2 at least: nothing may open in their place
  local name, out, ppid = args[1], args[2], math.tointeger(tonumber(args[3] or ""))
  if not (name and out and ppid) then
    io.stderr:write("usage: child_main.lua SHM_NAME OUT_FILE PARENT_PID  (the object on standard input)\n")
    return 2
  end
  vm.signal_catch({ "INT", "TERM", "HUP" })
  if vm.getppid() ~= ppid then
    say("parent %d is already gone", ppid)
    return 1
  end
  local s, err = vm.shm_adopt(0) -- the parent's object, mapped whole; fd 0 becomes /dev/null
  if not s then
    say("%s: %s", name, err)
    return 1
  end
  local summer <close> = vm.line_summer()
  local written = 0
  local function put(text)
    if text == "" then return true end
    local n, why, third, fourth = vm.write_lines(1, text) -- false, why, lines | nil, why, errno, lines
    if n then
      written = written + n
      return true
    end
    written = written + (n == false and third or fourth)
    if n == false then return false end -- a signal between two lines: stop
    error(("cannot write to %s: %s"):format(out == "-" and "standard output" or out, why), 0)
  end
  local code, ended = 0, nil
  local ok, failure = pcall(function()
    local geometry, why = ring.attach(s)
    if not geometry then error(("%s: %s"):format(name, why), 0) end
    ring.announce(s, vm.getpid())
    local c = ring.consumer(s, geometry)
    while true do
      -- after a signal: take what was handed over without waiting, then stop
      local sig = vm.signal_caught()
      local data, what = c:take(sig and 0 or WAIT)
      if data then
        if not put((summer:feed(data))) then
          ended, code = vm.signal_caught(), 1
          break
        end
        ring.store_stats(s, summer:stats(), written)
      elseif what == "eof" then
        put((summer:finish())) -- a last line without a newline is a line
        ended = "eof"
        break
      elseif what == "abort" then
        ended = "abort"
        break
      elseif sig then
        ended = sig
        code = sig == "SIGINT" and 0 or 1
        break
      elseif what == "timeout" and vm.getppid() ~= ppid then
        ended = "parent gone"
        code = 1
        break
      end
    end
  end)
  if not ok then
    say("%s", tostring(failure))
    code = 1
  elseif ended == "parent gone" or ended == "SIGTERM" or ended == "SIGHUP" then
    say("stopping (%s); the results of everything handed over are in %s", ended, out == "-" and "standard output"
      or out)
  end
  pcall(function() -- the object may be truncated: what can be told, is
    ring.store_stats(s, summer:stats(), written)
    ring.set_child_state(s, ok and "done" or "failed")
  end)
  s:close()
  return code
end

return child
