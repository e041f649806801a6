--- shm-frames: one POSIX shared-memory object, two processes, two virtual
-- addresses, the same physical frames (001_*.txt, section 5).
-- The parent creates the object (shm_open O_CREAT|O_EXCL, ftruncate, mmap),
-- writes its pages and reads their frame numbers from /proc/self/pagemap;
-- a child started with fork + exec opens the object by name, maps it at an
-- address of its own choosing, and reports its address and frames through a
-- report area at the end of the object. The page tables differ, the frames
-- do not.
-- @module vmlab.experiments.shm-frames
local vm = require "vmlab"
local names = require "vmlab.sum.names"

local M = {
  name = "shm-frames",
  summary = "a parent and an exec'd child map one shm object at different addresses onto the same physical frames",
  params = { pages = 64 },
  tour = { pages = 16 },
  fields = { "pages", "parent_address", "child_address", "same_address", "same_frames", "frames_equal",
    "child_pid" },
  units = { pages = "count", frames_equal = "count", child_pid = "text" },
}

local function peer_program() return package.searchpath("vmlab.sum.peer_main", package.path) end

--- params: pages (how many pages the object holds, besides its report area)
function M.run(p)
  local pages = math.tointeger(p.pages)
  if not pages or pages < 1 or pages > 1 << 20 then error("shm-frames: pages must be 1 .. 1048576", 0) end
  local data = pages * vm.page_size
  local report = data
  local size = data + ((24 + 8 * pages + vm.page_size - 1) // vm.page_size) * vm.page_size
  names.sweep("frames")
  local s <close> = assert(vm.shm_open(names.unique("frames"), { create = true, exclusive = true, size = size,
    mode = tonumber("600", 8) }))
  s:fill(0x5a, 0, data) -- give every page its frame before anybody looks
  local parent_frames, hidden = s:frames(0, pages)

  local prog = assert(peer_program(), "cannot find vmlab/sum/peer_main.lua on package.path")
  local child = assert(vm.spawn({ os.getenv("VMLAB_LUA") or "lua5.4", prog, s.name, tostring(pages) },
    { env = { LUA_PATH = package.path, LUA_CPATH = package.cpath }, stdin = "/dev/null", death_signal = "KILL" }))
  local st = child:wait({ timeout = 60 })
  if not st then
    child:kill("KILL")
    child:wait()
    error("shm-frames: the child did not finish within 60 s", 0)
  end
  s:unlink() -- both have seen it: the name can go now
  if not (st.exited and st.code == 0) then
    error(("shm-frames: the child failed (%s)"):format(st.signal_name or ("exit code " .. tostring(st.code))), 0)
  end

  local result = {
    pages = pages,
    parent_address = s.address,
    child_address = s:atomic_load(report),
    child_pid = s:atomic_load(report + 8),
  }
  result.same_address = result.parent_address == result.child_address
  local counted = s:atomic_load(report + 16)
  if not parent_frames or counted < 0 then
    result.skipped = hidden or "frame numbers are hidden from the child"
    return result
  end
  local equal = 0
  for i = 1, pages do
    local pf, cf = parent_frames[i], s:atomic_load(report + 16 + 8 * i)
    if pf and pf ~= 0 and pf == cf then equal = equal + 1 end
  end
  result.frames_equal = equal
  result.same_frames = equal == pages
  return result
end

function M.explain(r)
  local lines = {
    ("The parent mapped the object at 0x%x, the exec'd child (pid %d) at 0x%x%s."):format(r.parent_address,
      r.child_pid, r.child_address, r.same_address and " (by chance the same address)" or ": another address"),
  }
  if r.skipped then
    lines[#lines + 1] = "Frame numbers cannot be compared here: " .. tostring(r.skipped)
  elseif r.same_frames then
    lines[#lines + 1] = ("pagemap: all %d pages sit on the same physical frames in both processes -"):format(r.pages)
    lines[#lines + 1] = "two page tables, one memory: that is what shared memory is."
  else
    lines[#lines + 1] = ("pagemap: only %d of %d pages sit on the same frames - unexpected for MAP_SHARED.")
      :format(r.frames_equal, r.pages)
  end
  return lines
end

return M
