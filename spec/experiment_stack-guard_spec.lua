-- stack-guard: a deep recursion grows the stack page by page until the limit stops it.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local MiB = 1024 * 1024

describe("the stack-guard experiment", function()
  local r
  setup(function() r = experiments.run("stack-guard", { stack_limit = 4 * MiB }) end)

  it("recursing with a page-sized frame per call ends in SIGSEGV once the stack limit is used up", function()
    vassert.claim_holds(r, "overflow_segv")
    vassert.claim_holds(r, "depth_fills_limit")
    assert.equal("SIGSEGV", r.signal)
    assert.equal(vm.page_size, r.frame_size)
    assert.equal(4 * MiB, r.stack_limit)
    -- each call uses a little more than its page-sized array; the stack also held Lua's frames
    assert.within(r.depth * r.frame_size, 0.75 * 4 * MiB, 4 * MiB, "depth * frame_size")
  end)

  it("each new stack page costs the child a page fault", function()
    vassert.claim_holds(r, "stack_grows_by_faults")
    assert.equal(r.depth * r.frame_size // vm.page_size, r.stack_pages)
    -- the stack's pages, plus the child's own copy-on-write faults after fork
    assert.within(r.child_minor_faults, 0.9 * r.stack_pages, 2 * r.stack_pages + 5000, "child_minor_faults")
  end)

  it("half the stack limit stops the recursion at about half the depth", function()
    vassert.claim_holds(r, "limit_decides_depth")
    assert.equal("SIGSEGV", r.half_limit_signal)
    assert.within(r.half_limit_depth, 0.4 * r.depth, 0.6 * r.depth, "half_limit_depth")
  end)

  it("decides each claim from the numbers it is given, not from the machine", function()
    local e = experiments.get("stack-guard")
    local function decided(result, id) return experiments.claim({ claims = experiments.decide(e, result) }, id) end
    local pages = 4 * MiB // vm.page_size
    local good = { signal = "SIGSEGV", half_limit_signal = "SIGSEGV", depth = pages - 10, frame_size = vm.page_size,
      stack_limit = 4 * MiB, stack_used = (pages - 10) * vm.page_size, stack_pages = pages - 10,
      child_minor_faults = pages + 40, half_limit = 2 * MiB, half_limit_depth = pages // 2 - 10 }
    local function with(t) return setmetatable(t, { __index = good }) end
    for _, c in ipairs(experiments.decide(e, good)) do assert.is_true(c.holds, c.id) end
    -- a child that never recursed (it failed first) shows nothing
    local none = with { signal = "exit 1", half_limit_signal = "exit 1", depth = 0, stack_used = 0, stack_pages = 0,
      child_minor_faults = 50, half_limit_depth = 0 }
    for _, c in ipairs(experiments.decide(e, none)) do assert.is_false(c.holds, c.id) end
    assert.is_false(decided(with { signal = "SIGABRT" }, "overflow_segv").holds)
    assert.is_false(decided(with { half_limit_signal = "exit 0" }, "overflow_segv").holds)
    -- a stack that was there already (prefaulted): no faults for its pages
    assert.is_false(decided(with { child_minor_faults = 30 }, "stack_grows_by_faults").holds)
    -- a recursion stopped early (a small guard, another limit), or one the limit did not stop
    assert.is_false(decided(with { stack_used = MiB }, "depth_fills_limit").holds)
    assert.is_false(decided(with { half_limit_depth = pages - 10 }, "limit_decides_depth").holds)
  end)

  it("reads resource limits, with no limit as math.huge, and sets them", function()
    local soft, hard = vm.getrlimit("stack")
    assert.is_true(soft == math.huge or math.type(soft) == "integer")
    assert.is_true(hard == math.huge or hard >= soft)
    local child = vm.fork(function()
      assert(vm.setrlimit("stack", 2 * MiB))
      local s = vm.getrlimit("stack")
      assert(vm.setrlimit("core", 0, "unlimited") or true)
      return s == 2 * MiB and 0 or 3
    end)
    assert.equal(0, child:wait().code)
    assert.has_error(function() vm.getrlimit("bogus") end)
    assert.has_error(function() vm.setrlimit("stack", -1) end)
  end)

  it("a recursion that fits under max_depth returns its depth", function()
    local slot <close> = assert(vm.mmap(vm.page_size))
    assert.equal(10, vm.lab.stack_recurse(256, slot, 0, 10))
    assert.equal(10, string.unpack("=i8", slot:read(0, 8)))
  end)
end)
