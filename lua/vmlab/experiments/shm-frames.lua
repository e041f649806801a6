--- shm-frames: one POSIX shared-memory object, two processes, two virtual
-- addresses, the same physical frames (001_*.txt, section 5).
-- The parent creates the object (shm_open O_CREAT|O_EXCL, ftruncate, mmap),
-- writes its pages and reads their frame numbers from /proc/self/pagemap;
-- a child started with fork + exec opens the object by name, maps it at an
-- address of its own choosing, and reports its address and frames through a
-- report area at the end of the object. The page tables differ, the frames
-- do not. Frame numbers need CAP_SYS_ADMIN; without it the parent still sees
-- in pagemap that its pages are the object's shared pages (the file/shared
-- bit, or PAGEMAP_SCAN's file category), not private copies, and a child that
-- reports its smaps Shared_* bytes shows that its pages are mapped by the
-- parent too. The claims say which evidence decided.
-- @module vmlab.experiments.shm-frames
local vm = require "vmlab"
local names = require "vmlab.sum.names"

local M = {
  name = "shm-frames",
  summary = "a parent and an exec'd child map one shm object at different addresses onto the same physical frames",
  params = {
    { name = "size", default = 64 * vm.page_size, unit = "bytes", min = vm.page_size, max = (1 << 20) * vm.page_size,
      help = "the shared memory object both processes map (whole pages: rounded up)" },
  },
  tour = { size = 16 * vm.page_size },
  fields = {
    { name = "pages", unit = "count", help = "pages of the object" },
    { name = "parent_address", unit = "address", help = "where the parent mapped it" },
    { name = "child_address", unit = "address", help = "where the exec'd child mapped it" },
    { name = "same_address", unit = "boolean", help = "the two addresses are equal" },
    { name = "parent_shared_pages", unit = "count", optional = true,
      help = "the parent's pages mapped by another process too" },
    { name = "shared_pages_how", unit = "text", optional = true, help = "how they were counted" },
    { name = "frames_equal", unit = "count", optional = true, help = "pages on the same frame in both processes" },
    { name = "same_frames", unit = "boolean", optional = true, help = "every page is on the same frame" },
    { name = "child_shared_bytes", unit = "bytes", optional = true, help = "the child's smaps Shared_* bytes of it" },
    { name = "child_file_pages", unit = "count", optional = true,
      help = "the child's pages PAGEMAP_SCAN calls file pages" },
    { name = "child_pid", unit = "integer", help = "the child's pid" },
    { name = "frames_hidden", unit = "text", optional = true, help = "why frame numbers could not be compared" },
  },
}

local function peer_program()
  return package.searchpath("vmlab.experiments.shm-frames.child", package.path)
end

-- The report area after the data pages (written by the child, shm-frames/child.lua):
--   +0 its mapping's address, +8 its pid, +16 PAGES or -1 (frames hidden), +16+8*i frame of page i;
--   then, where the child reports them (else they stay -1): +24+8*PAGES its smaps Shared_Clean +
--   Shared_Dirty bytes of the mapping, +32+8*PAGES its PAGEMAP_SCAN file pages of the data.
local function extras_at(report, pages) return report + 24 + 8 * pages end

-- Pages of [address, address + pages pages) that pagemap marks file-backed or shared
-- (PAGEMAP_SCAN's file category, else pagemap's bit 61 page by page).
local function shared_pages(s, pages)
  local scan = s:scan(0, pages * vm.page_size)
  if scan then return scan.file, "PAGEMAP_SCAN" end
  local n = 0
  for i = 0, pages - 1 do
    local e = vm.pagemap(s.address + i * vm.page_size)
    if e and e.present and e.file_or_shared then n = n + 1 end
  end
  return n, "pagemap"
end

