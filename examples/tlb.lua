-- Lab: the TLB -- page order vs random page order, 4 KiB vs 2 MiB pages.
-- Run from a built checkout:  lua5.4 examples/tlb.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"

local SIZE = 256 * 1024 * 1024
local STRIDE = vm.page_size + 64 -- one read per page, each on another cache line

for _, advice in ipairs({ "nohugepage", "hugepage" }) do
  -- Step 1. Map the region (2 MiB-aligned), choose the page size, and fault it all in first.
  local r <close> = assert(vm.mmap(SIZE, { fixed_align = 2 * 1024 * 1024 }))
  r:advise(advice)
  r:touch("write")
  r:touch("read", { stride = STRIDE }) -- once more, so caches and TLB start the same way for both
  -- Step 2. Read one byte per page, in address order and in a random order, a few times over.
  for _, order in ipairs({ "sequential", "random" }) do
    local t = r:touch("read", { stride = STRIDE, order = order, seed = 1, passes = 16 })
    print(("%-10s %-10s %5.1f ns per access"):format(advice, order, t.seconds / t.pages * 1e9))
  end
end
-- Random order with 4 KiB pages misses the TLB on almost every access; huge pages cover
-- 512 times more memory per TLB entry.  Measured and explained:  bin/vmlab run tlb
