--- thp: transparent huge pages, one fault per 2 MiB instead of one per 4 KiB.
-- A 2 MiB-aligned anonymous region advised MADV_HUGEPAGE is written page by
-- page; the kernel backs each 2 MiB with one huge page on its first fault
-- (AnonHugePages in smaps). The same touch of a region advised MADV_NOHUGEPAGE
-- takes one fault per 4 KiB page.
-- @module vmlab.experiments.thp
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size
local SYS = "/sys/kernel/mm/transparent_hugepage/"

-- One field (in bytes) of the smaps entry of the mapping that holds address.
local function smaps_field(address, field)
  local m = vm.proc.mapping_at(address)
  return m and m[field]
end

-- Map `size` bytes aligned to the huge page size, advise it, write every 4 KiB page.
local function trial(size, huge_size, advice)
  local r <close> = assert(vm.mmap(size, { fixed_align = huge_size }))
  local ok, err = r:advise(advice)
  if not ok then return { error = err } end
  local t = r:touch("write", { sample = 1 << 20 })
  local out = {
    faults = t.minor_faults, seconds = t.seconds, pages = t.pages, timeline = t.timeline,
    anon_huge_bytes = math.min(smaps_field(r.address, "AnonHugePages") or 0, size),
  }
  -- A huge page is one run of 512 physical frames starting on a 2 MiB boundary.
  local per = huge_size // PAGE
  local frames = r:frames(0, per)
  if frames then
    local contiguous = frames[1] ~= false
    for i = 2, per do
      if frames[i] ~= frames[1] + i - 1 then contiguous = false; break end
    end
    out.first_pfn = frames[1] or nil
    out.frames_contiguous = contiguous
    out.first_frame_aligned = contiguous and frames[1] % per == 0
  end
  return out
end

local M = {
  name = "thp",
  summary = "transparent huge pages: a 2 MiB-aligned region with MADV_HUGEPAGE faults once per 2 MiB, not per 4 KiB",
  params = { size = 64 * 1024 * 1024 },
  tour = { size = 32 * 1024 * 1024 },
  units = {
    size = "bytes", huge_page_size = "bytes", mode = "text", defrag = "text", faults_huge = "count",
    faults_small = "count", anon_huge_bytes = "bytes", anon_huge_bytes_small = "bytes", seconds_huge = "seconds",
    seconds_small = "seconds", faults_per_huge_page = "count", faults_per_huge_page_small = "count",
    frames_contiguous = "text",
  },
  fields = { "mode", "defrag", "size", "huge_page_size", "faults_huge", "faults_small", "faults_per_huge_page",
             "faults_per_huge_page_small", "anon_huge_bytes", "anon_huge_bytes_small", "seconds_huge",
             "seconds_small", "frames_contiguous" },
}

function M.run(opts)
  local settings = vm.proc.vm_settings()
  local huge_size = math.tointeger(settings.thp_pmd_size) or 2 * 1024 * 1024
  local size = opts.size
  assert(math.type(size) == "integer" and size > 0, "size must be a positive integer")
  size = (size + huge_size - 1) // huge_size * huge_size
  local mode = settings.thp_enabled
  local result = { size = size, huge_page_size = huge_size, mode = mode, defrag = settings.thp_defrag }
  local chunks = size // huge_size

  local small = trial(size, huge_size, "nohugepage")
  if small.error then
    result.skipped = "madvise(MADV_NOHUGEPAGE) failed: " .. small.error
    return result
  end
  result.faults_small = small.faults
  result.seconds_small = small.seconds
  result.anon_huge_bytes_small = small.anon_huge_bytes
  result.faults_per_huge_page_small = small.faults / chunks
  result.timeline = small.timeline -- replaced by the huge pages' timeline when they run

  if mode == nil then
    result.skipped = "this kernel has no transparent huge pages (" .. SYS .. " is missing)"
    return result
  elseif mode == "never" then
    result.skipped = "transparent huge pages are off: " .. SYS .. "enabled is 'never' "
      .. "(echo madvise > " .. SYS .. "enabled, as root, turns them on)"
    return result
  end
  local huge = trial(size, huge_size, "hugepage")
  if huge.error then
    result.skipped = "madvise(MADV_HUGEPAGE) failed: " .. huge.error
    return result
  end
  result.faults_huge = huge.faults
  result.seconds_huge = huge.seconds
  result.anon_huge_bytes = huge.anon_huge_bytes
  result.faults_per_huge_page = huge.faults / chunks
  result.timeline = huge.timeline
  result.frames_contiguous = huge.frames_contiguous
  result.first_frame_aligned = huge.first_frame_aligned
  if huge.anon_huge_bytes == 0 then
    result.skipped = ("the kernel gave no huge page (THP '%s', defrag '%s'): free memory may be too fragmented "
      .. "for a 2 MiB block"):format(mode, tostring(result.defrag))
  end
  return result
end

function M.explain(res)
  local b = units.bytes
  local lines = {}
  local n = res.size // res.huge_page_size
  if res.faults_small then
    lines[#lines + 1] = ("With MADV_NOHUGEPAGE, writing %s took %s faults: one per 4 KiB page (%d per %s)."):format(
      b(res.size), units.count(res.faults_small), math.floor(res.faults_per_huge_page_small + 0.5),
      b(res.huge_page_size))
  end
  if res.faults_huge then
    lines[#lines + 1] = ("With MADV_HUGEPAGE the same writes took %s faults for %d huge pages; smaps counts %s of "
      .. "AnonHugePages in the region."):format(units.count(res.faults_huge), n, b(res.anon_huge_bytes))
    if res.seconds_huge and res.seconds_small then
      local why = res.seconds_huge < res.seconds_small
        and "one fault zeroes 2 MiB and fills one page-table entry instead of 512"
        or ("each fault must find a free, contiguous 2 MiB block; with defrag '%s' the kernel compacts memory "
          .. "to make one, which can cost more than the faults saved"):format(tostring(res.defrag))
      lines[#lines + 1] = ("First touch took %s with huge pages and %s with 4 KiB pages (%s)."):format(
        units.seconds(res.seconds_huge), units.seconds(res.seconds_small), why)
    end
    if res.frames_contiguous ~= nil then
      lines[#lines + 1] = res.frames_contiguous
        and "pagemap shows the first 2 MiB as 512 consecutive physical frames starting on a 2 MiB boundary: "
          .. "one huge page."
        or "pagemap shows the first 2 MiB in scattered frames: that part got 4 KiB pages."
    end
  end
  if res.skipped then lines[#lines + 1] = "Skipped: " .. res.skipped end
  return lines
end

return M
