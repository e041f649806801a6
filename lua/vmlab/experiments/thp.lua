--- thp: transparent huge pages, one fault per huge page instead of one per base page.
-- An anonymous region aligned to the huge page size (the kernel's PMD size,
-- probed: 2 MiB on x86-64 with 4 KiB pages, other sizes elsewhere) is advised
-- MADV_NOHUGEPAGE and written page by page: one fault per base page. A second
-- region advised MADV_HUGEPAGE (param `advice`) is written the same way; where
-- THP is not "never" the kernel can back each huge page with one fault
-- (AnonHugePages in smaps, one contiguous run of frames in pagemap). The claims
-- below say what this run got.
-- @module vmlab.experiments.thp
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size
-- What one page-middle-directory entry maps where the kernel names no huge page
-- size: a page of 8-byte entries, each mapping a page.
local PMD_SPAN = PAGE * (PAGE // 8)

-- One field (in bytes) of the smaps entry of the mapping that holds address.
local function smaps_field(address, field)
  local m = vm.proc.mapping_at(address)
  return m and m[field]
end

-- How many huge-page-sized chunks of r are one run of consecutive frames,
-- starting on a frame number aligned to the run: nil where frames are hidden.
local function contiguous_chunks(r, huge_size)
  local per = huge_size // PAGE
  local frames = r:frames(0, r.pages)
  if not frames then return nil end
  local n = 0
  for c = 0, r.pages // per - 1 do
    local first = frames[c * per + 1]
    local ok = first and first % per == 0
    for i = 2, per do
      if not ok then break end
      ok = frames[c * per + i] == first + i - 1
    end
    if ok then n = n + 1 end
  end
  return n
end

-- Map `size` bytes aligned to the huge page size, advise it, write every base page.
local function trial(size, huge_size, advice)
  local r <close> = assert(vm.mmap(size, { fixed_align = huge_size }))
  local ok, err = r:advise(advice)
  if not ok then return { error = err } end
  local t = r:touch("write", { sample = 1 << 20 })
  local scan = r:scan() -- PAGEMAP_SCAN: pages mapped by huge pages, no privilege needed (Linux 6.7+)
  return {
    faults = t.minor_faults, seconds = t.seconds, pages = t.pages, timeline = t.timeline,
    anon_huge_bytes = math.min(smaps_field(r.address, "AnonHugePages") or 0, size),
    scan_huge_pages = scan and scan.huge,
    contiguous_chunks = contiguous_chunks(r, huge_size),
  }
end

local M = {
  name = "thp",
  summary = "transparent huge pages: a region with MADV_HUGEPAGE faults once per huge page, not once per base page",
  params = {
    { name = "size", default = 64 * 1024 * 1024, unit = "bytes", min = PAGE, max = 1 << 40,
      help = "each of the two regions (rounded up to whole huge pages)" },
    { name = "advice", default = "hugepage", unit = "choice", choices = { "hugepage", "nohugepage" },
      help = "the advice for the second region (nohugepage: both regions the same, the other kind)" },
  },
  tour = { size = 32 * 1024 * 1024 },
  fields = {
    { name = "mode", unit = "text", help = "THP mode: always, madvise or never" },
    { name = "defrag", unit = "text", help = "THP defrag setting" },
    { name = "advice", unit = "text", help = "the advice given to the second region" },
    { name = "size", unit = "bytes", help = "each region (whole huge pages)" },
    { name = "page_size", unit = "bytes", help = "bytes in a base page" },
    { name = "huge_page_size", unit = "bytes", help = "bytes in a huge page" },
    { name = "chunks", unit = "count", help = "huge pages in each region" },
    { name = "faults_small", unit = "count", optional = true, help = "faults writing the nohugepage region" },
    { name = "faults_huge", unit = "count", optional = true, help = "faults writing the advised region" },
    { name = "faults_per_huge_page_small", unit = "ratio", optional = true,
      help = "faults per huge-page-sized chunk, nohugepage region" },
    { name = "faults_per_huge_page", unit = "ratio", optional = true, help = "faults per chunk, advised region" },
    { name = "anon_huge_bytes_small", unit = "bytes", optional = true, help = "AnonHugePages, nohugepage region" },
    { name = "anon_huge_bytes", unit = "bytes", optional = true, help = "AnonHugePages, advised region" },
    { name = "scan_huge_pages", unit = "count", optional = true,
      help = "pages PAGEMAP_SCAN finds in huge pages, advised region" },
    { name = "contiguous_chunks", unit = "count", optional = true,
      help = "chunks whose frames are physically contiguous, advised region" },
    { name = "small_seconds", unit = "seconds", optional = true, help = "time writing the nohugepage region" },
    { name = "huge_seconds", unit = "seconds", optional = true, help = "time writing the advised region" },
    { name = "sanitized", unit = "boolean", optional = true, help = "run under a sanitizer (its shadow faults too)" },
    { name = "huge_error", unit = "text", optional = true, help = "why the advice failed" },
    { name = "timeline", unit = "timeline", optional = true, help = "the advised region's write: RSS and faults" },
  },
}

--- params: size (bytes, rounded up to huge pages), advice for the second region
-- ("hugepage", or "nohugepage": the same as the first, so no huge pages)
function M.run(opts)
  local k = require("vmlab.kernel")()
  local huge_size = k.huge_page_size or PMD_SPAN
  local size = opts.size
  assert(math.type(size) == "integer" and size > 0, "size must be a positive integer")
  size = (size + huge_size - 1) // huge_size * huge_size
  local chunks = size // huge_size
  local result = { size = size, page_size = PAGE, huge_page_size = huge_size, chunks = chunks,
                   mode = k.thp_enabled, defrag = k.thp_defrag, advice = opts.advice,
                   sanitized = k.allocator == "asan" or nil }

  local small = trial(size, huge_size, "nohugepage")
  if small.error then
    result.skipped = "madvise(MADV_NOHUGEPAGE) failed: " .. small.error
    return result
  end
  result.faults_small = small.faults
  result.small_seconds = small.seconds
  result.anon_huge_bytes_small = small.anon_huge_bytes
  result.faults_per_huge_page_small = small.faults / chunks

  -- the second region, measured whatever THP's mode: where it is "never" the numbers show that
  local huge = trial(size, huge_size, opts.advice)
  if huge.error then
    result.huge_error = ("madvise(MADV_%s) failed: %s"):format(opts.advice:upper(), huge.error)
    result.timeline = small.timeline
    return result
  end
  result.faults_huge = huge.faults
  result.huge_seconds = huge.seconds
  result.anon_huge_bytes = huge.anon_huge_bytes
  result.scan_huge_pages = huge.scan_huge_pages
  result.faults_per_huge_page = huge.faults / chunks
  result.contiguous_chunks = huge.contiguous_chunks
  result.timeline = huge.timeline
  return result
end

local b, count = units.bytes, units.count

-- Shadow memory: under AddressSanitizer each 8 bytes written read a shadow byte,
-- whose fresh pages fault too.
local function shadow_slack(r)
  return r.sanitized and r.size // 8 // r.page_size + 64 or 16
end

M.claims = {
  { id = "base_page_faults",
    text = "without huge pages (MADV_NOHUGEPAGE), writing a region faults once per base page",
    decide = function(r)
      local pages = r.size // r.page_size
      return r.faults_small >= pages * 0.95 and r.faults_small <= pages * 1.02 + shadow_slack(r)
          and r.anon_huge_bytes_small == 0,
        ("%s faults for %s base pages of %s; AnonHugePages %s"):format(count(r.faults_small), count(pages),
          b(r.page_size), b(r.anon_huge_bytes_small))
    end },
  { id = "huge_pages_backed",
    text = "with MADV_HUGEPAGE the kernel backs the region with huge pages (AnonHugePages in smaps)",
    requires = "thp",
    decide = function(r)
      if r.huge_error then return nil, nil, r.huge_error end
      local ev = ("advice %s, THP '%s' (defrag '%s'): AnonHugePages %s of %s"):format(r.advice, tostring(r.mode),
        tostring(r.defrag), b(r.anon_huge_bytes), b(r.size))
      if r.scan_huge_pages then
        ev = ev .. (", PAGEMAP_SCAN: %s of %s pages huge"):format(count(r.scan_huge_pages),
          count(r.size // r.page_size))
      end
      local why = r.advice ~= "hugepage" and "the region was advised MADV_" .. r.advice:upper() or nil
      if not why and r.anon_huge_bytes == 0 and r.mode ~= "never" then
        why = "the kernel found no free huge-page-sized blocks (memory too fragmented?)"
      end
      return r.anon_huge_bytes >= r.size // 2, ev, why
    end },
  { id = "huge_page_faults",
    text = "a huge page costs one fault: writing the huge-page region faults about once per huge page, "
      .. "not once per base page",
    requires = "thp",
    decide = function(r)
      if r.huge_error then return nil, nil, r.huge_error end
      local huge_n = r.anon_huge_bytes // r.huge_page_size
      -- each huge page is one fault; whatever did not get one costs a fault per base page
      local expected = huge_n + (r.size - r.anon_huge_bytes) // r.page_size
      local holds = huge_n >= r.chunks // 2 and r.faults_huge >= huge_n
        and r.faults_huge <= expected + shadow_slack(r) and r.faults_huge * 4 < r.faults_small
      return holds, ("%s faults for %s huge pages of %s (%s of them backed); %s faults without huge pages")
        :format(count(r.faults_huge), count(r.chunks), b(r.huge_page_size), count(huge_n), count(r.faults_small)),
        r.advice ~= "hugepage" and "the region was advised MADV_" .. r.advice:upper() or nil
    end,
    explain = function(r)
      return ("One fault zeroed a whole %s page and filled one page-directory entry instead of %d page-table entries.")
        :format(b(r.huge_page_size), r.huge_page_size // r.page_size)
    end },
  { id = "huge_frames_contiguous",
    text = "a huge page is one physically contiguous, aligned run of base frames",
    requires = { "thp", "pfns_visible" },
    decide = function(r)
      if r.huge_error then return nil, nil, r.huge_error end
      if r.contiguous_chunks == nil then return nil, nil, "pagemap hides frame numbers from this process" end
      local huge_n = r.anon_huge_bytes // r.huge_page_size
      return huge_n >= 1 and r.contiguous_chunks >= huge_n,
        ("pagemap: %s of %s chunks of %s are %d consecutive frames starting on a multiple of %d; "
          .. "AnonHugePages counts %s huge pages"):format(count(r.contiguous_chunks), count(r.chunks),
          b(r.huge_page_size), r.huge_page_size // r.page_size, r.huge_page_size // r.page_size, count(huge_n)),
        huge_n == 0 and "no huge page was mapped" or nil
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(res)
  local lines = {}
  local per = res.huge_page_size // res.page_size
  if res.faults_small then
    lines[#lines + 1] = ("MADV_NOHUGEPAGE: writing %s (%s base pages of %s) took %s faults, %.0f per %s."):format(
      b(res.size), count(res.size // res.page_size), b(res.page_size), count(res.faults_small),
      res.faults_per_huge_page_small, b(res.huge_page_size))
  end
  if res.faults_huge then
    lines[#lines + 1] = ("MADV_%s: the same writes took %s faults, %.1f per %s (%d base pages); smaps counts %s of "
      .. "AnonHugePages."):format(res.advice:upper(), count(res.faults_huge), res.faults_per_huge_page,
      b(res.huge_page_size), per, b(res.anon_huge_bytes))
    lines[#lines + 1] = ("First touch: %s with MADV_%s, %s with MADV_NOHUGEPAGE (THP '%s', defrag '%s')."):format(
      units.seconds(res.huge_seconds), res.advice:upper(), units.seconds(res.small_seconds), tostring(res.mode),
      tostring(res.defrag))
  end
  if res.huge_error then lines[#lines + 1] = res.huge_error end
  return lines
end

-- Its charts (vmlab run thp --plot FILE.svg|png, vmlab report): huge pages against base pages in faults,
-- AnonHugePages and time; then the huge-page touch as a timeline.
M.charts = {
  { kind = "bars", title = "transparent huge pages against base pages",
    panels = function(r)
      local small = ("%s pages"):format(require("vmlab.units").bytes(r.page_size or require("vmlab").page_size))
      return {
        { title = "page faults", unit = "faults", groups = {
          { label = "huge pages", value = r.faults_huge }, { label = small, value = r.faults_small } } },
        { title = "AnonHugePages", unit = "bytes", axis = "AnonHugePages", groups = {
          { label = "huge pages", value = r.anon_huge_bytes }, { label = small, value = r.anon_huge_bytes_small } } },
        { title = "touch time", unit = "seconds", groups = {
          { label = "huge pages", value = r.huge_seconds }, { label = small, value = r.small_seconds } } },
      }
    end },
  { kind = "timeline", title = "RSS and faults while touching with huge pages" },
}

return M
