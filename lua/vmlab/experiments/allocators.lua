--- allocators: one workload under each malloc the machine has, side by side.
-- The articles' LD_PRELOAD experiment: glibc malloc, jemalloc, mimalloc and
-- tcmalloc each serve a child of their own (exec'd with LD_PRELOAD naming the
-- library; glibc's child with none), and the child finds in its own
-- /proc/self/maps which one actually served it. The workload: large blocks
-- many small blocks, nine in ten freed scattered (no page is empty, nothing
-- can go back), the rest freed, then the allocator's own purge (malloc_trim
-- for glibc); large blocks allocated and freed twice (glibc mmaps the first
-- round and returns it at once, then raises its mmap threshold); a realloc chain.
-- (004_*.txt: malloc_trim and LD_PRELOAD of jemalloc/mimalloc.)
local vm = require "vmlab"

local step_fields = {
  { name = "step", unit = "text", help = "the step" },
  { name = "rss", unit = "bytes", help = "VmRSS after it" },
  { name = "virt", unit = "bytes", help = "VmSize after it" },
  { name = "minor_faults", unit = "count", help = "minor faults so far" },
  { name = "seconds", unit = "seconds", optional = true, help = "time of the step" },
  { name = "ns_per_block", unit = "ns", optional = true, help = "time per block" },
}

local M = {
  name = "allocators",
  summary = "the same malloc workload under glibc, jemalloc, mimalloc, tcmalloc: what each gives back, and when",
  params = {
    { name = "small_blocks", default = 200000, unit = "count", min = 1, max = 1 << 28, help = "small blocks malloc'd" },
    { name = "small_size", default = 64, unit = "bytes", min = 1, max = 1 << 20, help = "each small block" },
    { name = "large_blocks", default = 8, unit = "count", min = 1, max = 1 << 16, help = "large blocks, each round" },
    { name = "large_size", default = 4 * 1024 * 1024, unit = "bytes", min = 1, max = 1 << 34,
      help = "each large block (above the mmap threshold)" },
    { name = "realloc_max", default = 64 * 1024 * 1024, unit = "bytes", min = 1, max = 1 << 36,
      help = "a block grown by realloc up to this size" },
    { name = "allocators", default = { "glibc", "jemalloc", "mimalloc", "tcmalloc" }, unit = "choice", list = true,
      choices = { "glibc", "jemalloc", "mimalloc", "tcmalloc" },
      help = "the allocators compared (those not installed are listed as missing)" },
  },
  fields = {
    { name = "allocators", unit = "table", help = "one row per allocator that ran", fields = {
      { name = "name", unit = "text", help = "the allocator" },
      { name = "served_by", unit = "text", help = "the allocator the child found serving malloc" },
      { name = "ns_per_block", unit = "ns", help = "time per small malloc" },
      { name = "small_growth", unit = "bytes", help = "VmRSS growth of the small blocks" },
      { name = "kept_after_9_of_10_percent", unit = "percent", help = "of it still resident after freeing 9 in 10" },
      { name = "kept_after_all_percent", unit = "percent", help = "of it still resident after freeing all" },
      { name = "kept_after_purge_percent", unit = "percent", help = "of it still resident after the purge call" },
      { name = "large_returned_first_percent", unit = "percent",
        help = "of the first large round's RSS given back at free" },
      { name = "large_returned_second_percent", unit = "percent", help = "of the second round's RSS given back" },
      { name = "realloc_moves", unit = "count", help = "reallocs that moved the block" },
      { name = "realloc_grows", unit = "count", help = "reallocs" },
      { name = "minor_faults", unit = "count", help = "minor faults of the small workload" },
    } },
    { name = "missing", unit = "table", help = "allocators not found", fields = {
      { name = "name", unit = "text", help = "the allocator" },
      { name = "why", unit = "text", help = "why it could not run" },
    } },
    { name = "libraries", unit = "table", help = "the library behind each allocator", fields = {
      { name = "name", unit = "text", help = "the allocator" },
      { name = "library", unit = "text", optional = true, help = "its shared library" },
      { name = "purge", unit = "text", optional = true, help = "the call that returns its free memory" },
    } },
    { name = "steps", unit = "map", help = "per allocator: VmRSS after each step of the small and large workloads",
      of = { unit = "object", fields = {
        { name = "small", unit = "table", help = "the small-block workload", fields = step_fields },
        { name = "large", unit = "table", help = "the large-block rounds", fields = step_fields },
      } } },
    { name = "sanitizer", unit = "text", optional = true, help = "the sanitizer runtime the children ran under" },
  },
  tour = { small_blocks = 100000 },
  text_omit = { "libraries", "steps" },
  writes = function(p) return 4 * (p.small_blocks * p.small_size + p.large_blocks * p.large_size + p.realloc_max) end,
}

