--- read-write: the first touch of fresh memory, read against write.
-- A first read faults too; on most kernels it maps every page to one shared,
-- read-only page of zeros (the zero page): no new memory, one frame for all,
-- and a later write faults again to get a private copy. Some kernels (s390,
-- some virtual machines, `pvm_no_zero_page=1`) give a read its own frame, and
-- shared memory (`--share shared`) never uses the zero page: the claims below
-- say which happened. A first write allocates and zeroes a frame per page.
-- (000_*.txt: "reads vs writes".)
local vm = require "vmlab"

local touch_fields = {
  { name = "minor_faults", unit = "count", help = "minor faults of the pass" },
  { name = "rss_growth", unit = "bytes", help = "VmRSS growth over the pass" },
  { name = "seconds", unit = "seconds", help = "time of the pass" },
  { name = "ns_per_page", unit = "ns", help = "time per page" },
  { name = "bytes_per_second", unit = "bytes_per_second", help = "bytes touched per second" },
  { name = "distinct_frames", unit = "count", optional = true,
    help = "distinct physical frames behind the pages (absent where frames are hidden)" },
  { name = "pfnzero", unit = "count", optional = true, help = "pages on the zero page (PAGEMAP_SCAN)" },
  { name = "timeline", unit = "timeline", help = "RSS, VIRT and faults every 1 MiB touched" },
}

local M = {
  name = "read-write",
  summary = "a first read of fresh memory faults: does it map the shared zero page? a first write gets a frame",
  params = {
    { name = "size", default = 64 * 1024 * 1024, unit = "bytes", min = vm.page_size, max = 1 << 40,
      help = "each of the two fresh regions (one read first, one written first)" },
    { name = "share", default = "private", unit = "choice", choices = { "private", "shared" },
      help = "private anonymous memory, or shared (whose reads never map the zero page)" },
  },
  tour = { size = 64 * 1024 * 1024 },
  writes = function(p) return 2 * p.size end, -- two regions of size, both written
  fields = {
    { name = "share", unit = "text", help = "private or shared memory" },
    { name = "size", unit = "bytes", help = "each region" },
    { name = "pages", unit = "count", help = "base pages in each region" },
    { name = "read", unit = "object", help = "the first pass over fresh memory by reads", fields = touch_fields },
    { name = "write_after_read_faults", unit = "count", help = "minor faults writing the pages that were read" },
    { name = "write_after_read_rss_growth", unit = "bytes", help = "VmRSS growth of that write" },
    { name = "write", unit = "object", help = "the first pass over fresh memory by writes", fields = touch_fields },
    { name = "frames_hidden", unit = "text", optional = true, help = "why physical frames could not be read" },
  },
}

local function rss()
  return assert(vm.proc.rss())
end

-- Distinct physical frames behind the present pages of r, or nil, reason.
local function distinct_frames(r)
  local frames, why = r:frames(0, r.pages)
  if not frames then return nil, why end
  local seen, n = {}, 0
  for _, pfn in ipairs(frames) do
    if pfn and not seen[pfn] then seen[pfn] = true; n = n + 1 end
  end
  return n
end

-- Map fresh memory, touch it once in `mode`; the region stays open.
local function first_touch(size, mode, share)
  local r = assert(vm.mmap(size, { share = share }))
  r:advise("nohugepage") -- one fault per base page
  collectgarbage("collect")
  local before = rss()
  local t = r:touch(mode, { sample = 1 << 20 }) -- timeline: a sample every 1 MiB
  local after = rss()
  local frames, why = distinct_frames(r)
  local scan = r:scan() -- PAGEMAP_SCAN: pages on the zero page, no privilege needed (Linux 6.7+)
  return r, {
    minor_faults = t.minor_faults,
    rss_growth = after - before,
    seconds = t.seconds,
    ns_per_page = t.seconds * 1e9 / t.pages,
    bytes_per_second = size / t.seconds,
    distinct_frames = frames,
    pfnzero = scan and scan.pfnzero,
    timeline = t.timeline,
  }, why
end

