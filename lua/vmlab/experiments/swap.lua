--- swap: private anonymous memory pushed out to swap and touched again.
-- A region is written (the first touch), then madvise(MADV_PAGEOUT) asks the
-- kernel to reclaim it: with swap, each page is written to the swap device
-- (/proc/vmstat pswpout), its page-table entry becomes a swap entry (pagemap's
-- `swapped` bit, smaps `Swap`). The written pages first stay in the swap
-- cache, so a touch right away is a minor fault that reads nothing; once they
-- are mapped again, clean, a second MADV_PAGEOUT frees them at once. A touch
-- then reads them back: major faults (fewer than pages where swap read-ahead,
-- /proc/sys/vm/page-cluster, brings neighbours in), pswpin, and the time per
-- page against the first touch. Without swap MADV_PAGEOUT cannot move
-- anonymous memory anywhere: every page stays resident.
--
-- A machine without swap: `--swapfile 256MiB` (root) makes a temporary swap
-- file in a fresh directory under $TMPDIR or /var/tmp (not on tmpfs, overlay
-- or btrfs), swaps on, and takes it away afterwards on every exit path: an
-- undo watcher (vmlab.undo, armed before the file exists) runs
-- `swapoff FILE; rm -f FILE; rmdir DIR` when this process ends, even by SIGKILL.
local vm = require "vmlab"
local undo = require "vmlab.undo"

local MiB = 1024 * 1024

local M = {
  name = "swap",
  summary = "private memory pushed out with MADV_PAGEOUT and touched again: pswpout, smaps Swap, major faults, pswpin",
  tour = { size = 8 * MiB },
  writes = function(p) return p.size end,
  text_omit = { "swapfile" }, -- explain() says where it was and that it is gone
}

local PARAMS = {
  { name = "size", default = 32 * MiB, unit = "bytes", min = vm.page_size, max = 1 << 40,
    help = "private anonymous memory to write, push out to swap and touch again" },
  { name = "swapfile", default = 0, unit = "bytes", min = 0, max = 1 << 40,
    help = "where the machine has no swap: a temporary swap file of this size for the run (root; 0: none)" },
}

function M.validate(p)
  if p.swapfile ~= 0 and p.swapfile < MiB then return "--swapfile must be 0 (none) or at least 1.0 MiB" end
  return nil
end

local function fd(name, unit, help, more) -- a field description
  local d = { name = name, unit = unit, help = help }
  for k, v in pairs(more or {}) do d[k] = v end
  return d
end

