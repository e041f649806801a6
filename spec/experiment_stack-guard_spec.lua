-- stack-guard: a deep recursion grows the stack page by page until the limit stops it.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
require "vmlab.assert"

local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil
local MiB = 1024 * 1024

describe("the stack-guard experiment", function()
  it("recursing with a 4 KiB frame per call ends in SIGSEGV once the stack limit is used up", function()
    if sanitized then
      pending("AddressSanitizer handles the stack overflow itself (it aborts); the kernel's guard is not visible")
      return
    end
    local r = experiments.run("stack-guard", { stack_limit = 4 * MiB })
    assert.equal("SIGSEGV", r.signal)
    assert.equal(4096, r.frame_size)
    assert.equal(4 * MiB, r.stack_limit)
    -- each call uses a little more than its 4 KiB array; the stack also held Lua's frames
    assert.within(r.depth * r.frame_size, 0.75 * 4 * MiB, 4 * MiB, "depth * frame_size")
  end)

  it("half the stack limit stops the recursion at about half the depth", function()
    if sanitized then
      pending("AddressSanitizer handles the stack overflow itself (it aborts); the kernel's guard is not visible")
      return
    end
    local r = experiments.run("stack-guard", { stack_limit = 4 * MiB })
    assert.equal("SIGSEGV", r.half_limit_signal)
    assert.within(r.half_limit_depth, 0.4 * r.depth, 0.6 * r.depth, "half_limit_depth")
  end)

  it("says why it is skipped under AddressSanitizer", function()
    if not sanitized then
      pending("only under AddressSanitizer")
      return
    end
    local r = experiments.run("stack-guard")
    assert.matches("AddressSanitizer", r.skipped)
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
    local r <close> = assert(vm.mmap(vm.page_size))
    assert.equal(10, vm.stack_recurse(256, r, 0, 10))
    assert.equal(10, string.unpack("=i8", r:read(0, 8)))
  end)
end)
