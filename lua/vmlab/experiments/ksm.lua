--- ksm: kernel same-page merging, watched. A region of private pages with
-- identical contents is advised MADV_MERGEABLE; the KSM daemon (ksmd) scans
-- it, finds the pages equal and maps them all to one write-protected frame
-- (/sys/kernel/mm/ksm/pages_shared, pages_sharing; the process's own
-- /proc/self/ksm_stat and smaps `KSM`; the pages are no longer exclusive in
-- pagemap, and as root their frame numbers are one). The region's Rss stays,
-- its Pss falls to about one page. A write to one page is a copy-on-write
-- fault: that page gets a frame of its own again, the others stay merged.
-- `--content distinct` gives every page different contents: nothing merges.
--
-- KSM must run (/sys/kernel/mm/ksm/run = 1). Root may start it for the run
-- and speeds it up (pages_to_scan, sleep_millisecs); the previous settings are
-- written back afterwards on every exit path, SIGKILL included, by an undo
-- watcher (vmlab.undo) armed before anything is changed. It first waits (at
-- most 3 s) for two full scans, so that ksmd forgets this process's pages.
local vm = require "vmlab"
local undo = require "vmlab.undo"

local KSM = "/sys/kernel/mm/ksm/"

local M = {
  name = "ksm",
  summary = "identical pages advised MERGEABLE are merged by KSM into one frame; a write unmerges one (COW)",
  tour = { size = 32 * vm.page_size, timeout = 4.0 },
  writes = function(p) return (p.size + vm.page_size - 1) // vm.page_size * vm.page_size end,
}

local PARAMS = {
  { name = "size", default = 64 * vm.page_size, unit = "bytes", min = 2 * vm.page_size,
    max = (1 << 20) * vm.page_size,
    help = "memory advised MADV_MERGEABLE (whole pages: rounded up)" },
  { name = "content", default = "same", unit = "choice", choices = { "same", "distinct" },
    help = "same: every page holds the same bytes; distinct: every page different (nothing to merge)" },
  { name = "timeout", default = 5.0, unit = "seconds", min = 0.01, max = 600,
    help = "how long to wait for KSM to merge the pages" },
}

local function fd(name, unit, help, more) -- a field description
  local d = { name = name, unit = unit, help = help, optional = true }
  for k, v in pairs(more or {}) do d[k] = v end
  return d
end

local SNAPSHOT = {
  fd("distinct_frames", "count", "distinct physical frames behind the pages (root)"),
  fd("frame0", "count", "the frame number of page 0 (root)"),
  fd("frame1", "count", "the frame number of page 1 (root)"),
  fd("exclusive_pages", "count", "pages mapped by this process alone (pagemap bit 56)"),
  fd("page0_exclusive", "boolean", "page 0 is mapped by this process alone"),
  fd("merging_pages", "count", "this process's pages merged by KSM (/proc/self/ksm_stat ksm_merging_pages)"),
  fd("smaps_ksm", "bytes", "the mapping's KSM in /proc/self/smaps"),
  fd("rss", "bytes", "the mapping's Rss"),
  fd("pss", "bytes", "the mapping's Pss (each frame divided among its mappings)"),
  fd("pages_shared", "count", "KSM pages in use, machine-wide (/sys/kernel/mm/ksm/pages_shared)"),
  fd("pages_sharing", "count", "further mappings sharing them, machine-wide (pages_sharing)"),
}

local FIELDS = {
  fd("content", "text", "same or distinct page contents", { optional = false }),
  fd("pages", "count", "pages in the region", { optional = false }),
  fd("size", "bytes", "the region's size (whole pages)", { optional = false }),
  fd("ksm_run_before", "count", "/sys/kernel/mm/ksm/run before the run"),
  fd("started", "boolean", "this run started KSM (root)", { optional = false }),
  fd("sped_up", "text", "the scan settings this run used (root)"),
  fd("wait_seconds", "seconds", "time waited for merging"),
  fd("full_scans", "count", "full scans KSM made meanwhile"),
  fd("write_faults", "count", "page faults of the write to page 0"),
  fd("max_page_sharing", "count", "mappings one KSM page may have"),
  fd("restored", "boolean", "KSM's settings were written back"),
  fd("restore_error", "text", "why writing them back failed"),
  fd("ksm_refused", "text", "why nothing was measured"),
  fd("before", "object", "before MADV_MERGEABLE", { fields = SNAPSHOT }),
  fd("merged", "object", "after waiting for KSM", { fields = SNAPSHOT }),
  fd("after_write", "object", "after the write to page 0 (and two more scans)", { fields = SNAPSHOT }),
}

