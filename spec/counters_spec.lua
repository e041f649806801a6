-- The kernel's counters: getrusage and perf page-fault counters.
local vm = require "vmlab"
local vassert = require "vmlab.assert"
local kernel = require "vmlab.kernel"

local PAGE = vm.page_size
local N = 2000 -- pages written in the fault-counting tests

-- Write N fresh pages of anonymous memory, one fault each (no THP).
local function write_fresh_pages(n)
  local r = assert(vm.mmap(n * PAGE))
  r:advise("nohugepage")
  local t = r:touch("write")
  r:close()
  return t
end

-- Faults counted by read() while writing N fresh pages: the least of three
-- tries, since other activity on the machine (page migration, compaction)
-- can only add faults to a window, never take them away.
local function faults_for_fresh_pages(read)
  local best = math.huge
  for _ = 1, 3 do
    collectgarbage() -- no collection (and heap trimming) inside the window
    local before = read()
    write_fresh_pages(N)
    best = math.min(best, read() - before)
  end
  return best
end

local function within(expected, got, frac, extra)
  return got >= expected * (1 - frac) - (extra or 0) and got <= expected * (1 + frac) + (extra or 0)
end

describe("rusage", function()
  it("reports this process's faults, peak RSS in bytes and CPU seconds", function()
    local ru = vm.rusage()
    assert.is_true(math.type(ru.minor_faults) == "integer" and ru.minor_faults > 0)
    assert.is_true(math.type(ru.major_faults) == "integer" and ru.major_faults >= 0)
    assert.is_true(math.type(ru.user_seconds) == "float" and ru.user_seconds >= 0)
    assert.is_true(ru.system_seconds >= 0)
    assert.is_true(ru.voluntary_switches >= 0 and ru.involuntary_switches >= 0)
    -- max_rss is VmHWM: the same kernel number, in bytes
    local hwm = vm.proc.status().VmHWM
    assert.is_true(within(hwm, ru.max_rss, 0.05, 1024 * 1024), ru.max_rss .. " vs VmHWM " .. hwm)
  end)

  it("writing N fresh pages adds about N minor faults", function()
    local d = faults_for_fresh_pages(function() return vm.rusage().minor_faults end)
    assert.is_true(within(N, d, 0.02, 5), d .. " faults for " .. N .. " pages")
  end)

  it("children's usage shows up once they have been waited for", function()
    local before = vm.rusage("children").minor_faults
    local c = vm.fork(function() write_fresh_pages(N) end)
    c:wait()
    local d = vm.rusage("children").minor_faults - before
    assert.is_true(d >= N, d .. " faults of a child that wrote " .. N .. " pages")
    assert.is_table(vm.rusage("thread"))
  end)

  it("an unknown 'who' raises an error naming the argument", function()
    assert.has_error(function() vm.rusage("everyone") end,
      "bad argument #1 to 'rusage' (invalid option 'everyone')")
  end)
end)

