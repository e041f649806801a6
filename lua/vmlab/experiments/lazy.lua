--- lazy: allocation is lazy. malloc (or mmap) hands out addresses: VIRT jumps
-- by the size, RES does not move. The first write to each page faults, and
-- only then does the kernel give the page a frame: RES grows by what was
-- written. With `--mode read` the pages are only read: on a kernel that maps
-- the shared zero page for read faults RES stays put; on one that does not
-- (s390, some virtual machines, `pvm_no_zero_page=1`), and always for shared
-- memory (`--alloc shared`), every page read gets a frame of its own. The
-- claims below say which happened. (The seed's memtest, 000_*.txt; faults per
-- page, 002_*.txt.)
local vm = require "vmlab"

local M = {
  name = "lazy",
  summary = "malloc gives addresses, not memory: VIRT jumps at once, RES grows only as pages are first written",
  params = {
    { name = "size", default = 256 * 1024 * 1024, unit = "bytes", min = vm.page_size, max = 1 << 40,
      help = "memory to allocate and touch" },
    { name = "alloc", default = "malloc", unit = "choice", choices = { "malloc", "mmap", "shared" },
      help = "how to get it: malloc, a private mmap, or shared anonymous memory" },
    { name = "mode", default = "write", unit = "choice", choices = { "write", "read" },
      help = "touch each page by a write or by a read" },
  },
  tour = { size = 256 * 1024 * 1024 },
  -- a write fills the size; so does a read of shared memory (shmem gives every page read a frame)
  writes = function(p) return (p.mode == "write" or p.alloc == "shared") and p.size or 0 end,
  fields = {
    { name = "alloc", unit = "text", help = "how the memory was allocated" },
    { name = "mode", unit = "text", help = "how each page was touched: write or read" },
    { name = "size", unit = "bytes", help = "the memory allocated" },
    { name = "pages", unit = "count", optional = true, help = "base pages touched" },
    { name = "page_size", unit = "bytes", optional = true, help = "bytes in a base page" },
    { name = "written", unit = "bytes", optional = true, help = "bytes written (0 in read mode)" },
    { name = "virt_growth", unit = "bytes", optional = true, help = "VmSize growth at the allocation" },
    { name = "rss_growth_alloc", unit = "bytes", optional = true, help = "VmRSS growth at the allocation" },
    { name = "rss_growth_touch", unit = "bytes", optional = true, help = "VmRSS growth while touching every page" },
    { name = "minor_faults_touch", unit = "count", optional = true, help = "minor faults while touching" },
    { name = "pfnzero", unit = "count", optional = true,
      help = "pages mapped to the zero page afterwards (PAGEMAP_SCAN; absent before Linux 6.7)" },
    { name = "touch_seconds", unit = "seconds", optional = true, help = "time to touch every page" },
    { name = "ns_per_page", unit = "ns", optional = true, help = "touch time per page" },
    { name = "timeline", unit = "timeline", optional = true, help = "RSS, VIRT and faults every 1 MiB touched" },
  },
}

local function mem()
  local s = assert(vm.proc.status())
  return s.VmSize, s.VmRSS
end

local function allocate(alloc, size)
  if alloc == "malloc" then return vm.malloc(size) end
  return vm.mmap(size, { share = alloc == "shared" and "shared" or "private" })
end

--- params: size (bytes), alloc ("malloc", "mmap", or "shared": shared anonymous memory, which never maps
-- the zero page), mode ("write", or "read": pages only read)
function M.run(p)
  collectgarbage("collect")
  local virt0, rss0 = mem()
  local r, err = allocate(p.alloc, p.size)
  if not r then return { skipped = ("%s(%d) failed: %s"):format(p.alloc, p.size, err), size = p.size } end
  local virt1, rss1 = mem()
  -- base pages, so that one fault is one page (no transparent huge pages)
  r:advise("nohugepage")
  -- a sample every 1 MiB: result.timeline (JSON, `vmlab run lazy --plot F.svg`)
  local t = r:touch(p.mode, { sample = 1 << 20 })
  local _, rss2 = mem()
  -- PAGEMAP_SCAN (Linux 6.7+, no privilege needed): how many pages sit on the zero page
  local scan = r:scan()
  r:close()
  return {
    alloc = p.alloc,
    mode = p.mode,
    size = p.size,
    pages = t.pages,
    page_size = vm.page_size,
    written = p.mode == "write" and p.size or 0,
    virt_growth = virt1 - virt0,
    rss_growth_alloc = rss1 - rss0,
    rss_growth_touch = rss2 - rss1,
    minor_faults_touch = t.minor_faults,
    pfnzero = scan and scan.pfnzero,
    touch_seconds = t.seconds,
    ns_per_page = t.seconds * 1e9 / t.pages,
    timeline = t.timeline,
  }
