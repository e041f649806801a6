-- faults: one minor fault per page, counted by getrusage and by perf; startup faults.
local experiments = require "vmlab.experiments"
require "vmlab.assert"

describe("the faults experiment", function()
  local r
  setup(function() r = experiments.run("faults") end)

  it("writing 1 MiB costs 256 minor faults by getrusage", function()
    assert.equal(256, r.pages)
    assert.within(r.rusage_faults, 251, 282, "rusage_faults")
  end)

  it("the perf page-fault counter agrees with getrusage", function()
    if r.perf_faults == nil then
      pending("perf counter unavailable: " .. tostring(r.perf_reason))
      return
    end
    assert.equal("perf", r.perf_source)
    assert.within(r.perf_faults, 251, 282, "perf_faults")
  end)

  it("counts pages of any size: 4 MiB is 1024 faults", function()
    local big = experiments.run("faults", { size = 4 * 1024 * 1024 })
    assert.equal(1024, big.pages)
    assert.within(big.rusage_faults, 1004, 1127, "rusage_faults")
  end)

  it("a program that does nothing still costs tens of faults before main", function()
    assert.equal("/bin/true", r.startup_program)
    assert.is_not_nil(r.startup_faults, r.startup_reason)
    assert.within(r.startup_faults, 10, 5000, "startup_faults")
  end)
end)
