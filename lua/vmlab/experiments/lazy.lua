--- lazy: allocation is lazy. malloc (or mmap) hands out addresses: VIRT jumps
-- by the size, RES does not move. The first write to each page faults, and
-- only then does the kernel give the page a frame: RES grows by the size.
-- (The seed's memtest, 000_*.txt; faults per page, 002_*.txt.)
local vm = require "vmlab"

local M = {
  name = "lazy",
  summary = "malloc gives addresses, not memory: VIRT jumps at once, RES grows only as pages are first written",
  params = { size = 256 * 1024 * 1024, alloc = "malloc", mode = "write" },
  choices = { alloc = { "malloc", "mmap" }, mode = { "write", "read" } },
  tour = { size = 256 * 1024 * 1024 },
  fields = { "alloc", "mode", "size", "pages", "virt_growth", "rss_growth_alloc", "rss_growth_touch",
             "minor_faults_touch", "seconds_touch", "ns_per_page" },
}

local function mem()
  local s = assert(vm.proc.status())
  return s.VmSize, s.VmRSS
end

--- params: size (bytes), alloc ("malloc" or "mmap"), mode ("write", or "read": the zero page, RES stays)
function M.run(p)
  if p.alloc ~= "malloc" and p.alloc ~= "mmap" then
    error(("lazy: alloc must be \"malloc\" or \"mmap\", not %q"):format(tostring(p.alloc)), 0)
  end
  if p.mode ~= "write" and p.mode ~= "read" then
    error(("lazy: mode must be \"write\" or \"read\", not %q"):format(tostring(p.mode)), 0)
  end
  collectgarbage("collect")
  local virt0, rss0 = mem()
  local r, err = (p.alloc == "malloc" and vm.malloc or vm.mmap)(p.size)
  if not r then return { skipped = ("%s(%d) failed: %s"):format(p.alloc, p.size, err), size = p.size } end
  local virt1, rss1 = mem()
  -- 4 KiB pages so that one fault is one page (no transparent huge pages)
  r:advise("nohugepage")
  -- a sample every 1 MiB: result.timeline (JSON, `vmlab run lazy --plot F.svg`)
  local t = r:touch(p.mode, { sample = 1 << 20 })
  local _, rss2 = mem()
  r:close()
  return {
    alloc = p.alloc,
    mode = p.mode,
    size = p.size,
    pages = t.pages,
    virt_growth = virt1 - virt0,
    rss_growth_alloc = rss1 - rss0,
    rss_growth_touch = rss2 - rss1,
    minor_faults_touch = t.minor_faults,
    seconds_touch = t.seconds,
    ns_per_page = t.seconds * 1e9 / t.pages,
    timeline = t.timeline,
  }
end

function M.explain(r)
  if r.skipped then return { "The allocation itself failed, so there was nothing to watch." } end
  local u = vm.units
  local first = ("%s(%s) added %s to VIRT but %s to RES: the kernel reserved addresses, not memory.")
    :format(r.alloc, u.bytes(r.size), u.bytes(r.virt_growth), u.bytes(r.rss_growth_alloc))
  if r.mode == "read" then
    return {
      first,
      ("Reading one byte of each of the %s pages cost %s minor faults, yet RES grew only %s:")
        :format(u.count(r.pages), u.count(r.minor_faults_touch), u.bytes(r.rss_growth_touch)),
      "every page was mapped to the kernel's shared zero page. Memory is spent on the first write.",
    }
  end
  return {
    first,
    ("Writing one byte into each of the %s pages cost %s minor page faults (about one per page),")
      :format(u.count(r.pages), u.count(r.minor_faults_touch)),
    ("and RES grew by %s: a page gets a physical frame only when it is first touched.")
      :format(u.bytes(r.rss_growth_touch)),
    ("Each first touch took about %.0f ns: a trap into the kernel, a zeroed frame, a page-table entry.")
      :format(r.ns_per_page),
  }
end

return M
