-- Lab: calloc is lazy, realloc remaps.
-- Run from a built checkout:  lua5.4 examples/calloc_realloc.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local units = require "vmlab.units"

local SIZE = 256 * 1024 * 1024
local function rss() return units.bytes(vm.proc.status().VmRSS) end

-- Step 1. calloc 256 MiB: zeroed memory, yet RSS does not move -- fresh pages are zero already.
print("before calloc:  RSS " .. rss())
local h = assert(vm.calloc(SIZE // 4096, 4096))
print("after calloc:   RSS " .. rss() .. ", mmap'd blocks: " .. vm.mallinfo().mmapped_blocks)
h:touch("write")
print("after writing:  RSS " .. rss())
h:close()

-- Step 2. realloc a written 256 MiB block to 512 MiB: glibc uses mremap, no byte is copied.
h = assert(vm.malloc(SIZE))
h:fill(0x5a)
local t0 = vm.now()
local _, old = h:realloc(2 * SIZE)
print(("realloc: 0x%x -> 0x%x in %s, RSS %s, first byte 0x%02x"):format(old, h.address,
  units.seconds(vm.now() - t0), rss(), h:read(0, 1):byte()))
h:close()

-- Measured and explained:  bin/vmlab run calloc-realloc
