--- tlb: the same memory read in page order, in random page order and as a
-- pointer chase, with base pages and with transparent huge pages.
-- Every access lands on a different page. The TLB caches a few thousand
-- translations: with base pages that covers a few MiB, so a random walk over
-- a large region misses it almost every time and the MMU walks the page
-- table; one huge-page translation covers huge_page_size / page_size times
-- more, so with huge pages the same walk mostly hits. In page order,
-- prefetching hides most of either; in a pointer chase each read waits for
-- the one before and pays every miss in full. The page sizes are this
-- machine's (vm.page_size and the kernel's PMD huge page size); the claims
-- about speed are ratios measured within one run, and a noisy machine may
-- not show them: the claims say what was measured.
-- @module vmlab.experiments.tlb
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size
local CACHE_LINE = 64
local MiB = 1024 * 1024
-- the kernel's PMD huge page size (2 MiB on x86-64, 512 MiB with 64 KiB pages on arm64):
-- a region must hold at least two of them for the huge-page half
local HUGE = require("vmlab.kernel")().huge_page_size or 0

local function anon_huge_bytes(address)
  local m = vm.proc.mapping_at(address)
  return m and m.AnonHugePages or 0
end

-- "4 KiB", "2 MiB", "64 KiB": a page size in words
local function size_name(n)
  if not n then return "?" end
  if n % (1 << 20) == 0 then return ("%d MiB"):format(n >> 20) end
  if n % 1024 == 0 then return ("%d KiB"):format(n >> 10) end
  return ("%d B"):format(n)
end

