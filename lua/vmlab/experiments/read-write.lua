--- read-write: the first touch of fresh memory, read against write.
-- A first read faults too, but the kernel maps every page to one shared,
-- read-only page of zeros (the zero page): no new memory, one frame for all.
-- A later write to such a page faults again and gets a private copy. A first
-- write allocates and zeroes a frame per page. (000_*.txt: "reads vs writes".)
local vm = require "vmlab"

local M = {
  name = "read-write",
  summary = "first-touch read maps the shared zero page (no RSS); first-touch write allocates a frame per page",
  params = { size = 64 * 1024 * 1024 },
  tour = { size = 64 * 1024 * 1024 },
  writes = function(p) return 2 * p.size end, -- two regions of size, both written
  fields = { "size", "pages", "write_after_read_faults", "write_after_read_rss_growth",
             "minor_faults", "rss_growth", "seconds", "ns_per_page", "gib_per_s", "distinct_frames" },
}

local function rss()
  return assert(vm.proc.status()).VmRSS
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
local function first_touch(size, mode)
  local r = assert(vm.mmap(size))
  r:advise("nohugepage") -- one fault per 4 KiB page
  collectgarbage("collect")
  local before = rss()
  local t = r:touch(mode, { sample = 1 << 20 }) -- timeline: a sample every 1 MiB
  local after = rss()
  local frames, why = distinct_frames(r)
  return r, {
    minor_faults = t.minor_faults,
    rss_growth = after - before,
    seconds = t.seconds,
    ns_per_page = t.seconds * 1e9 / t.pages,
    gib_per_s = size / t.seconds / 2 ^ 30,
    distinct_frames = frames,
    timeline = t.timeline,
  }, why
end

--- params: size (bytes)
function M.run(p)
  local result = { size = p.size, pages = (p.size + vm.page_size - 1) // vm.page_size }
  local r, read, why = first_touch(p.size, "read")
  result.read = read
  -- now write the pages that were only read: each faults again (zero page -> own copy)
  local before = rss()
  local w = r:touch("write")
  result.write_after_read_faults = w.minor_faults
  result.write_after_read_rss_growth = rss() - before
  r:close()
  local r2, write = first_touch(p.size, "write")
  r2:close()
  result.write = write
  if why then result.frames_hidden = why end
  return result
end

function M.explain(r)
  local u = vm.units
  local lines = {
    ("Reading %s pages of fresh memory cost %s faults but RSS grew only %s:"):format(
      u.count(r.pages), u.count(r.read.minor_faults), u.bytes(r.read.rss_growth)),
  }
  if r.read.distinct_frames then
    lines[#lines + 1] = ("  pagemap shows %s distinct frame(s) behind them: every page maps the kernel's zero page.")
      :format(u.count(r.read.distinct_frames))
  else
    lines[#lines + 1] = "  every page maps the kernel's zero page (frame numbers are hidden here: " ..
      tostring(r.frames_hidden) .. ")."
  end
  lines[#lines + 1] = ("Writing those pages afterwards faulted %s times more: each write copies from the zero page.")
    :format(u.count(r.write_after_read_faults))
  lines[#lines + 1] = ("A first write to fresh memory: %s faults, RSS +%s, %s distinct frames: one real frame a page.")
    :format(u.count(r.write.minor_faults), u.bytes(r.write.rss_growth), u.count(r.write.distinct_frames))
  lines[#lines + 1] = ("Per page: read %.0f ns, write %.0f ns (the write zeroes a 4 KiB frame).")
    :format(r.read.ns_per_page, r.write.ns_per_page)
  return lines
end

return M
