-- Lab: mlock(2) -- pinning memory in RAM.
-- Run from a built checkout:  lua5.4 examples/mlock.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local SIZE = 32 * 1024 * 1024
local function status() return vm.proc.status() end

-- Step 1. How much may this process lock? (`ulimit -l`; a process with CAP_IPC_LOCK is not limited.)
local soft = vm.getrlimit("memlock")
local k = require("vmlab.kernel")()
print("RLIMIT_MEMLOCK:  " .. (soft == math.huge and "unlimited" or units.bytes(soft))
  .. ", CAP_IPC_LOCK: " .. (k.cap_ipc_lock and "yes" or "no"))

-- Step 2. Map 32 MiB: how much of it is resident?
local r <close> = assert(vm.mmap(SIZE))
r:advise("nohugepage")
print(("after mmap:      %d of %d pages resident, RSS %s"):format(r:resident(), r.pages, units.bytes(status().VmRSS)))

-- Step 3. Lock it, and look again without touching it.
local ok, err = r:lock()
if not ok then
  print(("mlock of %s refused: %s (RLIMIT_MEMLOCK %s)"):format(units.bytes(SIZE), err, units.bytes(soft)))
else
  local st = status()
  print(("after mlock:     %d of %d pages resident, RSS %s, VmLck %s"):format(r:resident(), r.pages,
    units.bytes(st.VmRSS), units.bytes(st.VmLck)))
  -- Step 4. Unlock: the pages stay, but the kernel may reclaim or swap them again.
  r:unlock()
  print("after munlock:   VmLck " .. units.bytes(status().VmLck))
end

-- Step 5. What the lab claims, each claim decided from a run of the experiment here
-- (the limit is run into in a child without CAP_IPC_LOCK):
local result = experiments.run("mlock", nil, { tour = true })
print(table.concat(report.claims_lines({}, result, experiments.get("mlock")), "\n"))

-- The same, with every number:  bin/vmlab run mlock
