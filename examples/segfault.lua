-- Lab: segmentation faults -- which page faults does the kernel resolve, and which does it refuse?
-- Run from a built checkout:  lua5.4 examples/segfault.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local cases = {}
local function try(what, address, access)
  local ok, out = vm.probe(address, access) -- the fault comes back as data
  if ok then
    print(("%-38s fine (%d minor fault)"):format(what, out.minor_faults))
  else
    print(("%-38s %s %s at 0x%x"):format(what, out.signal_name, out.code_name, out.address))
  end
  cases[#cases + 1] = { case = what, access = access, address = ok and address or out.address,
    signal = ok and "none" or out.signal_name, code = ok and "resolved" or out.code_name,
    minor_faults = out.minor_faults }
end

-- Step 0. Pages: plain, about to be unmapped, read-only, no access at all, and
-- a two-page mapping of a one-page file.
local fresh = assert(vm.mmap(vm.page_size))
local gone = assert(vm.mmap(vm.page_size))
local ro = assert(vm.mmap(vm.page_size, { prot = "r" }))
local none = assert(vm.mmap(vm.page_size, { prot = "none" }))
local path = os.tmpname()
local f = assert(io.open(path, "wb"))
f:write(("x"):rep(vm.page_size))
f:close()
local fm = assert(vm.mmap(2 * vm.page_size, { file = path, prot = "r" }))

-- Step 1. A valid page without a frame yet.
try("fresh anonymous page (no frame yet)", fresh.address, "write")

-- Step 2. An address with nothing mapped.
local at = gone.address
gone:close() -- munmap(2)
try("unmapped page (after munmap)", at, "read")
try("NULL pointer", 0, "read")

-- Step 3. A mapped page whose protection forbids the access.
try("read-only page, written", ro.address, "write")
try("PROT_NONE page", none.address, "read")

-- Step 4. The file mapping's second page, past the end of the one-page file.
try("file mapping, page past end of file", fm.address + vm.page_size, "read")
fm:close()
os.remove(path)

-- Step 5. The same access with no handler at all, in a child.
local _, status = vm.child.run(function() vm.lab.probe(none.address, "read") end)
print("an unguarded access ended the child with " .. tostring(status.signal_name or status.code))

-- Step 6. What the lab claims, decided from these signals (the segfault experiment's claims).
local e = experiments.get("segfault")
local result = { cases = cases, killed_by = status.signal_name or "nothing (it exited)" }
result.claims = experiments.decide(e, result)
for _, line in ipairs(report.claims_lines({}, result, e)) do print(line) end

-- The same, measured and explained:  bin/vmlab run segfault
