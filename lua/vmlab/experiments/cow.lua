--- cow: copy-on-write after fork. The child starts with the parent's page
-- tables, every private page write-protected and shared by both processes.
-- Reading costs the child nothing and shows the parent's frames; the first
-- write to each page faults once and the kernel copies the page into a new
-- frame for the writer. The parent's data never changes. (000_*.txt, 001_*.txt)
-- Evidence of the sharing without privilege: the pagemap "exclusive" bit (56:
-- a page mapped by this process alone) and smaps Shared_*/Private_*; with
-- CAP_SYS_ADMIN also the frame numbers themselves. `--share shared` maps the
-- memory MAP_SHARED instead: one copy for both processes, never copied, so
-- the claims below come out the other way on any machine.
local vm = require "vmlab"

local M = {
  name = "cow",
  summary = "fork shares pages copy-on-write: the child's reads fault nothing, each first write copies one page",
  params = {
    { name = "size", default = 8 * 1024 * 1024, unit = "bytes", min = vm.page_size, max = 1 << 36,
      help = "memory the parent writes before the fork (whole pages: rounded up)" },
    { name = "share", default = "private", unit = "choice", choices = { "private", "shared" },
      help = "private: copy-on-write; shared: MAP_SHARED, one copy for both" },
  },
  tour = { size = 8 * 1024 * 1024 },
  writes = function(p) return 2 * p.size end, -- the parent's pages and the child's copies
  fields = {
    { name = "share", unit = "text", help = "private or shared memory" },
    { name = "pages", unit = "count", help = "pages the parent wrote before the fork" },
    { name = "size", unit = "bytes", help = "the memory written (whole pages)" },
    { name = "child_read_faults", unit = "count", help = "minor faults of the child reading every page" },
    { name = "child_write_faults", unit = "count", help = "minor faults of the child writing every page" },
    { name = "shared_frames_before_write", unit = "count", optional = true,
      help = "child pages on the parent's frames after its reads (absent where frames are hidden)" },
    { name = "shared_frames_after_write", unit = "count", optional = true,
      help = "child pages on the parent's frames after its writes" },
    { name = "parent_exclusive_before_fork", unit = "count", optional = true,
      help = "parent pages pagemap marks exclusive before the fork" },
    { name = "child_exclusive_after_read", unit = "count", optional = true,
      help = "child pages marked exclusive after its reads" },
    { name = "child_exclusive_after_write", unit = "count", optional = true,
      help = "child pages marked exclusive after its writes" },
    { name = "child_saw_parent_data", unit = "boolean", help = "the child read the parent's bytes" },
    { name = "parent_intact", unit = "boolean", help = "the parent's bytes were unchanged after the child wrote" },
    { name = "smaps", unit = "map", help = "smaps of the mapping at four moments", of = { unit = "object",
      fields = {
        { name = "rss", unit = "bytes", help = "resident bytes of the mapping" },
        { name = "shared", unit = "bytes", help = "Shared_Clean + Shared_Dirty" },
        { name = "private", unit = "bytes", help = "Private_Clean + Private_Dirty" },
      } } },
    { name = "timeline", unit = "timeline", help = "the child's writes: RSS, faults, shared and private bytes "
      .. "every 1 MiB" },
    { name = "frames_hidden", unit = "text", optional = true, help = "why physical frames could not be read" },
  },
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

-- How many of r's pages pagemap marks exclusive (bit 56: mapped by this
-- process only); nil when pagemap cannot be read. No privilege needed.
local function exclusive(r, pages)
  local n = 0
  for i = 0, pages - 1 do
    local e = vm.pagemap(r.address + i * vm.page_size)
    if not e then return nil end
    if e.present and e.exclusive then n = n + 1 end
  end
  return n
end