describe("fault counters", function()
  it("counts about N faults for writing N fresh pages", function()
    local fc <close> = vm.fault_counter("minor")
    assert.equal(0, fc:read() - fc:read()) -- reading costs no fault
    local d = faults_for_fresh_pages(function() return fc:read() end)
    assert.is_true(within(N, d, 0.02, 5), d .. " faults for " .. N .. " pages (" .. fc.source .. ")")
  end)

  it("uses perf events where the kernel allows them, and says why when it falls back to rusage", function()
    local fc <close> = vm.fault_counter("all")
    assert.equal("all", fc.kind)
    if kernel.has("perf_faults") then
      assert.equal("perf", fc.source, tostring(fc.reason))
      assert.is_true(fc.reason == nil or fc.user_only)
    else
      -- perf refused (perf_event_paranoid 3, a seccomp filter, no perf in the kernel): the count goes on
      assert.equal("rusage", fc.source)
      assert.matches("^perf_event_open: ", fc.reason)
      local d = faults_for_fresh_pages(function() return fc:read() end)
      assert.is_true(within(N, d, 0.02, 5), d .. " faults for " .. N .. " pages (rusage fallback)")
      -- asking for perf alone is refused with the error
      local c, msg, errno = vm.fault_counter("minor", { source = "perf" })
      assert.is_nil(c)
      assert.matches("^perf_event_open: ", msg)
      assert.equal("integer", math.type(errno))
    end
  end)

  it("counts the same with the rusage source, and states why it is used", function()
    local fc <close> = vm.fault_counter("minor", { source = "rusage" })
    assert.equal("rusage", fc.source)
    assert.matches("rusage", fc.reason)
    local d = faults_for_fresh_pages(function() return fc:read() end)
    assert.is_true(within(N, d, 0.02, 5), d .. " faults for " .. N .. " pages")
  end)

  it("pages the kernel populates on the process's behalf count in rusage but raise no perf event", function()
    if not vassert.requires("perf_faults") then return end
    local fc <close> = vm.fault_counter("minor")
    assert.equal("perf", fc.source, tostring(fc.reason))
    local ru0, c0 = vm.rusage().minor_faults, fc:read()
    local r = assert(vm.mmap(N * PAGE, { populate = true }))
    local ru, c = vm.rusage().minor_faults - ru0, fc:read() - c0
    r:close()
    if kernel().thp_enabled == "always" then
      -- populated with huge pages where whole ones fit: one fault each
      assert.is_true(ru >= 1 and ru <= N * 1.02 + 5, ru .. " rusage faults for " .. N .. " pages (THP always)")
    else
      assert.is_true(within(N, ru, 0.02, 5), ru .. " rusage faults for " .. N .. " populated pages")
    end
    assert.is_true(c <= 20, c .. " perf faults for a MAP_POPULATE mapping")
  end)

  it("anonymous memory written for the first time takes no major faults", function()
    local fc <close> = vm.fault_counter("major")
    write_fresh_pages(N)
    assert.is_true(fc:read() <= 2, fc:read() .. " major faults")
  end)

  it("an unprivileged process still counts its own faults with perf, in user mode only", function()
    local function sh(cmd)
      local p = assert(io.popen(cmd))
      local out = p:read("a")
      p:close()
      return out
    end
    if sh("id -u") ~= "0\n" or sh("command -v setpriv") == "" then
      pending("needs root and setpriv(1) to start a process as nobody")
      return
    end
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(("package.path, package.cpath = %q, %q\n"):format(package.path, package.cpath), [[
      local vm = require "vmlab"
      local fc = vm.fault_counter("minor")
      local r = vm.mmap(1000 * vm.page_size)
      r:advise("nohugepage")
      r:touch("write")
      io.write(fc.source, " ", tostring(fc.user_only), " ", fc:read(), " ", tostring(fc.reason))
    ]])
    f:close()
    -- the script is root's 0600 temp file: hand it over on stdin
    local out = sh("setpriv --reuid=65534 --regid=65534 --clear-groups lua5.4 - < " .. script .. " 2>&1")
    os.remove(script)
    if out:match("module 'vmlab[.%w]*' not found") then
      pending("user nobody cannot read the module here")
      return
    end
    local source, user_only, n, reason = out:match("^(%S+) (%S+) (%d+) (.*)$")
    assert.is_string(source, out)
    if source ~= "perf" then
      pending("perf_event_open refused to an unprivileged process here: " .. reason)
      return
    end
    assert.equal("true", user_only)
    assert.is_true(within(1000, tonumber(n), 0.02, 5), n .. " faults for 1000 pages")
    assert.matches("counting user%-mode faults only", reason)
  end)

  it("reset starts the count again from zero", function()
    local fc <close> = vm.fault_counter("minor")
    write_fresh_pages(100)
    assert.is_true(fc:read() >= 100)
    local same = fc:reset()
    local n = fc:read()
    assert.equal(fc, same)
    assert.is_true(n < 20, n .. " after reset")
  end)

  it("close is idempotent; a closed counter raises when used", function()
    local fc = vm.fault_counter("all")
    fc:close()
    fc:close()
    assert.is_true(fc.closed)
    assert.has_error(function() fc:read() end, "attempt to use a closed fault counter")
    assert.matches("closed", tostring(fc))
  end)

  it("a forked child may not read its parent's counter", function()
    local fc <close> = vm.fault_counter("minor")
    local r = vm.child.run(function()
      local ok, err = pcall(fc.read, fc)
      fc:close() -- closes only the child's copy of the fd
      return { ok = ok, err = err }
    end)
    assert.is_false(r.ok)
    assert.matches("opened before a fork", r.err)
    assert.is_number(fc:read())
  end)

  it("tostring says the kind, the source and the count", function()
    local fc <close> = vm.fault_counter("major", { source = "rusage" })
    assert.matches("^vmlab.FaultCounter major %(rusage%): %d+ faults$", tostring(fc))
  end)

  it("the perf file descriptors are closed on exec and released on close", function()
    local fds = function()
      local p = assert(io.popen("ls -l /proc/" .. vm.getpid() .. "/fd"))
      local s = p:read("a")
      p:close()
      local n = 0
      for _ in s:gmatch("perf_event") do n = n + 1 end
      return n
    end
    local before = fds()
    local list = {}
    for i = 1, 20 do list[i] = vm.fault_counter("minor") end
    local during = fds()
    for i = 1, 20 do list[i]:close() end
    assert.equal(before, fds())
    if list[1].source == "perf" then assert.equal(before + 20, during) end
    -- a program started by io.popen (fork + exec without vmlab) inherits none of them
    local c = vm.fault_counter("minor")
    local p = assert(io.popen("ls -l /proc/self/fd"))
    local s = p:read("a")
    p:close()
    c:close()
    assert.is_nil(s:find("perf_event", 1, true), s)
  end)

  it("bad arguments raise errors naming the argument", function()
    assert.has_error(function() vm.fault_counter("some") end,
      "bad argument #1 to 'fault_counter' (invalid option 'some')")
    assert.has_error(function() vm.fault_counter("minor", { source = "magic" }) end)
    assert.has_error(function() vm.fault_counter("minor", { sauce = "perf" }) end,
      "bad option 'sauce' (unknown option)")
  end)

  it("clock_ticks is the unit of /proc times", function()
    assert.is_true(vm.clock_ticks > 0 and vm.clock_ticks <= 10000)
  end)
end)
