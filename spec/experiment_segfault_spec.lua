-- segfault: faults the kernel resolves vs accesses it refuses.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

describe("the segfault experiment", function()
  local r, by
  setup(function()
    r = experiments.run("segfault")
    by = {}
    for _, c in ipairs(r.cases) do by[c.case] = c end
  end)

  it("a fresh page is a page fault the kernel resolves: no signal", function()
    vassert.claim_holds(r, "minor_fault_resolved")
    local c = by["fresh anonymous page (no frame yet)"]
    assert.equal("none", c.signal)
    assert.is_true(c.minor_faults >= 1 and c.minor_faults <= 3, "minor faults " .. c.minor_faults)
  end)

  it("touching an unmapped page is SIGSEGV with SEGV_MAPERR at that address", function()
    vassert.claim_holds(r, "maperr")
    local c = by["unmapped page (after munmap)"]
    assert.equal("SIGSEGV", c.signal)
    assert.equal("SEGV_MAPERR", c.code)
    assert.equal(0, c.address % vm.page_size)
    assert.is_true(c.address > 0)
    assert.same({ "SIGSEGV", "SEGV_MAPERR", 0 },
      { by["NULL pointer"].signal, by["NULL pointer"].code, by["NULL pointer"].address })
  end)

  it("touching a PROT_NONE page, or writing a read-only one, is SIGSEGV with SEGV_ACCERR", function()
    vassert.claim_holds(r, "accerr")
    for _, name in ipairs { "PROT_NONE page", "read-only page, written" } do
      assert.equal("SIGSEGV", by[name].signal, name)
      assert.equal("SEGV_ACCERR", by[name].code, name)
    end
  end)

  it("a file mapping's page past the end of the file is SIGBUS", function()
    vassert.claim_holds(r, "sigbus_past_eof")
    local c = by["file mapping, page past end of file"]
    assert.equal("SIGBUS", c.signal)
    assert.equal("BUS_ADRERR", c.code)
  end)

  it("with no handler, the signal ends the process", function()
    vassert.claim_holds(r, "signal_kills") -- pending under AddressSanitizer, whose handler aborts instead
    assert.equal("SIGSEGV", r.killed_by)
  end)

  it("decides each claim from the signals it is given, not from the machine", function()
    local e = experiments.get("segfault")
    local function decided(result, id) return experiments.claim({ claims = experiments.decide(e, result) }, id) end
    -- the live cases with one of them changed
    local function with(name, fields)
      local cases = {}
      for _, c in ipairs(r.cases) do
        local copy = {}
        for k, v in pairs(c) do copy[k] = v end
        if c.case == name then for k, v in pairs(fields) do copy[k] = v end end
        cases[#cases + 1] = copy
      end
      return { cases = cases, killed_by = "SIGSEGV", killed_pid = 42, kernel_line = "x[42]: segfault at 1000",
        kernel_address = 4096, kernel_error = 4, kernel_error_means = e.decode_error(4) }
    end
    for _, c in ipairs(experiments.decide(e, with("none", {}))) do assert.is_true(c.holds, c.id) end
    -- a page that was already there (no fault), or a fresh page the kernel refused
    assert.is_false(decided(with("fresh anonymous page (no frame yet)", { minor_faults = 0 }),
      "minor_fault_resolved").holds)
    assert.is_false(decided(with("fresh anonymous page (no frame yet)", { signal = "SIGSEGV", code = "SEGV_ACCERR" }),
      "minor_fault_resolved").holds)
    assert.is_false(decided(with("NULL pointer", { code = "SEGV_ACCERR" }), "maperr").holds)
    assert.is_false(decided(with("read-only page, written", { signal = "none", code = "resolved" }), "accerr").holds)
    assert.is_false(decided(with("file mapping, page past end of file", { signal = "SIGSEGV" }), "sigbus_past_eof")
      .holds)
    assert.is_false(decided({ cases = r.cases, killed_by = "nothing (it exited)" }, "signal_kills").holds)
    local c = decided({ cases = r.cases, killed_skipped = "not shown: AddressSanitizer" }, "signal_kills")
    assert.equal("skipped", c.holds)
    assert.matches("AddressSanitizer", c.why)
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

  it("finds the kernel's own line about the killed child and decodes its error code", function()
    vassert.claim_holds(r, "kernel_logged")
    vassert.claim_holds(r, "kernel_error_code")
    assert.equal(4, r.kernel_error & 7) -- user mode, read, not present
  end)

  it("decodes the x86 page-fault error code bit by bit", function()
    local e = experiments.get("segfault")
    assert.equal("user mode, read, page not present", e.decode_error(4))
    assert.equal("user mode, write, protection violation", e.decode_error(7))
    assert.equal("kernel mode, read, page not present, instruction fetch", e.decode_error(16))
  end)

  it("decides the kernel-side claims from the numbers it is given", function()
    local e = experiments.get("segfault")
    local cases = { { case = "PROT_NONE page", signal = "SIGSEGV", code = "SEGV_ACCERR" } }
    local logged = { cases = cases, killed_by = "SIGSEGV", killed_pid = 42,
      kernel_line = "lua5.4[42]: segfault at 1000", kernel_address = 4096, kernel_error = 4,
      kernel_error_means = e.decode_error(4) }
    local silent = { cases = cases, killed_by = "SIGSEGV", killed_pid = 42, exception_trace = "0" }
    local a = { claims = experiments.decide(e, logged) }
    local b = { claims = experiments.decide(e, silent) }
    assert.is_true(experiments.claim(a, "kernel_logged").holds)
    assert.is_true(experiments.claim(a, "kernel_error_code").holds)
    local c = experiments.claim(b, "kernel_logged")
    assert.is_false(c.holds)
    assert.matches("exception%-trace is 0", c.why)
    assert.equal("skipped", experiments.claim(b, "kernel_error_code").holds)
  end)
end)
