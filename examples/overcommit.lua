-- Lab: overcommit -- malloc(500 GiB), and what the kernel promises.
-- Run from a built checkout:  lua5.4 examples/overcommit.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

-- Step 1. The policy: 0 heuristic, 1 always, 2 strict.
local mi = vm.proc.meminfo()
print(("overcommit_memory = %s, CommitLimit %s, Committed_AS %s, RAM %s, swap %s"):format(
  vm.proc.vm_settings().overcommit_memory, units.bytes(mi.CommitLimit), units.bytes(mi.Committed_AS),
  units.bytes(mi.MemTotal), units.bytes(mi.SwapTotal or 0)))

-- Step 2. Ask for 500 GiB: what the kernel answers depends on the policy.
local GiB = 1024 ^ 3
local big, err = vm.mmap(500 * GiB)
print("mmap(500 GiB):           ", big and "granted" or ("refused: " .. tostring(err)))
if big then big:close() end

-- Step 3. MAP_NORESERVE: no promise is recorded (except under policy 2).
local r, nerr = vm.mmap(500 * GiB, { noreserve = true })
print("mmap(500 GiB, noreserve):", r and "granted" or ("refused: " .. tostring(nerr)))

-- Step 4. Touch a few pages of it and see how much RES grew.
if r then
  local before = vm.proc.status().VmRSS
  r:touch("write", { length = 16 * 1024 * 1024 })
  print("wrote 16 MiB of it; RES grew by " .. units.bytes(vm.proc.status().VmRSS - before))
  r:close()
end

-- Step 5. What the lab claims, each claim decided from a run of the experiment here:
local result = experiments.run("overcommit")
print(table.concat(report.claims_lines({}, result, experiments.get("overcommit")), "\n"))

-- The same, with every number:  bin/vmlab run overcommit
