--- faults: page faults, counted two ways. Writing a fresh 1 MiB buffer costs
-- one minor fault per page (256 with 4 KiB pages; 002_*.txt), as getrusage(2)
-- and the perf_event_open(2) software counter both report; writing it again
-- costs none. And a program costs faults before its main even runs: exec, the
-- dynamic loader, libc setup. The claims below say what this run measured.
local vm = require "vmlab"

local M = {
  name = "faults",
  summary = "faults per page, counted by getrusage and by perf: a fault per page written; a program's startup faults",
  params = {
    { name = "size", default = 1024 * 1024, unit = "bytes", min = vm.page_size, max = 1 << 40,
      help = "the fresh buffer written once, then again" },
    { name = "program", default = "/bin/true", unit = "text",
      help = "a program run once to count its startup faults (a path or a name on PATH)" },
  },
  tour = { size = 1024 * 1024 },
  writes = function(p) return p.size end,
  fields = {
    { name = "size", unit = "bytes", help = "the buffer written" },
    { name = "pages", unit = "count", help = "base pages in the buffer" },
    { name = "rusage_faults", unit = "count", help = "minor faults of the first write, by getrusage" },
    { name = "perf_faults", unit = "count", optional = true,
      help = "minor faults of the first write, by the perf software counter" },
    { name = "perf_source", unit = "text", help = "what counted perf_faults: perf, or the rusage fallback" },
    { name = "perf_reason", unit = "text", optional = true, help = "why perf could not count" },
    { name = "second_write_faults", unit = "count", help = "minor faults of writing the buffer again" },
    { name = "startup_program", unit = "text", help = "the program run for startup faults" },
    { name = "startup_faults", unit = "count", optional = true, help = "minor faults of the whole run of it" },
    { name = "startup_reason", unit = "text", optional = true, help = "why it could not be counted" },
  },
}

-- Minor faults of one whole run of argv (waited for), or nil, reason.
local function startup_faults(program)
  local before = assert(vm.rusage("children")).minor_faults
  local child, err = vm.spawn({ program }, { stdout = "/dev/null", stderr = "/dev/null" })
  if not child then return nil, err end
  local st = child:wait()
  if not (st and st.exited and st.code == 0) then
    return nil, ("%s did not exit cleanly"):format(program)
  end
  return assert(vm.rusage("children")).minor_faults - before
end

--- params: size (bytes), program (path of a do-nothing program)
function M.run(p)
  local r = assert(vm.mmap(p.size))
  r:advise("nohugepage") -- one fault per base page
  local counter = vm.fault_counter("minor")
  local t = r:touch("write")
  local perf = counter:read()
  local result = {
    size = p.size,
    pages = t.pages,
    rusage_faults = t.minor_faults,
    perf_source = counter.source,
  }
  if counter.source == "perf" then
    result.perf_faults = perf
  else
    result.perf_reason = counter.reason or "perf events are not available"
  end
  counter:close()
  result.second_write_faults = r:touch("write").minor_faults -- the frames are there now
  r:close()
  local n, why = startup_faults(p.program)
  result.startup_program = p.program
  result.startup_faults = n
  if not n then result.startup_reason = why end
  return result
end

local u = vm.units

-- n is within [lo, hi] times the page count, give or take a few faults of the process itself
local function per_page(n, pages, lo, hi)
  return n ~= nil and n >= pages * lo and n <= pages * hi + 8
end

M.claims = {
  { id = "one_fault_per_page",
    text = "writing fresh memory faults once per page (getrusage)",
    decide = function(r)
      return per_page(r.rusage_faults, r.pages, 0.9, 1.1),
        ("%s minor faults for %s written (%s pages)"):format(u.count(r.rusage_faults), u.bytes(r.size),
          u.count(r.pages))
    end,
    explain = function()
      return "A fresh page has no frame: its first write traps into the kernel, which gives it one."
    end },
  { id = "perf_agrees",
    text = "the perf page-fault counter counts the same faults as getrusage",
    requires = "perf_faults",
    decide = function(r)
      if r.perf_faults == nil then
        return nil, nil, "the perf counter was not available: " .. tostring(r.perf_reason)
      end
      local d = math.abs(r.perf_faults - r.rusage_faults)
      return per_page(r.perf_faults, r.pages, 0.9, 1.1) and d <= r.pages * 0.05 + 8,
        ("perf %s, getrusage %s minor faults for %s pages"):format(u.count(r.perf_faults),
          u.count(r.rusage_faults), u.count(r.pages))
    end },
  { id = "second_write_free",
    text = "writing the same pages again faults nothing: they have frames now",
    decide = function(r)
      return r.second_write_faults <= r.pages * 0.02 + 4,
        ("%s minor faults for a second write of %s pages"):format(u.count(r.second_write_faults), u.count(r.pages))
    end },
  { id = "startup_faults",
    text = "a program that does nothing costs page faults before its main runs",
    decide = function(r)
      if r.startup_faults == nil then
        return nil, nil, ("%s could not be run: %s"):format(tostring(r.startup_program), tostring(r.startup_reason))
      end
      return r.startup_faults >= 10,
        ("%s minor faults for one whole run of %s"):format(u.count(r.startup_faults), r.startup_program)
    end,
    explain = function()
      return "Before main: exec, the dynamic loader mapping libc and the program, relocations, libc's setup."
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  local lines = {
    ("Writing %s (%s pages of %s): %s minor faults by getrusage%s; a second write: %s.")
      :format(u.bytes(r.size), u.count(r.pages), u.bytes(vm.page_size), u.count(r.rusage_faults),
        r.perf_faults and (", %s by the perf counter"):format(u.count(r.perf_faults)) or "",
        u.count(r.second_write_faults)),
  }
  if not r.perf_faults then lines[#lines + 1] = "(perf counter unavailable: " .. tostring(r.perf_reason) .. ")" end
  if r.startup_faults then
    lines[#lines + 1] = ("A whole run of %s: %s minor faults."):format(r.startup_program, u.count(r.startup_faults))
  end
  return lines
end

-- Its chart (vmlab run faults --plot FILE.svg|png, vmlab report): the faults each counter saw against the pages
-- written, and the second write that faults nothing.
M.charts = {
  { kind = "bars", title = "one page fault per page written, none the second time",
    panels = function(r)
      return { { title = "page faults", unit = "faults", groups = {
        { label = "pages written", value = r.pages },
        { label = "getrusage", value = r.rusage_faults },
        { label = "perf counter", value = r.perf_faults },
        { label = "second write", value = r.second_write_faults },
        { label = "starting " .. tostring(r.startup_program or "a program"):match("[^/]*$"),
          value = r.startup_faults } } } }
    end },
}

return M
