-- overcommit: what the kernel promises, and what malloc(500 GiB) gets under the policy.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"

local GiB = 1024 ^ 3

describe("the overcommit experiment", function()
  local r, by
  setup(function()
    r = experiments.run("overcommit")
    by = {}
    for _, a in ipairs(r.attempts) do by[a.call .. " " .. a.size] = a end
  end)

  it("reports the policy of /proc/sys/vm/overcommit_memory and the commit figures", function()
    local f = assert(io.open("/proc/sys/vm/overcommit_memory"))
    assert.equal(tonumber(f:read("l")), r.policy)
    f:close()
    assert.is_true(r.commit_limit > 0 and r.committed_as > 0 and r.mem_total > 0)
    assert.equal(5, #r.attempts)
  end)

  it("under the heuristic policy a 500 GiB request is refused, with MAP_NORESERVE it is granted", function()
    local mi = vm.proc.meminfo()
    if r.policy ~= 0 then pending("overcommit_memory is " .. r.policy .. ", not 0 (heuristic)"); return end
    if 500 * GiB <= mi.MemTotal + (mi.SwapTotal or 0) then pending("this machine has 500 GiB of RAM + swap"); return end
    assert.is_false(by["malloc " .. 500 * GiB].ok)
    assert.is_false(by["mmap " .. 500 * GiB].ok)
    assert.matches("Cannot allocate memory", by["mmap " .. 500 * GiB].error)
    local nr = by["mmap noreserve " .. 500 * GiB]
    assert.is_true(nr.ok)
    assert.is_true(nr.committed_growth < 5 * GiB, "noreserve is not charged: " .. nr.committed_growth)
    assert.is_true(nr.rss_growth < 64 * 1024 * 1024)
  end)

  it("a granted 1 GiB mapping is charged to Committed_AS at once but uses no memory", function()
    local a = by["mmap " .. GiB]
    assert.is_true(a.ok)
    if r.policy == 1 then pending("overcommit_memory 1: nothing is charged"); return end
    assert.is_true(a.committed_growth >= 0.75 * GiB and a.committed_growth <= 2 * GiB,
      "Committed_AS grew " .. a.committed_growth)
    assert.is_true(a.rss_growth < 64 * 1024 * 1024)
  end)
end)
