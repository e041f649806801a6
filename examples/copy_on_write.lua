-- Lab: copy-on-write -- after fork, do parent and child share pages until one writes?
-- Run from a built checkout:  lua5.4 examples/copy_on_write.lua
local root = (arg and arg[0] or ""):match("^(.*)/examples/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local PAGES = 1024
local SIZE = PAGES * vm.page_size
local r = assert(vm.mmap(SIZE))
r:advise("nohugepage")

-- How many pages pagemap marks "exclusive" (bit 56: mapped by this process
-- alone). Unlike frame numbers, this bit needs no privilege.
local function exclusive()
  local n = 0
  for i = 0, PAGES - 1 do
    local e = vm.pagemap(r.address + i * vm.page_size)
    if e and e.present and e.exclusive then n = n + 1 end
  end
  return n
end
local function smaps()
  local m = vm.proc.mapping_at(r.address)
  return { rss = m.Rss, shared = m.Shared_Clean + m.Shared_Dirty, private = m.Private_Clean + m.Private_Dirty }
end

-- Step 1. The parent writes its data and notes the frames it sits on (nil without CAP_SYS_ADMIN).
r:fill(0x41) -- "AAAA..."
local parent_frames = r:frames(0, PAGES)
local parent_exclusive = exclusive()
print(("parent: %d pages written, %d of them exclusive (its own)"):format(PAGES, parent_exclusive))

-- Step 2. Fork. The child reads everything, then writes everything.
local function same_frames()
  local frames = r:frames(0, PAGES)
  if not (parent_frames and frames) then return nil end
  local n = 0
  for i, pfn in ipairs(frames) do if pfn == parent_frames[i] then n = n + 1 end end
  return n
end
local child, status = vm.child.run(function()
  local out = { smaps_after_fork = smaps() }
  out.read = r:touch("read").minor_faults
  out.saw = r:read(0, SIZE) == ("A"):rep(SIZE)
  out.same_before, out.exclusive_before = same_frames(), exclusive()
  out.write = r:touch("write", { value = 0x42 }).minor_faults -- "BBBB..."
  out.same_after, out.exclusive_after = same_frames(), exclusive()
  out.smaps_after_write = smaps()
  return out
end)
assert(child, status and status.error)

-- Step 3. What the child measured.
print(("child: reading %d pages cost %d faults; writing them cost %d faults"):format(PAGES, child.read, child.write))
print(("child: exclusive pages %d after reading, %d after writing"):format(child.exclusive_before,
  child.exclusive_after))
if child.same_before then
  print(("child: %d pages on the parent's frames before writing, %d after"):format(child.same_before,
    child.same_after))
end

-- Step 4. The parent reads its data back.
local intact = r:read(0, SIZE) == ("A"):rep(SIZE)
print("parent still reads: " .. r:read(0, 8) .. "...")
r:close()

-- Step 5. What the lab claims, decided from these numbers (the cow experiment's claims).
local e = experiments.get("cow")
local result = { share = "private", pages = PAGES, size = SIZE, child_read_faults = child.read,
  child_write_faults = child.write, shared_frames_before_write = child.same_before,
  shared_frames_after_write = child.same_after, parent_exclusive_before_fork = parent_exclusive,
  child_exclusive_after_read = child.exclusive_before, child_exclusive_after_write = child.exclusive_after,
  child_saw_parent_data = child.saw, parent_intact = intact,
  smaps = { child_after_fork = child.smaps_after_fork, child_after_write = child.smaps_after_write } }
result.claims = experiments.decide(e, result)
for _, line in ipairs(report.claims_lines({}, result, e)) do print(line) end

-- The same, measured and explained:  bin/vmlab run cow   (and --share shared for the other kind)
