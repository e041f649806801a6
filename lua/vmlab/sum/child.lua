--- vmlab.sum.child: the child of `vmlab sum`, started by the parent with
-- fork + exec as `lua5.4 child_main.lua NAME OUT PARENT_PID`.
--
-- It opens the parent's object by name (shm_open without O_CREAT), maps it,
-- checks the header, says it is attached, then takes batches of input from
-- the ring, sums each line and appends one result line per input line to
-- OUT. Each batch's results go out in one write(2) of whole lines, so a
-- crash never leaves half a line in the file; before it sleeps for more
-- input everything it has summed is in the file.
--
-- It stops when the parent says the input ended, when the parent asks it to
-- abort, when SIGINT/SIGTERM/SIGHUP arrive (the parent's death sends SIGTERM,
-- see PR_SET_PDEATHSIG), or when its parent is gone (getppid changes): in
-- every case after writing the results of what it was handed.
-- @module vmlab.sum.child
local vm = require "vmlab"
local ring = require "vmlab.sum.ring"

local child = {}

local WAIT = 0.25 -- seconds between checks that the parent is still there

local function say(fmt, ...) io.stderr:write(("vmlab sum child %d: " .. fmt .. "\n"):format(vm.getpid(), ...)) end

local function open_out(path)
  if path == "-" then
    io.stdout:setvbuf("no")
    return io.stdout
  end
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  f:setvbuf("no") -- each f:write is one write(2) of whole result lines
  return f
end

local function write_all(f, text)
  if text ~= "" then assert(f:write(text)) end
end

--- Run the child. `args` = { name, out, parent_pid }. Returns the exit code:
-- 0 done (input ended, or stopped as asked), 1 failed or orphaned.
function child.main(args)
  local name, out, ppid = args[1], args[2], math.tointeger(tonumber(args[3] or ""))
  if not (name and out and ppid) then
    io.stderr:write("usage: child_main.lua SHM_NAME OUT_FILE PARENT_PID\n")
    return 2
  end
  vm.signal_catch({ "INT", "TERM", "HUP" })
  if vm.getppid() ~= ppid then
    say("parent %d is already gone", ppid)
    return 1
  end
  local s, err = vm.shm_open(name) -- no O_CREAT: the parent's object, mapped whole
  if not s then
    say("%s", err)
    return 1
  end
  local geometry, why = ring.attach(s)
  if not geometry then
    say("%s: %s", name, why)
    ring.set_child_state(s, "failed")
    s:close()
    return 1
  end
  local f
  f, err = open_out(out)
  if not f then
    say("%s", err)
    ring.set_child_state(s, "failed")
    s:close()
    return 1
  end
  ring.announce(s, vm.getpid())

  local summer = vm.line_summer()
  local c = ring.consumer(s, geometry)
  local code, ended = 0, nil
  local ok, failure = pcall(function()
    while true do
      -- after a signal: take what was handed over without waiting, then stop
      local sig = vm.signal_caught()
      local data, what = c:take(sig and 0 or WAIT)
      if data then
        write_all(f, (summer:feed(data)))
        ring.store_stats(s, summer:stats())
      elseif what == "eof" then
        write_all(f, (summer:finish())) -- a last line without a newline is a line
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
  ring.store_stats(s, summer:stats())
  if not ok then
    say("%s", tostring(failure))
    code = 1
  elseif ended == "parent gone" or ended == "SIGTERM" or ended == "SIGHUP" then
    say("stopping (%s); the results of everything handed over are in %s", ended, out)
  end
  ring.set_child_state(s, ok and "done" or "failed")
  if f ~= io.stdout then f:close() end
  s:close()
  return code
end

return child
