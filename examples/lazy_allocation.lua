-- Lab: lazy allocation -- does malloc give you memory, or only addresses?
-- Run from a built checkout:  lua5.4 examples/lazy_allocation.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local SIZE = 256 * 1024 * 1024
local function show(what)
  local s = vm.proc.status()
  print(("%-26s VIRT %10s   RES %10s"):format(what, units.bytes(s.VmSize), units.bytes(s.VmRSS)))
  return s.VmSize, s.VmRSS
end

-- Step 1. Before anything: how big is this process?
local virt0, rss0 = show("start")

-- Step 2. malloc(256 MiB). Watch VIRT and RES: which one moves?
local h = assert(vm.malloc(SIZE))
local virt1, rss1 = show("after malloc(256 MiB)")

-- Step 3. Write one byte into every page (vm.page_size bytes each). Count the
-- page faults, and watch RES again.
h:advise("nohugepage") -- base pages, so that one fault is one page
local t = h:touch("write")
local _, rss2 = show("after writing every page")
print(("%d pages, %d minor faults, %.0f ns per page"):format(t.pages, t.minor_faults, t.seconds * 1e9 / t.pages))

-- Step 4. free() gives the memory back.
h:close()
show("after free")

-- Step 5. What the lab claims, decided from the numbers above (the lazy experiment's claims).
local e = experiments.get("lazy")
local result = { alloc = "malloc", mode = "write", size = SIZE, pages = t.pages, written = SIZE,
  virt_growth = virt1 - virt0, rss_growth_alloc = rss1 - rss0, rss_growth_touch = rss2 - rss1,
  minor_faults_touch = t.minor_faults }
result.claims = experiments.decide(e, result)
for _, line in ipairs(report.claims_lines({}, result, e)) do print(line) end

-- Watch it live in htop instead:  bin/vmlab memtest w 1024
-- The same, measured and explained:  bin/vmlab run lazy
