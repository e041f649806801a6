-- `vmlab sum`: the lab's parent/child summing over POSIX shared memory.
-- The line summer (C), the ring (header checks, untrusted lengths), and the
-- command end to end: output, sync methods, terminal, faults and cleanup.
local vm = require "vmlab"
local ring = require "vmlab.sum.ring"
local names = require "vmlab.sum.names"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local H = dofile(here .. "support/sum_helpers.lua").new()
local shq, tmp, slurp, spit, CLI = H.shq, H.tmp, H.slurp, H.spit, H.CLI
local eventually, gone, objects_of = H.eventually, H.gone, H.objects_of

-- Run `vmlab sum ARGS < input`; returns exit code, stderr.
local function run_sum(args, input)
  local inp, err = tmp("in"), tmp("err")
  spit(inp, input)
  local _, _, code = os.execute(("(%s %s) < %s 2> %s"):format(CLI, args, shq(inp), shq(err)))
  return code, slurp(err) or ""
end

-- A run in progress, fed through a pipe: start(args) -> run with .pid, .out,
-- :feed(text), :child() (pid once it exists and the object is unlinked), :close() -> exit code.
local function start(args)
  local out = tmp("live-out")
  local run = H.start("--out " .. shq(out) .. " " .. (args or ""), nil, true)
  run.out = out
  return run
end

local function complete_lines_only(text)
  for line in text:gmatch("([^\n]*)\n") do
    if not (line:match("^%-?%d+$") or line:match("^error: ")) then return false, line end
  end
  return text == "" or text:sub(-1) == "\n", "a last line without a newline"
end

teardown(function()
  for _, suffix in ipairs({ "in", "err", "out", "out2", "live-out", "live-err", "pid", "a", "b", "c" }) do
    tmp(suffix) -- (so that cleanup removes it and its .out)
  end
  H.cleanup()
end)

