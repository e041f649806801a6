-- Lab: from a virtual address to a physical one.
-- Run from a built checkout (as root to see frame numbers):  lua5.4 examples/page_table.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"

-- Step 1. A page of our own, written so that it has a physical frame.
local r <close> = assert(vm.mmap(vm.page_size))
r:write(0x123, "x")
local address = r.address + 0x123

-- Step 2. Split the address the way the MMU walks the 4-level page table:
--   63..48 unused | 47..39 PML4 | 38..30 PDP | 29..21 PD | 20..12 PT | 11..0 offset
local pml4 = (address >> 39) & 511
local pdp = (address >> 30) & 511
local pd = (address >> 21) & 511
local pt = (address >> 12) & 511
local offset = address & 4095
print(("virtual  0x%x = PML4 %d, PDP %d, PD %d, PT %d, offset 0x%x"):format(address, pml4, pdp, pd, pt, offset))

-- Step 3. Ask the kernel where the walk ends: /proc/self/pagemap gives the frame.
local pm = assert(vm.pagemap(address))
if pm.physical_address then
  print(("physical 0x%x = frame %d * %d + offset 0x%x"):format(pm.physical_address, pm.pfn, vm.page_size, offset))
else
  print("physical address hidden: " .. tostring(pm.hidden or "page not present"))
end

-- The same for a heap block, the stack and this module's code:  bin/vmlab run page-table
