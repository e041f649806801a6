-- Lab: swap -- anonymous memory pushed out with MADV_PAGEOUT, and what touching it again costs.
-- Run from a built checkout:  lua5.4 examples/swap.lua [SWAPFILE_SIZE]
-- With no swap on the machine, give a size (e.g. 128MiB) as root: a temporary
-- swap file is made for the run and removed afterwards (even if this is killed).
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local swapfile = 0
if arg and arg[1] then swapfile = assert(units.parse_size(arg[1])) end

-- Step 1. Is there swap? (/proc/meminfo SwapTotal)
local mi = vm.proc.meminfo()
print(("swap on this machine: %s%s"):format(units.bytes(mi.SwapTotal or 0),
  swapfile > 0 and (", asked for a temporary swap file of " .. units.bytes(swapfile)) or ""))

-- Step 2. Write 8 MiB, MADV_PAGEOUT it, touch it right away, MADV_PAGEOUT it again, touch it again.
local r = experiments.run("swap", { size = 8 << 20, swapfile = swapfile })
if r.swapfile then
  print(("swap file %s on for the run, %s afterwards"):format(r.swapfile.path,
    r.swapfile.removed and "removed" or "NOT removed"))
elseif r.swapfile_refused then
  print("no swap file: " .. r.swapfile_refused)
end
local f, o, c, a, s = r.first_touch, r.pageout, r.cache_touch, r.pageout_again, r.swap_in
print(("first touch:       %d pages, %d minor faults, %.1f us per page"):format(r.pages, f.minor_faults,
  f.ns_per_page / 1000))
print(("MADV_PAGEOUT:      pswpout +%d; pagemap: %d swapped, %d present; smaps Swap %s"):format(o.pswpout,
  o.swapped, o.present, units.bytes(o.smaps_swap or 0)))
print(("touched at once:   %d minor, %d major faults, pswpin +%d"):format(c.minor_faults, c.major_faults, c.pswpin))
print(("MADV_PAGEOUT again: pswpout +%d, %d pages still resident"):format(a.pswpout, a.resident))
print(("touched again:     %d minor, %d major faults, pswpin +%d, %.1f us per page"):format(s.minor_faults,
  s.major_faults, s.pswpin, s.ns_per_page / 1000))

-- Step 3. What the lab claims, each decided from these numbers:
print(table.concat(report.claims_lines({}, r, experiments.get("swap")), "\n"))

-- The same, with every number:  bin/vmlab run swap [--swapfile 128MiB]
