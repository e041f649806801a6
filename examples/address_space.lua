-- Lab: the address space -- where do code, globals, the heap and the stack live?
-- Run from a built checkout:  lua5.4 examples/address_space.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

-- Step 1. Addresses of things inside the vmlab C module.
local a = vm.addresses()

-- Step 2. Find the mapping (from /proc/self/maps) that holds each one.
local function where(address)
  for _, m in ipairs(vm.proc.maps()) do
    if m.start <= address and address < m.finish then
      return ("%s %s"):format(m.perms, m.path ~= "" and m.path or "(anonymous)")
    end
  end
  return "?"
end
for _, k in ipairs { "text", "static_data", "global", "bss", "heap", "stack" } do
  print(("%-12s 0x%014x  %s"):format(k, a[k], where(a[k])))
end

-- Step 3. A large malloc: does it come from the heap, or is it a mapping of its own?
local big = assert(vm.malloc(64 * 1024 * 1024))
print(("%-12s 0x%014x  %s"):format("malloc 64M", big.address, where(big.address)))
big:close()

-- Step 4. What the lab claims about this map, decided from it (the regions experiment's claims).
local e = experiments.get("regions")
local result = experiments.run("regions")
for _, line in ipairs(report.claims_lines({}, result, e)) do print(line) end

-- The whole map, with sizes and RSS:  bin/vmlab run regions