-- name -> the library file names to look for (first found wins), and the Debian package.
local LIBRARIES = {
  jemalloc = { files = { "libjemalloc.so.2" }, package = "libjemalloc2" },
  mimalloc = { files = { "libmimalloc.so.2", "libmimalloc.so.2.0", "libmimalloc.so" }, package = "libmimalloc2.0" },
  tcmalloc = { files = { "libtcmalloc_minimal.so.4", "libtcmalloc.so.4" }, package = "libtcmalloc-minimal4" },
}

local exists = vm.proc.exists

-- The directories shared libraries live in here: libc's own (from our maps), then the usual ones.
local function library_dirs()
  local dirs, seen = {}, {}
  local function add(d) if d and not seen[d] then seen[d] = true; dirs[#dirs + 1] = d end end
  for _, m in ipairs(vm.proc.maps() or {}) do
    local path = tostring(m.path or "")
    if path:match("/libc[%.%-][^/]*$") then add(path:match("^(.*)/[^/]*$")) end
  end
  for _, d in ipairs { "/usr/lib64", "/usr/lib", "/lib64", "/lib", "/usr/local/lib" } do add(d) end
  return dirs
end

-- path of allocator `name`'s library, or nil, the reason
local function find_library(name, dirs)
  local lib = LIBRARIES[name]
  for _, d in ipairs(dirs) do
    for _, f in ipairs(lib.files) do
      if exists(d .. "/" .. f) then return d .. "/" .. f end
    end
  end
  return nil, ("%s is not installed (%s not found in %s; Debian: apt-get install %s)"):format(name,
    lib.files[1], table.concat(dirs, ", ", 1, math.min(#dirs, 2)), lib.package)
end

-- This process runs under AddressSanitizer: its malloc replaces every other.
local function sanitizer_path()
  for _, m in ipairs(vm.proc.maps() or {}) do
    local path = tostring(m.path or "")
    if path:match("/libasan[^/]*$") then return path end
  end
  return nil
end

local function step_at(steps, name)
  for _, s in ipairs(steps) do if s.step == name then return s end end
  error("allocators: the child reported no step " .. name, 0)
end
local function rss_at(steps, name) return step_at(steps, name).rss end

-- Run the workload in a child under `preload` (nil: glibc); its decoded result.
local function run_child(p, preload, part)
  local prog = assert(package.searchpath("vmlab.experiments.allocators.child", package.path),
    "cannot find vmlab/experiments/allocators/child.lua on package.path")
  local out = os.tmpname()
  local child, err = vm.spawn({ os.getenv("VMLAB_LUA") or "lua5.4", prog, out, part, tostring(p.large_blocks),
      tostring(p.large_size), tostring(p.small_blocks), tostring(p.small_size), tostring(p.realloc_max) },
    { env = { LUA_PATH = package.path, LUA_CPATH = package.cpath, LD_PRELOAD = preload or false },
      stdin = "null", death_signal = "KILL" })
  if not child then
    os.remove(out)
    return nil, "spawn: " .. tostring(err)
  end
  local st = child:wait({ timeout = 120 })
  if not st then
    child:kill("KILL")
    child:wait()
    os.remove(out)
    return nil, "the child did not finish within 120 s"
  end
  local f = io.open(out, "r")
  local text = f and f:read("a")
  if f then f:close() end
  os.remove(out)
  if not (st.exited and st.code == 0) or not text or text == "" then
    return nil, ("the child failed (%s)"):format(st.signal_name or ("exit code " .. tostring(st.code)))
  end
  return require("vmlab.child").decode(text)
end

--- params: small_blocks, small_size, large_blocks, large_size, realloc_max, allocators (comma list)
function M.run(p)
  local wanted = {}
  local list = p.allocators
  if type(list) == "string" then
    list = {}
    for name in p.allocators:gmatch("[^,%s]+") do list[#list + 1] = name end
  end
  for _, name in ipairs(list) do
    if name ~= "glibc" and not LIBRARIES[name] then
      error(("allocators: unknown allocator '%s' (glibc, jemalloc, mimalloc, tcmalloc)"):format(name), 0)
    end
    wanted[#wanted + 1] = name
  end
  local dirs = library_dirs()
  local asan = sanitizer_path()
  local result = { allocators = {}, missing = {}, libraries = {}, steps = {} }
  for _, name in ipairs(wanted) do
    local preload, why
    if name ~= "glibc" then
      preload, why = find_library(name, dirs)
      if preload and asan then
        preload, why = nil, name .. " cannot serve a child under AddressSanitizer, whose malloc replaces it"
      end
    end
    if name ~= "glibc" and not preload then
      result.missing[#result.missing + 1] = { name = name, why = why }
    else
      local c, err = run_child(p, preload or asan, "small")
      if not c then error(("allocators: %s: %s"):format(name, err), 0) end
      local big, berr = run_child(p, preload or asan, "large")
      if not big then error(("allocators: %s: %s"):format(name, berr), 0) end
      local steps = c.steps
      local large = p.large_blocks * p.large_size
      local function returned(round) -- percent of a large round's RSS that went back when it was freed
        local at = function(what) return rss_at(big.steps, "large_" .. round .. "_" .. what) end
        local grown = at("allocated") - at("before")
        local back = at("allocated") - at("freed")
        return 100 * back / math.max(grown, large // 2)
      end
      local base = rss_at(steps, "start") -- the small blocks come first, into a fresh heap
      local growth = rss_at(steps, "small_allocated") - base
      local function kept(step) return 100 * (rss_at(steps, step) - base) / math.max(growth, 1) end
      local rec = {
        name = name, served_by = c.allocator,
        ns_per_block = step_at(steps, "small_allocated").ns_per_block,
        large_returned_first_percent = returned(1), large_returned_second_percent = returned(2),
        small_growth = growth,
        kept_after_9_of_10_percent = kept("small_9_of_10_freed"),
        kept_after_all_percent = kept("small_all_freed"),
        kept_after_purge_percent = kept("purged"),
        realloc_moves = c.realloc_moves, realloc_grows = c.realloc_grows,
        minor_faults = steps[#steps].minor_faults - steps[1].minor_faults,
      }
      result.libraries[#result.libraries + 1] = { name = name, library = c.library, purge = c.purge }
      result.steps[name] = { small = steps, large = big.steps }
      result.allocators[#result.allocators + 1] = rec
    end
  end
  if asan then result.sanitizer = asan end
  return result
end

local u = vm.units

local function find(r, name)
  for _, a in ipairs(r.allocators) do if a.name == name then return a end end
  return nil
end

local function pct(x)
  local v = math.floor(x + 0.5)
  return ("%d %%"):format(v == 0 and 0 or v)
end

-- glibc's record when glibc itself served it; else nil, why
local function glibc(r)
  local g = find(r, "glibc")
  if not g then return nil, "glibc's child did not run (not in --allocators)" end
  if g.served_by ~= "glibc" then
    return nil, ("the child meant for glibc was served by %s"):format(tostring(g.served_by))
  end
  return g
end

M.claims = {
  { id = "preload_serves",
    text = "LD_PRELOAD puts each installed allocator in charge of its child (its library is in the child's maps)",
    requires = "preloadable_malloc",
    decide = function(r)
      local parts, ok, others = {}, true, 0
      for _, a in ipairs(r.allocators) do
        parts[#parts + 1] = ("%s -> %s"):format(a.name, tostring(a.served_by))
        if a.name ~= "glibc" then
          others = others + 1
          ok = ok and a.served_by == a.name
        end
      end
      if others == 0 then
        local why = {}
        for _, m in ipairs(r.missing) do why[#why + 1] = m.why end
        return nil, table.concat(parts, ", "), #why > 0 and table.concat(why, "; ") or "only glibc was asked for"
      end
      return ok, table.concat(parts, ", ")
    end },
  { id = "glibc_large_at_once",
    requires = "glibc_malloc",
    text = "glibc gives a freed large block back to the kernel at once (it had its own mmap)",
    decide = function(r)
      local g, why = glibc(r)
      if not g then return nil, nil, why end
      return g.large_returned_first_percent >= 90, ("%s of the first round's RSS went back when it was freed")
        :format(pct(g.large_returned_first_percent))
    end },
  { id = "glibc_threshold_rises",
    requires = "glibc_malloc",
    text = "after that glibc raises its mmap threshold: a second round of the same blocks stays in its heap",
    decide = function(r)
      local g, why = glibc(r)
      if not g then return nil, nil, why end
      return g.large_returned_second_percent <= 50, ("%s of the second round's RSS went back when it was freed")
        :format(pct(g.large_returned_second_percent))
    end,
    explain = function()
      return "glibc's dynamic mmap threshold grows to the size of a freed mmap'd block (see mallopt(3))."
    end },
  { id = "scattered_free_kept",
    text = "freeing nine in ten small blocks gives (almost) nothing back under every allocator: each page still " ..
      "holds live blocks",
    decide = function(r)
      local parts, ok = {}, #r.allocators > 0
      for _, a in ipairs(r.allocators) do
        local kept = a.kept_after_9_of_10_percent
        parts[#parts + 1] = ("%s kept %s of %s"):format(a.name, pct(kept), u.bytes(a.small_growth))
        ok = ok and a.small_growth > 0 and kept >= 80
      end
      return ok, table.concat(parts, ", ")
    end },
  { id = "glibc_trim_returns",
    requires = "glibc_malloc",
    text = "glibc keeps freed small-block memory until malloc_trim, which gives it back",
    decide = function(r)
      local g, why = glibc(r)
      if not g then return nil, nil, why end
      local all, trimmed = g.kept_after_all_percent, g.kept_after_purge_percent
      return all >= 70 and trimmed <= 30,
        ("all blocks freed: %s of %s still resident; after malloc_trim: %s"):format(pct(all),
          u.bytes(g.small_growth), pct(trimmed))
    end },
  { id = "allocators_differ",
    requires = "preloadable_malloc",
    text = "the allocators differ in what they give back after a purge",
    decide = function(r)
      if #r.allocators < 2 then return nil, nil, "fewer than two allocators ran" end
      local lo, hi, parts = math.huge, -math.huge, {}
      for _, a in ipairs(r.allocators) do
        local kept = a.kept_after_purge_percent
        lo, hi = math.min(lo, kept), math.max(hi, kept)
        parts[#parts + 1] = ("%s kept %s"):format(a.name, pct(kept))
      end
      return hi - lo >= 30, table.concat(parts, ", ") .. " of their small-block memory after their purge"
    end },
}

function M.explain(r)
  local lines = {}
  for _, l in ipairs(r.libraries) do
    lines[#lines + 1] = ("%-9s %s, purged with %s"):format(l.name, tostring(l.library), tostring(l.purge))
  end
  for _, m in ipairs(r.missing) do lines[#lines + 1] = ("%-9s not run: %s"):format(m.name, m.why) end
  return lines
end

-- Its chart (vmlab run allocators --plot FILE.svg|png, vmlab report): per allocator, how much of the small
-- blocks' memory it keeps after frees and a purge, how much of a large block it returns, and its speed.
M.charts = {
  { kind = "bars", title = "what each allocator gives back to the kernel",
    panels = function(r)
      local kept, large, speed = {}, {}, {}
      for _, step in ipairs { { "kept_after_9_of_10_percent", "9 of 10 freed" },
        { "kept_after_all_percent", "all freed" },
        { "kept_after_purge_percent", "after purge" } } do
        local bars = {}
        for _, a in ipairs(r.allocators or {}) do bars[#bars + 1] = { name = a.name, value = a[step[1]] } end
        kept[#kept + 1] = { label = step[2], bars = bars }
      end
      for _, step in ipairs { { "large_returned_first_percent", "first free" },
        { "large_returned_second_percent", "second free" } } do
        local bars = {}
        for _, a in ipairs(r.allocators or {}) do bars[#bars + 1] = { name = a.name, value = a[step[1]] } end
        large[#large + 1] = { label = step[2], bars = bars }
      end
      for _, a in ipairs(r.allocators or {}) do
        local ns = a.ns_per_block
        speed[#speed + 1] = { label = a.name, bars = { { name = a.name, value = ns and ns * 1e-9 } } }
      end
      return {
        { title = "small blocks' RSS still kept", unit = "percent", axis = "% of their RSS", groups = kept },
        { title = "large block's RSS returned", unit = "percent", axis = "% of its RSS", groups = large },
        { title = "time per small block", unit = "seconds", groups = speed },
      }
    end },
}

return M
