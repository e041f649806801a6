--- faults: page faults, counted two ways. Writing a fresh 1 MiB buffer costs
-- 256 minor faults, one per 4 KiB page (002_*.txt), as getrusage(2) and the
-- perf_event_open(2) software counter both report. And a program costs
-- faults before its main even runs: exec, the dynamic loader, libc setup.
local vm = require "vmlab"

local M = {
  name = "faults",
  summary = "faults per page, counted by getrusage and by perf: 1 MiB written = 256 faults; a program's startup faults",
  params = { size = 1024 * 1024, program = "/bin/true" },
  tour = { size = 1024 * 1024 },
  writes = function(p) return p.size end,
  fields = { "size", "pages", "rusage_faults", "perf_faults", "perf_source", "perf_reason",
             "startup_program", "startup_faults" },
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
  r:advise("nohugepage") -- one fault per 4 KiB page
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
  r:close()
  local n, why = startup_faults(p.program)
  result.startup_program = p.program
  result.startup_faults = n
  if not n then result.startup_reason = why end
  return result
end

function M.explain(r)
  local u = vm.units
  local lines = {
    ("Writing %s (%s pages) cost %s minor faults by getrusage%s: one fault per page.")
      :format(u.bytes(r.size), u.count(r.pages), u.count(r.rusage_faults),
        r.perf_faults and (" and %s by the perf counter"):format(u.count(r.perf_faults)) or ""),
  }
  if not r.perf_faults then lines[#lines + 1] = "(perf counter unavailable: " .. tostring(r.perf_reason) .. ")" end
  if r.startup_faults then
    lines[#lines + 1] = ("A whole run of %s, which does nothing, cost %s minor faults: exec, the dynamic loader")
      :format(r.startup_program, u.count(r.startup_faults))
    lines[#lines + 1] = "mapping libc and the program, relocations and libc's setup, all before main runs."
  end
  return lines
end

return M