--- params: size (bytes), share ("private", or "shared": shared memory, whose reads never map the zero page)
function M.run(p)
  local result = { share = p.share, size = p.size, pages = (p.size + vm.page_size - 1) // vm.page_size }
  local r, read, why = first_touch(p.size, "read", p.share)
  result.read = read
  -- now write the pages that were only read: on the zero page each faults again
  local before = rss()
  local w = r:touch("write")
  result.write_after_read_faults = w.minor_faults
  result.write_after_read_rss_growth = rss() - before
  r:close()
  local r2, write = first_touch(p.size, "write", p.share)
  r2:close()
  result.write = write
  if why then result.frames_hidden = why end
  return result
end

local u = vm.units

-- n is within [lo, hi] times the page count
local function per_page(n, pages, lo, hi)
  return n ~= nil and n >= pages * lo and n <= pages * hi
end

M.claims = {
  { id = "read_faults",
    text = "a first read of fresh memory faults once per page",
    decide = function(r)
      return per_page(r.read.minor_faults, r.pages, 0.9, 1.1),
        ("%s minor faults for %s pages"):format(u.count(r.read.minor_faults), u.count(r.pages))
    end },
  { id = "read_zero_page",
    text = "a first read maps the shared zero page: RSS does not grow, one frame stands behind every page",
    requires = "zero_page",
    decide = function(r)
      local why = r.share == "shared" and
        "shared memory never maps the zero page: a read fault of shmem allocates a page of its own" or nil
      local rd = r.read
      local parts = { ("RSS %s%s"):format(rd.rss_growth >= 0 and "+" or "", u.bytes(rd.rss_growth)) }
      local holds = rd.rss_growth < r.size * 0.1
      if rd.distinct_frames then
        parts[#parts + 1] = ("%s distinct frame(s) behind %s pages"):format(u.count(rd.distinct_frames),
          u.count(r.pages))
        holds = holds and rd.distinct_frames <= 2
      end
      if rd.pfnzero then
        parts[#parts + 1] = ("PAGEMAP_SCAN: %s of %s pages on the zero page"):format(u.count(rd.pfnzero),
          u.count(r.pages))
        holds = holds and rd.pfnzero >= r.pages * 0.9
      end
      return holds, table.concat(parts, ", "), why
    end,
    explain = function()
      return "The kernel reserved no memory for the reads: every page points at its one read-only page of zeros."
    end },
  { id = "write_after_read_faults",
    text = "a write to pages that were only read faults again, once per page, and RSS grows by their size",
    requires = "zero_page",
    decide = function(r)
      local why = r.share == "shared" and
        "shared memory never maps the zero page, so its read already gave each page a writable frame" or nil
      local holds = per_page(r.write_after_read_faults, r.pages, 0.9, 1.1)
        and r.write_after_read_rss_growth >= r.size * 0.9
      return holds, ("%s minor faults for %s pages, RSS +%s"):format(u.count(r.write_after_read_faults),
        u.count(r.pages), u.bytes(r.write_after_read_rss_growth)), why
    end,
    explain = function()
      return "Each write replaced the zero page with a private, zeroed frame: copy-on-write from the zero page."
    end },
  { id = "write_gets_frames",
    text = "a first write faults once per page and gives every page a frame of its own",
    decide = function(r)
      local w = r.write
      local holds = per_page(w.minor_faults, r.pages, 0.9, 1.1) and w.rss_growth >= r.size * 0.9
      local ev = ("%s minor faults, RSS +%s"):format(u.count(w.minor_faults), u.bytes(w.rss_growth))
      if w.distinct_frames then
        holds = holds and w.distinct_frames >= r.pages * 0.99
        ev = ev .. (", %s distinct frames for %s pages"):format(u.count(w.distinct_frames), u.count(r.pages))
      end
      return holds, ev
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  return {
    ("Per page: a first read took %s, a first write %s.")
      :format(u.seconds(r.read.ns_per_page / 1e9), u.seconds(r.write.ns_per_page / 1e9)),
  }
end

-- Its charts (vmlab run read-write --plot FILE.svg|png, vmlab report): read against write in time, faults and
-- RSS; then both touches as timelines.
M.charts = {
  { kind = "bars", title = "a first read against a first write",
    panels = function(r)
      local rd, wr = r.read or {}, r.write or {}
      return {
        { title = "time per page", unit = "seconds", groups = {
          { label = "read", value = rd.ns_per_page and rd.ns_per_page * 1e-9 },
          { label = "write", value = wr.ns_per_page and wr.ns_per_page * 1e-9 } } },
        { title = "page faults", unit = "faults", groups = {
          { label = "read", value = rd.minor_faults }, { label = "write", value = wr.minor_faults },
          { label = "write after read", value = r.write_after_read_faults } } },
        { title = "RSS growth", unit = "bytes", axis = "RSS growth", groups = {
          { label = "read", value = rd.rss_growth }, { label = "write", value = wr.rss_growth },
          { label = "write after read", value = r.write_after_read_rss_growth } } },
      }
    end },
  { kind = "timeline", title = "RSS and faults while reading, then writing",
    timeline = function(r)
      local runs = {}
      for _, k in ipairs { "read", "write" } do
        if type(r[k]) == "table" and r[k].timeline then runs[#runs + 1] = { name = k, timeline = r[k].timeline } end
      end
      return runs
    end },
}

return M