--- params: pages (how many pages the object holds, besides its report area)
function M.run(p)
  local pages = (p.size + vm.page_size - 1) // vm.page_size
  local data = pages * vm.page_size
  local report = data
  local extras = extras_at(report, pages)
  local size = data + ((40 + 8 * pages + vm.page_size - 1) // vm.page_size) * vm.page_size
  names.sweep("frames")
  local s <close> = assert(vm.shm_open(names.unique("frames"), { create = true, exclusive = true, size = size,
    mode = tonumber("600", 8) }))
  s:fill(0x5a, 0, data) -- give every page its frame before anybody looks
  s:atomic_store(extras, -1)
  s:atomic_store(extras + 8, -1)
  local parent_frames, hidden = s:frames(0, pages)

  local prog = assert(peer_program(), "cannot find vmlab/experiments/shm-frames/child.lua on package.path")
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
  result.parent_shared_pages, result.shared_pages_how = shared_pages(s, pages)
  local shared, file = s:atomic_load(extras), s:atomic_load(extras + 8)
  if shared >= 0 then result.child_shared_bytes = shared end
  if file >= 0 then result.child_file_pages = file end
  local counted = s:atomic_load(report + 16)
  if not parent_frames or counted < 0 then
    result.frames_hidden = hidden or "frame numbers are hidden from the child"
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

local u = vm.units

M.claims = {
  { id = "different_addresses",
    text = "the parent and the exec'd child map the object at different virtual addresses",
    decide = function(r)
      return r.parent_address ~= r.child_address,
        ("parent 0x%x, child (pid %d) 0x%x"):format(r.parent_address, r.child_pid, r.child_address),
        r.parent_address == r.child_address and "both chose the same free range (address randomization off?)" or nil
    end },
  { id = "shared_pages",
    text = "the object's pages are shared pages in the parent, not private copies",
    decide = function(r)
      return r.parent_shared_pages == r.pages,
        ("%s: %s of %s pages of the parent's mapping file-backed/shared"):format(r.shared_pages_how or "pagemap",
          u.count(r.parent_shared_pages), u.count(r.pages))
    end,
    explain = function()
      return "MAP_SHARED of a shm object maps the object's own pages (its page cache), so every process that maps "
        .. "it reaches the same pages."
    end },
  { id = "same_frames",
    text = "the two mappings sit on the same physical frames: two page tables, one memory",
    decide = function(r)
      if r.frames_equal then
        return r.frames_equal == r.pages, ("pagemap: %s of %s pages on the same frame in both processes")
          :format(u.count(r.frames_equal), u.count(r.pages))
      end
      if r.child_shared_bytes then
        local want = r.pages * (r.page_size or vm.page_size)
        local holds = r.child_shared_bytes >= want and (r.child_file_pages == nil or r.child_file_pages == r.pages)
        return holds, ("the child's smaps: Shared_* %s for %s of data (a page counts as shared when another "
          .. "process maps it too)%s"):format(u.bytes(r.child_shared_bytes), u.bytes(want), r.child_file_pages
          and (", its PAGEMAP_SCAN: %s of %s pages file-backed/shared"):format(u.count(r.child_file_pages),
            u.count(r.pages)) or "")
      end
      return nil, "frame numbers hidden (" .. tostring(r.frames_hidden) .. ") and the child reported no smaps Shared_*"
    end,
    explain = function()
      return "Two page tables, one memory: that is what shared memory is."
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  local lines = {
    ("The parent mapped the object at 0x%x, the exec'd child (pid %d) at 0x%x."):format(r.parent_address,
      r.child_pid, r.child_address),
    ("%s of %d pages of the parent's mapping are file-backed/shared (%s)."):format(u.count(r.parent_shared_pages),
      r.pages, r.shared_pages_how or "pagemap"),
  }
  if r.frames_equal then
    lines[#lines + 1] = ("pagemap: %d of %d pages on the same physical frame in both processes."):format(
      r.frames_equal, r.pages)
  else
    lines[#lines + 1] = "Frame numbers cannot be compared here: " .. tostring(r.frames_hidden)
  end
  if r.child_shared_bytes then
    lines[#lines + 1] = ("The child's smaps counted %s of its mapping as shared."):format(
      u.bytes(r.child_shared_bytes))
  end
  return lines
end

-- Its chart (vmlab run shm-frames --plot FILE.svg|png, vmlab report): the pages of the shared object, how many
-- each process counts as shared, and how many lie on the same frame in both.
M.charts = {
  { kind = "bars", title = "two processes map the same frames of one shared object",
    panels = function(r)
      return { { unit = "pages", groups = {
        { label = "pages of the object", value = r.pages },
        { label = "shared in the parent", value = r.parent_shared_pages },
        { label = "file pages in the child", value = r.child_file_pages },
        { label = "on the same frame", value = r.frames_equal } } } }
    end },
}

return M
