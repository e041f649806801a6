-- Integers and strings checked against the C types they become (issue 9,
-- family 11): no silent truncation to int, no float-to-integer conversion of
-- a number out of range, no C string cut at a NUL byte, and reasons that say
-- what really failed.
local vm = require "vmlab"

describe("integer arguments that do not fit their C type", function()
  it("isatty refuses a descriptor beyond int instead of truncating 2^32+1 to 1", function()
    for _, fd in ipairs { 2 ^ 32 + 1, (1 << 32) + 1, math.maxinteger, math.mininteger, (1 << 31) } do
      assert.error_matches(function() vm.isatty(fd) end, "bad argument #1 to 'isatty' %(.*out of range")
    end
    assert.error_matches(function() vm.isatty(1.5) end, "bad argument #1 to 'isatty'")
    assert.is_false(vm.isatty(-1))
    assert.is_boolean(vm.isatty(2.0))
  end)

  it("ipc_measure checks budget as a number: 1e300, inf and NaN are refused, not converted", function()
    for _, b in ipairs { 1e300, -1e300, math.huge, -math.huge, 0 / 0, 1e16, 600.5 } do
      assert.error_matches(function() vm.ipc_measure("pipe", { budget = b }) end, "bad option 'budget'")
    end
    assert.error_matches(function() vm.ipc_measure("pipe", { budget = "1" }) end,
      "bad option 'budget' %(number of seconds expected, got string%)")
    assert.error_matches(function() vm.ipc_measure("pipe", { round_trips = 0 }) end, "bad option 'round_trips'")
    assert.error_matches(function() vm.ipc_measure("pipe\0") end, "bad argument #1 to 'ipc_measure'")
  end)
end)

describe("names and paths with a NUL byte", function()
  it("option names are not matched on their part before the NUL", function()
    assert.has_error(function() vm.rusage("self\0") end)
    assert.has_error(function() vm.fault_counter("minor\0junk") end)
    assert.error_matches(function() vm.fault_counter("minor", { source = "rusage\0" }) end, "bad option 'source'")
    assert.error_matches(function() vm.fault_sampler({ kind = "all\0" }) end, "bad option 'kind'")
    assert.error_matches(function() vm.shm_list("vmlab\0x") end, "bad argument #1 to 'shm_list'")
  end)

  it("a signal name with a NUL byte is no signal name", function()
    local c = assert(vm.spawn({ "sleep", "30" }))
    assert.error_matches(function() c:kill("KILL\0junk") end, "unknown signal name")
    assert.error_matches(function() vm.spawn({ "true" }, { death_signal = "TERM\0" }) end,
      "bad option 'death_signal' %(unknown signal name")
    assert.is_true(c:running())
    c:kill("KILL")
    c:wait()
  end)

  it("a bad option value lists the choices", function()
    assert.error_matches(function() vm.fault_counter("minor", { source = "magic" }) end,
      "bad option 'source' %(\"auto\", \"perf\" or \"rusage\" expected, got \"magic\"%)")
    assert.error_matches(function() vm.fault_counter("minor", { source = 1 }) end,
      "bad option 'source' %(string expected, got number%)")
  end)
end)

describe("the fault counter's fallback reason", function()
  it("out of descriptors, it says so and does not invent perf_event_paranoid=-100", function()
    local reason = vm.child.run(function()
      assert(vm.setrlimit("nofile", 3)) -- 0, 1 and 2 are open: no new descriptor fits
      local fc = vm.fault_counter("minor")
      return { fc.source, tostring(fc.reason) }
    end)
    assert.equal("rusage", reason[1])
    assert.matches("Too many open files", reason[2])
    assert.is_nil(reason[2]:find("-100", 1, true), reason[2])
  end)
end)
