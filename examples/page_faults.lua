-- Lab: counting page faults -- 1 MiB of fresh memory is 256 pages, 256 faults.
-- Run from a built checkout:  lua5.4 examples/page_faults.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"

-- Step 1. A program has paid for faults before its main even starts.
print(("this process so far: %d minor faults (exec, the loader, Lua starting up)")
  :format(vm.rusage().minor_faults))

-- Step 2. Two counters: getrusage(2) for the whole process, and a perf event.
local counter = vm.fault_counter("minor")
print("perf counter source: " .. counter.source .. (counter.reason and (" (" .. counter.reason .. ")") or ""))

-- Step 3. Write a fresh 1 MiB buffer, one byte a page.
local r = assert(vm.mmap(1024 * 1024))
r:advise("nohugepage")
local t = r:touch("write")
print(("1 MiB = %d pages: getrusage counted %d faults, the perf counter %d")
  :format(t.pages, t.minor_faults, counter:read()))

-- Step 4. Write it again: the pages are there now, no faults.
print(("second write: %d faults"):format(r:touch("write").minor_faults))
r:close()
counter:close()

-- The same, measured and explained:  bin/vmlab run faults
