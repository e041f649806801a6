-- vmlab watch: another process's memory over time, as the lab's `watch` commands show it.
local watch = require "vmlab.cli.watch"

-- A fake output that keeps what is written.
local function sink()
  local s = { text = "" }
  function s:write(...)
    for _, x in ipairs { ... } do self.text = self.text .. x end
    return self
  end
  return s
end

-- Start `lua5.4 -e code` (through sh, which execs it, so $$ is its pid) with
-- vmlab on its paths (it sleeps with vm.sleep: no other process to leave
-- behind); returns the pid and the pipe (its stdout).
local function start(code)
  local p = assert(io.popen(("echo $$; LUA_PATH=%q LUA_CPATH=%q exec lua5.4 -e %q"):format(package.path,
    package.cpath, 'local vm = require "vmlab" ' .. code)))
  local pid = math.tointeger(tonumber(p:read("l")))
  assert(pid, "no pid from the child")
  return pid, p
end

local function stop(pid, p)
  os.execute("kill " .. pid .. " 2>/dev/null")
  p:close()
end

local function lines(text)
  local list = {}
  for l in text:gmatch("[^\n]+") do list[#list + 1] = l end
  return list
end

local MIB = 1 << 20
local PAGE = require("vmlab").page_size

describe("vmlab watch", function()
  it("prints one JSON object a line for a child that filled 32 MiB, with its RSS, faults and smaps_rollup", function()
    -- written a base page at a time (no THP), so the faults are known on any machine
    local pid, p = start('local r = vm.mmap(32 << 20) r:advise("nohugepage") r:touch("write") '
      .. 'io.write("ready\\n") io.flush() vm.sleep(10)')
    assert.equal("ready", p:read("l"))
    local out, err = sink(), sink()
    local code = watch.main({ tostring(pid), "--count", "2", "--json", "--interval", "0.1" }, out, err)
    stop(pid, p)
    assert.equal(0, code)
    assert.equal("", err.text)
    local cjson = require "cjson"
    local got = lines(out.text)
    assert.equal(2, #got)
    for i, l in ipairs(got) do
      local s = cjson.decode(l)
      assert.equal(pid, s.pid)
      assert.equal("lua5.4", s.name)
      assert.is_true(s.rss >= 30 * MIB, "VmRSS " .. s.rss)
      assert.is_true(s.virt >= s.rss)
      assert.is_true(s.minor_faults >= (32 * MIB) // PAGE, s.minor_faults .. " minor faults for 32 MiB")
      -- a fresh interpreter may read a library page from disk: major faults are counted, not assumed 0
      assert.is_true(s.major_faults >= 0 and s.major_faults < s.minor_faults, s.major_faults .. " major faults")
      assert.is_true(s.smaps_rollup.anonymous >= 30 * MIB)
      assert.is_true(s.smaps_rollup.pss <= s.smaps_rollup.rss)
      assert.is_true(s.t >= (i - 1) * 0.1)
    end
  end)

  it("prints a readable line per sample and stops when the process exits", function()
    local pid, p = start('io.write("ready\\n") io.flush() vm.sleep(0.4)')
    assert.equal("ready", p:read("l"))
    local out, err = sink(), sink()
    local code = watch.main({ tostring(pid), "--interval", "100ms" }, out, err)
    p:close()
    assert.equal(0, code)
    local got = lines(out.text)
    assert.matches("^watching pid " .. pid .. " %(lua5.4%) every 0.1s, until it exits", got[1])
    assert.matches("time +VmRSS +VmSize +minflt +majflt +Rss +Pss +Anonymous", got[2])
    assert.matches("^ +0%.00s +[%d.]+ %a+ +[%d.]+ %a+ +%d+ +%d+ ", got[3])
    assert.is_true(#got >= 5, "too few samples: " .. #got)
    assert.matches("^process " .. pid .. " exited after %d+ samples$", got[#got])
  end)

  it("says clearly when there is no such process or the pid is not a pid, and exits with 2", function()
    local missing = 4000000
    while io.open("/proc/" .. missing .. "/stat") do missing = missing + 1 end
    local out, err = sink(), sink()
    assert.equal(2, watch.main({ tostring(missing) }, out, err))
    assert.equal("vmlab watch: no process with pid " .. missing .. " (nothing in /proc/" .. missing .. ")\n", err.text)
    for _, argv in ipairs { { "abc" }, { "0" }, { "-5" }, {}, { "1", "2" }, { "1", "--count", "0" },
      { "1", "--interval", "soon" }, { "1", "--colour" } } do
      err = sink()
      assert.equal(2, watch.main(argv, sink(), err), table.concat(argv, " "))
      assert.matches("^vmlab watch: [^\n]+ %(see vmlab watch %-%-help%)\n$", err.text) -- one line
    end
  end)

  it("reads the --interval in seconds or milliseconds", function()
    assert.equal(0.25, watch.parse({ "1", "--interval", "250ms" }).interval)
    assert.equal(2, watch.parse({ "1", "--interval=2s" }).interval)
    assert.equal(0.5, watch.parse({ "1" }).interval)
  end)
end)