-- Pre-fault a region with the given advice, then time the three orders (best of `repeats`).
local function measure(opts, align, advice)
  local r <close> = assert(vm.mmap(opts.size, { fixed_align = align }))
  local ok, err = r:advise(advice)
  if not ok then return { skipped = err } end
  local fault = r:touch("write") -- every page present before timing: no faults are measured
  local out = {
    anon_huge_bytes = math.min(anon_huge_bytes(r.address), opts.size), prefault_faults = fault.minor_faults,
  }
  local stride = opts.stride
  local per_pass = (opts.size + stride - 1) // stride
  local passes = math.max(1, (opts.accesses + per_pass - 1) // per_pass)
  out.accesses = per_pass * passes
  out.passes = passes
  out.faults = 0
  for _, order in ipairs({ "sequential", "random", "chase" }) do
    local walk = { stride = stride, order = order, seed = opts.seed, passes = passes }
    r:touch("read", { stride = stride, order = order, seed = opts.seed }) -- warm up caches and the TLB once
    local best
    for _ = 1, opts.repeats do
      local t = r:touch("read", walk)
      local ns = t.seconds / t.pages * 1e9
      if not best or ns < best then best = ns end
      out.faults = out.faults + t.minor_faults + t.major_faults
    end
    out[order .. "_ns"] = best
  end
  return out
end

local M = {
  name = "tlb",
  summary = "pre-faulted memory read in page order, random page order and as a pointer chase, "
    .. "base pages vs huge pages: ns per access",
  params = {
    { name = "size", default = math.max(512 * MiB, 2 * HUGE), unit = "bytes", min = PAGE, max = 1 << 40,
      help = "the region walked (far beyond what the TLB covers with base pages; two huge pages at least)" },
    { name = "stride", default = PAGE + CACHE_LINE, unit = "bytes", min = PAGE, max = 1 << 30,
      help = "bytes between accesses, a multiple of 8 (a page and a cache line: a new page and line each time)" },
    { name = "accesses", default = 2000000, unit = "count", min = 1, max = 1 << 34,
      help = "accesses per timed walk (whole passes over the region)" },
    { name = "repeats", default = 3, unit = "count", min = 1, max = 100,
      help = "timed walks per case; the fastest counts" },
    { name = "seed", default = 1, unit = "count", min = 0, max = (1 << 31) - 1,
      help = "seed of the random page order" },
  },
  validate = function(p)
    if p.stride % 8 ~= 0 then return "--stride: must be a multiple of 8 bytes (the chase reads 8-byte slots)" end
    if p.stride > p.size then return "--stride: must be at most --size" end
  end,
  tour = { size = math.max(256 * MiB, 2 * HUGE), accesses = 1000000, repeats = 2 },
  fields = {
    { name = "thp", unit = "text", help = "THP mode" },
    { name = "page_size", unit = "bytes", help = "bytes in a base page" },
    { name = "huge_page_size", unit = "bytes", optional = true, help = "bytes in a huge page" },
    { name = "size", unit = "bytes", help = "the region walked" },
    { name = "stride", unit = "bytes", help = "bytes between accesses" },
    { name = "accesses", unit = "count", help = "accesses per timed walk" },
    { name = "passes", unit = "count", help = "passes over the region per walk" },
    { name = "small_sequential_ns", unit = "ns", help = "base pages, page order: time per access" },
    { name = "small_random_ns", unit = "ns", help = "base pages, random page order: time per access" },
    { name = "small_chase_ns", unit = "ns", help = "base pages, pointer chase: time per access" },
    { name = "huge_sequential_ns", unit = "ns", optional = true, help = "huge pages, page order: time per access" },
    { name = "huge_random_ns", unit = "ns", optional = true, help = "huge pages, random order: time per access" },
    { name = "huge_chase_ns", unit = "ns", optional = true, help = "huge pages, pointer chase: time per access" },
    { name = "anon_huge_bytes_small", unit = "bytes", help = "AnonHugePages of the base-page region" },
    { name = "anon_huge_bytes", unit = "bytes", optional = true, help = "AnonHugePages of the huge-page region" },
    { name = "small_faults", unit = "count", help = "faults during the timed base-page walks (0: pre-faulted)" },
    { name = "huge_faults", unit = "count", optional = true, help = "faults during the timed huge-page walks" },
    { name = "huge_skipped", unit = "text", optional = true, help = "why the huge-page half was not measured" },
  },
}

--- params: size (bytes), stride (bytes, at least a page), accesses, repeats, seed
function M.run(opts)
  local k = require("vmlab.kernel")()
  local huge_size = k.huge_page_size
  assert(math.type(opts.size) == "integer" and opts.size >= 64 * PAGE,
    "size must be an integer of at least 64 pages (" .. units.bytes(64 * PAGE) .. ")")
  assert(math.type(opts.stride) == "integer" and opts.stride >= PAGE,
    "stride must be at least a page (" .. PAGE .. " bytes)")
  assert(opts.repeats >= 1 and opts.accesses >= 1, "repeats and accesses must be positive")
  local mode = k.thp_enabled
  local result = { size = opts.size, stride = opts.stride, thp = mode or "unavailable", page_size = PAGE,
    huge_page_size = huge_size }

  local small = measure(opts, huge_size or PAGE, "nohugepage")
  if small.skipped then return { skipped = "madvise(MADV_NOHUGEPAGE) failed: " .. small.skipped } end
  result.accesses, result.passes = small.accesses, small.passes
  result.small_sequential_ns, result.small_random_ns = small.sequential_ns, small.random_ns
  result.small_chase_ns = small.chase_ns
  result.small_faults = small.faults
  result.anon_huge_bytes_small = small.anon_huge_bytes

  if not huge_size or mode == "unavailable" or mode == "never" then
    result.huge_skipped = (not huge_size or mode == "unavailable") and "this kernel has no transparent huge pages"
      or "transparent huge pages are off (/sys/kernel/mm/transparent_hugepage/enabled is 'never')"
    return result
  end
  if opts.size < 2 * huge_size then
    result.huge_skipped = ("the region (%s) is smaller than two huge pages of %s"):format(units.bytes(opts.size),
      size_name(huge_size))
    return result
  end
  local huge = measure(opts, huge_size, "hugepage")
  if huge.skipped then
    result.huge_skipped = "madvise(MADV_HUGEPAGE) failed: " .. huge.skipped
    return result
  end
  result.anon_huge_bytes = huge.anon_huge_bytes
  if huge.anon_huge_bytes < opts.size // 2 then
    result.huge_skipped = ("the kernel gave only %s of huge pages for %s (memory too fragmented?)")
      :format(units.bytes(huge.anon_huge_bytes), units.bytes(opts.size))
    return result
  end
  result.huge_sequential_ns, result.huge_random_ns = huge.sequential_ns, huge.random_ns
  result.huge_chase_ns = huge.chase_ns
  result.huge_faults = huge.faults
  return result
end

-- Margins of the speed claims: a ratio counts as "slower"/"faster" only past them.
M.margins = {
  random = 1.1, -- random page order vs page order (independent reads: the CPU overlaps misses)
  chase = 2,    -- pointer chase vs page order (every miss paid in full: usually many times slower)
  huge = 1.1,   -- base pages vs huge pages (geometric mean of the random walk's and the chase's ratios)
}

local function ns(x) return x and ("%.1f ns"):format(x) or "n/a" end

local function ratio_claim(slow, fast, margin, what)
  if not (slow and fast and fast > 0) then return nil end
  local ratio = slow / fast
  return ratio >= margin, ("%s: ratio %.2f (counted from %.2f)"):format(what, ratio, margin), ratio
end

M.claims = {
  { id = "prefaulted",
    text = "the timed walks take no page faults: every page was faulted in before the clock started",
    decide = function(r)
      local allowed = math.max(8, r.accesses // 1000)
      local faults = r.small_faults + (r.huge_faults or 0)
      local ev = ("%s page faults in the timed walks over %s pages%s (%s accesses per walk)")
        :format(units.count(r.small_faults), size_name(r.page_size),
          r.huge_faults and (", %s over %s pages"):format(units.count(r.huge_faults), size_name(r.huge_page_size))
            or "", units.count(r.accesses))
      return faults <= allowed, ev
    end },
  { id = "huge_pages_backed",
    text = "with MADV_HUGEPAGE the kernel backs the region with huge pages, with MADV_NOHUGEPAGE with none",
    requires = "thp",
    decide = function(r)
      if r.anon_huge_bytes == nil then return nil, r.huge_skipped, r.huge_skipped end
      local holds = r.anon_huge_bytes >= r.size // 2 and r.anon_huge_bytes_small == 0
      return holds, ("smaps AnonHugePages: %s of %s with MADV_HUGEPAGE, %s with MADV_NOHUGEPAGE")
        :format(units.bytes(r.anon_huge_bytes), units.bytes(r.size), units.bytes(r.anon_huge_bytes_small)),
        not holds and r.huge_skipped or nil
    end,
    explain = function(r)
      return ("One %s huge page replaces %d page-table entries and takes one TLB entry instead of %d.")
        :format(size_name(r.huge_page_size), r.huge_page_size // r.page_size, r.huge_page_size // r.page_size)
    end },
  { id = "random_slower",
    text = "reading one byte per page in random page order is slower than in page order",
    timing = true,
    decide = function(r)
      local holds, ev = ratio_claim(r.small_random_ns, r.small_sequential_ns, M.margins.random,
        ("%s pages: %s per access in random order, %s in page order"):format(size_name(r.page_size),
          ns(r.small_random_ns), ns(r.small_sequential_ns)))
      return holds, ev, holds == false and "the independent random reads overlapped their misses well enough "
        .. "on this run (the CPU runs many at once; a noisy machine blurs the rest)" or nil
    end,
    explain = function()
      return "In random order nearly every access misses the TLB and the caches; in page order prefetching "
        .. "hides much of it."
    end },
  { id = "chase_slower",
    text = "a pointer chase, where each read waits for the one before, is much slower than reads in page order",
    decide = function(r)
      return ratio_claim(r.small_chase_ns, r.small_sequential_ns, M.margins.chase,
        ("%s pages: %s per access in the chase, %s in page order"):format(size_name(r.page_size),
          ns(r.small_chase_ns), ns(r.small_sequential_ns)))
    end,
    explain = function()
      return "The chase pays every TLB and cache miss in full; independent reads overlap them, so their time is "
        .. "throughput, smaller than the latency of one miss."
    end },
  { id = "huge_faster_random",
    text = "huge pages make random access faster: one TLB entry covers a whole huge page",
    requires = "thp",
    timing = true,
    decide = function(r)
      if not r.huge_chase_ns then return nil, r.huge_skipped, r.huge_skipped end
      -- both random-page-order walks decide: the independent reads (throughput) and the
      -- chase (latency); their geometric mean is steadier than either on a noisy machine
      local walk, chase = r.small_random_ns / r.huge_random_ns, r.small_chase_ns / r.huge_chase_ns
      local mean = math.sqrt(walk * chase)
      local ev = ("random page order: %s per access with %s pages, %s with %s pages (ratio %.2f); pointer chase: "
        .. "%s vs %s (ratio %.2f); geometric mean %.2f (counted from %.2f)"):format(ns(r.small_random_ns),
        size_name(r.page_size), ns(r.huge_random_ns), size_name(r.huge_page_size), walk, ns(r.small_chase_ns),
        ns(r.huge_chase_ns), chase, mean, M.margins.huge)
      local holds = mean >= M.margins.huge
      return holds, ev, not holds and "the TLB misses were hidden behind cache misses or noise on this run "
        .. "(try a larger size or more repeats)" or nil
    end,
    explain = function(r)
      return ("Same data, same order, only the page size changed: the gap is the TLB's. One %s entry covers "
        .. "%d times the memory of a %s one."):format(size_name(r.huge_page_size), r.huge_page_size // r.page_size,
        size_name(r.page_size))
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(res)
  if res.skipped then return { "Skipped: " .. res.skipped } end
  local lines = {}
  lines[#lines + 1] = ("%s region, one read per page (%s accesses per walk, pages faulted in before timing):")
    :format(units.bytes(res.size), units.count(res.accesses))
  lines[#lines + 1] = ("  %s pages: %s per access in page order, %s in random page order, %s in a pointer chase")
    :format(size_name(res.page_size), ns(res.small_sequential_ns), ns(res.small_random_ns), ns(res.small_chase_ns))
  if res.huge_skipped then
    lines[#lines + 1] = ("  %s pages: skipped: %s"):format(size_name(res.huge_page_size), res.huge_skipped)
  else
    lines[#lines + 1] = ("  %s pages: %s per access in page order, %s in random page order, %s in a pointer chase")
      :format(size_name(res.huge_page_size), ns(res.huge_sequential_ns), ns(res.huge_random_ns),
        ns(res.huge_chase_ns))
  end
  return lines
end

M.size_name = size_name

-- Its chart (vmlab run tlb --plot FILE.svg|png, vmlab report): time per access in each order, with base pages
-- and with huge pages.
M.charts = {
  { kind = "bars", title = "time per access: base pages against huge pages",
    panels = function(r)
      local units_of = require "vmlab.units"
      local small = ("%s pages"):format(units_of.bytes(r.page_size or 0))
      local huge = ("%s huge pages"):format(units_of.bytes(r.huge_page_size or 0))
      local groups = {}
      for _, o in ipairs { { "sequential", "in page order" }, { "random", "random page order" },
        { "chase", "pointer chase" } } do
        local s, h = r["small_" .. o[1] .. "_ns"], r["huge_" .. o[1] .. "_ns"]
        groups[#groups + 1] = { label = o[2], bars = { { name = small, value = s and s * 1e-9 },
          { name = huge, value = h and h * 1e-9 } } }
      end
      return { { unit = "seconds", axis = "time per access", groups = groups } }
    end },
}

return M
