-- Lab: madvise(2) -- telling the kernel about memory you (no longer) need.
-- Run from a built checkout:  lua5.4 examples/madvise.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local SIZE = 64 * 1024 * 1024
local function rss() return units.bytes(vm.proc.status().VmRSS) end

-- Step 1. Map 64 MiB of anonymous memory (base pages only) and write all of it.
local r = assert(vm.mmap(SIZE))
r:advise("nohugepage")
print("after mmap:             RSS " .. rss())
r:fill(0xab)
print("after writing it:       RSS " .. rss())

-- Step 2. MADV_DONTNEED, then read the first byte back.
r:advise("dontneed")
print("after MADV_DONTNEED:    RSS " .. rss())
print("first byte now:         " .. r:read(0, 1):byte() .. " (it was 171 = 0xab)")

-- Step 3. MADV_FREE: "take them if you need to". Is anything taken yet?
r:fill(0xab)
local ok, err = r:advise("free")
print("after MADV_FREE:        RSS " .. rss() .. (ok and "" or (" (refused: " .. tostring(err) .. ")")))
print("first byte now:         " .. r:read(0, 1):byte())

-- Step 4. MADV_POPULATE_WRITE: fault every page in now, then count the faults of writing it all.
r:advise("dontneed")
ok, err = r:advise("populate_write")
if ok then
  print("after POPULATE_WRITE:   RSS " .. rss() .. ", faults writing it all: " .. r:touch("write").minor_faults)
else
  print("MADV_POPULATE_WRITE refused: " .. tostring(err))
end
r:close()
print("after munmap:           RSS " .. rss())

-- Step 5. malloc_trim: what do free() and malloc_trim(0) each give back?
local blocks = {}
for i = 1, 512 do blocks[i] = vm.malloc(64 * 1024); blocks[i]:fill(1) end
print("heap blocks written:    RSS " .. rss())
local keep = blocks[512] -- the last block stays, so the heap cannot shrink from its top by itself
for i = 1, 511 do blocks[i]:close() end
print("heap blocks freed:      RSS " .. rss())
vm.malloc_trim(0)
print("after malloc_trim(0):   RSS " .. rss())
keep:close()

-- Step 6. What the lab claims, each claim decided from a run of the experiment here:
local result = experiments.run("madvise", nil, { tour = true })
print(table.concat(report.claims_lines({}, result, experiments.get("madvise")), "\n"))

-- The same steps, with every number:  bin/vmlab run madvise