--- params: size (bytes the parent writes before the fork, in whole pages),
-- share ("private": copy-on-write; "shared": MAP_SHARED, one copy for both)
function M.run(p)
  local pages = (p.size + vm.page_size - 1) // vm.page_size
  local size = pages * vm.page_size
  local r <close> = assert(vm.mmap(size, { share = p.share }))
  r:advise("nohugepage") -- the kernel copies base pages, one fault each
  r:fill(PARENT)
  local parent_frames, hidden = r:frames(0, pages)
  local parent_exclusive = exclusive(r, pages)
  local smaps = { parent_before_fork = smaps_of(r.address) }

  local child, status = vm.child.run(function()
    local out = { smaps_after_fork = smaps_of(r.address) }
    local rd = r:touch("read")
    out.read_faults = rd.minor_faults
    out.saw_parent_data = r:read(0, size) == string.char(PARENT):rep(size)
    out.frames_before = r:frames(0, pages)
    out.exclusive_after_read = exclusive(r, pages)
    -- the writes a MiB at a time: after each, smaps says how much of the mapping is still shared (its
    -- timeline's samples carry shared= and private= bytes, what the chart draws)
    local tl, faults, majors, t0 = {}, 0, 0, vm.now()
    local m = smaps_of(r.address) or {}
    for off = 0, size - 1, 1 << 20 do
      local n, start = math.min(1 << 20, size - off), vm.now() - t0
      local wr = r:touch("write", { offset = off, length = n, value = CHILD, sample = n })
      for i = (off == 0 and 1 or 2), #wr.timeline do
        local s = wr.timeline[i]
        tl[#tl + 1] = { t = start + s.t, bytes = off + s.bytes, rss = s.rss, virt = s.virt,
          minor_faults = faults + s.minor_faults, major_faults = majors + s.major_faults }
        if i == 1 then tl[#tl].shared, tl[#tl].private = m.shared, m.private end
      end
      faults, majors = faults + wr.minor_faults, majors + wr.major_faults
      m = smaps_of(r.address) or {}
      tl[#tl].shared, tl[#tl].private = m.shared, m.private
    end
    out.write_faults = faults
    out.timeline = tl -- the child's copy-on-write faults, a sample every 1 MiB
    out.frames_after = r:frames(0, pages)
    out.exclusive_after_write = exclusive(r, pages)
    out.smaps_after_write = smaps_of(r.address)
    return out
  end, { buffer = 64 * pages + (1 << 16), timeout = 60 })
  if not child then
    error("cow: the child failed: " .. tostring(status and (status.error or status.signal_name) or status), 0)
  end
  smaps.child_after_fork = child.smaps_after_fork
  smaps.child_after_write = child.smaps_after_write
  smaps.parent_after_child = smaps_of(r.address)

  local result = {
    share = p.share,
    pages = pages,
    size = size,
    child_read_faults = child.read_faults,
    child_write_faults = child.write_faults,
    shared_frames_before_write = same_frames(parent_frames, child.frames_before),
    shared_frames_after_write = same_frames(parent_frames, child.frames_after),
    parent_exclusive_before_fork = parent_exclusive,
    child_exclusive_after_read = child.exclusive_after_read,
    child_exclusive_after_write = child.exclusive_after_write,
    child_saw_parent_data = child.saw_parent_data,
    parent_intact = r:read(0, size) == string.char(PARENT):rep(size),
    smaps = smaps,
    timeline = child.timeline,
  }
  if hidden then result.frames_hidden = hidden end
  return result
end

local u = vm.units

-- The exclusive bit is evidence only where it was seen set: the parent's own
-- pages, written by it alone before the fork, must all read exclusive.
local function exclusive_works(r)
  return r.parent_exclusive_before_fork ~= nil and r.parent_exclusive_before_fork >= r.pages * 0.99
end

local function smaps_line(s, when)
  return ("smaps %s: %s shared, %s private"):format(when, u.bytes(s.shared), u.bytes(s.private))
end

M.claims = {
  { id = "child_reads_free",
    text = "the child's reads of the parent's pages fault nothing",
    decide = function(r)
      local why = r.share == "shared" and
        "fork does not copy the page tables of a shared mapping: the child faults its pages in as it reads" or nil
      return r.child_read_faults <= r.pages * 0.02 + 16,
        ("%s minor faults for reading %s pages"):format(u.count(r.child_read_faults), u.count(r.pages)), why
    end,
    explain = function()
      return "Fork copied the parent's page tables: the child's pages were mapped already, write-protected."
    end },
  { id = "child_shares_frames",
    text = "after fork the child's pages are the parent's very frames, shared, with the parent's data",
    decide = function(r)
      local s = r.smaps and r.smaps.child_after_fork
      local holds, parts = r.child_saw_parent_data == true, {}
      parts[1] = r.child_saw_parent_data and "the child read the parent's bytes" or "the child read OTHER bytes"
      if r.shared_frames_before_write then
        holds = holds and r.shared_frames_before_write >= r.pages * 0.99
        parts[#parts + 1] = ("pagemap: %s of %s pages on the parent's frames"):format(
          u.count(r.shared_frames_before_write), u.count(r.pages))
      end
      if exclusive_works(r) and r.child_exclusive_after_read then
        holds = holds and r.child_exclusive_after_read <= r.pages * 0.01
        parts[#parts + 1] = ("pagemap exclusive bit: %s of %s pages mapped by the child alone (the parent's: %s)")
          :format(u.count(r.child_exclusive_after_read), u.count(r.pages), u.count(r.parent_exclusive_before_fork))
      end
      if s then
        holds = holds and s.shared >= r.size * 0.98
        parts[#parts + 1] = smaps_line(s, "in the child after fork")
      end
      local why = r.share == "shared" and s and s.rss < r.size * 0.5 and
        "fork does not copy a shared mapping's page tables: the child had none of its pages mapped until it " ..
        "read them" or nil
      return holds, table.concat(parts, "; "), why
    end,
    explain = function()
      return "Nothing was copied at fork: both page tables point at the same frames, read-only."
    end },
  { id = "write_copies_page",
    text = "each first write copies one page: one fault per page, and the copy is the child's own frame",
    decide = function(r)
      local s = r.smaps and r.smaps.child_after_write
      local holds = r.child_write_faults >= r.pages * 0.9 and r.child_write_faults <= r.pages * 1.1 + 16
      local parts = { ("%s minor faults for writing %s pages"):format(u.count(r.child_write_faults),
        u.count(r.pages)) }
      if r.shared_frames_after_write then
        holds = holds and r.shared_frames_after_write <= r.pages * 0.01
        parts[#parts + 1] = ("pagemap: %s still on the parent's frames"):format(u.count(r.shared_frames_after_write))
      end
      if exclusive_works(r) and r.child_exclusive_after_write then
        holds = holds and r.child_exclusive_after_write >= r.pages * 0.99
        parts[#parts + 1] = ("pagemap exclusive bit: %s of %s pages now the child's alone")
          :format(u.count(r.child_exclusive_after_write), u.count(r.pages))
      end
      if s then
        holds = holds and s.private >= r.size * 0.98
        parts[#parts + 1] = smaps_line(s, "in the child after writing")
      end
      local why = r.share == "shared" and
        "a shared mapping is one copy for both processes: a write changes it in place, nothing is copied" or nil
      return holds, table.concat(parts, "; "), why
    end,
    explain = function()
      return "Each write hit a write-protected page: the kernel copied it into a new frame for the writer."
    end },
  { id = "parent_unchanged",
    text = "the parent's data is unchanged by the child's writes",
    decide = function(r)
      local why = r.share == "shared" and "a shared mapping is one copy: the child's writes are the parent's" or nil
      return r.parent_intact == true,
        r.parent_intact and "the parent read back every byte it wrote" or "the parent read the CHILD's bytes", why
    end,
    explain = function() return "The copies belong to the child alone." end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  local lines = {
    ("The parent wrote %s pages (%s, %s), then forked. The child read them all: %s faults;")
      :format(u.count(r.pages), u.bytes(r.size), r.share, u.count(r.child_read_faults)),
    ("then wrote them all: %s faults."):format(u.count(r.child_write_faults)),
  }
  if not r.shared_frames_before_write then
    lines[#lines + 1] = "(" .. tostring(r.frames_hidden or "frame numbers are hidden") ..
      "; the pagemap exclusive bit and smaps stand in for them)"
  end
  return lines
end

-- Its charts (vmlab run cow --plot FILE.svg|png, vmlab report): the child's mapping, shared with the parent
-- after fork, turning private page by page as the child writes (smaps, sampled between its writes); then
-- smaps' shared and private bytes at each step.
M.charts = {
  { kind = "lines", title = "the child's copy-on-write: shared pages become private as it writes",
    x = { label = "bytes the child has written", quantity = "bytes" },
    left = { label = "the mapping in the child", quantity = "bytes" }, right = { label = "page faults so far" },
    series = function(r)
      local shared, private, faults = {}, {}, {}
      for _, s in ipairs(r.timeline or {}) do
        if s.shared and s.private then
          shared[#shared + 1] = { s.bytes, s.shared }
          private[#private + 1] = { s.bytes, s.private }
        end
        faults[#faults + 1] = { s.bytes, s.minor_faults or 0 }
      end
      return { { name = "shared with the parent", points = shared, color = "#1f77b4" },
        { name = "private (the child's copies)", points = private, color = "#d62728" },
        { name = "minor faults", points = faults, axis = "right", color = "#2ca02c", dash = "2 3" } }
    end },
  { kind = "bars", title = "smaps: shared and private bytes of the mapping",
    panels = function(r)
      local s = r.smaps or {}
      local groups = {}
      for _, step in ipairs { { "parent_before_fork", "parent before fork" },
        { "child_after_fork", "child after fork" }, { "child_after_write", "child after writing" },
        { "parent_after_child", "parent after the child" } } do
        local m = s[step[1]]
        if m then
          groups[#groups + 1] = { label = step[2], bars = { { name = "shared", value = m.shared, color = "#1f77b4" },
            { name = "private", value = m.private, color = "#d62728" } } }
        end
      end
      return { { unit = "bytes", axis = "the mapping", stacked = true, groups = groups } }
    end },
}

return M
