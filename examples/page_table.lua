-- Lab: from a virtual address to a physical one.
-- Run from a built checkout (as root to see frame numbers):  lua5.4 examples/page_table.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"
local pt = experiments.get("page-table")

-- Step 1. A page of our own, written so that it has a physical frame.
local r <close> = assert(vm.mmap(vm.page_size))
r:write(0x123, "x")
local address = r.address + 0x123

-- Step 2. Split the address the way the MMU walks the page table of THIS machine:
-- a log2(page size)-bit offset, and log2(page size / 8) bits per level above it
-- (x86-64 with 4 KiB pages: 47..39 PML4 | 38..30 PDP | 29..21 PD | 20..12 PT | 11..0 offset).
local stack = vm.addresses().stack
local bits = 0
while (stack >> bits) ~= 0 do bits = bits + 1 end
local f = io.open("/proc/sys/kernel/arch")
local lay = pt.layout(vm.page_size, bits, f and f:read("l") or "unknown")
if f then f:close() end
local ix, offset = pt.split(address, lay)
local parts = {}
for _, n in ipairs(lay.names) do parts[#parts + 1] = ("%s %d"):format(n:upper(), ix[n]) end
print(("%d-byte pages, %d levels: virtual 0x%x = %s, offset 0x%x"):format(vm.page_size, lay.levels, address,
  table.concat(parts, ", "), offset))

-- Step 3. Ask the kernel where the walk ends: /proc/self/pagemap gives the frame.
local pm = assert(vm.pagemap(address))
if pm.physical_address then
  print(("physical 0x%x = frame %d * %d + offset 0x%x"):format(pm.physical_address, pm.pfn, vm.page_size, offset))
else
  print("physical address hidden: " .. tostring(pm.hidden or "page not present"))
end

-- Step 4. What the lab claims, each claim decided from a run of the experiment here:
local result = experiments.run("page-table")
print(table.concat(report.claims_lines({}, result, pt), "\n"))

-- The same for a heap block, the stack and this module's code:  bin/vmlab run page-table
