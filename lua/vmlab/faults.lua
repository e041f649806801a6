--- vmlab.faults: which regions of this process took the page faults.
-- `vm.fault_sampler()` (csrc/faultsample.c) records the faulting address of
-- every page fault through perf_event_open(2); this module runs a function
-- under a sampler and sorts the addresses into the mappings of
-- /proc/self/maps, and those into the lab's region kinds:
--
--     local faults = require "vmlab.faults"
--     local report = assert(faults.by_region(function() r:touch("write") end))
--     print(report.by_kind.anonymous)      --> 256 (one per page of r)
--     for _, line in ipairs(faults.format(report)) do print(line) end
--
-- Kinds: "heap" ([heap], malloc's brk area), "stack" ([stack]), "anonymous"
-- (private anonymous mappings: large malloc blocks, vm.mmap), "file" (a
-- file mapped private or shared: executables, libraries, vm.mmap{file=}),
-- "shared" (shared memory that is no regular file: MAP_SHARED|MAP_ANONYMOUS,
-- POSIX shm, memfd), "other" ([vdso], [vvar], ...) and "unmapped" (no
-- mapping holds the address any more, or the access was refused).
-- Where the kernel refuses perf events, the functions return nil, reason,
-- errno: say so and skip.
-- @module vmlab.faults
local core = require "vmlab.core"
local proc = require "vmlab.proc"

local M = {}

local math_type = math.type

-- Raise "bad argument #n to 'fname' (what expected, got <type>)" at the caller's caller.
local function arg_error(n, fname, what, v)
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, what, math_type(v) or type(v)), 3)
end

-- A value as an error message shows it: numbers themselves, else the type.
local function shown(v) return math_type(v) and tostring(v) or type(v) end

-- An optional table argument (nil or a table).
local function opt_table(v, n, fname)
  if v ~= nil and type(v) ~= "table" then arg_error(n, fname, "table of options", v) end
  return v or {}
end

--- The region kinds in the order reports list them.
M.kinds = { "heap", "stack", "anonymous", "file", "shared", "other", "unmapped" }

