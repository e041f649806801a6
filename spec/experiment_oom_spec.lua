-- oom: a child past its memory cgroup's limit is killed by the OOM killer; under
-- RLIMIT_AS instead, malloc returns NULL and nothing is killed.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local MiB = 1024 * 1024

describe("the oom experiment", function()
  local r
  setup(function() r = experiments.run("oom", { limit = 16 * MiB, write = 64 * MiB }) end)

  it("shows the OOM killer ending the child with SIGKILL at the group's limit, and counting it", function()
    vassert.claim_holds(r, "killed")
    vassert.claim_holds(r, "rss_capped")
    vassert.claim_holds(r, "counted")
    assert.within(r.cgroup.bytes_written, 8 * MiB, 17 * MiB, "bytes written before the kill")
  end)

  it("finds the kernel's log line about the kill where dmesg is readable", function()
    vassert.claim_holds(r, "logged")
  end)

  it("shows malloc returning NULL under RLIMIT_AS, on any machine", function()
    vassert.claim_holds(r, "rlimit_null")
    -- the limit is on the whole address space: what malloc got depends on what else was mapped or
    -- unmapped meanwhile, but it stopped well before the 64 MiB the child asked for
    assert.within(r.rlimit.bytes_written, 1 * MiB, 63 * MiB, "bytes malloc'd before NULL")
  end)

  it("leaves no vmlab cgroup behind", function()
    if r.cgroup_dir then
      assert.is_nil(io.open(r.cgroup_dir), r.cgroup_dir .. " is still there")
    end
    local m = require("vmlab.cgroup").memory()
    if m then
      for _, name in ipairs(vm.listdir(m.dir) or {}) do
        assert.is_nil(name:match("^vmlab%-oom%-" .. vm.getpid() .. "%-"), name)
      end
    end
  end)

  it("removes a group whose creator was killed with SIGKILL (the undo watcher)", function()
    if not vassert.requires("memory_cgroup") then return end
    local p = assert(io.popen(("lua5.4 -e %q 2>&1"):format([[
      local g = assert(require("vmlab.cgroup").create("oomtest", 64 << 20))
      print(g.dir); io.stdout:flush()
      os.execute("kill -9 " .. require("vmlab").getpid())]])))
    local dir = p:read("l")
    p:close()
    assert.is_string(dir)
    local gone = false
    for _ = 1, 50 do
      if not io.open(dir) then gone = true; break end
      vm.sleep(0.1)
    end
    assert.is_true(gone, dir .. " is still there 5 s after its creator was killed")
  end)

  it("decides its claims from the numbers it is given", function()
    local e = experiments.get("oom")
    local killed = { cgroup = { signaled = true, signal = "SIGKILL", bytes_written = 15 * MiB,
      limit = 16 * MiB, rss_before = 2 * MiB, max_rss = 18 * MiB, samples = 15, oom_kill = 1, limit_hits = 3 },
      kernel_log_found = true, kernel_log = "x",
      rlimit = { malloc_failed = true, signaled = false, exit_code = 0, bytes_written = MiB, limit = 16 * MiB } }
    local survived = { cgroup = { signaled = false, exit_code = 0, bytes_written = 64 * MiB, limit = 16 * MiB,
      rss_before = 2 * MiB, max_rss = 66 * MiB, samples = 64, oom_kill = 0, limit_hits = 0 },
      kernel_log_found = false,
      rlimit = { malloc_failed = false, signaled = true, signal = "SIGKILL", bytes_written = 64 * MiB,
        limit = 16 * MiB } }
    local a = { claims = experiments.decide(e, killed) }
    local b = { claims = experiments.decide(e, survived) }
    for _, id in ipairs { "killed", "rss_capped", "counted", "logged", "rlimit_null" } do
      assert.is_true(experiments.claim(a, id).holds, id)
      assert.is_false(experiments.claim(b, id).holds, id)
    end
  end)
end)