describe("the line summer", function()
  local function sum(text)
    local s = vm.line_summer()
    local out = s:feed(text)
    return out .. s:finish()
  end

  it("sums integers exactly, the total in 64 bits, up to the limits", function()
    assert.equal("6\n", sum("1 2 3\n"))
    assert.equal("9223372036854775807\n", sum("9223372036854775806 1\n"))
    assert.equal("-9223372036854775808\n", sum("-9223372036854775807 -1\n"))
    assert.equal("-9223372036854775808\n", sum("-9223372036854775808\n"))
    assert.equal("7\n", sum("+007\n"))
  end)

  it("gives an error line instead of a wrapped number when the sum overflows", function()
    assert.equal("error: the sum 9223372036854775808 does not fit in a 64-bit integer\n",
      sum("9223372036854775807 1\n"))
    assert.equal("error: the sum -9223372036854775809 does not fit in a 64-bit integer\n",
      sum("-9223372036854775808 -1\n"))
    assert.equal("error: '9223372036854775808' at column 1 does not fit in a 64-bit integer\n",
      sum("9223372036854775808\n"))
  end)

  it("makes the sum a float when a token has a fraction or an exponent", function()
    assert.equal("3.5\n", sum("2.5 1\n"))
    assert.equal("-1000.0\n", sum("-1e3\n"))
    assert.equal("1.0\n", sum(".5 5.e-1\n"))
    assert.equal("0.30000000000000004\n", sum("0.1 0.2\n"))
    assert.equal("error: adding '1e308' at column 7 overflows the floating-point sum\n", sum("1e308 1e308\n"))
    assert.equal("error: '1e999' at column 1 is out of the range of a double\n", sum("1e999\n"))
  end)

  it("names the first bad token and its column", function()
    assert.equal("error: 'abc' at column 5 is not a number\n", sum("1 2 abc 4\n"))
    assert.equal("error: 'é' at column 3 is not a number\n", sum("1 é 2\n"))
    assert.equal("error: 'x' at column 7 is not a number\n", sum("1\t\t2  x\n"))
    for _, bad in ipairs({ "0x10", "inf", "nan", "1e", "-", "+", ".", "1.2.3", "1,5", "--1" }) do
      assert.equal(("error: '%s' at column 3 is not a number\n"):format(bad), sum("1 " .. bad .. "\n"))
    end
  end)

  it("shows control bytes in a bad token escaped, and a long one shortened", function()
    assert.equal("error: '1\\r2' at column 1 is not a number\n", sum("1\r2\n"))
    local long = ("y"):rep(100)
    assert.equal("error: '" .. ("y"):rep(40) .. "...' at column 1 is not a number\n", sum(long .. "\n"))
  end)

  it("accepts \\r\\n line ends, tabs, runs of spaces, and sums a blank line to 0", function()
    assert.equal("3\n7\n", sum("1 2\r\n3\t 4\r\n"))
    assert.equal("0\n0\n0\n", sum("\n   \n\t\r\n"))
  end)

  it("counts a last line without a newline as a line", function()
    local s = vm.line_summer()
    assert.equal("3\n", (s:feed("1 2\n4 5")))
    assert.is_true(s:pending())
    local out, n = s:finish()
    assert.equal("9\n", out)
    assert.equal(1, n)
    assert.same({ lines = 2, numbers = 4, errors = 0 }, s:stats())
  end)

  it("sums a line cut into pieces anywhere exactly as the whole line", function()
    local parts, total = {}, 0
    for i = 1, 5000 do
      local v = (i * 7919) % 20001 - 10000
      parts[#parts + 1] = tostring(v)
      total = total + v
    end
    local text = table.concat(parts, " ") .. "\r\n1 2.5\n"
    local want = total .. "\n3.5\n"
    assert.equal(want, sum(text))
    for _, piece in ipairs({ 1, 2, 3, 7, 64, 4093 }) do
      local s, out = vm.line_summer(), {}
      for i = 1, #text, piece do out[#out + 1] = s:feed(text:sub(i, i + piece - 1)) end
      out[#out + 1] = s:finish()
      assert.equal(want, table.concat(out), "pieces of " .. piece)
    end
  end)

  it("counts lines, numbers and error lines", function()
    local s = vm.line_summer()
    s:feed("1 2\nx\n3\n")
    assert.same({ lines = 3, numbers = 3, errors = 1 }, s:stats())
  end)
end)

describe("the ring", function()
  local s, geometry
  before_each(function()
    s = assert(vm.shm_open(names.unique("spec"), { create = true, size = ring.size(4, 64) }))
    ring.init(s, "futex", 4, 64, vm.getpid())
    geometry = assert(ring.attach(s))
  end)
  after_each(function() s:close() end)

  it("hands batches from producer to consumer in order, then the end", function()
    local p, c = ring.producer(s, "futex", 4, 64), ring.consumer(s, geometry)
    for i = 1, 3 do
      local off = assert(p:acquire(1))
      s:write(off, "batch" .. i)
      p:publish(6)
    end
    assert.is_true(p:finish("eof"))
    assert.equal("batch1", c:take(1))
    assert.equal("batch2", c:take(1))
    assert.equal("batch3", c:take(1))
    assert.same({ nil, "eof" }, { c:take(1) })
  end)

  it("the producer waits while every slot is full", function()
    local p = ring.producer(s, "futex", 4, 64)
    for _ = 1, 4 do
      assert(p:acquire(1))
      p:publish(1)
    end
    assert.same({ false, "timeout" }, { p:acquire(0.01) })
  end)

  it("the consumer refuses a header that is not a ring or does not fit the object", function()
    s:atomic_store(ring.OFFSET.magic, 1)
    assert.matches("bad magic", select(2, ring.attach(s)))
    ring.init(s, "futex", 4, 64, vm.getpid())
    s:atomic_store(ring.OFFSET.slot_size, 1 << 20, 32)
    assert.matches("do not fit", select(2, ring.attach(s)))
    s:atomic_store(ring.OFFSET.slots, 0, 32)
    assert.matches("slot count", select(2, ring.attach(s)))
  end)

  it("the consumer never trusts a slot length or a head read from shared memory", function()
    local p, c = ring.producer(s, "futex", 4, 64), ring.consumer(s, geometry)
    assert(p:acquire(1))
    p:publish(10)
    s:atomic_store(ring.OFFSET.lens, 1 << 40) -- a length past the slot
    assert.error_matches(function() c:take(0) end, "protocol: slot length")
    s:atomic_store(ring.OFFSET.lens, -1)
    assert.error_matches(function() c:take(0) end, "protocol: slot length")
    s:atomic_store(ring.OFFSET.head, 1000) -- more slots than the ring has
    assert.error_matches(function() c:take(0) end, "protocol: head")
    s:atomic_store(ring.OFFSET.head, -5)
    assert.error_matches(function() c:take(0) end, "protocol: head")
  end)
end)

describe("vmlab sum", function()
  -- a run that died must fail its test, not kill busted with SIGPIPE
  setup(function() vm.signal_catch("PIPE") end)
  teardown(function() vm.signal_restore() end)

  local input = "1 2 3\n\n10 -4\nabc 5\n2.5 1\n9223372036854775807 1\n   7\t8  \n"
  local expected = "6\n0\n6\nerror: 'abc' at column 1 is not a number\n3.5\n"
    .. "error: the sum 9223372036854775808 does not fit in a 64-bit integer\n15\n"

  it("writes one result line per input line, in order, and the totals on stderr", function()
    local code, err = run_sum("--out " .. shq(tmp("out")), input)
    assert.equal(0, code, err)
    assert.equal(expected, slurp(tmp("out")))
    assert.matches("7 lines, 9 numbers, 2 error lines, [%d.]+ s, %d+ lines/s", err)
  end)

  for _, sync in ipairs({ "futex", "sem", "poll" }) do
    it("gives the same results with --sync " .. sync .. ", long lines crossing small slots in pieces", function()
      local long, total = {}, 0
      for i = 1, 3000 do
        long[#long + 1] = tostring(i)
        total = total + i
      end
      local text = input .. table.concat(long, " ") .. "\r\n4 5"
      local code, err = run_sum(("--sync %s --slot-size 100 --slots 2 --out %s"):format(sync, shq(tmp("out"))), text)
      assert.equal(0, code, err)
      assert.equal(expected .. total .. "\n9\n", slurp(tmp("out")))
    end)
  end

  it("sums a large input in batches exactly like awk", function()
    local lines = {}
    for i = 1, 20000 do lines[i] = ("%d %d %d -%d"):format(i, i * 3, i % 7, i * 2) end
    local text = table.concat(lines, "\n") .. "\n"
    local code, err = run_sum("--out " .. shq(tmp("out")), text)
    assert.equal(0, code, err)
    local want = {}
    for i = 1, 20000 do want[i] = tostring(2 * i + i % 7) end
    assert.equal(table.concat(want, "\n") .. "\n", slurp(tmp("out")))
  end)

  it("refuses bad usage with exit code 2, an output file it cannot open too", function()
    assert.equal(2, (run_sum("--sync spin", "")))
    assert.equal(2, (run_sum("--slots 0", "")))
    assert.equal(2, (run_sum("--bogus", "")))
    local code, err = run_sum("--out /nonexistent/dir/x", "1\n")
    assert.equal(2, code)
    assert.matches("nonexistent", err)
  end)

  it("from a terminal ends the input at an empty line", function()
    local script = io.popen("command -v script"):read("l")
    if not script then
      pending("needs script(1) from util-linux to give the command a terminal")
      return
    end
    local out = tmp("out")
    os.remove(out)
    -- script(1) itself runs without the sanitizer's LD_PRELOAD; the command inside gets it back
    local preload = os.getenv("LD_PRELOAD")
    local inner = (preload and "export LD_PRELOAD=" .. shq(preload) .. "; " or "") .. CLI .. " --out " .. shq(out)
    local cmd = ("(sleep 0.3; printf '1 2\\n3 x\\n'; sleep 0.3; printf '\\n'; sleep 0.3; printf '4 4\\n') | "
      .. "env -u LD_PRELOAD script -qec %s /dev/null > /dev/null 2>&1"):format(shq("(" .. inner .. ")"))
    os.execute(cmd)
    assert.equal("3\nerror: 'x' at column 3 is not a number\n", slurp(out))
  end)

  it("puts every line received so far in the file while the input pauses", function()
    local run = start()
    run:feed("1 2\n3 4\n5")
    assert.is_true(eventually(function() return slurp(run.out) == "3\n7\n" end), slurp(run.out))
    run:feed(" 6\n")
    assert.is_true(eventually(function() return slurp(run.out) == "3\n7\n11\n" end))
    assert.equal(0, run.close())
  end)

  it("the child killed mid-run: the parent reports it and fails; complete lines only, nothing left", function()
    local run = start()
    run:feed(("1 1\n"):rep(1000))
    local kid = run.child()
    assert.is_truthy(kid)
    assert.is_true(eventually(function() return #(slurp(run.out) or "") > 0 end))
    vm.kill(kid, "KILL")
    assert.is_true(eventually(function() return gone(run.pid) end), "the parent should exit by itself")
    assert.equal(1, run.close())
    assert.matches("the child %(pid %d+%) was killed by SIGKILL", slurp(run.err))
    assert.is_true(complete_lines_only(slurp(run.out)))
    assert.equal(0, #objects_of(run.pid))
  end)

  it("the parent killed with SIGKILL: the child dies with it; nothing left in /dev/shm", function()
    local run = start()
    run:feed("5 5\n")
    local kid = run.child()
    assert.is_truthy(kid)
    assert.is_true(eventually(function() return slurp(run.out) == "10\n" end))
    vm.kill(run.pid, "KILL")
    assert.is_true(eventually(function() return gone(kid) end), "the child should die with its parent")
    run.close()
    assert.equal("10\n", slurp(run.out))
    assert.equal(0, #objects_of(run.pid))
  end)

  for _, sig in ipairs({ "TERM", "INT" }) do
    it("SIG" .. sig .. " to the parent stops both processes, which clean up", function()
      local run = start("--sync sem")
      run:feed("1 2\n")
      local kid = run.child()
      assert.is_true(eventually(function() return slurp(run.out) == "3\n" end))
      vm.kill(run.pid, sig)
      assert.is_true(eventually(function() return gone(run.pid) and gone(kid) end))
      assert.equal(128 + vm.signals["SIG" .. sig], run.close())
      assert.matches("stopped by SIG" .. sig, slurp(run.err))
      assert.equal("3\n", slurp(run.out))
      assert.equal(0, #objects_of(run.pid))
    end)
  end

  it("sweeps away a stale object whose creator is dead", function()
    local dead = assert(vm.fork(function() return 0 end))
    local pid = dead.pid
    dead:wait()
    local stale = ("/vmlab-sum-%d-00112233aabbccdd"):format(pid)
    assert(vm.shm_open(stale, { create = true, size = 64, keep = true })):close()
    local code, err = run_sum("--out " .. shq(tmp("out")), "1\n")
    assert.equal(0, code, err)
    assert.equal(0, #vm.shm_list(stale))
  end)

  it("several runs at the same time do not interfere", function()
    local runs = {}
    for i, tag in ipairs({ "a", "b", "c" }) do
      local lines = {}
      for j = 1, 5000 do lines[j] = ("%d %d"):format(i, j) end
      spit(tmp(tag), table.concat(lines, "\n") .. "\n")
      runs[i] = io.popen(("(%s --out %s) < %s 2>/dev/null; echo $?"):format(CLI, shq(tmp(tag) .. ".out"),
        shq(tmp(tag))))
    end
    for i, tag in ipairs({ "a", "b", "c" }) do
      assert.equal("0", runs[i]:read("l"))
      runs[i]:close()
      local want = {}
      for j = 1, 5000 do want[j] = tostring(i + j) end
      assert.equal(table.concat(want, "\n") .. "\n", slurp(tmp(tag) .. ".out"))
    end
  end)
end)
