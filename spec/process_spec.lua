-- Processes: fork, spawn, the Child object, signals, and vm.child.run.
local vm = require "vmlab"

local SANITIZED = os.getenv("VMLAB_SANITIZED") == "1"
local ESRCH, ENOENT, EACCES = 3, 2, 13

-- Run a Lua program in a fresh lua5.4 (same module paths) and return its
-- stdout (and stderr too when with_stderr).
local function lua_output(code, with_stderr)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(("package.path, package.cpath = %q, %q\n"):format(package.path, package.cpath), code)
  f:close()
  local p = assert(io.popen("lua5.4 " .. path .. (with_stderr and " 2>&1" or " 2>/dev/null"), "r"))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

-- A process is gone when kill(pid, 0) says ESRCH, or only a zombie of it is left.
local function gone(pid)
  local ok, _, errno = vm.kill(pid, 0)
  if not ok then return errno == ESRCH end
  local st = vm.proc.stat(pid)
  return st == nil or st.state == "Z"
end

-- Wait up to `seconds` for cond() to hold (polling; for events in other processes).
local function eventually(cond, seconds)
  local deadline = os.time() + seconds
  repeat
    if cond() then return true end
    assert(vm.spawn({ "sleep", "0.05" })):wait()
  until os.time() > deadline
  return cond()
end

-- A child that runs until killed.
local function looper()
  return assert(vm.fork(function()
    while true do end
  end))
end

