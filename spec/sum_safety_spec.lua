-- `vmlab sum` tried as an adversarial user would (issue 9, items 9 and 13-21):
-- a closed line summer, a parent killed while the child is blocked, closed
-- standard streams, junk in /dev/shm, a full disk, sums in any order,
-- garbage and truncation in the shared object, huge tokens, an early kill,
-- a FIFO without a reader, and where the results go by default.
local vm = require "vmlab"
local ring = require "vmlab.sum.ring"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local H = dofile(here .. "support/sum_helpers.lua").new()
local shq, tmp, slurp, spit, CLI = H.shq, H.tmp, H.slurp, H.spit, H.CLI
local eventually, gone, children_of, objects_of, start = H.eventually, H.gone, H.children_of, H.objects_of, H.start

-- sh -c SCRIPT (CLI stands for the command); returns exit code, stdout, stderr.
local function sh(script)
  local out, err = tmp("sh-out"), tmp("sh-err")
  local _, how, code = os.execute(("(%s) > %s 2> %s"):format(script:gsub("CLI", function() return CLI end),
    shq(out), shq(err)))
  return how == "exit" and code or 128 + code, slurp(out) or "", slurp(err) or ""
end

-- The shared object of a running parent, mapped through /proc/PID/fd (its
-- name is gone): the region, and the path it was opened by.
local function object_of(pid)
  for _, fd in ipairs(vm.listdir(("/proc/%d/fd"):format(pid)) or {}) do
    local path = ("/proc/%d/fd/%s"):format(pid, fd)
    local target = vm.readlink and vm.readlink(path) or nil
    if target == nil or target:match("^/dev/shm/vmlab%-sum") then
      local ok, r = pcall(vm.mmap, nil, { file = path, share = "shared" })
      if ok and r and r.size >= ring.OFFSET.data and r:atomic_load(0) == ring.MAGIC then return r, path end
      if ok and r then r:close() end
    end
  end
  return nil
end

local function complete_lines_only(text)
  for line in text:gmatch("([^\n]*)\n") do
    if not (line:match("^%-?%d+$") or line:match("^error: ")) then return false end
  end
  return text == "" or text:sub(-1) == "\n"
end

local function rss_kib()
  local status = slurp("/proc/self/status") or ""
  return tonumber(status:match("VmRSS:%s+(%d+)")) or 0
end

setup(function() vm.signal_catch("PIPE") end)
teardown(function()
  vm.signal_restore()
  H.cleanup()
end)

