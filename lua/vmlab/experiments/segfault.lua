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
  local plain, sanitizer = require("vmlab.kernel").has("no_sanitizer")
  if not plain then
    -- ASan's own SIGSEGV handler would print a report and abort the child
    result.killed_skipped = "not shown: " .. sanitizer .. "; an uncaught SIGSEGV goes to its handler, which aborts"
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

local MAPERR = { "unmapped page (after munmap)", "NULL pointer" }
local ACCERR = { "PROT_NONE page", "read-only page, written" }
local EOF_CASE = "file mapping, page past end of file"
local FRESH = "fresh anonymous page (no frame yet)"

local function case(r, name)
  for _, c in ipairs(r.cases or {}) do if c.case == name then return c end end
  return nil
end

-- "NULL pointer: SIGSEGV SEGV_MAPERR at 0x0"
local function said(c)
  if not c then return "not probed" end
  if c.signal == "none" then return ("%s: no signal, %d minor fault(s)"):format(c.case, c.minor_faults or -1) end
  return ("%s: %s %s at 0x%x"):format(c.case, c.signal, c.code, c.address or 0)
end

-- Did every case named get `signal` with `code`? And the evidence.
local function all_are(r, names, signal, code)
  local ok, parts = true, {}
  for _, name in ipairs(names) do
    local c = case(r, name)
    ok = ok and c ~= nil and c.signal == signal and c.code == code
    parts[#parts + 1] = said(c)
  end
  return ok, table.concat(parts, "; ")
end

M.claims = {
  { id = "minor_fault_resolved",
    text = "touching a valid page with no frame yet is a page fault the kernel resolves: the program never notices",
    decide = function(r)
      local c = case(r, FRESH)
      return c ~= nil and c.signal == "none" and (c.minor_faults or 0) >= 1, said(c)
    end,
    explain = function()
      return "The kernel found the address inside a mapping that allows the access: it gave the page a frame."
    end },
  { id = "maperr",
    text = "touching an address no mapping covers (after munmap, or NULL) is SIGSEGV with SEGV_MAPERR",
    decide = function(r) return all_are(r, MAPERR, "SIGSEGV", "SEGV_MAPERR") end,
    explain = function() return "MAPERR: no mapping covers the address." end },
  { id = "accerr",
    text = "touching a page whose protection forbids the access (PROT_NONE, or a write to read-only) is " ..
      "SIGSEGV with SEGV_ACCERR",
    decide = function(r) return all_are(r, ACCERR, "SIGSEGV", "SEGV_ACCERR") end,
    explain = function() return "ACCERR: a mapping covers the address, but its protection forbids the access." end },
  { id = "sigbus_past_eof",
    text = "a file mapping's page past the end of the file is SIGBUS",
    decide = function(r) return all_are(r, { EOF_CASE }, "SIGBUS", "BUS_ADRERR") end,
    explain = function() return "The mapping exists, but the file has no bytes behind that page." end },
  { id = "signal_kills",
    text = "without a handler, the signal ends the process",
    requires = "no_sanitizer",
    decide = function(r)
      if not r.killed_by then return nil, nil, r.killed_skipped end
      return r.killed_by == "SIGSEGV", ("an unguarded read of a PROT_NONE page: the child ended by %s")
        :format(r.killed_by)
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  local lines = {}
  for _, c in ipairs(r.cases) do lines[#lines + 1] = said(c) end
  if r.killed_by then
    lines[#lines + 1] = ("An unguarded access in a child: it ended by %s."):format(r.killed_by)
  end
  return lines
end

return M