local PAGEMAP = {
  fd("present", "count", "pages present in memory (pagemap)"),
  fd("swapped", "count", "pages whose page-table entry is a swap entry (pagemap)"),
  fd("resident", "count", "pages in memory by mincore(2), the swap cache included"),
  fd("smaps_swap", "bytes", "the mapping's Swap in /proc/self/smaps", { optional = true }),
  fd("smaps_rss", "bytes", "the mapping's Rss in /proc/self/smaps", { optional = true }),
}
local function with(list, more)
  local out = {}
  for _, x in ipairs(more) do out[#out + 1] = x end
  for _, x in ipairs(list) do out[#out + 1] = x end
  return out
end
local TOUCH = {
  fd("minor_faults", "count", "minor page faults of the touch"),
  fd("major_faults", "count", "major page faults (the page read from the swap device)"),
}

local FIELDS = {
  fd("size", "bytes", "bytes of private anonymous memory"),
  fd("pages", "count", "pages of vm.page_size in it"),
  fd("swap_on", "boolean", "swap was configured during the run"),
  fd("swap_total", "bytes", "SwapTotal during the run (/proc/meminfo)"),
  fd("swap_free", "bytes", "SwapFree during the run"),
  fd("page_cluster", "count", "/proc/sys/vm/page-cluster: swap read-ahead reads up to 2^this pages",
    { optional = true }),
  fd("zswap", "boolean", "zswap (a compressed cache in front of swap) is on"),
  fd("swapfile", "object", "the temporary swap file (--swapfile)", { optional = true, fields = {
    fd("path", "text", "the file"), fd("bytes", "bytes", "its size"), fd("fs", "text", "its filesystem"),
    fd("dir", "text", "the directory it was made in"), fd("how", "text", "fallocate or dd"),
    fd("made", "boolean", "it was made and swapped on"),
    fd("removed", "boolean", "it was swapped off and removed after the run", { optional = true }),
    fd("remove_error", "text", "why removing it failed", { optional = true }) } }),
  fd("swapfile_refused", "text", "why no swap file was made", { optional = true }),
  fd("swapfile_note", "text", "why no swap file was needed", { optional = true }),
  fd("pageout_error", "text", "why madvise(MADV_PAGEOUT) failed", { optional = true }),
  fd("first_touch", "object", "the first write of every page", { optional = true, fields = with({
    fd("seconds", "seconds", "time of the touch"), fd("ns_per_page", "ns", "time per page") }, TOUCH) }),
  fd("pageout", "object", "after MADV_PAGEOUT", { optional = true, fields = with(PAGEMAP, {
    fd("pswpout", "count", "pages written to swap (/proc/vmstat pswpout)"),
    fd("zswpout", "count", "pages stored by zswap (zswpout)"),
    fd("writeback_wait", "seconds", "time until no page was under writeback") }) }),
  fd("cache_touch", "object", "a read of every page right after MADV_PAGEOUT", { optional = true,
    fields = with(TOUCH, { fd("pswpin", "count", "pages read from swap (pswpin)"),
      fd("zswpin", "count", "pages loaded from zswap (zswpin)") }) }),
  fd("pageout_again", "object", "after a second MADV_PAGEOUT", { optional = true, fields = with(PAGEMAP, {
    fd("pswpout", "count", "pages written to swap"), fd("zswpout", "count", "pages stored by zswap"),
    fd("writeback_wait", "seconds", "time until no page was under writeback") }) }),
  fd("swap_in", "object", "a read of every page once they were out", { optional = true,
    fields = with(PAGEMAP, with(TOUCH, {
      fd("seconds", "seconds", "time of the touch"), fd("ns_per_page", "ns", "time per page"),
      fd("pswpin", "count", "pages read from swap"), fd("zswpin", "count", "pages loaded from zswap"),
      fd("swap_ra", "count", "pages brought in by swap read-ahead (swap_ra)"),
      fd("swap_ra_hit", "count", "read-ahead pages then used (swap_ra_hit)") })) }),
}

M.params, M.fields = PARAMS, FIELDS

local slurp, exists = vm.proc.read_file, vm.proc.exists

-- Does /proc/swaps list the swap file at path?
local function swap_listed(path)
  for _, s in ipairs(vm.proc.swaps() or {}) do
    if s.filename == path then return true end
  end
  return false
end


-- /proc/vmstat as numbers.
local function vmstat()
  local t = {}
  for k, v in pairs(vm.proc.vmstat() or {}) do t[k] = v end
  return t
end

local function meminfo_swap()
  local mi = vm.proc.meminfo() or {}
  return mi.SwapTotal or 0, mi.SwapFree or 0
end

-- A shell command: true, its output; or false, its output.
local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  if not p then return false, "cannot run: " .. cmd end
  local out = p:read("a") or ""
  local ok = p:close()
  return ok == true, (out:gsub("%s+$", ""))
end

-- ---------------------------------------------------------------------------
-- The temporary swap file

-- Filesystems a swap file cannot live on (or not simply: btrfs needs NOCOW).
local REFUSED_FS = {
  tmpfs = "tmpfs keeps files in memory (and the kernel refuses swap files there)",
  ramfs = "ramfs keeps files in memory", overlayfs = "overlayfs has no block mapping for swapon",
  overlay = "overlayfs has no block mapping for swapon",
  btrfs = "btrfs takes a swap file only with NOCOW and no compression (chattr +C on an empty file)",
  nfs = "swap over NFS needs a kernel built for it", zfs = "ZFS does not support swap files",
  fuseblk = "FUSE filesystems do not support swap files", fuse = "FUSE filesystems do not support swap files",
  squashfs = "squashfs is read-only", ["9p"] = "9p has no block mapping for swapon",
  virtiofs = "virtiofs has no block mapping for swapon",
}

local function fstype(dir)
  local ok, out = sh("stat -f -c %T " .. undo.quote(dir))
  if not ok then return nil, out end
  return out
end

local function dir_candidates()
  local list, seen = {}, {}
  for _, d in ipairs { os.getenv("TMPDIR") or "", "/var/tmp" } do
    d = d:gsub("(.)/+$", "%1")
    if d ~= "" and not seen[d] then seen[d] = true; list[#list + 1] = d end
  end
  return list
end

-- Bytes free in dir, from df (POSIX output).
local function free_bytes(dir)
  local ok, out = sh("df -Pk " .. undo.quote(dir))
  if not ok then return nil end
  local avail = out:match("\n%S+%s+%d+%s+%d+%s+(%d+)")
  return avail and math.tointeger(tonumber(avail)) * 1024 or nil
end

local counter = 0

-- Remove the swap files of vmlab processes that are gone (left by a SIGKILL
-- of both the process and its undo watcher).
function M.sweep()
  local removed = 0
  for _, parent in ipairs(dir_candidates()) do
    for _, name in ipairs(vm.listdir(parent) or {}) do
      local pid = math.tointeger(tonumber(name:match("^vmlab%-swap%-(%d+)%-%d+$") or ""))
      if pid and pid ~= vm.getpid() and not vm.proc.alive(pid) then
        local d = parent .. "/" .. name
        local f = d .. "/swapfile"
        os.execute(("swapoff %s 2>/dev/null; grep -qF %s /proc/swaps || { rm -f %s; rmdir %s; } 2>/dev/null")
          :format(undo.quote(f), undo.quote(f), undo.quote(f), undo.quote(d)))
        removed = removed + 1
      end
    end
  end
  return removed
end

--- Why directory `dir` cannot hold a swap file of `bytes` (its filesystem,
-- its name, its free space), or nil and its filesystem type when it can.
function M.check_dir(dir, bytes)
  local fs, ferr = fstype(dir)
  if not fs then return ("%s: cannot tell its filesystem: %s"):format(dir, tostring(ferr)) end
  local base = fs:match("^(%w+)")
  if REFUSED_FS[fs] or REFUSED_FS[base or ""] then
    return ("%s is on %s: %s"):format(dir, fs, REFUSED_FS[fs] or REFUSED_FS[base])
  end
  if dir:find("[^%w/._%-]") then return ("%s: a directory name with unusual characters"):format(dir) end
  local free = free_bytes(dir)
  if free and free < bytes + 64 * MiB then
    return ("%s has %s free, too little for a %s swap file"):format(dir, vm.units.bytes(free),
      vm.units.bytes(bytes))
  end
  return nil, fs
end

-- A swap file of `bytes` in dir, on. Returns the record, or nil and why.
-- `u` (an undo list, not yet armed) gets the steps that take it away.
local function try_swapfile(dir, bytes, u)
  local refused, fs = M.check_dir(dir, bytes)
  if refused then return nil, refused end
  counter = counter + 1
  local d = ("%s/vmlab-swap-%d-%d"):format(dir, vm.getpid(), counter)
  local f = d .. "/swapfile"
  local qd, qf = undo.quote(d), undo.quote(f)
  -- take it away: swap off, and only once it is off, remove it (a file still
  -- in use as swap must keep its name so that a later swapoff can find it).
  -- When this process is gone (the watcher runs it), a step it had started
  -- (mkswap, swapon, run by a shell of its own) may still finish: do it all
  -- again 2 s later.
  local away = ("swapoff %s 2>/dev/null; grep -qF %s /proc/swaps || { rm -f %s; rmdir %s; } 2>/dev/null")
    :format(qf, qf, qf, qd)
  u:command(("%s; if ! kill -0 %d 2>/dev/null; then sleep 2; %s; fi"):format(away, vm.getpid(), away))
  local aok, aerr = u:arm() -- armed BEFORE anything exists
  if not aok then return nil, aerr end
  local rec = { path = f, bytes = bytes, fs = fs, dir = dir }
  local function step(what, cmd)
    local ok, out = sh(cmd)
    if not ok then return nil, ("%s failed: %s"):format(what, out ~= "" and out or cmd) end
    return true
  end
  -- a fresh directory of our own (mkdir fails if the name exists: no symlink games in /var/tmp)
  local ok, err = step("mkdir", "mkdir -m 700 " .. qd)
  if not ok then u:run(); return nil, err end
  local function make(how)
    if how == "fallocate" then
      ok, err = step("fallocate", ("fallocate -l %d %s"):format(bytes, qf))
    else
      ok, err = step("dd", ("rm -f %s; dd if=/dev/zero of=%s bs=1M count=%d status=none"):format(qf, qf,
        (bytes + MiB - 1) // MiB))
    end
    if ok then ok, err = step("chmod", "chmod 600 " .. qf) end
    if ok then ok, err = step("mkswap", "mkswap " .. qf) end
    if ok then ok, err = step("swapon", "swapon " .. qf) end
    return ok, err
  end
  rec.how = "fallocate"
  ok, err = make("fallocate")
  if not ok then -- some filesystems see a preallocated file as one with holes: write it out
    local first = err
    rec.how = "dd"
    ok, err = make("dd")
    if not ok then err = first .. "; then with dd: " .. err end
  end
  if ok and not swap_listed(f) then
    ok, err = nil, "swapon said yes but /proc/swaps does not list " .. f
  end
  if not ok then
    u:run()
    return nil, ("%s (%s): %s"):format(dir, fs, err)
  end
  rec.made = true
  return rec
end

-- Make a swap file of `bytes`: the record and its undo list, or nil, why.
local function make_swapfile(bytes)
  if not require("vmlab.kernel").has("root") then
    return nil, "making a swap file needs root (mkswap, swapon)"
  end
  M.sweep()
  local tried = {}
  for _, dir in ipairs(dir_candidates()) do
    local u = undo.new("swap file")
    local rec, why = try_swapfile(dir, bytes, u)
    if rec then return rec, u end
    tried[#tried + 1] = why
  end
  return nil, "no swap file could be made: " .. table.concat(tried, "; ")
end

-- ---------------------------------------------------------------------------
-- The measurement

-- Pages of r present and swapped: PAGEMAP_SCAN where the kernel has it, else
-- one pagemap read per page.
local function pagemap_counts(r)
  local s = r:scan()
  if s then return s.present, s.swapped end
  local present, swapped = 0, 0
  for i = 0, r.pages - 1 do
    local e = vm.pagemap(r.address + i * vm.page_size)
    if e and e.present then present = present + 1 end
    if e and e.swapped then swapped = swapped + 1 end
  end
  return present, swapped
end

local function snapshot(r, t)
  t = t or {}
  t.present, t.swapped = pagemap_counts(r)
  t.resident = r:resident() -- mincore: also counts pages in the swap cache
  local m = vm.proc.mapping_at(r.address) or {}
  t.smaps_swap, t.smaps_rss = m.Swap, m.Rss
  return t
end

local function delta(a, b, key) return (b[key] or 0) - (a[key] or 0) end

-- Wait (at most 3 s) until no page is under writeback, so that what
-- MADV_PAGEOUT started has reached the swap device.
local function wait_writeback()
  local t0 = vm.now()
  while vm.now() - t0 < 3 do
    local s = vmstat()
    if (s.nr_writeback or 0) == 0 then break end
    vm.sleep(0.002)
  end
  return vm.now() - t0
end

local function measure(p, result)
  local r <close> = assert(vm.mmap(p.size))
  r:advise("nohugepage") -- base pages: one fault, one swap entry per page
  local pages = r.pages
  local t = r:touch("write", { value = 0x5a }) -- not zero-filled: the kernel swaps out zero pages without I/O
  result.first_touch = { minor_faults = t.minor_faults, major_faults = t.major_faults, seconds = t.seconds,
    ns_per_page = t.seconds * 1e9 / pages }

  local s0 = vmstat()
  local ok, err = r:advise("pageout")
  if not ok then result.pageout_error = tostring(err); return end
  local wb = wait_writeback()
  local s1 = vmstat()
  result.pageout = snapshot(r, { pswpout = delta(s0, s1, "pswpout"), zswpout = delta(s0, s1, "zswpout"),
    writeback_wait = wb })

  -- right away: the pages are (mostly) still in the swap cache
  t = r:touch("read")
  local s2 = vmstat()
  result.cache_touch = { minor_faults = t.minor_faults, major_faults = t.major_faults,
    pswpin = delta(s1, s2, "pswpin"), zswpin = delta(s1, s2, "zswpin") }

  -- mapped again and clean, with their copy on swap: a second pageout frees them
  r:advise("pageout")
  local wb2 = wait_writeback()
  local s3 = vmstat()
  result.pageout_again = snapshot(r, { pswpout = delta(s2, s3, "pswpout"), zswpout = delta(s2, s3, "zswpout"),
    writeback_wait = wb2 })

  t = r:touch("read")
  local s4 = vmstat()
  result.swap_in = snapshot(r, { minor_faults = t.minor_faults, major_faults = t.major_faults, seconds = t.seconds,
    ns_per_page = t.seconds * 1e9 / pages, pswpin = delta(s3, s4, "pswpin"), zswpin = delta(s3, s4, "zswpin"),
    swap_ra = delta(s3, s4, "swap_ra"), swap_ra_hit = delta(s3, s4, "swap_ra_hit") })
end

--- params: size (bytes of private anonymous memory), swapfile (bytes of a
-- temporary swap file to make where the machine has no swap; 0: none; root)
function M.run(p)
  if not (math.type(p.size) == "integer" and p.size >= vm.page_size) then
    error("swap: size must be at least one page", 0)
  end
  if not (math.type(p.swapfile) == "integer" and p.swapfile >= 0) or M.validate(p) then
    error("swap: swapfile must be 0 (none) or at least 1 MiB", 0)
  end
  require("vmlab.kernel")() -- the probes describe the machine, before any swap file of ours
  local result = { size = p.size, pages = (p.size + vm.page_size - 1) // vm.page_size }
  local total = meminfo_swap()
  local u
  if p.swapfile > 0 then
    if total > 0 then
      result.swapfile_note = ("not made: this machine has swap (%s)"):format(vm.units.bytes(total))
    else
      local rec, undo_or_why = make_swapfile(p.swapfile)
      if rec then result.swapfile, u = rec, undo_or_why else result.swapfile_refused = undo_or_why end
    end
  end
  local ok, err = pcall(function()
    result.swap_total, result.swap_free = meminfo_swap()
    result.swap_on = result.swap_total > 0
    local pc = vm.proc.sysctl("vm.page-cluster")
    result.page_cluster = math.type(pc) == "integer" and pc or nil
    local z = (slurp("/sys/module/zswap/parameters/enabled") or ""):match("^%s*(%S)")
    result.zswap = z == "Y" or z == "1"
    measure(p, result)
  end)
  if u then
    local uok, uerr = u:run()
    result.swapfile.removed = uok and not swap_listed(result.swapfile.path)
      and not exists(result.swapfile.path) or false
    if not uok then result.swapfile.remove_error = uerr end
  end
  if not ok then error(err, 0) end
  return result
end

-- ---------------------------------------------------------------------------
-- Claims

local u = vm.units

local function us(ns) return ("%.1f µs"):format(ns / 1000) end

-- nil, why when this run had no swap
local function no_swap(r)
  if r.swap_on then return nil end
  if r.swapfile_refused then return "this machine has no swap, and " .. r.swapfile_refused end
  return "this machine has no swap (SwapTotal 0); as root, --swapfile 256MiB makes a temporary one for the run"
end

local function within(n, pages, lo, hi)
  return n ~= nil and n >= pages * lo and n <= pages * hi
end

-- A machine shows swapping where it has swap, or where this run made a swap file (root).
local function needs_swap(r) return r.swapfile and "root" or "swap" end

M.claims = {
  { id = "paged_out",
    text = "MADV_PAGEOUT writes private anonymous pages out to swap: the kernel counts them (pswpout), " ..
      "pagemap marks them swapped, not present, and smaps counts them as Swap",
    requires = needs_swap,
    decide = function(r)
      local why = no_swap(r)
      if why then return nil, nil, why end
      local o = r.pageout
      if not o then return nil, nil, "madvise(MADV_PAGEOUT) failed: " .. tostring(r.pageout_error) end
      local out = o.pswpout + o.zswpout
      local holds = out >= r.pages * 0.9 and o.swapped >= r.pages * 0.9 and o.present <= r.pages * 0.1
        and (o.smaps_swap or 0) >= r.size * 0.9
      return holds, ("pswpout +%s%s for %s pages; pagemap: %s swapped, %s present; smaps Swap %s of %s"):format(
        u.count(o.pswpout), o.zswpout > 0 and (" (zswpout +%s)"):format(u.count(o.zswpout)) or "",
        u.count(r.pages), u.count(o.swapped), u.count(o.present), u.bytes(o.smaps_swap or 0), u.bytes(r.size)),
        (out < r.pages * 0.9 and (r.swap_free or 0) < r.size) and
          ("swap had only %s free for %s"):format(u.bytes(r.swap_free or 0), u.bytes(r.size)) or nil
    end,
    explain = function()
      return "Reclaim wrote each page to the swap device and left a swap entry in its page-table entry."
    end },
  { id = "swap_in_major",
    text = "touching swapped-out pages reads them back from swap: major faults, pswpin grows by about " ..
      "their count, each page faults once (major, or minor where read-ahead brought it in) and is present again",
    requires = needs_swap,
    decide = function(r)
      local why = no_swap(r)
      if why then return nil, nil, why end
      local a, s = r.pageout_again, r.swap_in
      if not (a and s) then return nil, nil, "madvise(MADV_PAGEOUT) failed: " .. tostring(r.pageout_error) end
      local inn = s.pswpin + s.zswpin
      local faults = s.major_faults + s.minor_faults
      local holds = s.major_faults >= 1 and within(faults, r.pages, 0.9, 1.1) and inn >= r.pages * 0.9
        and s.present >= r.pages * 0.9
      local cause
      if a.resident > r.pages * 0.1 then
        cause = ("%s pages were still in memory (the swap cache) after the second MADV_PAGEOUT"):format(
          u.count(a.resident))
      end
      return holds, ("%s major + %s minor faults for %s pages (%s swapped before); pswpin +%s%s; " ..
        "read-ahead %s; %s present after"):format(u.count(s.major_faults), u.count(s.minor_faults), u.count(r.pages),
        u.count(a.swapped), u.count(s.pswpin), s.zswpin > 0 and (" (zswpin +%s)"):format(u.count(s.zswpin)) or "",
        u.count(s.swap_ra), u.count(s.present)), cause
    end,
    explain = function(r)
      local s = r.swap_in
      if s.major_faults < r.pages * 0.9 then
        return ("A major fault read a cluster of pages (page-cluster %s: up to %d); the neighbours then faulted " ..
          "minor, found in the swap cache."):format(tostring(r.page_cluster), 1 << (r.page_cluster or 0))
      end
      return "Each page came back with a major fault of its own."
    end },
  { id = "swap_in_slower",
    text = "a page read back from swap costs more time than the first touch of a fresh page",
    requires = needs_swap,
    decide = function(r)
      local why = no_swap(r)
      if why then return nil, nil, why end
      local s, f = r.swap_in, r.first_touch
      if not s or s.major_faults == 0 then return nil, nil, "nothing was read back from swap" end
      return s.ns_per_page > f.ns_per_page, ("%s per page swapped in, %s per page at the first touch (x%.1f)")
        :format(us(s.ns_per_page), us(f.ns_per_page), s.ns_per_page / f.ns_per_page)
    end },
  { id = "stays_resident",
    text = "without swap, MADV_PAGEOUT cannot push private anonymous memory out: every page stays resident",
    requires = function(r) return r.swapfile and "swap" or "no_swap" end, -- a run with a swap file had swap
    decide = function(r)
      if r.swap_on then
        return nil, nil, ("this run had swap (%s%s)"):format(u.bytes(r.swap_total),
          r.swapfile and ", the temporary swap file" or "")
      end
      local o, c = r.pageout, r.cache_touch
      if not o then return nil, nil, "madvise(MADV_PAGEOUT) failed: " .. tostring(r.pageout_error) end
      local faults = c.minor_faults + c.major_faults
      return o.present >= r.pages * 0.9 and o.swapped == 0 and (o.smaps_swap or 0) == 0 and faults <= r.pages * 0.1,
        ("after MADV_PAGEOUT: %s of %s pages present, %s swapped, smaps Rss %s, Swap %s; touching them: " ..
          "%s faults"):format(u.count(o.present), u.count(r.pages), u.count(o.swapped), u.bytes(o.smaps_rss or 0),
          u.bytes(o.smaps_swap or 0), u.count(faults))
    end,
    explain = function()
      return "Anonymous memory has no file to go back to: without swap, reclaim has nowhere to write it."
    end },
}

function M.explain(r)
  local lines = {}
  if r.swapfile then
    lines[#lines + 1] = ("A temporary swap file %s (%s, %s, made with %s) was on for the run, and %s afterwards.")
      :format(r.swapfile.path, u.bytes(r.swapfile.bytes), r.swapfile.fs, r.swapfile.how,
        r.swapfile.removed and "removed" or "NOT removed: " .. tostring(r.swapfile.remove_error))
  elseif r.swapfile_refused then
    lines[#lines + 1] = "No swap file: " .. r.swapfile_refused .. "."
  elseif r.swapfile_note then
    lines[#lines + 1] = "Swap file " .. r.swapfile_note .. "."
  end
  lines[#lines + 1] = ("Swap during the run: %s (%s free)%s."):format(u.bytes(r.swap_total or 0),
    u.bytes(r.swap_free or 0), r.zswap and ", zswap on" or "")
  local f = r.first_touch
  if f then
    lines[#lines + 1] = ("First touch (write) of %s pages: %s minor faults, %s per page."):format(u.count(r.pages),
      u.count(f.minor_faults), us(f.ns_per_page))
  end
  local o, c = r.pageout, r.cache_touch
  if o and c then
    lines[#lines + 1] = ("After MADV_PAGEOUT: pswpout +%s, %s pages swapped, %s present, %s still resident " ..
      "(mincore, the swap cache included), after %s of writeback."):format(u.count(o.pswpout), u.count(o.swapped),
      u.count(o.present), u.count(o.resident), u.seconds(o.writeback_wait))
    lines[#lines + 1] = ("Touched right away: %s minor, %s major faults, pswpin +%s."):format(
      u.count(c.minor_faults), u.count(c.major_faults), u.count(c.pswpin))
    if r.swap_on and c.major_faults == 0 and c.pswpin == 0 and c.minor_faults >= r.pages * 0.9 then
      lines[#lines + 1] = "  So the pages were still in memory, in the swap cache: nothing was read back."
    end
  end
  local a, s = r.pageout_again, r.swap_in
  if r.swap_on and a and s then
    lines[#lines + 1] = ("Second MADV_PAGEOUT: pswpout +%s (clean pages need no new write), %s pages resident.")
      :format(u.count(a.pswpout), u.count(a.resident))
    lines[#lines + 1] = ("Touched again: %s major + %s minor faults, pswpin +%s, %s per page.")
      :format(u.count(s.major_faults), u.count(s.minor_faults), u.count(s.pswpin), us(s.ns_per_page))
  end
  return lines
end

-- Its chart (vmlab run swap --plot FILE.svg|png, vmlab report): the region's pages in memory and in swap after
-- each step, and the time per page of the first touch against the swap-in.
M.charts = {
  { kind = "bars", title = "MADV_PAGEOUT: the pages in memory and in swap",
    panels = function(r)
      local groups = {}
      if r.pages and r.first_touch then
        groups[1] = { label = "written", bars = { { name = "in memory", value = r.pages, color = "#1f77b4" },
          { name = "in swap", value = 0, color = "#ff7f0e" } } }
      end
      for _, step in ipairs { { "pageout", "paged out" }, { "pageout_again", "paged out again" },
        { "swap_in", "touched again" } } do
        local s = r[step[1]]
        if type(s) == "table" and s.resident then
          groups[#groups + 1] = { label = step[2], bars = { { name = "in memory", value = s.resident },
            { name = "in swap", value = s.swapped or 0 } } }
        end
      end
      local times = {}
      for _, step in ipairs { { "first_touch", "first touch" }, { "swap_in", "swap-in" } } do
        local s = r[step[1]]
        if type(s) == "table" and s.ns_per_page then
          times[#times + 1] = { label = step[2], value = s.ns_per_page * 1e-9 }
        end
      end
      return { { title = "pages", unit = "pages", stacked = true, groups = groups },
        { title = "time per page", unit = "seconds", groups = times } }
    end },
}

return M