M.params, M.fields = PARAMS, FIELDS

local number_at, exists = vm.proc.number_at, vm.proc.exists


local function ksm(name) return number_at(KSM .. name) end

local function set(name, value)
  local f, err = io.open(KSM .. name, "w")
  if not f then return nil, err end
  local ok, werr = f:write(tostring(value), "\n")
  local cok, cerr = f:close()
  if not (ok and cok) then return nil, ("%s%s: %s"):format(KSM, name, tostring(werr or cerr)) end
  return true
end

-- This process's KSM counters (/proc/self/ksm_stat, Linux 6.1+), or nil.
local function ksm_stat()
  return (vm.proc.ksm_stat())
end

-- What the region looks like now: frames (root), exclusive pages (pagemap),
-- this process's merged pages (ksm_stat), smaps KSM/Rss/Pss, the global counters.
local function snapshot(r)
  local t = {}
  local frames = r:frames(0, r.pages)
  if frames then
    local seen, n = {}, 0
    for _, pfn in ipairs(frames) do
      if pfn and not seen[pfn] then seen[pfn] = true; n = n + 1 end
    end
    t.distinct_frames = n
    t.frame0, t.frame1 = frames[1] or nil, frames[2] or nil
  end
  local excl, known = 0, false
  for i = 0, r.pages - 1 do
    local e = vm.pagemap(r.address + i * vm.page_size)
    if e and e.present then
      known = true
      if e.exclusive then excl = excl + 1 end
    end
  end
  if known then t.exclusive_pages = excl end
  t.page0_exclusive = (vm.pagemap(r.address) or {}).exclusive
  local st = ksm_stat()
  t.merging_pages = st and st.ksm_merging_pages
  local m = vm.proc.mapping_at(r.address) or {}
  t.smaps_ksm, t.rss, t.pss = m.KSM, m.Rss, m.Pss
  t.pages_shared, t.pages_sharing = ksm("pages_shared"), ksm("pages_sharing")
  return t
end

-- This process's merged pages of r, by the best evidence there is, and its name.
local function merged_count(t, r)
  if t.merging_pages then return t.merging_pages, "ksm_stat" end
  if t.smaps_ksm then return t.smaps_ksm // vm.page_size, "smaps KSM" end
  if require("vmlab.kernel")().pagemap_exclusive and t.exclusive_pages then
    return r.pages - t.exclusive_pages, "pagemap"
  end
  return nil
end

-- Wait until ksmd has made `scans` more full scans (at most `limit` seconds);
-- with `until_fn`, stop as soon as it returns true.
local function wait_scans(scans, limit, until_fn)
  local t0, f0 = vm.now(), ksm("full_scans") or 0
  while vm.now() - t0 < limit do
    if until_fn and until_fn() then break end
    if (ksm("full_scans") or 0) >= f0 + scans then break end
    vm.sleep(0.005)
  end
  return vm.now() - t0, (ksm("full_scans") or 0) - f0
end

-- Start/speed up KSM as root: the undo list (armed), or nil, why.
-- One vmlab process at a time changes KSM's settings (two at once would each
-- write back what the other had set): a symlink whose target is the owner's pid.

M.lock_path = (exists("/run/lock") and "/run/lock" or "/tmp") .. "/vmlab-ksm.lock"

local function lock_owner()
  local p = io.popen("readlink " .. undo.quote(M.lock_path) .. " 2>/dev/null")
  local pid = p and math.tointeger(tonumber(p:read("a"):match("%d+") or ""))
  if p then p:close() end
  return pid
end

local function lock(limit)
  local t0, me = vm.now(), vm.getpid()
  while true do
    if os.execute(("ln -s %d %s 2>/dev/null"):format(me, undo.quote(M.lock_path))) then return true end
    local pid = lock_owner()
    if pid and not vm.proc.alive(pid) then -- its owner is gone: stale
      os.execute(("[ \"$(readlink %s)\" = %d ] && rm -f %s"):format(undo.quote(M.lock_path), pid,
        undo.quote(M.lock_path)))
    elseif vm.now() - t0 > limit then
      return nil, ("another vmlab process (pid %s) is changing KSM's settings (%s)"):format(tostring(pid),
        M.lock_path)
    else
      vm.sleep(0.05)
    end
  end
