-- Lab section 8: a parent and a child sharing a POSIX shared-memory object.
-- Run from a built checkout:  lua5.4 examples/sum_session.lua
-- Part 1 does the protocol by hand (shm_open, fork, a ready flag, futex
-- wait/wake instead of usleep polling); part 2 runs `vmlab sum`, the whole
-- protocol with fork + exec, on a file of numbers.
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local names = require "vmlab.sum.names"

-- Part 1 --------------------------------------------------------------------
-- Layout: a 32-bit ready flag at 0 (0 empty, 1 data ready, 2 end),
-- the length of the data at 8, the sum at 16, the data from 64.
local READY, LEN, SUM, DATA = 0, 8, 16, 64

-- Step 1. shm_open(O_CREAT | O_EXCL, 0600) + ftruncate + mmap, in one call.
local s = assert(vm.shm_open(names.unique("example"), { create = true, exclusive = true, size = 4096 }))
print("parent: " .. tostring(s))

-- Step 2. fork: the child inherits the mapping (after exec it would shm_open the name).
local child = assert(vm.fork(function()
  while true do
    -- sleep in the kernel until the flag leaves 0: no usleep(1000) loop
    while s:atomic_load(READY, 32) == 0 do s:wait(READY, 0, 1) end
    if s:atomic_load(READY, 32) == 2 then return 0 end
    local len = s:atomic_load(LEN)
    if len < 0 or len > 4096 - DATA then return 1 end -- never trust a length from shared memory
    local line = s:read(DATA, len)
    s:atomic_store(READY, 0, 32) -- the buffer is free again
    s:wake(READY)
    local total = 0
    for tok in line:gmatch("%S+") do total = total + math.tointeger(tok) end
    s:atomic_store(SUM, total)
    print(("child %d: %q -> %d"):format(vm.getpid(), line, total))
  end
end))

-- Step 3. Hand over lines one at a time through the flag.
for _, line in ipairs({ "1 2 3", "10 20 30 40", "-5 5" }) do
  while s:atomic_load(READY, 32) ~= 0 do s:wait(READY, s:atomic_load(READY, 32), 1) end
  s:write(DATA, line)
  s:atomic_store(LEN, #line)
  s:atomic_store(READY, 1, 32) -- publish: the atomic store orders the data before the flag
  s:wake(READY)
end
while s:atomic_load(READY, 32) ~= 0 do s:wait(READY, s:atomic_load(READY, 32), 1) end
s:atomic_store(READY, 2, 32)
s:wake(READY)
print("child: " .. tostring(child:wait().code == 0 and "done" or "failed"))

-- Step 4. munmap; the creator also unlinks the name, so /dev/shm is clean.
local name = s.name
s:close()
print(("%s in /dev/shm after close: %s"):format(name, #vm.shm_list(name) > 0 and "still there" or "gone"))

-- Part 2 --------------------------------------------------------------------
-- The same protocol done right, as a command: vmlab sum < numbers.txt
local input, out = os.tmpname(), os.tmpname()
local f = assert(io.open(input, "w"))
f:write("1 2 3\n4 5 6\n2.5 2.5\nx 1\n9223372036854775807 1\n")
f:close()
local sum = assert(vm.spawn({ "lua5.4", root .. "/bin/vmlab", "sum", "--out", out }, { stdin = input }))
local st = sum:wait()
print(("vmlab sum exited with %d; %s holds:"):format(st.code, out))
io.write(io.open(out):read("a"))
os.remove(input)
os.remove(out)
