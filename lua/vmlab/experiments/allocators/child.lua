--- The allocators experiment's child: `lua5.4 child.lua OUT PART large_blocks large_size small_blocks small_size
-- realloc_max`, started with LD_PRELOAD naming an allocator (or none: glibc). PART is "small" (small blocks,
-- then a realloc chain) or "large" (large blocks twice): each part in a fresh process, so one part's freed
-- memory cannot serve the other. It runs the workload through
-- vm.blocks (so Lua allocates nothing per block), measures RSS, VIRT, faults and time after each step, finds in
-- its own /proc/self/maps which allocator served it, and writes the result (vmlab.child's encoding) to OUT.
local vm = require "vmlab"
local encode = require("vmlab.child").encode

local usage = "usage: child.lua OUT small|large large_blocks large_size small_blocks small_size realloc_max"
local out_path, part = assert(arg[1], usage), arg[2]
assert(part == "small" or part == "large", usage)
local n = {}
for i = 3, 7 do n[i - 2] = assert(math.tointeger(tonumber(arg[i])), "argument " .. i .. " must be an integer") end
local large_blocks, large_size, small_blocks, small_size, realloc_max = n[1], n[2], n[3], n[4], n[5]

-- The allocator whose library is mapped into this process (the first that is found).
local LIBRARIES = {
  { "asan", "libasan" }, { "jemalloc", "libjemalloc" }, { "mimalloc", "libmimalloc" },
  { "tcmalloc", "libtcmalloc" },
}
local function served_by()
  local maps = assert(vm.proc.maps())
  for _, lib in ipairs(LIBRARIES) do
    for _, m in ipairs(maps) do
      local base = tostring(m.path or ""):match("([^/]*)$")
      if base:find(lib[2], 1, true) == 1 then return lib[1], m.path end
    end
  end
  for _, m in ipairs(maps) do
    local base = tostring(m.path or ""):match("([^/]*)$")
    if base:match("^libc[%.%-]") then return "glibc", m.path end
  end
  return "unknown", nil
end

collectgarbage("stop") -- nothing of Lua's own moves RSS between two steps
local steps = {}
local function step(name, extra)
  local s = assert(vm.proc.status())
  local ru = vm.rusage()
  local rec = { step = name, rss = s.VmRSS, virt = s.VmSize, minor_faults = ru.minor_faults }
  for k, v in pairs(extra or {}) do rec[k] = v end
  steps[#steps + 1] = rec
  return rec
end

local result = {}
result.allocator, result.library = served_by()
step("start")
if part == "small" then
  local small = assert(vm.blocks(small_blocks, small_size))
  step("small_allocated", { seconds = small.seconds, ns_per_block = small.seconds * 1e9 / small_blocks })
  small:free(10) -- nine in ten, scattered: every page keeps some live blocks
  step("small_9_of_10_freed")
  small:free(1)
  step("small_all_freed")
  result.purge = vm.allocator_purge()
  step("purged")
  small:close()
  -- a realloc chain: one block doubled from 1 KiB; count the moves
  local h = assert(vm.malloc(1024))
  local moves, grows, t0 = 0, 0, vm.now()
  local size = 1024
  while size < realloc_max do
    size = size * 2
    local _, old = assert(h:realloc(size))
    grows = grows + 1
    if old ~= h.address then moves = moves + 1 end
  end
  result.realloc_seconds = vm.now() - t0
  result.realloc_grows, result.realloc_moves = grows, moves
  h:close()
else
  -- large blocks twice: glibc serves the first round with mmap and may keep the second in its heap
  for round = 1, 2 do
    step("large_" .. round .. "_before")
    local b = assert(vm.blocks(large_blocks, large_size))
    step("large_" .. round .. "_allocated", { seconds = b.seconds })
    b:free(1)
    step("large_" .. round .. "_freed")
    b:close()
  end
end
result.steps = steps

local f = assert(io.open(out_path, "w"))
f:write(encode(result))
f:close()