end

local function take_over(result)
  local lok, lerr = lock(10)
  if not lok then return nil, lerr end
  local u = undo.new("ksm settings")
  -- runs last: the lock goes, if it is still ours
  u:command(("[ \"$(readlink %s)\" = %d ] && rm -f %s"):format(undo.quote(M.lock_path), vm.getpid(),
    undo.quote(M.lock_path)))
  for _, name in ipairs { "pages_to_scan", "sleep_millisecs", "run" } do
    local v, err = u:write_back(KSM .. name)
    if not v then u:run(); return nil, "cannot read " .. KSM .. name .. ": " .. tostring(err) end
  end
  -- runs first: wait (at most 3 s) until ksmd has dropped this process's
  -- pages (the counters are back where they were) or made two full scans,
  -- before it is stopped again
  local shared, sharing = ksm("pages_shared"), ksm("pages_sharing")
  u:command(("f=$(cat %sfull_scans); i=0; while [ $i -lt 60 ] && [ $(cat %sfull_scans) -lt $((f + 2)) ] && " ..
    "{ [ $(cat %spages_shared) != %d ] || [ $(cat %spages_sharing) != %d ]; }; do sleep 0.05; i=$((i + 1)); done")
    :format(KSM, KSM, KSM, shared or 0, KSM, sharing or 0))
  local ok, err = u:arm()
  if not ok then u:run(); return nil, err end
  local pts, slp = ksm("pages_to_scan"), ksm("sleep_millisecs")
  local want_pts = math.max(pts or 0, 4 * result.pages + 1000)
  local want_slp = math.min(slp or 10, 10)
  local sok, serr = set("pages_to_scan", want_pts)
  if sok then sok, serr = set("sleep_millisecs", want_slp) end
  if sok and result.ksm_run_before ~= 1 then sok, serr = set("run", 1) end
  if not sok then u:run(); return nil, "cannot set KSM up: " .. tostring(serr) end
  result.started = result.ksm_run_before ~= 1
  result.sped_up = ("pages_to_scan %s -> %d, sleep_millisecs %s -> %d"):format(tostring(pts), want_pts,
    tostring(slp), want_slp)
  return u
end

local function measure(p, result)
  local pages = result.pages
  local r <close> = assert(vm.mmap(result.size))
  r:advise("nohugepage")
  r:fill(0x5a) -- not zero: KSM may treat zero pages apart (use_zero_pages)
  if p.content == "distinct" then
    for i = 0, pages - 1 do r:write(i * vm.page_size, string.pack("<i8", i + 1)) end
  end
  result.before = snapshot(r)
  local ok, err = r:advise("mergeable")
  if not ok then result.ksm_refused = "madvise(MADV_MERGEABLE) failed: " .. tostring(err); return end
  -- merging takes ksmd two scans (one to see a page unchanged, one to merge it);
  -- pages that cannot merge (distinct) are given a few scans
  local target = p.content == "same" and pages or nil
  local waited, scans = wait_scans(p.content == "same" and math.huge or 4, p.timeout, target and function()
    local n = merged_count(snapshot(r), r)
    return n ~= nil and n >= target
  end)
  result.wait_seconds, result.full_scans = waited, scans
  result.merged = snapshot(r)
  -- a write to the first page: copy-on-write if it was merged
  local t = r:touch("write", { offset = 0, length = vm.page_size, value = 0xa5 })
  result.write_faults = t.minor_faults + t.major_faults
  local right_after = snapshot(r)
  wait_scans(2, 2) -- let ksmd see it and update its counters
  result.after_write = snapshot(r)
  result.after_write.frame0, result.after_write.page0_exclusive = right_after.frame0, right_after.page0_exclusive
  result.max_page_sharing = ksm("max_page_sharing")
  r:advise("unmergeable") -- this process's pages leave KSM now (closing would too, at ksmd's next scan)
end

