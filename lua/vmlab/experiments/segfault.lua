--- segfault: a page fault the kernel resolves against an access it refuses
-- (004_*.txt). Touching a valid page that has no frame yet is an ordinary
-- (minor) page fault: the program never notices. Touching an address with
-- nothing mapped (SEGV_MAPERR), or a page whose protection forbids the
-- access (SEGV_ACCERR), gets SIGSEGV; a file mapping past the end of its
-- file gets SIGBUS. The probes run in a child, each caught and recorded;
-- then one unguarded access shows the signal really ends a process.
local vm = require "vmlab"

local M = {
  name = "segfault",
  summary = "a fault the kernel resolves (minor fault) vs one it refuses: SIGSEGV MAPERR/ACCERR, SIGBUS past EOF",
  params = {},
  fields = { "case", "access", "signal", "code", "address", "minor_faults", "killed_by" },
}

local function tmpfile_page()
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(("x"):rep(vm.page_size))
  f:close()
  return path
end

-- The probes, in the child: a list of cases.
local function probes(file)
  local ps = vm.page_size
  local cases = {}
  local function probe(case, address, access)
    local ok, out = vm.probe(address, access)
    cases[#cases + 1] = {
      case = case, access = access, address = ok and address or out.address,
      signal = ok and "none" or out.signal_name, code = ok and "resolved" or out.code_name,
      minor_faults = out.minor_faults,
    }
  end
  local fresh = assert(vm.mmap(ps))
  local gone = assert(vm.mmap(ps))
  local none = assert(vm.mmap(ps, { prot = "none" }))
  local ro = assert(vm.mmap(ps, { prot = "r" }))
  local fm = assert(vm.mmap(2 * ps, { file = file, prot = "r" }))
  local warm = assert(vm.mmap(ps))
  vm.probe(warm.address, "write") -- warm up: the child's first writes to its stack
  vm.probe(0, "read") --             pages after fork are copy-on-write faults too
  local gone_at = gone.address
  gone:close() -- munmap: nothing is mapped there any more
  probe("fresh anonymous page (no frame yet)", fresh.address, "write")
  probe("unmapped page (after munmap)", gone_at, "read")
  probe("NULL pointer", 0, "read")
  probe("PROT_NONE page", none.address, "read")
  probe("read-only page, written", ro.address, "write")
  probe("file mapping, page past end of file", fm.address + ps, "read")
  return cases
end

function M.run()
  local file = tmpfile_page()
  local cases, status = vm.child.run(function() return probes(file) end, { timeout = 30 })
  os.remove(file)
  if not cases then
    error("segfault: the probing child failed: " .. tostring(status and (status.error or status.signal_name
      or ("exit status " .. tostring(status.code)))), 0)
  end
  local result = { cases = cases }
  if os.getenv("VMLAB_SANITIZED") then
    -- ASan's own SIGSEGV handler would print a report and abort the child
    result.killed_by = "not shown: under AddressSanitizer an uncaught SIGSEGV goes to ASan's handler, which aborts"
  else
    -- an access with no guard at all: the process dies by the signal
    local _, killed = vm.child.run(function()
      local r = assert(vm.mmap(vm.page_size, { prot = "none" }))
      vm.lab.probe(r.address, "read")
      return "survived"
    end, { timeout = 30 })
    result.killed_by = killed.signal_name or "nothing (it exited)"
  end
  return result
end

function M.explain(r)
  local lines = {}
  for _, c in ipairs(r.cases) do
    if c.signal == "none" then
      lines[#lines + 1] = ("%s: %s fault(s), resolved by the kernel; the program never noticed.")
        :format(c.case, vm.units.count(c.minor_faults))
    else
      lines[#lines + 1] = ("%s: %s %s at 0x%x"):format(c.case, c.signal, c.code, c.address)
    end
  end
  lines[#lines + 1] = "MAPERR: no mapping covers the address. ACCERR: a mapping does, but its protection forbids"
  lines[#lines + 1] = "the access. SIGBUS: the mapping exists but the file has no bytes behind that page."
  if r.killed_by:match("^SIG") then
    lines[#lines + 1] = ("Without a handler the signal ends the process: the unguarded child died by %s.")
      :format(r.killed_by)
  end
  return lines
end

return M
