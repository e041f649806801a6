-- Lab: mlock(2) -- pinning memory in RAM.
-- Run from a built checkout:  lua5.4 examples/mlock.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"

local SIZE = 32 * 1024 * 1024
local function status() return vm.proc.status() end

-- Step 1. How much may this process lock? (`ulimit -l`; CAP_IPC_LOCK, e.g. root, is not limited.)
local soft = vm.getrlimit("memlock")
print("RLIMIT_MEMLOCK:  " .. (soft == math.huge and "unlimited" or units.bytes(soft)))

-- Step 2. Map 32 MiB: nothing is resident yet.
local r <close> = assert(vm.mmap(SIZE))
print(("after mmap:      %d of %d pages resident, RSS %s"):format(r:resident(), r.pages, units.bytes(status().VmRSS)))

-- Step 3. Lock it: mlock faults every page in before it returns.
local ok, err = r:lock()
if not ok then
  print("mlock refused: " .. err .. " -- raise the limit with `ulimit -l` or run with CAP_IPC_LOCK")
  return
end
local st = status()
print(("after mlock:     %d of %d pages resident, RSS %s, VmLck %s"):format(r:resident(), r.pages,
  units.bytes(st.VmRSS), units.bytes(st.VmLck)))
if SIZE > soft then print("(more than RLIMIT_MEMLOCK: this process holds CAP_IPC_LOCK, as root does)") end

-- Step 4. Unlock: the pages stay, but the kernel may reclaim or swap them again.
r:unlock()
print("after munlock:   VmLck " .. units.bytes(status().VmLck))

-- With the limit shown in a child without CAP_IPC_LOCK:  bin/vmlab run mlock