--- params: size (bytes of identical pages to merge, rounded up to whole
-- pages), content ("same", or "distinct": every page different, nothing to
-- merge), timeout (seconds to wait for merging)
function M.run(p)
  local ps = vm.page_size
  if not (math.type(p.size) == "integer" and p.size >= 2 * ps and p.size <= (1 << 20) * ps) then
    error(("ksm: size must be an integer number of bytes from %d to %d"):format(2 * ps, (1 << 20) * ps), 0)
  end
  local pages = (p.size + ps - 1) // ps
  if not (type(p.timeout) == "number" and p.timeout > 0 and p.timeout <= 600) then
    error("ksm: timeout must be a number of seconds above 0 (at most 600)", 0)
  end
  local k = require("vmlab.kernel")() -- the probes describe the machine before any change of ours
  local result = { pages = pages, size = pages * ps, content = p.content, ksm_run_before = ksm("run"), started = false }
  if result.ksm_run_before == nil then
    result.ksm_refused = "this kernel has no KSM (no " .. KSM .. "run)"
    return result
  end
  local u
  if k.root then
    local why
    u, why = take_over(result)
    if not u then result.ksm_refused = why; return result end
  elseif result.ksm_run_before ~= 1 then
    result.ksm_refused = ("KSM is not running (%srun is %d) and only root may start it"):format(KSM,
      result.ksm_run_before)
    return result
  end
  local ok, err = pcall(measure, p, result)
  if u then
    local uok, uerr = u:run()
    if not uok then result.restore_error = uerr end
    result.restored = uok and ksm("run") == result.ksm_run_before or false
  end
  if not ok then error(err, 0) end
  return result
end

-- ---------------------------------------------------------------------------
-- Claims

local u = vm.units

local function refused(r)
  if r.ksm_refused then return r.ksm_refused end
  if not r.merged then return "nothing was measured" end
  return nil
end

local function distinct_why(r)
  return r.content == "distinct" and "every page had different contents (--content distinct): KSM merges only " ..
    "identical pages" or nil
end

-- frames needed for n identical pages: one per max_page_sharing mappings
local function frames_needed(r)
  local per = r.max_page_sharing or 256
  if per < 2 then per = 2 end
  return (r.pages + per - 1) // per
end

