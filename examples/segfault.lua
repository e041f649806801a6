-- Lab: segmentation faults -- a page fault the kernel resolves vs one it refuses.
-- Run from a built checkout:  lua5.4 examples/segfault.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"

local function try(what, address, access)
  local ok, out = vm.probe(address, access) -- the fault comes back as data
  if ok then
    print(("%-34s fine (%d minor fault)"):format(what, out.minor_faults))
  else
    print(("%-34s %s %s at 0x%x"):format(what, out.signal_name, out.code_name, out.address))
  end
end

-- Step 0. Four pages: plain, about to be unmapped, read-only, no access at all.
local fresh = assert(vm.mmap(vm.page_size))
local gone = assert(vm.mmap(vm.page_size))
local ro = assert(vm.mmap(vm.page_size, { prot = "r" }))
local none = assert(vm.mmap(vm.page_size, { prot = "none" }))

-- Step 1. A valid page without a frame yet: a page fault, invisible to us.
try("fresh page, write", fresh.address, "write")

-- Step 2. An address with nothing mapped: SIGSEGV, SEGV_MAPERR.
local at = gone.address
gone:close() -- munmap(2)
try("unmapped page, read", at, "read")
try("NULL, read", 0, "read")

-- Step 3. A mapped page whose protection forbids the access: SEGV_ACCERR.
try("read-only page, write", ro.address, "write")
try("PROT_NONE page, read", none.address, "read")

-- Step 4. Without a handler the signal kills the process: do it in a child.
local _, status = vm.child.run(function() vm.probe(none.address, "read", { catch = false }) end)
print("an unguarded access ends the child with " .. tostring(status.signal_name))

-- The same, measured and explained:  bin/vmlab run segfault
