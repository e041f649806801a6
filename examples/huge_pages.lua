-- Lab: transparent huge pages -- one fault per huge page instead of one per base page?
-- Run from a built checkout:  lua5.4 examples/huge_pages.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

-- Step 1. Is THP on ("always", "madvise": only where asked for, or "never"), and how big is a huge page here?
local k = require("vmlab.kernel")()
local HUGE = k.huge_page_size or vm.page_size * (vm.page_size // 8)
local SIZE = 16 * HUGE
print(("THP mode: %s; base page %s, huge page %s"):format(tostring(k.thp_enabled), units.bytes(vm.page_size),
  units.bytes(HUGE)))

-- Step 2. Two regions aligned to the huge page size: one asks for huge pages, one refuses them.
for _, advice in ipairs({ "nohugepage", "hugepage" }) do
  local r <close> = assert(vm.mmap(SIZE, { fixed_align = HUGE }))
  r:advise(advice)
  -- Step 3. Write every base page, count the page faults, and ask smaps how much is huge.
  local t = r:touch("write")
  print(("%-10s %6d faults for %s (%d base pages), AnonHugePages %s, %s"):format(advice, t.minor_faults,
    units.bytes(SIZE), t.pages, units.bytes(vm.proc.mapping_at(r.address).AnonHugePages or 0),
    units.seconds(t.seconds)))
end

-- Step 4. What the lab claims, each claim decided from a run of the experiment here:
local result = experiments.run("thp", nil, { tour = true })
print(table.concat(report.claims_lines({}, result, experiments.get("thp")), "\n"))

-- The same, with every number:  bin/vmlab run thp
