-- Lab: the TLB -- page order vs random page order vs a pointer chase, base pages vs huge pages.
-- Run from a built checkout:  lua5.4 examples/tlb.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local k = vm.kernel and vm.kernel() or require("vmlab.kernel")()
local HUGE = k.huge_page_size                       -- the kernel's huge page size (nil: no THP)
local SIZE = math.max(256 * 1024 * 1024, 2 * (HUGE or 0))
local STRIDE = vm.page_size + 64                    -- one read per page, each on another cache line
local PASSES = 4

local e = experiments.get("tlb")
local result = { size = SIZE, stride = STRIDE, page_size = vm.page_size, huge_page_size = HUGE,
  thp = k.thp_enabled, small_faults = 0, huge_faults = 0 }

for _, advice in ipairs({ "nohugepage", "hugepage" }) do
  local case = advice == "nohugepage" and "small" or "huge"
  if case == "huge" and (not HUGE or k.thp_enabled == "never" or k.thp_enabled == "unavailable") then
    result.huge_skipped = "transparent huge pages are " .. tostring(k.thp_enabled)
    print("huge pages: skipped, " .. result.huge_skipped)
    break
  end
  -- Step 1. Map the region (aligned to a huge page), choose the page size, and fault it all in first.
  local r <close> = assert(vm.mmap(SIZE, { fixed_align = HUGE or vm.page_size }))
  r:advise(advice)
  r:touch("write")
  local m = vm.proc.mapping_at(r.address)
  result[case == "small" and "anon_huge_bytes_small" or "anon_huge_bytes"] = m and m.AnonHugePages or 0
  -- Step 2. Read one byte per page: in address order, in a random order, and as a pointer chase
  -- (each read gives the address of the next), a few times over.
  for _, order in ipairs({ "sequential", "random", "chase" }) do
    r:touch("read", { stride = STRIDE, order = order, seed = 1 }) -- once, so every case starts warm
    local t = r:touch("read", { stride = STRIDE, order = order, seed = 1, passes = PASSES })
    local ns = t.seconds / t.pages * 1e9
    result[case .. "_" .. order .. "_ns"] = ns
    result[case .. "_faults"] = result[case .. "_faults"] + t.minor_faults + t.major_faults
    result.accesses = t.pages
    print(("%-4s pages (%s, %s): %-10s %7.1f ns per access"):format(e.size_name(case == "small" and vm.page_size
      or HUGE), advice, units.bytes(result[case == "small" and "anon_huge_bytes_small" or "anon_huge_bytes"])
      .. " AnonHugePages", order, ns))
  end
end

-- Step 3. What the lab claims, decided from the numbers above (the tlb experiment's claims).
result.claims = experiments.decide(e, result)
for _, line in ipairs(report.claims_lines({}, result, e)) do print(line) end

-- Measured with repeats and explained:  bin/vmlab run tlb