--- The region kind of a /proc/PID/maps entry (as vm.proc.maps() returns it).
-- @param m entry with `kind` (vm.proc's) and `shared`
-- @return "heap"|"stack"|"anonymous"|"file"|"shared"|"other"
function M.kind_of(m)
  if type(m) ~= "table" then arg_error(1, "kind_of", "maps entry (table)", m) end
  local k = m.kind
  if k == "heap" or k == "stack" or k == "file" then return k end
  if k == "shm" or k == "memfd" then return "shared" end
  if k == "anon" or k == "hugetlb" then return m.shared and "shared" or "anonymous" end
  return "other"
end

-- Mappings sorted by start address, for binary search. Reading our own maps
-- while the read grows the heap can list a mapping twice (the kernel's read
-- restarts): the later entry per start wins.
local function sorted(maps)
  local by_start, list = {}, {}
  for _, m in ipairs(maps) do by_start[m.start] = m end
  for _, m in pairs(by_start) do list[#list + 1] = m end
  table.sort(list, function(a, b) return a.start < b.start end)
  return list
end

-- The entry of a sorted list that holds address a, or nil.
local function find(list, a)
  local lo, hi = 1, #list
  while lo <= hi do
    local mid = (lo + hi) // 2
    local m = list[mid]
    if a < m.start then
      hi = mid - 1
    elseif a >= m.finish then
      lo = mid + 1
    else
      return m
    end
  end
  return nil
end

--- Sort fault samples into mappings and kinds.
-- @param samples list of {address=, ...} (sampler:read())
-- @param maps list of maps entries (vm.proc.maps()); addresses found in none
--   are looked up in `opts.maps_before` (a region unmapped meanwhile), else "unmapped"
-- @param opts {regions = {label = region or {address=, size=}}, maps_before = list}
-- @return {total=, by_kind = {kind = n, ...}, mappings = { {start=, finish=, size=,
--   perms=, path=, kind=, faults=}, ... } (most faults first), regions = {label = n}}
function M.classify(samples, maps, opts)
  if type(samples) ~= "table" then arg_error(1, "classify", "list of samples", samples) end
  if type(maps) ~= "table" then arg_error(2, "classify", "list of maps entries", maps) end
  opts = opt_table(opts, 3, "classify")
  if opts.maps_before ~= nil and type(opts.maps_before) ~= "table" then
    error("bad option 'maps_before' (list of maps entries expected, got " .. type(opts.maps_before) .. ")", 2)
  end
  if opts.regions ~= nil and type(opts.regions) ~= "table" then
    error("bad option 'regions' (table expected, got " .. type(opts.regions) .. ")", 2)
  end
  for label, r in pairs(opts.regions or {}) do
    local ok = (type(r) == "table" or type(r) == "userdata")
    local address, size = ok and r.address, ok and r.size
    if math_type(address) ~= "integer" or math_type(size) ~= "integer" then
      error(("bad option 'regions' (%s must be a region or {address=, size=} with integers)")
        :format(shown(label) == "string" and label or shown(label)), 2)
    end
  end
  for what, list in pairs { ["argument #2"] = maps, ["option 'maps_before'"] = opts.maps_before or {} } do
    for i, m in ipairs(list) do
      if type(m) ~= "table" or math_type(m.start) ~= "integer" or math_type(m.finish) ~= "integer" then
        error(("bad %s to 'classify' (entry %d is not a maps entry with integer start and finish)"):format(what, i), 2)
      end
    end
  end
  for i, smp in ipairs(samples) do
    if type(smp) ~= "table" or math_type(smp.address) ~= "integer" then
      error(("bad argument #1 to 'classify' (sample %d has no integer address)"):format(i), 2)
    end
  end
  local now, before = sorted(maps), opts.maps_before and sorted(opts.maps_before)
  local by_kind, counts = {}, {}
  for _, k in ipairs(M.kinds) do by_kind[k] = 0 end
  local labelled = {}
  for label, r in pairs(opts.regions or {}) do
    labelled[#labelled + 1] = { label = label, start = r.address, finish = r.address + r.size }
  end
  local in_region = {}
  for _, l in ipairs(labelled) do in_region[l.label] = 0 end
  for _, s in ipairs(samples) do
    local a = s.address
    local m = find(now, a) or (before and find(before, a))
    local kind = m and M.kind_of(m) or "unmapped"
    by_kind[kind] = by_kind[kind] + 1
    if m then counts[m] = (counts[m] or 0) + 1 end
    for _, l in ipairs(labelled) do
      if a >= l.start and a < l.finish then in_region[l.label] = in_region[l.label] + 1 end
    end
  end
  local mappings = {}
  for m, n in pairs(counts) do
    mappings[#mappings + 1] = { start = m.start, finish = m.finish, size = m.size, perms = m.perms,
      path = m.path, kind = M.kind_of(m), faults = n }
  end
  table.sort(mappings, function(a, b)
    if a.faults ~= b.faults then return a.faults > b.faults end
    return a.start < b.start
  end)
  return { total = #samples, by_kind = by_kind, mappings = mappings, regions = in_region }
end

--- Run fn under a fault sampler and count its faults per region kind.
-- Faults of the sampler's own setup are not counted; faults Lua itself takes
-- while running fn (its heap growing) are, as "heap" or "anonymous".
-- @param fn function run with no arguments; an error in it is raised again
--   after the sampler is closed
-- @param opts {kind = "all"|"minor"|"major", period = 1, pages = ring pages,
--   regions = {label = region}, samples = true (keep the raw samples)}
-- @return report (see classify, plus lost=, period=, user_only=, kind=,
--   result = fn's first return value, samples=), or nil, reason, errno
--   when the kernel refuses perf events
function M.by_region(fn, opts)
  if type(fn) ~= "function" then arg_error(1, "by_region", "function", fn) end
  opts = opt_table(opts, 2, "by_region")
  local before = proc.maps()
  local sampler, err, code = core.fault_sampler { kind = opts.kind, period = opts.period, pages = opts.pages }
  if not sampler then return nil, err, code end
  local started, serr, scode = sampler:start()
  if not started then
    sampler:close()
    return nil, serr, scode
  end
  local ok, res = pcall(fn)
  sampler:stop()
  local samples, lost = sampler:read()
  local user_only, kind = sampler.user_only, sampler.kind
  sampler:close()
  if not ok then error(res, 0) end
  local maps, merr, mcode = proc.maps()
  if not maps then return nil, merr, mcode end
  local report = M.classify(samples, maps, { regions = opts.regions, maps_before = before })
  report.lost, report.period, report.user_only, report.kind = lost, opts.period or 1, user_only, kind
  report.result = res
  if opts.samples then report.samples = samples end
  return report
end

--- A report as lines a person reads: one per kind with faults, then the
-- busiest mappings (at most opts.top, default 8).
-- @return list of strings
function M.format(report, opts)
  if type(report) ~= "table" or math_type(report.total) ~= "integer" or type(report.by_kind) ~= "table"
      or type(report.mappings) ~= "table" then
    arg_error(1, "format", "report (by_region's table)", report)
  end
  local top = opt_table(opts, 2, "format").top or 8
  if math_type(top) ~= "integer" or top < 0 then
    error("bad option 'top' (non-negative integer expected, got " .. shown(top) .. ")", 2)
  end
  local lines = {}
  local head = ("%d page faults sampled"):format(report.total)
  if report.lost and report.lost > 0 then
    head = head .. (", %d more lost (the ring buffer filled up)"):format(report.lost)
  end
  if report.user_only then head = head .. " (user mode only)" end
  lines[1] = head
  for _, k in ipairs(M.kinds) do
    local n = report.by_kind[k]
    if math_type(n) == "integer" and n > 0 then lines[#lines + 1] = ("  %-13s %8d"):format(k, n) end
  end
  local labels = {}
  for label in pairs(report.regions or {}) do labels[#labels + 1] = label end
  table.sort(labels)
  for _, label in ipairs(labels) do
    lines[#lines + 1] = ("  %-13s %8d"):format("in " .. label, report.regions[label])
  end
  for i = 1, math.min(top, #report.mappings) do
    local m = report.mappings[i]
    lines[#lines + 1] = ("  %8d  %012x-%012x %s %-9s %s"):format(m.faults, m.start, m.finish, m.perms, m.kind,
      m.path ~= "" and m.path or "")
  end
  return lines
end

--- Touch `pages` pages of one region of each kind (heap, stack, anonymous,
-- file, shared) under a sampler: the lab's "which regions fault" in one call.
-- The heap block is a small malloc (brk area), the stack pages come from a
-- recursion in C, the file is read through a private mapping (the kernel
-- maps up to 16 cached pages per fault there: fault-around).
-- @param opts {pages = 32, dir = "/tmp"}
-- @return report (by_region's, with regions = {heap=, stack=, anonymous=,
--   file=, shared=} and touched = {kind = pages}), or nil, reason, errno
function M.demo(opts)
  opts = opt_table(opts, 1, "demo")
  local pages = opts.pages or 32
  if math_type(pages) ~= "integer" or pages < 1 or pages > 1 << 20 then
    error("bad option 'pages' (integer 1 .. 2^20 expected, got " .. shown(pages) .. ")", 2)
  end
  local ps = core.page_size
  local size = pages * ps
  local anon = assert(core.mmap(size))
  anon:advise("nohugepage")
  local shared = assert(core.mmap(size, { share = "shared" }))
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(string.rep("vmlab\n", size // 6 + 1):sub(1, size))
  f:close()
  local file = assert(core.mmap(size, { file = path }))
  os.remove(path) -- the mapping keeps the file alive
  -- below glibc's mmap threshold (128 KiB), so the block comes from the brk heap
  local heap_size = math.min(size, 120 * 1024)
  local heap = assert(core.malloc(heap_size))
  -- malloc may hand back memory used (and so resident) before: drop the
  -- block's whole pages, so that writing them faults again
  heap:advise("dontneed")
  local slot = assert(core.mmap(ps))
  slot:touch("write")
  local report, err, code = M.by_region(function()
    heap:touch("write")
    -- the lab probes live in vm.lab (older builds had them beside vm.mmap)
    local stack_recurse = core.lab and core.lab.stack_recurse or core.stack_recurse
    stack_recurse(ps, slot, 0, pages)
    anon:touch("write")
    file:touch("read")
    shared:touch("write")
  end, { regions = { heap = heap, anonymous = anon, file = file, shared = shared } })
  if report then
    local stack = 0
    for _, m in ipairs(report.mappings) do if m.kind == "stack" then stack = stack + m.faults end end
    report.regions.stack = stack
    report.touched = { heap = heap_size // ps, stack = pages, anonymous = pages, file = pages, shared = pages }
  end
  for _, r in ipairs { anon, shared, file, heap, slot } do r:close() end
  return report, err, code
end

return M
