-- Lab: a file mapped into memory -- the page cache seen as an array.
-- Run from a built checkout:  lua5.4 examples/file_mapping.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"

-- Step 1. A 16 MiB scratch file, written the ordinary way.
local path = os.tmpname()
local f = assert(io.open(path, "wb"))
f:write(string.rep("a", 16 * 1024 * 1024))
f:close()

-- Step 2. Map it shared and write through the mapping.
local r = assert(vm.mmap(nil, { file = path, share = "shared" }))
r:write(0, "hello from the mapping")
-- read(2) sees it at once: the file and the mapping are the same page-cache pages.
f = assert(io.open(path, "rb"))
print("file starts with: " .. f:read(22))
f:close()
-- msync writes the dirty pages to the disk.
r:sync()
r:close()

-- Step 3. Drop the file from the page cache; mincore shows nothing cached.
vm.fadvise(path, "dontneed")
r = assert(vm.mmap(nil, { file = path, share = "shared", prot = "r" }))
print(("cached before reading: %d of %d pages"):format(r:resident(), r.pages))

-- Step 4. Read every page through the mapping, without read-ahead: each page is a major fault.
r:advise("random")
local t = r:touch("read")
print(("read it all: %d major faults, %d minor, %.3f s"):format(t.major_faults, t.minor_faults, t.seconds))
print(("cached after reading:  %d of %d pages"):format(r:resident(), r.pages))
r:close()
os.remove(path)

-- The same, measured and explained:  bin/vmlab run file-mmap
