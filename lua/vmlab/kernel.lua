--- What this kernel and this process can show: probes, measured or read once
-- and cached. Experiments decide their claims with them ("this kernel does not
-- map the zero page for read faults"), specs skip with them, `vmlab info`
-- prints them and every JSON record carries them.
--
--   local k = require("vmlab.kernel")()   -- also vm.kernel()
--   k.zero_page        --> true | false | nil (nil: could not be measured)
--   k.how.zero_page    --> "measured: read 64 fresh private pages: smaps Rss +0 B; PAGEMAP_SCAN: 64 pfnzero"
--
-- Every field has an entry in k.how saying how it was found. Fields (nil where
-- the machine does not say):
--   page_size, huge_page_size (a PMD-sized transparent huge page), hugetlb_sizes (list),
--   hugetlb_total, hugetlb_free (pages of the default hugetlb size), thp_enabled, thp_defrag,
--   zero_page, pagemap_scan, pfns_visible, pagemap_exclusive, perf_faults, perf_event_paranoid,
--   overcommit_memory, overcommit_ratio, swap_total, swap_free, ksm, ksm_run, cgroup_version,
--   cgroup_path, memory_limit, memlock_limit, root, cap_sys_admin, cap_ipc_lock, kernel.
-- @module vmlab.kernel
local core = require "vmlab.core"

local M = {}

local cached

--- The order `vmlab info` prints the fields in.
M.fields = {
  "kernel", "page_size", "huge_page_size", "hugetlb_sizes", "hugetlb_total", "hugetlb_free",
  "thp_enabled", "thp_defrag", "zero_page", "pagemap_scan", "pfns_visible", "pagemap_exclusive",
  "perf_faults", "perf_event_paranoid", "overcommit_memory", "overcommit_ratio", "swap_total", "swap_free",
  "ksm", "ksm_run", "cgroup_version", "cgroup_path", "memory_limit", "memlock_limit",
  "root", "cap_sys_admin", "cap_ipc_lock", "allocator",
}

--- What each field means, for `vmlab info` and the README.
M.meaning = {
  kernel = "the kernel release",
  page_size = "bytes in a base page",
  huge_page_size = "bytes in a PMD-sized transparent huge page",
  hugetlb_sizes = "hugetlbfs page sizes the kernel offers",
  hugetlb_total = "hugetlb pages reserved (default size)",
  hugetlb_free = "hugetlb pages free (default size)",
  thp_enabled = "transparent huge pages: always, madvise or never",
  thp_defrag = "how hard a THP fault works to find a huge page",
  zero_page = "a first read of private anonymous memory maps the shared zero page",
  pagemap_scan = "the PAGEMAP_SCAN ioctl works (Linux 6.7+; zero-page flags without privilege)",
  pfns_visible = "/proc/self/pagemap shows physical frame numbers to this process",
  pagemap_exclusive = "pagemap reports the exclusively-mapped bit (56)",
  perf_faults = "perf_event_open counts this process's page faults",
  perf_event_paranoid = "kernel.perf_event_paranoid",
  overcommit_memory = "vm.overcommit_memory: 0 heuristic, 1 always, 2 strict",
  overcommit_ratio = "vm.overcommit_ratio (percent of RAM under policy 2)",
  swap_total = "bytes of swap configured",
  swap_free = "bytes of swap free",
  ksm = "kernel same-page merging is built in",
  ksm_run = "/sys/kernel/mm/ksm/run: 0 stopped, 1 running, 2 unmerging",
  cgroup_version = "the cgroup version that holds this process's memory controller",
  cgroup_path = "this process's memory cgroup",
  memory_limit = "bytes this process's memory cgroup may use",
  memlock_limit = "RLIMIT_MEMLOCK (soft), bytes",
  root = "effective uid 0",
  cap_sys_admin = "CAP_SYS_ADMIN in the effective set",
  cap_ipc_lock = "CAP_IPC_LOCK in the effective set",
  allocator = "the malloc serving this process: glibc, or one put in by LD_PRELOAD (jemalloc, ...) or a sanitizer",
}

local proc = require "vmlab.proc"
local slurp, number_at = proc.read_file, proc.number_at

-- A /proc/sys setting that is a number, or nil.
local function sysctl_number(name)
  local v = proc.sysctl(name)
  return math.type(v) == "integer" and v or nil
end



local function bracketed(path)
  local s = slurp(path)
  return s and s:match("%[([^%]]+)%]") or nil
end

local function bytes(n)
  return require("vmlab.units").bytes(n)
end

-- /proc/meminfo as numbers (kB fields in bytes), empty where unreadable.
local function meminfo()
  return proc.meminfo() or {}
end

-- Read fresh private anonymous memory once and look at what it got.
local function probe_zero_page(k, how)
  local pages = 64
  local ok, r = pcall(core.mmap, pages * k.page_size)
  if not ok or not r then
    how.zero_page = "not measured: mmap of " .. pages .. " pages failed"
    return
  end
  pcall(r.advise, r, "nohugepage")
  r:touch("read")
  local m = proc.mapping_at(r.address)
  local rss = m and m.Rss
  local scan, serr = r:scan()
  k.pagemap_scan = scan ~= nil
  how.pagemap_scan = scan and "measured: PAGEMAP_SCAN ioctl on /proc/self/pagemap answered"
    or ("measured: PAGEMAP_SCAN refused (%s)"):format(tostring(serr))
  local frames = r:frames(0, pages)
  local distinct
  if frames then
    local seen = {}
    distinct = 0
    for _, pfn in ipairs(frames) do
      if pfn and not seen[pfn] then seen[pfn] = true; distinct = distinct + 1 end
    end
  end
  -- decide: PAGEMAP_SCAN's flag is the kernel's own word; else the frames;
  -- else smaps (a zero-page mapping is not counted in Rss)
  local parts = {}
  if rss then parts[#parts + 1] = ("smaps Rss %s"):format(bytes(rss)) end
  if scan then parts[#parts + 1] = ("%d on the zero page (PAGEMAP_SCAN)"):format(scan.pfnzero) end
  if distinct then parts[#parts + 1] = ("%d distinct frames (pagemap)"):format(distinct) end
  if scan then
    k.zero_page = scan.pfnzero * 2 > pages
  elseif distinct then
    k.zero_page = distinct <= 2
  elseif rss then
    k.zero_page = rss * 2 < pages * k.page_size
  end
  how.zero_page = ("measured: read %d fresh private pages: %s"):format(pages, table.concat(parts, ", "))
  -- the exclusive bit: a page written by this process alone is exclusive
  r:touch("write", { length = k.page_size })
  local e = core.pagemap(r.address)
  if e and e.present then
    k.pagemap_exclusive = e.exclusive
    how.pagemap_exclusive = ("measured: a page written by this process alone reads exclusive=%s")
      :format(tostring(e.exclusive))
    k.pfns_visible = e.pfn ~= nil
    how.pfns_visible = e.pfn and "measured: pagemap gave a frame number for a present page"
      or "measured: pagemap shows PFN 0 for a present page (needs CAP_SYS_ADMIN)"
  end
  r:close()
end

local function probe_cgroup(k, how)
  local m, why = require("vmlab.cgroup").memory()
  if not m then
    how.cgroup_version, how.cgroup_path, how.memory_limit = why, why, why
    return
  end
  k.cgroup_version, k.cgroup_path, k.memory_limit = m.version, m.path, m.limit
  how.cgroup_version, how.cgroup_path = m.how, m.how
  how.memory_limit = m.limit and ("read: %s/%s"):format(m.dir,
    m.version == 1 and "memory.limit_in_bytes" or "memory.max")
    or ("not readable: the memory limit of %s (the root cgroup has none)"):format(m.dir)
end

local function probe_caps(k, how)
  local status = proc.status() or {}
  local euid = status.euid
  k.root = euid == 0
  how.root = ("read: /proc/self/status Uid (effective %s)"):format(tostring(euid))
  local capeff = status.CapEff
  if capeff then
    local bits = status.cap_eff or 0
    k.cap_sys_admin = (bits >> 21) & 1 == 1
    k.cap_ipc_lock = (bits >> 14) & 1 == 1
    how.cap_sys_admin = "read: /proc/self/status CapEff " .. capeff .. " (bit 21)"
    how.cap_ipc_lock = "read: /proc/self/status CapEff " .. capeff .. " (bit 14)"
  end
end

local function probe_perf(k, how)
  k.perf_event_paranoid = sysctl_number("kernel.perf_event_paranoid")
  how.perf_event_paranoid = "read: /proc/sys/kernel/perf_event_paranoid"
  local c, err = core.fault_counter("minor", { source = "perf" })
  k.perf_faults = c ~= nil
  if c then c:close() end
  how.perf_faults = c and "measured: perf_event_open(PERF_COUNT_SW_PAGE_FAULTS_MIN) opened"
    or ("measured: perf_event_open refused: %s"):format(tostring(err))
end

-- Which malloc serves this process: the first allocator library in its maps, else glibc.
local ALLOCATORS = { { "asan", "libasan" }, { "jemalloc", "libjemalloc" }, { "mimalloc", "libmimalloc" },
  { "tcmalloc", "libtcmalloc" }, { "hoard", "libhoard" } }
local function probe_allocator(k, how)
  local paths, libc = {}, false
  for _, m in ipairs(proc.maps() or {}) do
    if m.kind == "file" then
      paths[#paths + 1] = m.path
      libc = libc or m.path:find("/libc[%.%-]") ~= nil
    end
  end
  for _, a in ipairs(ALLOCATORS) do
    for _, path in ipairs(paths) do
      if path:match("^/.*/" .. a[2] .. "[^/]*$") then
        k.allocator = a[1]
        how.allocator = "read: /proc/self/maps has " .. path
        return
      end
    end
  end
  k.allocator = libc and "glibc" or "unknown"
  how.allocator = "read: /proc/self/maps has no other allocator library"
end

local function probe()
  local k, how = {}, {}
  k.how = how
  k.kernel = proc.sysctl("kernel.osrelease") or "unknown"
  if type(k.kernel) ~= "string" then k.kernel = tostring(k.kernel) end
  how.kernel = "read: /proc/sys/kernel/osrelease"
  k.page_size = core.page_size
  how.page_size = "sysconf(_SC_PAGESIZE)"
  local THP = "/sys/kernel/mm/transparent_hugepage/"
  local mi = meminfo()
  k.huge_page_size = number_at(THP .. "hpage_pmd_size")
  how.huge_page_size = k.huge_page_size and "read: " .. THP .. "hpage_pmd_size"
    or "not found: " .. THP .. "hpage_pmd_size"
  if not k.huge_page_size and mi.Hugepagesize then
    k.huge_page_size = mi.Hugepagesize
    how.huge_page_size = "read: /proc/meminfo Hugepagesize (no THP in this kernel)"
  end
  local sizes = {}
  for _, name in ipairs(core.listdir("/sys/kernel/mm/hugepages") or {}) do
    local kb = name:match("^hugepages%-(%d+)kB$")
    if kb then sizes[#sizes + 1] = math.tointeger(kb) * 1024 end
  end
  table.sort(sizes)
  k.hugetlb_sizes = sizes
  how.hugetlb_sizes = "read: the directories of /sys/kernel/mm/hugepages"
  k.hugetlb_total, k.hugetlb_free = mi.HugePages_Total, mi.HugePages_Free
  how.hugetlb_total, how.hugetlb_free = "read: /proc/meminfo HugePages_Total", "read: /proc/meminfo HugePages_Free"
  k.thp_enabled = bracketed(THP .. "enabled") or "unavailable"
  k.thp_defrag = bracketed(THP .. "defrag") or "unavailable"
  how.thp_enabled, how.thp_defrag = "read: " .. THP .. "enabled", "read: " .. THP .. "defrag"
  k.overcommit_memory = sysctl_number("vm.overcommit_memory")
  k.overcommit_ratio = sysctl_number("vm.overcommit_ratio")
  how.overcommit_memory, how.overcommit_ratio = "read: /proc/sys/vm/overcommit_memory",
    "read: /proc/sys/vm/overcommit_ratio"
  k.swap_total, k.swap_free = mi.SwapTotal, mi.SwapFree
  how.swap_total, how.swap_free = "read: /proc/meminfo SwapTotal", "read: /proc/meminfo SwapFree"
  k.ksm_run = number_at("/sys/kernel/mm/ksm/run")
  k.ksm = k.ksm_run ~= nil
  how.ksm = "read: /sys/kernel/mm/ksm/run " .. (k.ksm and "exists" or "is missing")
  how.ksm_run = "read: /sys/kernel/mm/ksm/run"
  local soft = core.getrlimit("memlock")
  k.memlock_limit = soft
  how.memlock_limit = "getrlimit(RLIMIT_MEMLOCK)"
  probe_caps(k, how)
  probe_allocator(k, how)
  probe_cgroup(k, how)
  probe_perf(k, how)
  probe_zero_page(k, how)
  if k.pfns_visible == nil then how.pfns_visible = "not measured" end
  return k
end

--- The probes, measured on the first call and cached for the process.
-- @param refresh probe again (after changing a setting)
function M.probes(refresh)
  if refresh or not cached then cached = probe() end
  return cached
end

--- A copy fit for JSON: each field's value, and `how` beside them.
function M.record()
  local k = M.probes()
  local out = {}
  for _, f in ipairs(M.fields) do out[f] = k[f] end
  out.how = k.how
  return out
end

-- Requirements measured on first use and cached (name -> {ok, why}):
-- "glibc_heap": a small malloc block comes from the C library's brk heap (not
-- an LD_PRELOADed allocator such as jemalloc, nor AddressSanitizer's), so
-- malloc_trim(3) has that heap to trim; "madv_populate": madvise(MADV_POPULATE_WRITE)
-- works (Linux 5.14+).
local once = {}
function M.measured_once(name)
  if once[name] then return once[name][1], once[name][2] end
  local ok, why
  if name == "glibc_heap" then
    local b = core.malloc(64 * 1024)
    local at = b and b.address
    local lo, hi
    for _, m in ipairs(proc.maps() or {}) do
      if m.kind == "heap" then lo, hi = m.start, m.finish end
    end
    if b then b:close() end
    ok = at ~= nil and lo ~= nil and at >= lo and at < hi
    why = not ok and ("malloc(64 KiB) returned %s, outside the brk heap %s: this process's malloc is not the C " ..
      "library's heap (an LD_PRELOADed allocator or a sanitizer's)"):format(at and ("0x%x"):format(at) or "nothing",
      lo and ("0x%x-0x%x"):format(lo, hi) or "(there is no [heap] mapping)") or nil
  else
    local r = core.mmap(core.page_size)
    local res, err = r:advise("populate_write")
    r:close()
    ok = res ~= nil
    why = not ok and ("madvise(MADV_POPULATE_WRITE) is refused here (Linux 5.14+): %s"):format(tostring(err)) or nil
  end
  once[name] = { ok, why }
  return ok, why
end

--- Is requirement `name` met by this machine? A requirement is a probe field
-- that must be true (`"zero_page"`, `"pfns_visible"`, `"perf_faults"`,
-- `"root"`, ...), or one of "thp" (THP not "never"), "hugetlb" (free hugetlb
-- pages), "swap" (swap configured), "no_swap" (none), "ksm_running", "ksm_usable" (KSM running, or
-- built in and this process is root, so it may start it), "no_sanitizer" (no
-- AddressSanitizer in this process: malloc and SIGSEGV are the C library's and the kernel's).
-- Also "glibc_heap" and "madv_populate" (see M.measured_once above).
-- "two_cpus": this process may run on two CPUs at once (Cpus_allowed_list).
-- @return true, or false and the reason in words, with the probe's evidence
function M.has(name)
  local k = M.probes()
  local why
  if name == "thp" then
    if k.thp_enabled ~= "never" and k.thp_enabled ~= "unavailable" then return true end
    why = ("transparent huge pages are '%s'"):format(k.thp_enabled)
  elseif name == "hugetlb" then
    if (k.hugetlb_free or 0) > 0 then return true end
    why = ("no free hugetlb pages (HugePages_Free %s)"):format(tostring(k.hugetlb_free))
  elseif name == "swap" then
    if (k.swap_total or 0) > 0 then return true end
    why = "this machine has no swap (SwapTotal 0)"
  elseif name == "no_swap" then -- what MADV_PAGEOUT does without swap (the swap experiment)
    if (k.swap_total or 0) == 0 then return true end
    why = ("this machine has swap (SwapTotal %s)"):format(bytes(k.swap_total))
  elseif name == "ksm_usable" then -- KSM runs, or this process may start it (the ksm experiment)
    if k.ksm_run == 1 or (k.ksm and k.root) then return true end
    why = not k.ksm and "this kernel has no KSM (no /sys/kernel/mm/ksm/run)"
      or ("KSM is not running (/sys/kernel/mm/ksm/run is %s) and only root may start it"):format(tostring(k.ksm_run))
  elseif name == "ksm_running" then
    if k.ksm_run == 1 then return true end
    why = k.ksm and "KSM is not running (/sys/kernel/mm/ksm/run is " .. tostring(k.ksm_run) .. ")"
      or "this kernel has no KSM"
  elseif name == "memory_cgroup" then
    if k.memory_cgroup == nil then -- measured on first use: make a group and remove it
      local g, gwhy = require("vmlab.cgroup").create("probe", 1 << 30)
      k.memory_cgroup = g ~= nil
      k.how.memory_cgroup = g and ("measured: made and removed " .. g.dir) or ("measured: " .. tostring(gwhy))
      if g then g:remove() end
    end
    if k.memory_cgroup then return true end
    why = "no memory cgroup can be made here (" .. k.how.memory_cgroup .. ")"
  elseif name == "kernel_log" then
    if k.kernel_log == nil then
      local p = io.popen("dmesg 2>/dev/null | tail -n 1")
      local line = p and p:read("a") or ""
      if p then p:close() end
      k.kernel_log = line ~= ""
      k.how.kernel_log = k.kernel_log and "measured: dmesg printed the kernel log"
        or "measured: dmesg printed nothing (kernel.dmesg_restrict, or no dmesg)"
    end
    if k.kernel_log then return true end
    why = "the kernel log is not readable here (" .. k.how.kernel_log .. ")"
  elseif name == "glibc_malloc" then
    if k.allocator == "glibc" then return true end
    why = ("this process's malloc is %s, not glibc's (%s)"):format(k.allocator, k.how.allocator)
  elseif name == "preloadable_malloc" then
    if k.allocator ~= "asan" then return true end
    why = ("AddressSanitizer's malloc serves this process and every child it starts: LD_PRELOAD cannot replace it " ..
      "(%s)"):format(k.how.allocator)
  elseif name == "zero_page" then
    if k.zero_page then return true end
    why = k.zero_page == false and "this kernel does not map the zero page for read faults ("
        .. k.how.zero_page .. ")"
      or "whether this kernel maps the zero page could not be measured (" .. tostring(k.how.zero_page) .. ")"
  elseif name == "no_sanitizer" then
    -- AddressSanitizer (LD_PRELOADed or linked in) replaces malloc and
    -- catches SIGSEGV itself, so the C library's heap and the kernel's
    -- default action on a fault cannot be shown under it
    if k.allocator ~= "asan" then return true end
    why = ("AddressSanitizer is loaded in this process (%s): it replaces malloc and handles SIGSEGV itself")
      :format(k.how.allocator)
  elseif name == "glibc_heap" or name == "madv_populate" then
    local ok
    ok, why = M.measured_once(name)
    if ok then return true end
  elseif name == "two_cpus" then -- this process may run on two CPUs at once (races, cross-core IPC)
    local status = proc.status() or {}
    local list = status.Cpus_allowed_list
    local n = #(status.cpus_allowed or {})
    if n >= 2 then return true end
    why = ("this process may run on %d CPU only (/proc/self/status Cpus_allowed_list %s)"):format(n, tostring(list))
  elseif M.meaning[name] ~= nil then
    if k[name] == true then return true end
    why = ("%s: no (%s)"):format(M.meaning[name], tostring(k.how[name]))
  else
    error(("vmlab.kernel.has: unknown requirement '%s'"):format(tostring(name)), 2)
  end
  return false, why
end

return setmetatable(M, { __call = function(_, refresh) return M.probes(refresh) end })
