-- Lab: the zero page -- does reading memory nobody wrote cost any memory?
-- On most kernels a first read maps every page to one shared, read-only page
-- of zeros; some (s390, some virtual machines, pvm_no_zero_page=1) give each
-- page read a frame of its own. This script measures which, and says so.
-- Run from a built checkout:  lua5.4 examples/zero_page.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local SIZE = 64 * 1024 * 1024
local function rss() return vm.proc.status().VmRSS end

-- Step 1. Map 64 MiB of fresh anonymous memory (base pages of vm.page_size bytes).
local r = assert(vm.mmap(SIZE))
r:advise("nohugepage")

-- Step 2. Read one byte of every page. Count the faults and watch RES.
local before = rss()
local read = r:touch("read")
local read_growth = rss() - before
print(("read %d pages: %d faults, RES +%s"):format(read.pages, read.minor_faults, units.bytes(read_growth)))

-- Step 3. Ask the kernel what is behind the pages: PAGEMAP_SCAN (Linux 6.7+, no
-- privilege needed) counts pages on the zero page; /proc/self/pagemap gives
-- the frame numbers (with CAP_SYS_ADMIN).
local scan = r:scan()
if scan then print(("PAGEMAP_SCAN: %d of %d pages on the zero page"):format(scan.pfnzero, scan.pages)) end
local frames, why = r:frames(0, r.pages)
local distinct
if frames then
  local seen = {}
  distinct = 0
  for _, pfn in ipairs(frames) do
    if pfn and not seen[pfn] then seen[pfn] = true; distinct = distinct + 1 end
  end
  print(("behind %d pages: %d distinct frame(s)"):format(#frames, distinct))
else
  print("(frame numbers are hidden: " .. why .. ")")
end

-- Step 4. Now write them. Count the faults and watch RES again.
before = rss()
local write = r:touch("write")
local write_growth = rss() - before
print(("wrote %d pages: %d faults, RES +%s"):format(write.pages, write.minor_faults, units.bytes(write_growth)))
r:close()

-- Step 5. What the lab claims, decided from these numbers (the read-write experiment's claims).
local e = experiments.get("read-write")
local result = { share = "private", size = SIZE, pages = read.pages,
  read = { minor_faults = read.minor_faults, rss_growth = read_growth, distinct_frames = distinct,
           pfnzero = scan and scan.pfnzero },
  write_after_read_faults = write.minor_faults, write_after_read_rss_growth = write_growth }
result.claims = {}
for _, c in ipairs(experiments.decide(e, result)) do
  -- this script wrote no fresh memory: `bin/vmlab run read-write` decides write_gets_frames
  if c.id ~= "write_gets_frames" then result.claims[#result.claims + 1] = c end
end
for _, line in ipairs(report.claims_lines({}, result, e)) do print(line) end

-- The same, measured and explained:  bin/vmlab run read-write
