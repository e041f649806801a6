-- Lab: overcommit -- malloc(500 GiB), and what the kernel promises.
-- Run from a built checkout:  lua5.4 examples/overcommit.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"

-- Step 1. The policy: 0 heuristic, 1 always, 2 strict.
local mi = vm.proc.meminfo()
print(("overcommit_memory = %s, CommitLimit %s, Committed_AS %s, RAM %s"):format(
  vm.proc.vm_settings().overcommit_memory, units.bytes(mi.CommitLimit), units.bytes(mi.Committed_AS),
  units.bytes(mi.MemTotal)))

-- Step 2. Ask for 500 GiB: the heuristic refuses what can never fit.
local GiB = 1024 ^ 3
print("mmap(500 GiB):           ", select(2, vm.mmap(500 * GiB)) or "granted")

-- Step 3. MAP_NORESERVE: no promise is recorded, so it is granted.
local r = vm.mmap(500 * GiB, { noreserve = true })
print("mmap(500 GiB, noreserve):", r and "granted" or "refused")

-- Step 4. Touch a few pages of it: only those get memory.
if r then
  r:touch("write", { length = 16 * 1024 * 1024 })
  print("wrote 16 MiB of it; RES is now " .. units.bytes(vm.proc.status().VmRSS))
  r:close()
end

-- The same, measured and explained:  bin/vmlab run overcommit
