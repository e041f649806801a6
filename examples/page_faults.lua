-- Lab: counting page faults -- how many faults does 1 MiB of fresh memory cost?
-- Run from a built checkout:  lua5.4 examples/page_faults.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local SIZE = 1024 * 1024

-- Step 1. A program has paid for faults before its main even starts.
print(("this process so far: %d minor faults (exec, the loader, Lua starting up)")
  :format(vm.rusage().minor_faults))

-- Step 2. Two counters: getrusage(2) for the whole process, and a perf event.
local counter = vm.fault_counter("minor")
print("perf counter source: " .. counter.source .. (counter.reason and (" (" .. counter.reason .. ")") or ""))

-- Step 3. Write a fresh 1 MiB buffer, one byte a page (vm.page_size bytes each).
local r = assert(vm.mmap(SIZE))
r:advise("nohugepage")
local t = r:touch("write")
local perf = counter:read()
print(("1 MiB = %d pages of %d bytes: getrusage counted %d faults, the perf counter %s")
  :format(t.pages, vm.page_size, t.minor_faults, counter.source == "perf" and tostring(perf) or "n/a"))

-- Step 4. Write it again.
local again = r:touch("write").minor_faults
print(("second write: %d faults"):format(again))
r:close()

-- Step 5. What the lab claims about these numbers (the faults experiment's claims).
local e = experiments.get("faults")
local result = { size = SIZE, pages = t.pages, rusage_faults = t.minor_faults, second_write_faults = again,
  perf_faults = counter.source == "perf" and perf or nil, perf_reason = counter.reason }
counter:close()
result.claims = {}
for _, c in ipairs(experiments.decide(e, result)) do
  -- this script ran no program, so the startup claim is left to `bin/vmlab run faults`
  if c.id ~= "startup_faults" then result.claims[#result.claims + 1] = c end
end
for _, line in ipairs(report.claims_lines({}, result, e)) do print(line) end

-- The same, with a program's startup faults:  bin/vmlab run faults
