-- Lab: a file mapped into memory -- the page cache seen as an array.
-- Run from a built checkout:  lua5.4 examples/file_mapping.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"
local fm = experiments.get("file-mmap")

-- Step 1. A 16 MiB scratch file, written the ordinary way, in a temp directory on a disk if there is one.
local path = fm.new_file(fm.pick_dir("auto"))
local f = assert(io.open(path, "wb"))
f:write(string.rep("a", 16 * 1024 * 1024))
f:close()
print("scratch file: " .. path .. " on " .. tostring(fm.fs_type(path)))

-- Step 2. Map it shared and write through the mapping; then read the file with read(2).
local r = assert(vm.mmap(nil, { file = path, share = "shared" }))
r:write(0, "hello from the mapping")
f = assert(io.open(path, "rb"))
print("read(2) before msync: " .. f:read(22))
f:close()
r:sync()
r:close()

-- Step 3. Drop the file from the page cache; what does mincore say is cached?
vm.fadvise(path, "dontneed")
r = assert(vm.mmap(nil, { file = path, share = "shared", prot = "r" }))
print(("cached before reading: %d of %d pages"):format(r:resident(), r.pages))

-- Step 4. Read every page through the mapping, without read-ahead, and count the faults.
r:advise("random")
local t = r:touch("read")
print(("read it all: %d major faults, %d minor, %.3f s"):format(t.major_faults, t.minor_faults, t.seconds))
print(("cached after reading:  %d of %d pages"):format(r:resident(), r.pages))
r:close()
os.remove(path)

-- Step 5. What the lab claims, each claim decided from a run of the experiment here:
local result = experiments.run("file-mmap", nil, { tour = true })
print(table.concat(report.claims_lines({}, result, fm), "\n"))

-- The same, with every number:  bin/vmlab run file-mmap
