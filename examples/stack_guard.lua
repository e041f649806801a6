-- Lab: the stack guard -- the stack grows a page at a time, up to RLIMIT_STACK.
-- Run from a built checkout:  lua5.4 examples/stack_guard.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"

-- Step 1. The limit the kernel enforces on this process's stack.
local soft = vm.getrlimit("stack")
print("stack limit: " .. (soft == math.huge and "unlimited" or units.bytes(soft)))

-- Step 2. In a child, recurse with a 4 KiB array per call; every call touches
-- a new stack page. The depth goes into shared memory as it grows.
local depth = assert(vm.mmap(vm.page_size, { share = "shared" }))
local _, status = vm.child.run(function()
  vm.setrlimit("stack", 8 * 1024 * 1024)
  vm.stack_recurse(4096, depth, 0)
end)

-- Step 3. The stack hit its limit: SIGSEGV.
local n = string.unpack("=i8", depth:read(0, 8))
print(("the child reached depth %d (%s of stack) and died by %s")
  :format(n, units.bytes(n * 4096), tostring(status.signal_name)))

-- The same at two limits, explained:  bin/vmlab run stack-guard
