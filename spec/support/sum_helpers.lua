--- What the `vmlab sum` specs share (spec/sum_spec.lua, spec/sum_safety_spec.lua):
-- scratch files, the command in a fresh lua5.4, a run fed through a pipe,
-- and looks at its processes and shared objects through /proc.
--
--   local H = dofile(here .. "/support/sum_helpers.lua").new()
--   local run = H.start("--out " .. H.shq(H.tmp("out")))   -- .pid, :feed(text), :child(), :close()
--   teardown(H.cleanup)
local vm = require "vmlab"

local M = {}

--- A fresh set of helpers, with scratch files of its own (removed by :cleanup()).
function M.new()
  local H = {}

  function H.shq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  local shq = H.shq

  local TMP = os.tmpname()
  local made = {}
  --- A scratch path TMP-suffix (removed by cleanup, as is suffix.out beside it).
  function H.tmp(suffix)
    local path = TMP .. "-" .. suffix
    made[#made + 1] = path
    return path
  end
  function H.cleanup()
    for _, path in ipairs(made) do
      os.remove(path)
      os.remove(path .. ".out")
    end
    os.remove(TMP)
  end

  function H.slurp(path) return (vm.proc.read_file(path)) end
  local slurp = H.slurp
  function H.spit(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
  end

  --- The command in a fresh lua5.4 that finds this checkout's modules and build
  -- (one simple command: it can sit in a pipeline, after `exec`, with redirections).
  H.CLI = ("env LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s /dev/null sum"):format(shq(package.path),
    shq(package.cpath), shq('os.exit(require("vmlab.cli").main(arg))'))

  --- fn() true within seconds (default 5), polled every 10 ms.
  function H.eventually(fn, seconds)
    local deadline = vm.now() + (seconds or 5)
    repeat
      if fn() then return true end
      vm.sleep(0.01)
    until vm.now() > deadline
    return fn() and true or false
  end
  local eventually = H.eventually

  --- No such process, or a zombie waiting for its parent.
  function H.gone(pid)
    local st = slurp("/proc/" .. pid .. "/stat")
    return st == nil or st:match("^.*%) (%a)") == "Z"
  end

  --- The children of pid (from /proc: ps(1) hangs under the sanitizer's LD_PRELOAD).
  function H.children_of(pid)
    local list = {}
    for _, entry in ipairs(vm.listdir("/proc") or {}) do
      local st = entry:match("^%d+$") and slurp("/proc/" .. entry .. "/stat")
      local ppid = st and st:match("^.*%) %a (%d+)")
      if ppid and tonumber(ppid) == pid then list[#list + 1] = math.tointeger(tonumber(entry)) end
    end
    return list
  end
  local children_of = H.children_of

  --- The shared objects in /dev/shm of the run with parent pid.
  function H.objects_of(pid) return vm.shm_list("vmlab-sum-" .. pid .. "-") end
  local objects_of = H.objects_of

  --- `vmlab sum ARGS` in the background, its input a pipe: .pid, :feed(text),
  -- :child() (the child's pid once it exists; with `unlinked`, once the parent
  -- has also unlinked its object), :close() -> exit code (128 + signal when
  -- killed). `env` (NAME=value ...) goes before the command.
  function H.start(args, env, unlinked)
    local run = { err = H.tmp("live-err"), pidfile = H.tmp("live-pid") }
    os.remove(run.pidfile)
    run.pipe = assert(io.popen(("echo $$ > %s; exec env %s %s %s 2> %s"):format(shq(run.pidfile), env or "",
      H.CLI, args or "", shq(run.err)), "w"))
    assert(eventually(function() return (slurp(run.pidfile) or ""):match("%d+") end))
    run.pid = math.tointeger(tonumber(slurp(run.pidfile):match("%d+")))
    function run.feed(_, text)
      run.pipe:write(text)
      run.pipe:flush()
    end
    function run.child()
      local kid
      eventually(function()
        kid = children_of(run.pid)[1]
        return kid ~= nil and (not unlinked or #objects_of(run.pid) == 0)
      end)
      return kid
    end
    function run.close()
      -- a watchdog, so a run that does not end fails the test instead of hanging it
      -- (spawned, not forked: a forked copy of busted would hold the pipe open)
      local dog = assert(vm.spawn({ "sh", "-c", "sleep 20; kill -9 " .. run.pid }, { env = { LD_PRELOAD = false } }))
      local _, how, code = run.pipe:close()
      local sleeps = children_of(dog.pid)
      dog:kill("KILL") -- the watchdog first (so it runs no kill), then its sleep
      for _, p in ipairs(sleeps) do vm.kill(p, "KILL") end
      dog:wait()
      return how == "exit" and code or 128 + code
    end
    return run
  end

  return H
end

return M
