-- Lab: lazy allocation -- malloc gives you addresses; memory comes on first write.
-- Run from a built checkout:  lua5.4 examples/lazy_allocation.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"

local SIZE = 256 * 1024 * 1024
local function show(what)
  local s = vm.proc.status()
  print(("%-26s VIRT %10s   RES %10s"):format(what, units.bytes(s.VmSize), units.bytes(s.VmRSS)))
end

-- Step 1. Before anything: how big is this process?
show("start")

-- Step 2. malloc(256 MiB). VIRT jumps by 256 MiB at once; RES does not move.
local h = assert(vm.malloc(SIZE))
show("after malloc(256 MiB)")

-- Step 3. Write one byte into every 4 KiB page. Each first write is a page
-- fault: the kernel finds a frame, zeroes it and maps it. Now RES grows.
h:advise("nohugepage") -- 4 KiB pages, so one fault is one page
local t = h:touch("write")
show("after writing every page")
print(("%d pages, %d minor faults, %.0f ns per fault"):format(t.pages, t.minor_faults, t.seconds * 1e9 / t.pages))

-- Step 4. free() gives the memory back: both numbers drop again.
h:close()
show("after free")

-- Watch it live in htop instead:  bin/vmlab memtest w 1024
-- The same, measured and explained:  bin/vmlab run lazy
