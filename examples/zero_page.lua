-- Lab: the zero page -- reading memory nobody wrote costs no memory at all.
-- Run from a built checkout:  lua5.4 examples/zero_page.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"

local SIZE = 64 * 1024 * 1024
local function rss() return vm.proc.status().VmRSS end

-- Step 1. Map 64 MiB of fresh anonymous memory (4 KiB pages).
local r = assert(vm.mmap(SIZE))
r:advise("nohugepage")

-- Step 2. Read one byte of every page. Every read faults, but the kernel maps
-- each page to the same read-only page of zeros: RES stays where it was.
local before = rss()
local t = r:touch("read")
print(("read %d pages: %d faults, RES +%s"):format(t.pages, t.minor_faults, units.bytes(rss() - before)))

-- Step 3. Ask /proc/self/pagemap which physical frames are behind the pages.
local frames, why = r:frames(0, r.pages)
if frames then
  local distinct = {}
  for _, pfn in ipairs(frames) do if pfn then distinct[pfn] = true end end
  local n = 0
  for _ in pairs(distinct) do n = n + 1 end
  print(("behind %d pages: %d distinct frame(s) -- the zero page"):format(#frames, n))
else
  print("(frame numbers are hidden: " .. why .. ")")
end

-- Step 4. Now write them. Each write faults again: the page gets its own frame.
before = rss()
t = r:touch("write")
print(("wrote %d pages: %d faults, RES +%s"):format(t.pages, t.minor_faults, units.bytes(rss() - before)))
r:close()

-- The same, measured and explained:  bin/vmlab run read-write