end

local u = vm.units

local function signed(n) return (n >= 0 and "+" or "") .. u.bytes(n) end

-- n is within [lo, hi] times the page count
local function per_page(n, pages, lo, hi)
  return n ~= nil and n >= pages * lo and n <= pages * hi
end

M.claims = {
  { id = "virt_at_once",
    text = "the allocation adds its whole size to VIRT at once",
    decide = function(r)
      local why = r.alloc == "malloc" and r.virt_growth < r.size * 0.9 and
        "malloc served the block from address space the process already had (glibc serves blocks below its " ..
        "mmap threshold from the heap, and keeps freed heap memory)" or nil
      return r.virt_growth >= r.size * 0.99 and r.virt_growth <= r.size * 1.1 + (4 << 20),
        ("%s(%s): VIRT %s"):format(r.alloc, u.bytes(r.size), signed(r.virt_growth)), why
    end,
    explain = function()
      return "The kernel reserved addresses, not memory: a mapping the size of the request, with no frames yet."
    end },
  { id = "no_rss_at_allocation",
    text = "RES does not grow at allocation: no page has a frame before it is touched",
    decide = function(r)
      -- an allocator may touch a page of bookkeeping; AddressSanitizer's malloc also
      -- poisons the block's shadow (one byte per 8); zeroing the block would be all of it
      return r.rss_growth_alloc < r.size * 0.2,
        ("RES %s at %s(%s)"):format(signed(r.rss_growth_alloc), r.alloc, u.bytes(r.size))
    end },
  { id = "first_touch_faults",
    text = "every page faults once, at its first touch (a write, or a read)",
    decide = function(r)
      return per_page(r.minor_faults_touch, r.pages, 0.9, 1.1),
        ("the first %s of %s pages cost %s minor faults"):format(r.mode, u.count(r.pages),
          u.count(r.minor_faults_touch))
    end,
    explain = function(r)
      return r.mode == "write" and
        "Each first write trapped into the kernel, which found a frame, zeroed it and mapped it." or
        "Each first read trapped into the kernel, which mapped the page before the read could go on."
    end },
  { id = "rss_follows_writes",
    text = "RES grows by what was written and no more: pages only read take no memory",
    -- reading private memory takes none only where reads map the zero page
    requires = function(r) return r.mode == "read" and r.alloc ~= "shared" and "zero_page" or nil end,
    decide = function(r, k)
      local ev = (r.mode == "write" and "wrote %s: RES %s" or "read %s, wrote none of it: RES %s")
        :format(u.bytes(r.size), signed(r.rss_growth_touch))
      if r.pfnzero and r.mode == "read" then
        ev = ev .. ("; PAGEMAP_SCAN: %s of %s pages on the zero page"):format(u.count(r.pfnzero), u.count(r.pages))
      end
      local holds = r.rss_growth_touch >= r.written * 0.9 and r.rss_growth_touch <= r.written + r.size * 0.1
      local why
      if not holds and r.mode == "read" then
        if r.alloc == "shared" then
          why = "shared memory never maps the zero page: a read fault of shmem allocates a page of its own"
        elseif k and k.zero_page == false then
          local _, reason = require("vmlab.kernel").has("zero_page")
          why = reason
        end
      end
      return holds, ev, why
    end,
    explain = function(r)
      return r.mode == "write" and "A page gets a physical frame only when it is first written." or
        "Every page read was mapped to the kernel's one shared page of zeros: memory is spent on the first write."
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  if r.skipped then return { "The allocation itself failed, so there was nothing to watch." } end
  return {
    ("%s(%s): VIRT %s, RES %s at once."):format(r.alloc, u.bytes(r.size), signed(r.virt_growth),
      signed(r.rss_growth_alloc)),
    ("Then a %s of one byte in each of the %s pages: %s minor faults, RES %s, %s per page.")
      :format(r.mode, u.count(r.pages), u.count(r.minor_faults_touch), signed(r.rss_growth_touch),
        u.seconds(r.ns_per_page / 1e9)),
  }
end

-- Its chart (vmlab run lazy --plot FILE.svg|png, vmlab report): RSS climbs page by page as the memory is first
-- touched, while VIRT holds the whole allocation from the start.
M.charts = {
  { kind = "timeline", title = function(r)
      return ("RSS grows only as the memory is first %s; VIRT holds it all from the start"):format(
        r.mode == "read" and "read" or "written")
    end },
}

return M
