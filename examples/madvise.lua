-- Lab: madvise(2) -- telling the kernel about memory you (no longer) need.
-- Run from a built checkout:  lua5.4 examples/madvise.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"

local SIZE = 64 * 1024 * 1024
local function rss() return units.bytes(vm.proc.status().VmRSS) end

-- Step 1. Map 64 MiB of anonymous memory (4 KiB pages only) and write all of it.
local r = assert(vm.mmap(SIZE))
r:advise("nohugepage")
print("after mmap:             RSS " .. rss())
r:fill(0xab)
print("after writing it:       RSS " .. rss())

-- Step 2. MADV_DONTNEED: the kernel takes the pages back right away.
r:advise("dontneed")
print("after MADV_DONTNEED:    RSS " .. rss())
-- The mapping is still there; what was written is not: fresh pages read as zero.
print("first byte now:         " .. r:read(0, 1):byte())

-- Step 3. MADV_FREE: "take them if you need to" -- with memory to spare, nothing happens yet.
r:fill(0xab)
r:advise("free")
print("after MADV_FREE:        RSS " .. rss() .. " (the kernel reclaims only under pressure)")
print("first byte now:         " .. r:read(0, 1):byte() .. " (still there, until reclaimed)")

-- Step 4. MADV_POPULATE_WRITE: fault every page in now, so later writes cost no faults.
r:advise("dontneed")
r:advise("populate_write")
print("after POPULATE_WRITE:   RSS " .. rss() .. ", faults writing it all: " .. r:touch("write").minor_faults)
r:close()
print("after munmap:           RSS " .. rss())

-- Step 5. malloc_trim: freed heap memory stays with malloc until it is trimmed.
local blocks = {}
for i = 1, 512 do blocks[i] = vm.malloc(64 * 1024); blocks[i]:fill(1) end
local keep = blocks[512] -- the last block stays, so the heap cannot shrink from its top by itself
for i = 1, 511 do blocks[i]:close() end
print("heap blocks freed:      RSS " .. rss())
vm.malloc_trim(0)
print("after malloc_trim(0):   RSS " .. rss())
keep:close()

-- The same steps, measured and explained:  bin/vmlab run madvise
