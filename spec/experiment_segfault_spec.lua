-- segfault: faults the kernel resolves vs accesses it refuses.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"

local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil

describe("the segfault experiment", function()
  local r, by
  setup(function()
    r = experiments.run("segfault")
    by = {}
    for _, c in ipairs(r.cases) do by[c.case] = c end
  end)

  it("a fresh page is a page fault the kernel resolves: no signal", function()
    local c = by["fresh anonymous page (no frame yet)"]
    assert.equal("none", c.signal)
    assert.is_true(c.minor_faults >= 1 and c.minor_faults <= 3, "minor faults " .. c.minor_faults)
  end)

  it("touching an unmapped page is SIGSEGV with SEGV_MAPERR at that address", function()
    local c = by["unmapped page (after munmap)"]
    assert.equal("SIGSEGV", c.signal)
    assert.equal("SEGV_MAPERR", c.code)
    assert.equal(0, c.address % vm.page_size)
    assert.is_true(c.address > 0)
    assert.same({ "SIGSEGV", "SEGV_MAPERR", 0 },
      { by["NULL pointer"].signal, by["NULL pointer"].code, by["NULL pointer"].address })
  end)

  it("touching a PROT_NONE page, or writing a read-only one, is SIGSEGV with SEGV_ACCERR", function()
    for _, name in ipairs { "PROT_NONE page", "read-only page, written" } do
      assert.equal("SIGSEGV", by[name].signal, name)
      assert.equal("SEGV_ACCERR", by[name].code, name)
    end
  end)

  it("a file mapping's page past the end of the file is SIGBUS", function()
    local c = by["file mapping, page past end of file"]
    assert.equal("SIGBUS", c.signal)
    assert.equal("BUS_ADRERR", c.code)
  end)

  it("with no handler, the signal ends the process", function()
    if sanitized then
      pending("under AddressSanitizer an uncaught SIGSEGV goes to ASan's handler, which aborts: " .. r.killed_by)
      return
    end
    assert.equal("SIGSEGV", r.killed_by)
  end)

  it("vm.probe returns the fault as data and leaves the process running", function()
    local none <close> = assert(vm.mmap(vm.page_size, { prot = "none" }))
    local ok, f = vm.probe(none.address + 8, "write")
    assert.is_false(ok)
    assert.same({ 11, "SIGSEGV", "SEGV_ACCERR", none.address + 8 }, { f.signal, f.signal_name, f.code_name, f.address })
    local rw <close> = assert(vm.mmap(vm.page_size))
    rw:write(0, "\42")
    local ok2, v = vm.probe(rw.address, "read")
    assert.is_true(ok2)
    assert.equal(42, v.value)
    assert.is_true(vm.probe(rw.address, "write", { value = 7 }))
    assert.equal("\7", rw:read(0, 1))
    assert.has_error(function() vm.probe(-1, "read") end)
    assert.has_error(function() vm.probe(0, "exec") end)
  end)
end)
