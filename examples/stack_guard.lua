-- Lab: the stack guard -- how far can the stack grow, and what stops it?
-- Run from a built checkout:  lua5.4 examples/stack_guard.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local LIMIT = 8 * 1024 * 1024

-- Step 1. The limit the kernel enforces on this process's stack.
local soft = vm.getrlimit("stack")
print("stack limit: " .. (soft == math.huge and "unlimited" or units.bytes(soft)))

-- Step 2. In a child with an 8 MiB limit, recurse with a page-sized array per
-- call (vm.page_size bytes): every call touches a new stack page. The depth
-- goes into shared memory as it grows; the child's page faults are counted.
local function recurse(limit)
  local depth = assert(vm.mmap(vm.page_size, { share = "shared" }))
  local before = vm.rusage("children").minor_faults
  local _, status = vm.child.run(function()
    vm.setrlimit("stack", limit)
    vm.lab.stack_recurse(vm.page_size, depth, 0)
  end)
  local n = string.unpack("=i8", depth:read(0, 8))
  depth:close()
  return n, status.signal_name or ("exit " .. tostring(status.code)), vm.rusage("children").minor_faults - before
end
local n, signal, faults = recurse(LIMIT)
print(("the child reached depth %d (%s of stack, %d minor faults) and ended by %s")
  :format(n, units.bytes(n * vm.page_size), faults, signal))

-- Step 3. The same with half the limit.
local half, half_signal = recurse(LIMIT // 2)
print(("with half the limit: depth %d, ended by %s"):format(half, half_signal))

-- Step 4. What the lab claims, decided from these numbers (the stack-guard experiment's claims).
local e = experiments.get("stack-guard")
local result = { signal = signal, depth = n, frame_size = vm.page_size, stack_limit = LIMIT,
  stack_used = n * vm.page_size, stack_pages = n, child_minor_faults = faults, half_limit = LIMIT // 2,
  half_limit_depth = half, half_limit_signal = half_signal }
result.claims = experiments.decide(e, result)
for _, line in ipairs(report.claims_lines({}, result, e)) do print(line) end

-- The same, measured and explained:  bin/vmlab run stack-guard
