-- faults: one minor fault per page, counted by getrusage and by perf; none for a
-- second write; a program's startup faults.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local MiB = 1024 * 1024
local N = MiB // vm.page_size

local function decided(result, id)
  return experiments.claim({ claims = experiments.decide(experiments.get("faults"), result) }, id)
end

describe("the faults experiment", function()
  local r
  setup(function() r = experiments.run("faults") end)

  it("writing 1 MiB costs one minor fault per page by getrusage", function()
    assert.equal(N, r.pages)
    vassert.claim_holds(r, "one_fault_per_page")
    assert.within(r.rusage_faults, N - 5, 1.1 * N + 8, "rusage_faults")
  end)

  it("the perf page-fault counter agrees with getrusage", function()
    vassert.claim_holds(r, "perf_agrees")
    assert.equal("perf", r.perf_source)
    assert.within(r.perf_faults, N - 5, 1.1 * N + 8, "perf_faults")
  end)

  it("writing the same pages again faults nothing", function()
    vassert.claim_holds(r, "second_write_free")
    assert.within(r.second_write_faults, 0, 4, "second_write_faults")
  end)

  it("counts pages of any size: 4 MiB is four times the faults", function()
    local big = experiments.run("faults", { size = 4 * MiB })
    assert.equal(4 * N, big.pages)
    vassert.claim_holds(big, "one_fault_per_page")
    assert.within(big.rusage_faults, 4 * N - 5, 1.1 * 4 * N + 8, "rusage_faults")
  end)

  it("a program that does nothing still costs tens of faults before main", function()
    vassert.claim_holds(r, "startup_faults")
    assert.equal("/bin/true", r.startup_program)
    assert.within(r.startup_faults, 10, 5000, "startup_faults")
  end)

  it("decides each claim from the numbers it is given, not from the machine", function()
    local base = { size = MiB, pages = N, rusage_faults = N, perf_faults = N, perf_source = "perf",
      second_write_faults = 0, startup_program = "/bin/true", startup_faults = 60 }
    local function with(t) return setmetatable(t, { __index = base }) end
    for _, c in ipairs(experiments.decide(experiments.get("faults"), base)) do assert.is_true(c.holds, c.id) end
    -- populated memory (or a huge page per fault): far fewer faults than pages
    assert.is_false(decided(with { rusage_faults = 1 }, "one_fault_per_page").holds)
    assert.is_false(decided(with { perf_faults = N // 2 }, "perf_agrees").holds)
    assert.is_false(decided(with { second_write_faults = N }, "second_write_free").holds)
    assert.is_false(decided(with { startup_faults = 0 }, "startup_faults").holds)
    -- no perf counter: no evidence, so skipped with the counter's reason
    local refused = {}
    for k, v in pairs(base) do refused[k] = v end
    refused.perf_faults, refused.perf_source, refused.perf_reason = nil, "rusage", "perf_event_paranoid 3"
    local c = decided(refused, "perf_agrees")
    assert.equal("skipped", c.holds)
    assert.matches("perf_event_paranoid 3", c.why)
  end)
end)
