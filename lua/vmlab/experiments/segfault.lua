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
  fields = {
    { name = "cases", unit = "table", help = "each access probed in a child, its signal caught", fields = {
      { name = "case", unit = "text", help = "what was accessed" },
      { name = "access", unit = "text", help = "read or write" },
      { name = "signal", unit = "text", help = "the signal it got (none: the kernel resolved the fault)" },
      { name = "code", unit = "text", help = "the signal's si_code (SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR)" },
      { name = "address", unit = "address", help = "the faulting address" },
      { name = "minor_faults", unit = "count", optional = true, help = "minor faults of the access" },
    } },
    { name = "killed_by", unit = "text", optional = true, help = "the signal that ended a child with no handler" },
    { name = "killed_pid", unit = "integer", optional = true, help = "that child's pid" },
    { name = "kernel_attempts", unit = "count", optional = true, help = "children killed until the kernel logged one" },
    { name = "dmesg_readable", unit = "boolean", optional = true, help = "dmesg printed the kernel log" },
    { name = "killed_skipped", unit = "text", optional = true, help = "why no child was killed (a sanitizer)" },
    { name = "exception_trace", unit = "text", optional = true,
      help = "debug.exception-trace: 1 when the kernel logs unhandled signals" },
    { name = "kernel_line", unit = "text", optional = true, help = "the kernel's log line about the killed child" },
    { name = "kernel_address", unit = "address", optional = true, help = "the address that line names" },
    { name = "kernel_ip", unit = "address", optional = true, help = "the instruction pointer it names" },
    { name = "kernel_error", unit = "integer", optional = true, help = "the page-fault error code it names" },
    { name = "kernel_error_means", unit = "text", optional = true, help = "that code's bits in words (x86)" },
  },
  text_omit = { "kernel_line" }, -- the claims print it
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
    -- an access with no guard at all: the process dies by the signal. The
    -- kernel rate-limits its log lines about such deaths (printk_ratelimit: a
    -- burst of 10 per 5 s): where the line does not come, a later child tries again.
    for attempt = 1, 3 do
      local _, killed = vm.child.run(function()
        local r = assert(vm.mmap(vm.page_size, { prot = "none" }))
        vm.lab.probe(r.address, "read")
        return "survived"
      end, { timeout = 30 })
      result.killed_by = killed.signal_name or "nothing (it exited)"
      result.killed_pid = killed.pid
      result.kernel_attempts = attempt
      M.kernel_side(result, killed.pid)
      if result.kernel_line or result.killed_by ~= "SIGSEGV" or result.exception_trace == "0"
        or not require("vmlab.kernel").has("kernel_log") then
        break
      end
      vm.sleep(2)
    end
  end
  return result
end

-- The x86 page-fault error code the kernel prints (arch/x86/include/asm/trap_pf.h).
local PF_BITS = { { 1, "protection violation", "page not present" }, { 2, "write", "read" },
  { 4, "user mode", "kernel mode" }, { 16, "instruction fetch", nil }, { 32, "protection key", nil } }

--- The error code in words: "user mode, read, page not present".
function M.decode_error(code)
  local words = {}
  for _, b in ipairs { PF_BITS[3], PF_BITS[2], PF_BITS[1], PF_BITS[4], PF_BITS[5] } do
    local set = code & b[1] ~= 0
    local w = set and b[2] or b[3]
    if w then words[#words + 1] = w end
  end
  return table.concat(words, ", ")
end

--- The kernel's own line about the killed child ("lua5.4[PID]: segfault at ADDR
-- ip IP sp SP error N in ..."), where dmesg is readable and the kernel logs
-- unhandled signals (debug.exception-trace); decoded into result.kernel_*.
function M.kernel_side(result, pid)
  local on = vm.proc.sysctl("debug.exception-trace")
  result.exception_trace = on ~= nil and tostring(on) or nil
  local line
  for _ = 1, 20 do -- the line may reach the log a moment after the child is reaped
    local p = io.popen("dmesg 2>/dev/null")
    local n = 0
    for l in (p and p:lines() or function() end) do
      n = n + 1
      if l:find(("[%d]: segfault at"):format(pid), 1, true) then line = l end
    end
    result.dmesg_readable = n > 0
    if n == 0 then break end -- nothing to wait for: the log is not readable here
    if p then p:close() end
    if line then break end
    vm.sleep(0.05)
  end
  if not line then return end
  result.kernel_line = line:gsub("^%[[^%]]*%]%s*", "")
  local addr, ip, code = line:match("segfault at (%x+) ip (%x+) sp %x+ error (%d+)")
  if addr then
    result.kernel_address = tonumber(addr, 16)
    result.kernel_ip = tonumber(ip, 16)
    result.kernel_error = math.tointeger(tonumber(code))
    local a = vm.proc.sysctl("kernel.arch")
    if a == "x86_64" or a == "i686" or a == "i386" then
      result.kernel_error_means = M.decode_error(result.kernel_error)
    end
  end
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
  { id = "kernel_logged",
    text = "the kernel logs the fault that killed it: the address, the instruction pointer and an error code",
    requires = { "no_sanitizer", "kernel_log" },
    decide = function(r)
      if not r.killed_by then return nil, nil, r.killed_skipped end
      if r.dmesg_readable == false then
        return nil, nil, "dmesg printed nothing: the kernel log is not readable here (kernel.dmesg_restrict)"
      end
      if not r.kernel_line then
        return false, ("no line in dmesg for pid %s"):format(tostring(r.killed_pid)),
          r.exception_trace == "0" and "debug.exception-trace is 0: the kernel does not log unhandled signals"
            or "the kernel rate-limits these lines; none reached the log for this child"
      end
      return r.kernel_address ~= nil, r.kernel_line
    end },
  { id = "kernel_error_code",
    text = "the kernel's error code says what the CPU reported: a user-mode read of a page with no entry, " ..
      "while si_code says SEGV_ACCERR: the mapping exists but forbids the access",
    requires = { "no_sanitizer", "kernel_log" },
    decide = function(r)
      if not r.kernel_error then return nil, nil, "no kernel line to decode (see the claim before)" end
      if not r.kernel_error_means then
        return nil, ("error %d"):format(r.kernel_error), "the error code is decoded for x86 only"
      end
      local c = case(r, "PROT_NONE page")
      local user_read_absent = r.kernel_error & 7 == 4
      return user_read_absent and c ~= nil and c.code == "SEGV_ACCERR",
        ("error %d = %s; the caught probe of a PROT_NONE page got %s"):format(r.kernel_error,
          r.kernel_error_means, c and c.code or "nothing")
    end,
    explain = function()
      return "A PROT_NONE page never gets a page-table entry, so the CPU reports 'not present'; the kernel then " ..
        "finds the mapping and refuses it: SEGV_ACCERR."
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

-- No chart: the result is signals and si_codes per case, not quantities; the report's table says it all.
M.charts = { none = "its result is a signal and a code per case, which the report's table shows" }

return M
