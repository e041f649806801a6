-- Lab: is a large calloc lazy? does realloc copy?
-- Run from a built checkout:  lua5.4 examples/calloc_realloc.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local SIZE = 256 * 1024 * 1024
local PAGE = vm.page_size
local function rss() return vm.proc.status().VmRSS end
local function faults() return vm.rusage("self").minor_faults end
local function pages_present(h) local s = h:scan(); return s and s.present or h:resident() end

-- Step 1. calloc 256 MiB: zeroed memory. Watch RSS and the block's pages: did calloc clear it?
local rss0 = rss()
local h = assert(vm.calloc(SIZE // PAGE, PAGE))
local rss1 = rss()
local present = pages_present(h)
print(("after calloc:   RSS %s, %d of %d pages present"):format(units.bytes(rss1 - rss0), present, SIZE // PAGE))
local zero = h:read(0, PAGE) == string.rep("\0", PAGE) and h:read(SIZE - PAGE, PAGE) == string.rep("\0", PAGE)
-- Step 2. Write every page.
local rss2 = rss()
local t = h:touch("write")
local rss_growth_write = rss() - rss2
print(("after writing:  RSS +%s, %d minor faults"):format(units.bytes(rss_growth_write), t.minor_faults))
h:close()

-- Step 3. calloc another 256 MiB and only read it. Does RSS move? (PAGEMAP_SCAN: pages on the zero page)
h = assert(vm.calloc(SIZE // PAGE, PAGE))
local rss3 = rss()
h:touch("read")
local rss_growth_read, scan = rss() - rss3, h:scan()
print(("after reading:  RSS +%s%s"):format(units.bytes(rss_growth_read),
  scan and (", %d pages on the zero page"):format(scan.pfnzero) or ""))
h:close()

-- Step 4. realloc a written 256 MiB block to 512 MiB. Count the page faults: a copy writes
-- every page of a new block; a remap (mremap) moves the page-table entries and writes nothing.
h = assert(vm.malloc(SIZE))
local f0, t0 = faults(), vm.now()
h:fill(0x5a)
local fill_faults, write_seconds = faults() - f0, vm.now() - t0
f0, t0 = faults(), vm.now()
local _, old = h:realloc(2 * SIZE)
local realloc_faults, realloc_seconds = faults() - f0, vm.now() - t0
local new = h.address
local intact = h:read(0, PAGE) == string.rep("Z", PAGE) and h:read(SIZE - PAGE, PAGE) == string.rep("Z", PAGE)
print(("realloc: 0x%x -> 0x%x in %s, %d page faults (writing it took %d)"):format(old, new,
  units.seconds(realloc_seconds), realloc_faults, fill_faults))
h:close()

-- Step 5. What the lab claims, decided from the numbers above (the calloc-realloc experiment's claims).
local e = experiments.get("calloc-realloc")
local result = { size = SIZE, pages = SIZE // PAGE, rss_growth_calloc = rss1 - rss0, calloc_present = present,
  zero_pages = zero and 2 or 0, sampled_pages = 2, rss_growth_write = rss_growth_write, write_faults = t.minor_faults,
  rss_growth_read = rss_growth_read, read_pfnzero = scan and scan.pfnzero,
  old_address = old, new_address = new, moved = new ~= old, fill_faults = fill_faults, realloc_faults = realloc_faults,
  realloc_seconds = realloc_seconds, write_seconds = write_seconds, intact_pages = intact and 2 or 0 }
result.claims = experiments.decide(e, result)
for _, line in ipairs(report.claims_lines({}, result, e)) do print(line) end

-- Measured and explained:  bin/vmlab run calloc-realloc
