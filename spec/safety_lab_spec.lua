-- Regressions of issue 9 (families 5 and 12): the probes that can end the
-- process live in vm.lab, not beside vm.mmap; vm.probe always catches; the
-- writes vm.lab.stack_recurse makes into a region run under the fault guard.
local vm = require "vmlab"

describe("safety: vm.lab", function()
  it("the unguarded probes live in vm.lab, not beside vm.mmap", function()
    assert.is_nil(rawget(vm, "stack_recurse"))
    assert.is_function(vm.lab.probe)
    assert.is_function(vm.lab.stack_recurse)
    assert.is_function(vm.probe)
  end)

  it("vm.probe refuses catch = false and points to vm.lab.probe", function()
    local ok, err = pcall(vm.probe, 0, "read", { catch = false })
    assert.is_false(ok)
    assert.matches("vm.lab.probe", err)
  end)

  it("vm.lab.probe reads and writes like vm.probe where nothing faults", function()
    local r <close> = assert(vm.mmap(vm.page_size))
    assert.is_true(vm.lab.probe(r.address, "write", { value = 9 }))
    local ok, out = vm.lab.probe(r.address, "read")
    assert.is_true(ok)
    assert.equal(9, out.value)
  end)

  it("vm.lab.probe with no guard ends a child by the real signal", function()
    if os.getenv("VMLAB_SANITIZED") then return end -- ASan's own handler aborts instead
    local _, status = vm.child.run(function()
      local none = assert(vm.mmap(vm.page_size, { prot = "none" }))
      vm.lab.probe(none.address, "read")
      return "survived"
    end, { timeout = 30 })
    assert.equal("SIGSEGV", status.signal_name)
  end)

  it("vm.lab.stack_recurse into a read-only region raises instead of killing the process", function()
    local result, status = vm.child.run(function()
      local ro = assert(vm.mmap(vm.page_size, { prot = "r" }))
      local ok, err = pcall(vm.lab.stack_recurse, 256, ro, 0, 10)
      return { ok = ok, err = err }
    end, { timeout = 30 })
    assert.is_true(status.exited, "the child died by " .. tostring(status.signal_name))
    assert.is_false(result.ok)
    assert.matches("SIGSEGV", result.err)
    assert.matches("region", result.err)
  end)

  it("vm.lab.stack_recurse refuses an offset past the region and a misaligned slot", function()
    local r <close> = assert(vm.mmap(vm.page_size))
    assert.has_error(function() vm.lab.stack_recurse(256, r, vm.page_size - 4, 10) end)
    assert.has_error(function() vm.lab.stack_recurse(256, r, -8, 10) end)
    assert.has_error(function() vm.lab.stack_recurse(256, r, 4, 10) end)
    assert.equal(3, vm.lab.stack_recurse(256, r, 8, 3))
  end)
end)
