--- cow: copy-on-write after fork. The child starts with the parent's page
-- tables, every private page write-protected and shared by both processes.
-- Reading costs the child nothing and shows the parent's frames; the first
-- write to each page faults once and the kernel copies the page into a new
-- frame for the writer. The parent's data never changes. (000_*.txt, 001_*.txt)
local vm = require "vmlab"

local M = {
  name = "cow",
  summary = "fork shares pages copy-on-write: the child's reads fault nothing, each first write copies one page",
  params = { pages = 2048 },
  tour = { pages = 2048 },
  writes = function(p) return 2 * p.pages * 4096 end, -- the parent's pages and the child's copies
  fields = { "pages", "child_read_faults", "child_write_faults", "shared_frames_before_write",
             "shared_frames_after_write", "parent_intact",
             "parent_before_fork", "child_after_fork", "child_after_write", "parent_after_child", "rss", "shared" },
}

local PARENT, CHILD = 0xA5, 0x5C

-- Shared and private bytes of the mapping that starts at address, from smaps.
local function smaps_of(address)
  local m = vm.proc.mapping_at(address)
  if not m then return nil end
  return {
    rss = m.Rss,
    shared = (m.Shared_Clean or 0) + (m.Shared_Dirty or 0),
    private = (m.Private_Clean or 0) + (m.Private_Dirty or 0),
  }
end

-- How many pages of `frames` sit on the same frame as in `parent`.
local function same_frames(parent, frames)
  if not (parent and frames) then return nil end
  local n = 0
  for i, pfn in ipairs(frames) do
    if pfn and pfn == parent[i] then n = n + 1 end
  end
  return n
end

--- params: pages (how many 4 KiB pages the parent writes before the fork)
function M.run(p)
  local size = p.pages * vm.page_size
  local r <close> = assert(vm.mmap(size))
  r:advise("nohugepage") -- the kernel copies 4 KiB pages, one fault each
  r:fill(PARENT)
  local parent_frames, hidden = r:frames(0, p.pages)
  local smaps = { parent_before_fork = smaps_of(r.address) }

  local child, status = vm.child.run(function()
    local out = { smaps_after_fork = smaps_of(r.address) }
    local rd = r:touch("read")
    out.read_faults = rd.minor_faults
    out.frames_before = r:frames(0, p.pages)
    local wr = r:touch("write", { value = CHILD, sample = 1 << 20 })
    out.write_faults = wr.minor_faults
    out.timeline = wr.timeline -- the child's copy-on-write faults, a sample every 1 MiB
    out.frames_after = r:frames(0, p.pages)
    out.smaps_after_write = smaps_of(r.address)
    return out
  end, { buffer = 64 * p.pages + (1 << 16), timeout = 60 })
  if not child then
    error("cow: the child failed: " .. tostring(status and (status.error or status.signal_name) or status), 0)
  end
  smaps.child_after_fork = child.smaps_after_fork
  smaps.child_after_write = child.smaps_after_write
  smaps.parent_after_child = smaps_of(r.address)

  local result = {
    pages = p.pages,
    child_read_faults = child.read_faults,
    child_write_faults = child.write_faults,
    shared_frames_before_write = same_frames(parent_frames, child.frames_before),
    shared_frames_after_write = same_frames(parent_frames, child.frames_after),
    parent_intact = r:read(0, size) == string.char(PARENT):rep(size),
    smaps = smaps,
    timeline = child.timeline,
  }
  if hidden then result.frames_hidden = hidden end
  return result
end

function M.explain(r)
  local u = vm.units
  local lines = {
    ("The parent wrote %s pages, then forked. The child read them all: %s faults -"):format(
      u.count(r.pages), u.count(r.child_read_faults)),
    "the child's page table already points at the parent's frames, write-protected.",
  }
  if r.shared_frames_before_write then
    lines[#lines + 1] = ("pagemap: %s of %s pages sat on the parent's very frames before the child wrote, %s after.")
      :format(u.count(r.shared_frames_before_write), u.count(r.pages), u.count(r.shared_frames_after_write))
  else
    lines[#lines + 1] = "(frame numbers are hidden here: " .. tostring(r.frames_hidden) .. ")"
  end
  lines[#lines + 1] = ("The child's writes cost %s faults, one per page: each copies a page into a new frame.")
    :format(u.count(r.child_write_faults))
  lines[#lines + 1] = r.parent_intact and "The parent's data is unchanged: the copies belong to the child alone."
    or "The parent's data CHANGED: that is not copy-on-write!"
  local s = r.smaps or {}
  if s.child_after_fork and s.child_after_write then
    lines[#lines + 1] = ("smaps in the child: %s shared / %s private after fork, %s shared / %s private after writing.")
      :format(u.bytes(s.child_after_fork.shared), u.bytes(s.child_after_fork.private),
        u.bytes(s.child_after_write.shared), u.bytes(s.child_after_write.private))
  end
  return lines
end

return M