M.claims = {
  { id = "merged",
    text = "identical pages advised MERGEABLE are merged by KSM: they stop being this process's own pages",
    requires = "ksm_usable",
    decide = function(r)
      local why = refused(r)
      if why then return nil, nil, why end
      local n, source = merged_count(r.merged, r)
      local g = ("global pages_sharing %s -> %s"):format(u.count(r.before.pages_sharing or 0),
        u.count(r.merged.pages_sharing or 0))
      local waited = ("after %s (%s full scans)"):format(u.seconds(r.wait_seconds), u.count(r.full_scans))
      if not n then
        local d = (r.merged.pages_sharing or 0) - (r.before.pages_sharing or 0)
        return d >= (r.pages - frames_needed(r)) * 0.9, ("%s %s"):format(g, waited), distinct_why(r)
      end
      return n >= r.pages * 0.9, ("%s of %s pages merged (%s) %s; %s"):format(u.count(n), u.count(r.pages),
        source, waited, g), distinct_why(r)
    end,
    explain = function()
      return "ksmd found the pages equal and mapped every one to a single write-protected KSM page."
    end },
  { id = "same_frame",
    text = "the merged pages now map one physical frame (one per max_page_sharing pages)",
    requires = { "ksm_usable", "pfns_visible" },
    decide = function(r)
      local why = refused(r)
      if why then return nil, nil, why end
      local b, m = r.before.distinct_frames, r.merged.distinct_frames
      if not (b and m) then return nil, nil, "frame numbers are hidden here (pagemap shows them to root only)" end
      return b >= r.pages * 0.9 and m <= frames_needed(r) + 1,
        ("%s distinct frames behind %s pages before, %s after merging"):format(u.count(b), u.count(r.pages),
          u.count(m)), distinct_why(r)
    end },
  { id = "pss_drops",
    text = "merging saves memory: the region's Rss stays, but its proportional share (Pss) falls to about " ..
      "one page per frame kept",
    requires = "ksm_usable",
    decide = function(r)
      local why = refused(r)
      if why then return nil, nil, why end
      local b, m = r.before, r.merged
      if not (b.pss and m.pss and m.rss) then return nil, nil, "smaps has no Pss for the region" end
      local size = r.pages * vm.page_size
      local keep = (frames_needed(r) + 1) * vm.page_size
      return b.pss >= size * 0.9 and m.rss >= size * 0.9 and m.pss <= keep + size * 0.05,
        ("Rss %s -> %s, Pss %s -> %s for %s"):format(u.bytes(b.rss), u.bytes(m.rss), u.bytes(b.pss),
          u.bytes(m.pss), u.bytes(size)), distinct_why(r)
    end,
    explain = function()
      return "Rss counts every mapping of the shared frame; Pss divides each frame among its mappings."
    end },
  { id = "write_unmerges",
    text = "a write to a merged page faults once (copy-on-write) and gives that page a frame of its own; " ..
      "the others stay merged",
    requires = "ksm_usable",
    decide = function(r)
      local why = refused(r)
      if why then return nil, nil, why end
      local m, w = r.merged, r.after_write
      local parts = { ("%s fault(s) for the write"):format(u.count(r.write_faults)) }
      local holds = r.write_faults >= 1 and r.write_faults <= 2
      if m.frame0 and w.frame0 then
        local moved = w.frame0 ~= m.frame0
        parts[#parts + 1] = ("page 0's frame %s -> %s, page 1 still on %s"):format(tostring(m.frame0),
          tostring(w.frame0), tostring(w.frame1))
        holds = holds and moved and w.frame1 == m.frame1 and w.frame0 ~= w.frame1
      end
      if m.page0_exclusive ~= nil and w.page0_exclusive ~= nil and require("vmlab.kernel")().pagemap_exclusive then
        parts[#parts + 1] = ("page 0 exclusive %s -> %s"):format(m.page0_exclusive and "yes" or "no",
          w.page0_exclusive and "yes" or "no")
        holds = holds and not m.page0_exclusive and w.page0_exclusive
      end
      local a, b = merged_count(m, r), merged_count(w, r)
      if a and b then
        parts[#parts + 1] = ("merged pages %s -> %s"):format(u.count(a), u.count(b))
        holds = holds and b == a - 1
      end
      return holds, table.concat(parts, "; "),
        (r.write_faults == 0 and "the page was this process's own already: it had not been merged") or distinct_why(r)
    end,
    explain = function()
      return "The KSM page is mapped read-only: the write faulted, and the kernel copied it to a new frame."
    end },
}

function M.explain(r)
  local lines = {}
  if r.ksm_refused then
    lines[#lines + 1] = "Not measured: " .. r.ksm_refused .. "."
    return lines
  end
  lines[#lines + 1] = ("KSM was %s before (run %s)%s%s."):format(r.ksm_run_before == 1 and "running" or "stopped",
    tostring(r.ksm_run_before), r.started and "; started for the run" or "",
    r.sped_up and ("; sped up: " .. r.sped_up) or "")
  if r.restored ~= nil then
    lines[#lines + 1] = r.restored and "Its settings were written back afterwards."
      or ("Its settings were NOT all written back: %s."):format(tostring(r.restore_error))
  end
  if r.merged then
    local n, source = merged_count(r.merged, r)
    lines[#lines + 1] = ("%s %s pages advised MERGEABLE: %s merged (%s) after %s, %s full scans."):format(
      u.count(r.pages), r.content == "same" and "identical" or "different", n and u.count(n) or "?",
      source or "no per-process counter", u.seconds(r.wait_seconds), u.count(r.full_scans))
    lines[#lines + 1] = ("Writing one page: %s fault(s)."):format(u.count(r.write_faults))
  end
  return lines
end

-- Its chart (vmlab run ksm --plot FILE.svg|png, vmlab report): the pages' RSS and PSS, and the frames behind
-- them, before KSM merged them, after, and after a write to one.
M.charts = {
  { kind = "bars", title = "KSM merges identical pages into one frame",
    panels = function(r)
      local mem, frames = {}, {}
      for _, step in ipairs { { "before", "before" }, { "merged", "merged" }, { "after_write", "after a write" } } do
        local s = r[step[1]]
        if type(s) == "table" then
          mem[#mem + 1] = { label = step[2], bars = { { name = "RSS", value = s.rss },
            { name = "PSS", value = s.pss } } }
          frames[#frames + 1] = { label = step[2], value = s.distinct_frames }
        end
      end
      return { { title = "memory of the pages", unit = "bytes", groups = mem },
        { title = "distinct frames behind them", unit = "frames", groups = frames } }
    end },
}

return M