describe("fork and the exit status", function()
  it("the exit code a child returns is the code its parent sees", function()
    local c = assert(vm.fork(function() return 7 end))
    assert.is_true(c.pid > 0 and c.pid ~= vm.getpid())
    local st = c:wait()
    assert.equal(c.pid, st.pid)
    assert.is_true(st.exited)
    assert.is_false(st.signaled)
    assert.equal(7, st.code)
    assert.is_nil(st.signal)
    assert.equal("vmlab.Child pid " .. c.pid .. " (exited 7)", tostring(c))
  end)

  it("nil or true means exit 0, false means exit 1", function()
    assert.equal(0, vm.fork(function() end):wait().code)
    assert.equal(0, vm.fork(function() return true end):wait().code)
    assert.equal(1, vm.fork(function() return false end):wait().code)
  end)

  it("an error in the child prints the message and a traceback on stderr and exits 1", function()
    local out = lua_output([[
      local vm = require "vmlab"
      io.write(vm.fork(function() error("on purpose") end):wait().code, "|")
      io.write(vm.fork(function() return 256 end):wait().code, "|")
    ]], true)
    assert.matches("vmlab.fork: child %d+ failed: .-: on purpose\nstack traceback:", out)
    assert.matches("vmlab.fork: child %d+ returned 256, not an exit code 0..255", out)
    local codes = {}
    for code in out:gmatch("(%d)|") do codes[#codes + 1] = code end
    assert.same({ "1", "1" }, codes)
  end)

  it("the child gets the extra arguments of fork", function()
    assert.equal(42, vm.fork(function(a, b) return a + b end, 40, 2):wait().code)
  end)

  it("a child killed by SIGSEGV is reported as signaled, with the signal's name", function()
    if SANITIZED then
      -- ASan's SEGV handler would print a report and abort the child instead
      pending("under ASan a SIGSEGV becomes a sanitizer report and SIGABRT")
      return
    end
    local c = assert(vm.fork(function()
      vm.kill(vm.getpid(), "SEGV")
      return 0
    end))
    local st = c:wait({ timeout = 10 })
    assert.is_table(st)
    assert.is_true(st.signaled, "the child exited with code " .. tostring(st.code))
    assert.is_false(st.exited)
    assert.equal(vm.signals.SIGSEGV, st.signal)
    assert.equal("SIGSEGV", st.signal_name)
    assert.matches("%(killed by SIGSEGV", tostring(c))
  end)

  it("a signal sent by the parent by name ends the child with that signal", function()
    local c = looper()
    assert.is_true(c:kill("SIGUSR1"))
    local st = c:wait()
    assert.equal("SIGUSR1", st.signal_name)
    assert.equal(vm.signals.SIGUSR1, st.signal)
  end)

  it("nothing buffered before fork is printed twice", function()
    local out = lua_output([[
      local vm = require "vmlab"
      io.write("before|")            -- no newline: still in the stdio buffer
      local c = vm.fork(function() io.write("child|") end)
      c:wait()
      io.write("after")
    ]])
    assert.equal("before|child|after", out)
  end)

  it("vm.exit flushes the child's output and ends it with the given code", function()
    local out = lua_output([[
      local vm = require "vmlab"
      local c = vm.fork(function() io.write("x") vm.exit(3) end)
      io.write(c:wait().code)
    ]])
    assert.equal("x3", out)
  end)
end)

describe("the Child object", function()
  it("waiting twice returns the same stored status", function()
    local c = vm.fork(function() return 5 end)
    local a = c:wait()
    local b = c:wait()
    assert.same(a, b)
    assert.equal(5, b.code)
  end)

  it("wait with nohang or a timeout returns nil while the child runs", function()
    local c = looper()
    local st, why = c:wait({ nohang = true })
    assert.is_nil(st)
    assert.equal("running", why)
    st, why = c:wait({ timeout = 0.05 })
    assert.is_nil(st)
    assert.equal("timeout", why)
    assert.is_true(c:running())
    assert.equal("vmlab.Child pid " .. c.pid .. " (running)", tostring(c))
    c:kill("KILL")
    assert.equal("SIGKILL", c:wait({ timeout = 10 }).signal_name)
    assert.is_false(c:running())
  end)

  it("a reaped child is never signalled again", function()
    local c = vm.fork(function() end)
    c:wait()
    local ok, msg, errno = c:kill("TERM")
    assert.is_nil(ok)
    assert.equal("kill: No such process", msg)
    assert.equal(ESRCH, errno)
  end)

  it("a running child that is garbage collected is killed and reaped", function()
    local c = looper()
    local pid = c.pid
    c = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    -- no zombie either: kill(pid, 0) fails with ESRCH only once it was reaped
    local ok, _, errno = vm.kill(pid, 0)
    assert.is_nil(ok)
    assert.equal(ESRCH, errno)
  end)

  it("a running child in a <close> variable is killed and reaped at the end of the block", function()
    local pid
    do
      local c <close> = looper()
      pid = c.pid
    end
    local ok, _, errno = vm.kill(pid, 0)
    assert.is_nil(ok)
    assert.equal(ESRCH, errno)
  end)

  it("a forked child's copy of a Child object does not kill it when collected", function()
    local sibling = looper()
    local c = vm.fork(function()
      sibling = nil -- luacheck: ignore 311
      collectgarbage()
      collectgarbage()
      return 0
    end)
    assert.equal(0, c:wait().code)
    assert.is_true(sibling:running())
    sibling:kill("KILL")
    sibling:wait()
  end)

  it("bad arguments raise errors naming the argument", function()
    assert.has_error(function() vm.fork("not a function") end,
      "bad argument #1 to 'fork' (function expected, got string)")
    local c = vm.fork(function() end)
    assert.has_error(function() c:kill("NOPE") end, "bad argument #1 to 'kill' (unknown signal name 'NOPE')")
    assert.has_error(function() c:wait({ timeout = -1 }) end)
    assert.has_error(function() c:wait({ tiemout = 1 }) end, "bad option 'tiemout' (unknown option)")
    c:wait()
    assert.has_error(function() c.wait({}) end)
  end)
end)

describe("spawn", function()
  it("starting a program that does not exist returns nil, the exec error and errno", function()
    local c, msg, errno = vm.spawn({ "/nonexistent/vmlab-no-such-program-here" })
    assert.is_nil(c)
    assert.equal("exec: No such file or directory", msg)
    assert.equal(ENOENT, errno)
    -- searched for on PATH: ENOENT, or EACCES where a directory on PATH is one
    -- this user may not search (root's /root/... on a PATH kept by su or sudo)
    c, msg, errno = vm.spawn({ "vmlab-no-such-program-here" })
    assert.is_nil(c)
    if errno == EACCES then
      assert.equal("exec: Permission denied", msg)
    else
      assert.equal("exec: No such file or directory", msg)
      assert.equal(ENOENT, errno)
    end
  end)

  it("a working directory that does not exist is reported as a chdir error", function()
    local c, msg, errno = vm.spawn({ "true" }, { cwd = "/nonexistent/vmlab" })
    assert.is_nil(c)
    assert.equal("chdir: No such file or directory", msg)
    assert.equal(ENOENT, errno)
  end)

  it("runs a program in the given directory, with extra environment and its output in a file", function()
    local out = os.tmpname()
    local c = assert(vm.spawn({ "sh", "-c", "pwd; echo \"$VMLAB_T\" \"${HOME:-nohome}\"; exit 3" },
      { cwd = "/tmp", env = { VMLAB_T = "hello", HOME = false }, stdout = out }))
    local st = c:wait()
    assert.equal(3, st.code)
    local f = assert(io.open(out))
    assert.equal("/tmp\nhello nohome\n", f:read("a"))
    f:close()
    os.remove(out)
  end)

  it("stdin can come from a path and stdout go to an open Lua file", function()
    local input, out = os.tmpname(), io.tmpfile()
    local f = assert(io.open(input, "w"))
    f:write("one\ntwo\n")
    f:close()
    out:write("head|")
    local c = assert(vm.spawn({ "tr", "a-z", "A-Z" }, { stdin = input, stdout = out }))
    assert.equal(0, c:wait().code)
    out:seek("set")
    assert.equal("head|ONE\nTWO\n", out:read("a"))
    out:close()
    os.remove(input)
  end)

  it("\"null\" sends output to /dev/null and reads nothing", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local c = assert(vm.spawn({ "sh", "-c", "read x && exit 1; echo lost; echo lost >&2" },
      { stdin = "null", stdout = "null", stderr = "null", cwd = dir }))
    assert.equal(0, c:wait().code)
    local created = os.remove(dir .. "/null")
    os.remove(dir)
    assert.is_nil(created, "a file named null was created")
  end)

  it("the program inherits only stdin, stdout and stderr, not the parent's other files", function()
    local secret = os.tmpname()
    local keep = assert(io.open(secret, "w")) -- io.open does not set close-on-exec
    local out = os.tmpname()
    local c = assert(vm.spawn({ "sh", "-c", "ls -l /proc/$$/fd" }, { stdout = out }))
    assert.equal(0, c:wait().code)
    local f = assert(io.open(out))
    local listing = f:read("a")
    f:close()
    keep:close()
    os.remove(secret)
    os.remove(out)
    assert.matches(" 1 %-> ", listing)
    assert.is_nil(listing:find(secret, 1, true), listing)
  end)

  it("a spawned program with a death signal dies when its parent does", function()
    local pid = vm.child.run(function()
      local c = assert(vm.spawn({ "sleep", "30" }, { death_signal = "KILL" }))
      return c.pid -- the child _exits here without killing it: only the death signal can
    end)
    assert.is_true(pid > 0)
    assert.is_true(eventually(function() return gone(pid) end, 5), "sleep " .. pid .. " is still alive")
  end)

  it("bad arguments raise errors naming the argument", function()
    assert.has_error(function() vm.spawn({}) end,
      "bad argument #1 to 'spawn' (argv must hold at least the program name)")
    assert.has_error(function() vm.spawn({ "echo", {} }) end,
      "bad argument #1 to 'spawn' (argv[2] must be a string, got table)")
    assert.has_error(function() vm.spawn({ "true" }, { cwdd = "/" }) end, "bad option 'cwdd' (unknown option)")
    assert.has_error(function() vm.spawn({ "true" }, { stdout = 1 }) end,
      "bad option 'stdout' (path or open file expected, got number)")
    local f = io.tmpfile()
    f:close()
    assert.has_error(function() vm.spawn({ "true" }, { stdin = "/dev/null", stderr = f }) end,
      "bad option 'stderr' (path or open file expected, got a closed file)")
  end)
end)

describe("process calls", function()
  it("a child's parent pid is the parent's pid", function()
    local r = vm.child.run(function() return { pid = vm.getpid(), ppid = vm.getppid() } end)
    assert.equal(vm.getpid(), r.ppid)
    assert.is_true(r.pid ~= vm.getpid())
  end)

  it("kill refuses pid 0 and -1, which would signal whole groups", function()
    assert.has_error(function() vm.kill(0, 0) end)
    assert.has_error(function() vm.kill(-1, 0) end)
    assert.has_error(function() vm.kill(vm.getpid(), "BOGUS") end,
      "bad argument #2 to 'kill' (unknown signal name 'BOGUS')")
    assert.is_true(vm.kill(vm.getpid(), 0))
  end)

  it("signals are known by name and number", function()
    assert.equal(9, vm.signals.SIGKILL)
    assert.equal(15, vm.signals.SIGTERM)
    assert.equal(11, vm.signals.SIGSEGV)
  end)

  it("the parent death signal can be set and read back in a child", function()
    local r = vm.child.run(function()
      local before = vm.get_parent_death_signal()
      assert(vm.set_parent_death_signal("TERM"))
      return { before = before, after = vm.get_parent_death_signal() }
    end)
    assert.equal(vm.signals.SIGKILL, r.before) -- child.run sets KILL
    assert.equal(vm.signals.SIGTERM, r.after)
  end)
end)

describe("vm.child.run", function()
  it("returns what the function returned in the child, nested tables included", function()
    local r, st = vm.child.run(function()
      return { x = 1, f = 2.5, s = "text\0bin", b = false, list = { 1, 2, { deep = true } } }
    end)
    assert.same({ x = 1, f = 2.5, s = "text\0bin", b = false, list = { 1, 2, { deep = true } } }, r)
    assert.is_true(st.exited)
    assert.equal(0, st.code)
  end)

  it("changes the child makes to memory stay in the child", function()
    local t = { n = 1 }
    local r = vm.child.run(function()
      t.n = 2
      return t.n
    end)
    assert.equal(2, r)
    assert.equal(1, t.n)
  end)

  it("a child killed by a signal gives no result, a status naming the signal and its last report", function()
    local r, st = vm.child.run(function(ctx)
      ctx.report({ got_to = 3 })
      vm.kill(vm.getpid(), "KILL")
    end)
    assert.is_nil(r)
    assert.is_true(st.signaled)
    assert.equal("SIGKILL", st.signal_name)
    assert.same({ got_to = 3 }, st.report)
  end)

  it("an error in the child comes back as status.error with a traceback", function()
    local r, st = vm.child.run(function() error("broken experiment") end)
    assert.is_nil(r)
    assert.equal(1, st.code)
    assert.matches("broken experiment", st.error)
    assert.matches("stack traceback", st.error)
  end)

  it("a child that runs past the timeout is killed", function()
    local r, st = vm.child.run(function()
      while true do end
    end, { timeout = 0.1 })
    assert.is_nil(r)
    assert.is_true(st.timed_out)
    assert.equal("SIGKILL", st.signal_name)
  end)

  it("values that cannot travel and results larger than the buffer are errors, not garbage", function()
    local r, st = vm.child.run(function() return { f = print } end)
    assert.is_nil(r)
    assert.matches("cannot send a function", st.error)
    r, st = vm.child.run(function() return ("x"):rep(5000) end, { buffer = 4000 })
    assert.is_nil(r)
    assert.matches("needs 5005 bytes", st.error)
  end)

  it("encode and decode round-trip every kind of value", function()
    local v = { 1, -2, math.maxinteger, 0.5, -1e300, "", ("z"):rep(300), true, false, { a = { b = {} } } }
    assert.same(v, vm.child.decode(vm.child.encode(v)))
    assert.has_error(function() vm.child.decode("q") end)
  end)

  it("bad arguments raise errors naming the argument", function()
    assert.has_error(function() vm.child.run(42) end, "bad argument #1 to 'run' (function expected, got number)")
    assert.has_error(function() vm.child.run(function() end, { buffer = -1 }) end)
    assert.has_error(function() vm.child.run(function() end, { timeout = "soon" }) end)
  end)
end)
