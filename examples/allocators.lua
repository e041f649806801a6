-- Lab: which malloc? The same workload under glibc's malloc and under each
-- allocator LD_PRELOAD can put in its place (the articles' jemalloc/mimalloc step).
-- Run from a built checkout:  lua5.4 examples/allocators.lua
-- Try it by hand too:  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 lua5.4 examples/allocators.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

-- Step 1. Which malloc serves THIS process? (read from its own /proc/self/maps)
local k = vm.kernel()
print(("this process's malloc: %s (%s)"):format(k.allocator, k.how.allocator))

-- Step 2. Many small blocks, then nine in ten freed: does RSS go down?
local function rss() return vm.proc.status().VmRSS end
local r0 = rss()
local b = assert(vm.blocks(100000, 64))
local r1 = rss()
b:free(10)
local r2 = rss()
print(("100,000 blocks of 64 B: RSS +%s; after freeing 9 in 10: still +%s"):format(units.bytes(r1 - r0),
  units.bytes(r2 - r0)))
b:free(1)
local r3 = rss()
local how = vm.allocator_purge()
local r4 = rss()
print(("all freed: +%s; after %s: +%s"):format(units.bytes(r3 - r0), how, units.bytes(r4 - r0)))
b:close()

-- Step 3. The same workload in a child per allocator (each started with LD_PRELOAD),
-- side by side, and what the lab claims about them, decided from those numbers.
local result, record = experiments.run("allocators", { small_blocks = 100000 })
for _, a in ipairs(result.allocators) do
  print(("%-9s served by %-9s kept %3.0f%% after freeing all, %3.0f%% after its purge; %4.0f ns a block"):format(
    a.name, a.served_by, a.kept_after_all_percent, a.kept_after_purge_percent, a.ns_per_block))
end
for _, m in ipairs(result.missing) do print(("%-9s not run: %s"):format(m.name, m.why)) end
for _, line in ipairs(report.claims_lines({}, result, experiments.get("allocators"))) do print(line) end
print(("(the whole run took %.1f s)"):format(record.seconds))