describe("the line summer, used the wrong way", function()
  local function sum(text, piece)
    local s <close> = vm.line_summer()
    local out = {}
    piece = piece or #text
    for i = 1, #text, math.max(piece, 1) do out[#out + 1] = s:feed(text:sub(i, i + piece - 1)) end
    out[#out + 1] = s:finish()
    return table.concat(out)
  end

  it("raises 'attempt to use a closed line summer' after close, and closing twice is harmless", function()
    local kept
    do
      local s <close> = vm.line_summer()
      s:feed("12")
      kept = s
    end
    assert.error_matches(function() kept:feed("34 1\n") end, "attempt to use a closed line summer")
    assert.error_matches(function() kept:finish() end, "attempt to use a closed line summer")
    assert.error_matches(function() kept:stats() end, "attempt to use a closed line summer")
    assert.matches("closed", tostring(kept))
    kept:close()
  end)

  it("sums integers exactly whatever their order, and checks only the line's total against 64 bits", function()
    for _, line in ipairs({ "1 9223372036854775807 -2", "9223372036854775807 -2 1", "-2 1 9223372036854775807" }) do
      assert.equal("9223372036854775806\n", sum(line .. "\n"))
      assert.equal("9223372036854775806\n", sum(line .. "\n", 3))
    end
    assert.equal("-9223372036854775808\n", sum("-1 -9223372036854775807 -1 1\n"))
    assert.equal("error: the sum 9223372036854775808 does not fit in a 64-bit integer\n",
      sum("9223372036854775807 -1 2\n"))
  end)

  it("adds the exact integer part to the float part, never rounding the integers first", function()
    assert.equal("9007199254740994.0\n", sum("9007199254740993 1.0\n"))
    assert.equal("9007199254740994.0\n", sum("1.0 9007199254740993\n"))
    assert.equal("1.8446744073709552e+19\n", sum("9223372036854775807 9223372036854775807 0.5\n"))
  end)

  it("keeps the whole error text of a token past column 10,000,000", function()
    local bad = ("\1"):rep(45)
    local line = ("1 "):rep(5000000) .. bad .. "\n"
    local want = "error: '" .. ("\\x01"):rep(40) .. "...' at column 10000001 is not a number\n"
    assert.equal(want, sum(line))
    assert.equal(want, sum(line, 65536))
  end)

  it("does not grow with one long invalid token (128 MiB of NUL bytes in 64 KiB pieces)", function()
    local s <close> = vm.line_summer()
    local piece = ("\0"):rep(65536)
    collectgarbage()
    local before = rss_kib()
    for _ = 1, 2048 do s:feed(piece) end
    local grown = rss_kib() - before
    assert.matches("^error: '\\x00\\x00.*%.%.%.' at column 1 is not a number\n$", (s:finish()))
    assert.is_true(grown < 32 * 1024, ("the summer grew by %d KiB"):format(grown))
  end)

  it("refuses a decimal token over 1 MiB, but sums an integer of any length", function()
    assert.equal("3\n", sum(("0"):rep(3 * 1024 * 1024) .. "1 2\n", 65536))
    assert.matches("^error: '1111.*' at column 1 is too long to read as a number",
      sum(("1"):rep(2 * 1024 * 1024) .. ".5 2\n", 65536))
  end)
end)

describe("vmlab sum, used the wrong way", function()
  it("the parent killed while the child is blocked writing to a full pipe: the child dies too", function()
    local input, inner, pidfile = tmp("big-in"), tmp("inner.sh"), tmp("inner-pid")
    spit(input, ("1\n"):rep(300000))
    for _, sync in ipairs({ "futex", "sem" }) do
      os.remove(pidfile)
      spit(inner, ("echo $$ > %s\nexec %s --out - --sync %s < %s 2>/dev/null\n"):format(shq(pidfile), CLI, sync,
        shq(input)))
      -- nobody reads the pipe: `sleep` holds its read end
      local outer = assert(vm.spawn({ "sh", "-c", "sh " .. shq(inner) .. " | sleep 60" }, { stderr = "null" }))
      assert.is_true(eventually(function() return (slurp(pidfile) or ""):match("%d+") end))
      local pid = math.tointeger(tonumber(slurp(pidfile):match("%d+")))
      local kid
      assert.is_true(eventually(function()
        kid = children_of(pid)[1]
        return kid ~= nil
      end))
      vm.sleep(0.5) -- time to fill the pipe and block in write(2)
      vm.kill(pid, "KILL")
      local died = eventually(function() return gone(kid) end, 5)
      if not died then vm.kill(kid, "KILL") end
      for _, p in ipairs(children_of(outer.pid)) do vm.kill(p, "KILL") end
      outer:kill("KILL")
      outer:wait()
      assert.is_true(died, "the child outlived its parent with --sync " .. sync)
      assert.equal(0, #objects_of(pid))
    end
  end)

  it("a closed standard input or output never becomes the shared object", function()
    local out = tmp("closed-out")
    os.remove(out)
    local code, _, err = sh("CLI --out " .. shq(out) .. " <&-")
    assert.equal(2, code, err)
    assert.matches("standard input is closed", err)
    assert.is_nil(slurp(out) ~= "" and slurp(out) or nil)
    code, _, err = sh("printf '1 2\\n3 4\\n' | CLI --out - >&-")
    assert.equal(2, code, err)
    assert.matches("standard output is closed", err)
    local lines = {}
    for i = 1, 5000 do lines[i] = tostring(i) end
    spit(tmp("seq-in"), table.concat(lines, "\n") .. "\n")
    code = sh(("CLI --out %s < %s 2>&-"):format(shq(out), shq(tmp("seq-in"))))
    assert.equal(0, code)
    assert.equal(table.concat(lines, "\n") .. "\n", slurp(out))
  end)

  it("junk in /dev/shm does not stop a run, and the sweep removes only its own user's dead objects", function()
    local dead = assert(vm.fork(function() return 0 end))
    local pid = dead.pid
    dead:wait()
    local junk = { "/vmlab-sum-99999999999999999999-ab", ("/vmlab-sum-%d-xyz"):format(pid),
      ("/vmlab-sum-%d-00112233aabbccdd-x"):format(pid), "/vmlab-sum--1-00112233aabbccdd" }
    for _, name in ipairs(junk) do spit("/dev/shm" .. name, "x\n") end
    local foreign = ("/vmlab-sum-%d-8899aabbccddeeff"):format(pid)
    local root = (slurp("/proc/self/status") or ""):match("\nUid:%s+%d+%s+0%s")
    if root then
      spit("/dev/shm" .. foreign, "x\n")
      os.execute("chown 65534 " .. shq("/dev/shm" .. foreign))
    end
    local code, out, err = sh("printf '1 2\\n' | CLI")
    for _, name in ipairs(junk) do
      assert.equal(1, #vm.shm_list(name), name .. " should be left alone")
      vm.shm_unlink(name)
    end
    if root then
      assert.equal(1, #vm.shm_list(foreign), "another user's object should be left alone")
      vm.shm_unlink(foreign)
    end
    assert.equal(0, code, err)
    assert.equal("3\n", out)
    assert.not_matches("traceback", err)
  end)

  it("a full disk: only complete lines stay in the file, and the count says how many", function()
    local out = tmp("full-out")
    local code, _, err = sh("seq 100000 | CLI --out /dev/full")
    assert.equal(1, code)
    assert.matches("after 0 lines", err)
    -- a file size limit (RLIMIT_FSIZE) cuts a write of many lines in the middle (a small ring: the limit
    -- applies to the shared object too)
    local lines = {}
    for i = 1, 20000 do lines[i] = i .. " 1" end
    spit(tmp("fsize-in"), table.concat(lines, "\n") .. "\n")
    os.remove(out)
    code, _, err = sh(("ulimit -f 64; trap '' XFSZ; CLI --slots 1 --slot-size 4096 --out %s < %s"):format(shq(out),
      shq(tmp("fsize-in"))))
    assert.equal(1, code, err)
    local text = slurp(out)
    assert.is_true(#text > 0)
    assert.is_true(complete_lines_only(text), "a cut line was left in the file")
    local _, n = text:gsub("\n", "")
    assert.matches("after " .. n .. " lines", err)
  end)

  it("garbage in the semaphore words gives a protocol error, not an abort", function()
    local run = start("--sync sem --out " .. shq(tmp("sem-out")))
    run:feed("1 2\n")
    local kid = run.child()
    assert.is_true(eventually(function() return slurp(tmp("sem-out")) == "3\n" end))
    local s = assert(object_of(run.pid), "cannot find the shared object of the run")
    for i = 0, 7 do
      s:atomic_store(ring.OFFSET.items + 8 * i, 0x0123456789abcdef)
    end
    s:close()
    run:feed(("3 4\n"):rep(1000))
    assert.is_true(eventually(function() return gone(run.pid) and gone(kid) end))
    local code = run.close()
    local err = slurp(run.err)
    assert.equal(1, code, err)
    assert.matches("protocol", err)
    assert.not_matches("traceback", err)
    assert.not_matches("SIGABRT", err)
    assert.equal(0, #objects_of(run.pid))
  end)

  it("a shared object truncated under the run gives a protocol error, not a traceback", function()
    local run = start("--out " .. shq(tmp("trunc-out")))
    run:feed("1 2\n")
    run.child()
    assert.is_true(eventually(function() return slurp(tmp("trunc-out")) == "3\n" end))
    local s, path = object_of(run.pid)
    assert.is_truthy(s, "cannot find the shared object of the run")
    s:close()
    assert(io.open(path, "w")):close() -- O_TRUNC: the object is now 0 bytes
    run:feed(("3 4\n"):rep(1000))
    assert.is_true(eventually(function() return gone(run.pid) end))
    local code = run.close()
    local err = slurp(run.err)
    assert.equal(1, code, err)
    assert.matches("protocol", err)
    assert.not_matches("traceback", err)
  end)

  it("the parent bounds the child's totals read from shared memory", function()
    local s <close> = assert(vm.shm_open(("/vmlab-spec-%d-totals"):format(vm.getpid()),
      { create = true, size = ring.size(1, 64) }))
    ring.init(s, "futex", 1, 64, vm.getpid())
    ring.store_stats(s, { lines = 2, numbers = 3, errors = 0 }, 2)
    assert.same({ lines = 2, numbers = 3, errors = 0, written = 2 }, ring.stats(s, 6))
    s:atomic_store(ring.OFFSET.lines, 8519452357564982828)
    local st, why = ring.stats(s, 6)
    assert.is_nil(st)
    assert.matches("protocol: the child's totals are impossible", why)
  end)

  it("a parent killed before its child attached leaves no object behind", function()
    -- a slow interpreter for the child: it spins for 3 s before it starts
    local slow = tmp("slow-lua")
    spit(slow, "#!/bin/sh\nexec lua5.4 -e 'local t = os.clock() while os.clock() - t < 3 do end' \"$@\"\n")
    os.execute("chmod +x " .. shq(slow))
    local run = start("--out " .. shq(tmp("early-out")), "VMLAB_LUA=" .. shq(slow))
    local kid = run.child()
    assert.is_truthy(kid)
    vm.kill(run.pid, "KILL")
    assert.is_true(eventually(function() return gone(run.pid) end))
    assert.equal(0, #objects_of(run.pid))
    assert.is_true(eventually(function() return gone(kid) end))
    run.close()
  end)

  it("an output FIFO without a reader: SIGINT stops the run with 130", function()
    local fifo = tmp("fifo")
    os.remove(fifo)
    assert(os.execute("mkfifo " .. shq(fifo)))
    local run = start("--out " .. shq(fifo))
    assert.is_true(eventually(function() return (slurp(run.err) or ""):match("waiting for a reader") end, 10))
    assert.is_false(gone(run.pid))
    vm.kill(run.pid, "INT")
    assert.is_true(eventually(function() return gone(run.pid) end))
    assert.equal(130, run.close())
    assert.matches("stopped by SIGINT", slurp(run.err))
  end)

  it("without --out the results go to standard output and no file is replaced", function()
    local dir = tmp("cwd")
    os.execute("rm -rf " .. shq(dir) .. "; mkdir " .. shq(dir))
    spit(dir .. "/sums.txt", "precious\n")
    local code, out, err = sh(("cd %s && printf '1 2\\n3 4\\n' | CLI"):format(shq(dir)))
    local kept = slurp(dir .. "/sums.txt")
    os.execute("rm -rf " .. shq(dir))
    assert.equal(0, code, err)
    assert.equal("3\n7\n", out)
    assert.equal("precious\n", kept)
  end)
end)
