-- Lab: transparent huge pages -- one fault per 2 MiB instead of one per 4 KiB.
-- Run from a built checkout:  lua5.4 examples/huge_pages.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"

local SIZE, HUGE = 32 * 1024 * 1024, 2 * 1024 * 1024

-- Step 1. Is THP on? "always", "madvise" (only where asked for) or "never".
print("THP mode: " .. tostring(vm.proc.vm_settings().thp_enabled))

-- The smaps entry of the mapping at an address: AnonHugePages says how much is huge.
local function huge_bytes(address)
  for _, m in ipairs(vm.proc.smaps()) do
    if m.start <= address and address < m.finish then return m.AnonHugePages end
  end
end

-- Step 2. Two 2 MiB-aligned regions: one asks for huge pages, one refuses them.
for _, advice in ipairs({ "nohugepage", "hugepage" }) do
  local r <close> = assert(vm.mmap(SIZE, { fixed_align = HUGE }))
  r:advise(advice)
  -- Step 3. Write every 4 KiB page and count the page faults it took.
  local t = r:touch("write")
  print(("%-10s %6d faults for %s, AnonHugePages %s, %s"):format(advice, t.minor_faults, units.bytes(SIZE),
    units.bytes(huge_bytes(r.address)), units.seconds(t.seconds)))
end

-- The same, measured and explained:  bin/vmlab run thp
