--- tlb: the same memory read in page order and in random page order, with
-- 4 KiB pages and with 2 MiB huge pages.
-- Every access lands on a different page. The TLB caches a few thousand
-- translations: with 4 KiB pages that covers a few MiB, so a random walk over
-- a large region misses it almost every time and the MMU walks the page
-- table; one 2 MiB translation covers 512 times more, so with huge pages the
-- same walk mostly hits. In page order, prefetching hides most of either.
-- @module vmlab.experiments.tlb
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size
local SYS = "/sys/kernel/mm/transparent_hugepage/"

local function anon_huge_bytes(address)
  local m = vm.proc.mapping_at(address)
  return m and m.AnonHugePages or 0
end

-- Pre-fault a region with the given advice, then time both orders (best of `repeats`).
local function measure(opts, huge_size, advice)
  local r <close> = assert(vm.mmap(opts.size, { fixed_align = huge_size }))
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
  for _, order in ipairs({ "sequential", "random", "chase" }) do
    local walk = { stride = stride, order = order, seed = opts.seed, passes = passes }
    r:touch("read", { stride = stride, order = order, seed = opts.seed }) -- warm up caches and the TLB once
    local best
    for _ = 1, opts.repeats do
      local t = r:touch("read", walk)
      local ns = t.seconds / t.pages * 1e9
      if not best or ns < best then best = ns end
      out.faults = (out.faults or 0) + t.minor_faults + t.major_faults
    end
    out[order .. "_ns"] = best
  end
  return out
end

local M = {
  name = "tlb",
  summary = "pre-faulted memory read in page order vs random page order, 4 KiB vs 2 MiB pages: ns per access",
  params = {
    size = 512 * 1024 * 1024, -- far beyond what the TLB covers with 4 KiB pages (a few MiB)
    stride = 4096 + 64,        -- one access per page, each on another cache line (no cache-set pile-up)
    accesses = 2000000,        -- per timed walk (whole passes over the region)
    repeats = 3,               -- timed walks per case; the fastest counts
    seed = 1,                  -- of the random page order
  },
  tour = { size = 256 * 1024 * 1024, accesses = 1000000, repeats = 2 },
  units = {
    size = "bytes", stride = "bytes", accesses = "count", small_sequential_ns = "ns", small_random_ns = "ns",
    huge_sequential_ns = "ns", huge_random_ns = "ns", small_chase_ns = "ns", huge_chase_ns = "ns",
    anon_huge_bytes = "bytes", huge_skipped = "text",
    thp = "text",
  },
  fields = { "thp", "size", "stride", "accesses", "small_sequential_ns", "small_random_ns", "huge_sequential_ns",
             "huge_random_ns", "small_chase_ns", "huge_chase_ns", "anon_huge_bytes", "huge_skipped" },
}

function M.run(opts)
  assert(math.type(opts.size) == "integer" and opts.size >= 2 * 1024 * 1024, "size must be at least 2 MiB")
  assert(math.type(opts.stride) == "integer" and opts.stride >= PAGE, "stride must be at least a page")
  assert(opts.repeats >= 1 and opts.accesses >= 1, "repeats and accesses must be positive")
  local huge_size = 2 * 1024 * 1024
  local mode = vm.proc.vm_settings().thp_enabled
  local result = { size = opts.size, stride = opts.stride, thp = mode or "unavailable" }

  local small = measure(opts, huge_size, "nohugepage")
  if small.skipped then return { skipped = "madvise(MADV_NOHUGEPAGE) failed: " .. small.skipped } end
  result.accesses, result.passes = small.accesses, small.passes
  result.small_sequential_ns, result.small_random_ns = small.sequential_ns, small.random_ns
  result.small_chase_ns = small.chase_ns
  result.small_faults = small.faults
  result.anon_huge_bytes_small = small.anon_huge_bytes

  if mode == nil or mode == "never" then
    result.huge_skipped = mode == nil and "this kernel has no transparent huge pages"
      or "transparent huge pages are off (" .. SYS .. "enabled is 'never')"
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

function M.explain(res)
  local lines = {}
  if res.skipped then return { "Skipped: " .. res.skipped } end
  local function ns(x) return x and ("%.1f ns"):format(x) or "n/a" end
  lines[#lines + 1] = ("%s region, one read per page (%s accesses per walk, already faulted in, so no page faults):")
    :format(units.bytes(res.size), units.count(res.accesses))
  lines[#lines + 1] = ("  4 KiB pages: %s per access in page order, %s in random page order")
    :format(ns(res.small_sequential_ns), ns(res.small_random_ns))
  if res.huge_skipped then
    lines[#lines + 1] = "  2 MiB pages: skipped: " .. res.huge_skipped
  else
    lines[#lines + 1] = ("  2 MiB pages: %s per access in page order, %s in random page order")
      :format(ns(res.huge_sequential_ns), ns(res.huge_random_ns))
    -- Same data, same order, only the page size differs: the gap is the TLB's doing.
    local gain = res.small_random_ns - res.huge_random_ns
    if gain > 0 then
      lines[#lines + 1] = ("In random order huge pages saved %s per access (%.0f%% faster): same data, same order, "
        .. "only the page size changed, so that is the TLB: with 4 KiB pages most accesses miss it and the MMU "
        .. "walks the page table."):format(ns(gain), 100 * gain / res.small_random_ns)
    else
      lines[#lines + 1] = "Here huge pages did not speed up the random walk: the TLB misses were hidden behind the "
        .. "cache misses (try a larger size)."
    end
  end
  lines[#lines + 1] = "The reads in page and random order are independent, so the CPU overlaps several misses at "
    .. "once: those are throughput numbers, smaller than the latency of one miss."
  if res.small_chase_ns then
    lines[#lines + 1] = ("A pointer chase (each read gives the address of the next, random page order) pays every "
      .. "miss in full: %s per access with 4 KiB pages%s."):format(ns(res.small_chase_ns),
      res.huge_chase_ns and (", %s with 2 MiB pages"):format(ns(res.huge_chase_ns)) or "")
  end
  return lines
end

return M
