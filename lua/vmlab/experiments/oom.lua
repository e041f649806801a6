--- oom: the OOM killer, watched. A child is put in a memory cgroup of its
-- own (v2 memory.max or v1 memory.limit_in_bytes, a group named vmlab-oom-*,
-- removed afterwards) and writes memory past the limit, a MiB at a time,
-- noting its RSS in shared memory after each MiB. The kernel kills it with
-- SIGKILL when the group cannot reclaim anything more: its wait status, the
-- group's oom_kill counter, its oom_score before, the kernel log's line when
-- dmesg is readable. Where no cgroup can be made (not root, read-only
-- cgroupfs), the same writer runs under RLIMIT_AS instead: malloc returns
-- NULL and nothing is killed; the claims say which was shown.
local vm = require "vmlab"
local cgroup = require "vmlab.cgroup"

local MiB = 1024 * 1024

local M = {
  name = "oom",
  summary = "a child writes past its memory cgroup's limit: the OOM killer ends it (under RLIMIT_AS: malloc NULL)",
  params = {
    { name = "limit", default = 64 * MiB, unit = "bytes", min = 4 * MiB, max = 1 << 40,
      help = "memory the child's cgroup (and its RLIMIT_AS headroom) allows" },
    { name = "write", default = 256 * MiB, unit = "bytes", min = 4 * MiB, max = 1 << 40,
      help = "memory the child tries to write (more than --limit)" },
  },
  validate = function(p)
    if p.write <= p.limit then return "--write: must be more than --limit (the child writes past its limit)" end
  end,
  fields = {
    { name = "cgroup", unit = "object", optional = true, help = "the child in a memory cgroup limited to limit",
      fields = {
        { name = "version", unit = "integer", help = "cgroup version" },
        { name = "limit", unit = "bytes", help = "the group's memory limit" },
        { name = "oom_score_before", unit = "integer", help = "the child's oom_score before writing" },
        { name = "rss_before", unit = "bytes", help = "the child's VmRSS before writing" },
        { name = "bytes_written", unit = "bytes", help = "bytes the child wrote before it stopped" },
        { name = "max_rss", unit = "bytes", help = "the child's largest VmRSS sampled" },
        { name = "samples", unit = "count", help = "samples taken" },
        { name = "signaled", unit = "boolean", help = "a signal ended the child" },
        { name = "signal", unit = "text", optional = true, help = "that signal" },
        { name = "exit_code", unit = "integer", optional = true, help = "its exit code, where it exited" },
        { name = "oom_kill", unit = "count", optional = true, help = "the group's oom_kill events" },
        { name = "limit_hits", unit = "count", optional = true, help = "times the group hit its limit (max events)" },
      } },
    { name = "cgroup_refused", unit = "text", optional = true, help = "why no cgroup could be used" },
    { name = "rlimit", unit = "object", optional = true, help = "the child under RLIMIT_AS instead", fields = {
      { name = "limit", unit = "bytes", help = "address space allowed above its VmSize" },
      { name = "bytes_written", unit = "bytes", help = "bytes malloc'd and written" },
      { name = "malloc_failed", unit = "boolean", help = "malloc returned NULL" },
      { name = "malloc_error", unit = "text", optional = true, help = "its error" },
      { name = "max_rss", unit = "bytes", help = "the child's VmRSS at the end" },
      { name = "signaled", unit = "boolean", help = "a signal ended the child" },
      { name = "exit_code", unit = "integer", optional = true, help = "its exit code" },
    } },
    { name = "rlimit_refused", unit = "text", optional = true, help = "why the RLIMIT_AS child failed" },
    { name = "kernel_log", unit = "text", optional = true, help = "the kernel's OOM line about the child" },
    { name = "kernel_log_found", unit = "boolean", optional = true, help = "that line was found" },
    { name = "cgroup_dir", unit = "text", optional = true, help = "the cgroup's directory (removed)" },
    { name = "timeline", unit = "table", optional = true, help = "the cgroup child's writes, sampled", fields = {
      { name = "bytes", unit = "bytes", help = "bytes written" },
      { name = "rss", unit = "bytes", help = "the child's VmRSS" },
      { name = "seconds", unit = "seconds", help = "since it started" },
    } },
  },
  tour = { limit = 32 * MiB, write = 128 * MiB },
  writes = function(p) return p.limit * 2 end, -- the group (or the rlimit) stops the child at its limit
  text_omit = { "timeline", "kernel_log", "kernel_log_found", "cgroup_dir" },
}

local SLOTS = 4096 -- samples the child can note; each is three 64-bit words

-- The child's side: wait until the parent has put us in the group, then
-- write `write` bytes a MiB at a time, noting bytes and RSS after each.
local function writer(shared, write)
  local deadline = vm.now() + 10
  while shared:atomic_load(0) == 0 do
    if vm.now() > deadline then return 3 end
    vm.sleep(0.001)
  end
  local score = vm.proc.oom_score() or -1
  shared:atomic_store(8, score)
  shared:atomic_store(24, vm.proc.rss() or 0) -- what it had before writing (charged elsewhere)
  local r = vm.mmap(write, { noreserve = true })
  if not r then return 4 end
  r:advise("nohugepage")
  local t0 = vm.now()
  local n = 0
  for off = 0, write - MiB, MiB do
    r:touch("write", { offset = off, length = MiB })
    n = n + 1
    if n <= SLOTS then
      local at = 64 + (n - 1) * 24
      shared:atomic_store(at, off + MiB)
      shared:atomic_store(at + 8, vm.proc.rss() or 0)
      shared:atomic_store(at + 16, math.floor((vm.now() - t0) * 1e6))
      shared:atomic_store(16, n)
    end
  end
  return 0
end

-- The kernel log's line about pid, where dmesg is readable.
local function kernel_log(pid)
  local p = io.popen("dmesg 2>/dev/null")
  if not p then return nil end
  local found
  for line in p:lines() do
    if line:find(("Killed process %d "):format(pid), 1, true) or line:find((",pid=%d,"):format(pid), 1, true) then
      found = line
    end
  end
  p:close()
  return found
end

local function read_samples(shared)
  local n = math.min(shared:atomic_load(16), SLOTS)
  local tl = {}
  for i = 1, n do
    local at = 64 + (i - 1) * 24
    tl[i] = { bytes = shared:atomic_load(at), rss = shared:atomic_load(at + 8),
      seconds = shared:atomic_load(at + 16) / 1e6 }
  end
  return tl
end

local function max_rss(tl)
  local m = 0
  for _, s in ipairs(tl) do m = math.max(m, s.rss) end
  return m
end

-- The writer in a cgroup limited to p.limit.
local function in_cgroup(p, result)
  cgroup.sweep("oom")
  local g, why = cgroup.create("oom", p.limit)
  if not g then return nil, why end
  local shared <close> = assert(vm.mmap(64 + SLOTS * 24, { share = "shared" }))
  local child = assert(vm.fork(function() return writer(shared, p.write) end))
  local ok, err = g:add(child.pid)
  if not ok then
    child:kill("KILL"); child:wait(); g:remove()
    return nil, "cannot move the child into " .. g.dir .. ": " .. tostring(err)
  end
  shared:atomic_store(0, 1) -- go
  local st = child:wait({ timeout = 60 })
  if not st then child:kill("KILL"); st = child:wait() end
  local tl = read_samples(shared)
  local ev = g:events()
  local log = kernel_log(child.pid)
  result.timeline = tl
  result.cgroup_dir = g.dir
  result.cgroup = {
    version = g.version, limit = p.limit, oom_score_before = shared:atomic_load(8),
    bytes_written = #tl > 0 and tl[#tl].bytes or 0, samples = #tl,
    rss_before = shared:atomic_load(24), max_rss = max_rss(tl),
    signaled = st.signaled or false, signal = st.signal_name, exit_code = st.code,
    oom_kill = ev.oom_kill, limit_hits = ev.max,
  }
  result.kernel_log = log or "(not readable here, or no line found)"
  result.kernel_log_found = log ~= nil
  g:remove()
  return true
end

-- The writer under RLIMIT_AS: the address space is capped, no one is killed.
local function under_rlimit(p, result)
  local child, st = vm.child.run(function()
    local virt = vm.proc.status().VmSize
    assert(vm.setrlimit("as", virt + p.limit))
    local blocks, failed, errmsg = {}, false, nil
    for _ = 1, p.write // MiB do
      local h, e = vm.malloc(MiB)
      if not h then failed, errmsg = true, e; break end
      h:fill(0x5a)
      blocks[#blocks + 1] = h
    end
    return { allocated = #blocks * MiB, failed = failed, error = errmsg, rss = vm.proc.rss() }
  end, { timeout = 60 })
  if not child then
    return nil, "the RLIMIT_AS child failed: " .. tostring(st and (st.error or st.signal_name) or st)
  end
  result.rlimit = {
    limit = p.limit, bytes_written = child.allocated, malloc_failed = child.failed,
    malloc_error = child.error, max_rss = child.rss, signaled = st.signaled or false, exit_code = st.code,
  }
  return true
end

--- params: limit (bytes the group may use), write (bytes the child tries to write)
function M.run(p)
  local result = {}
  local ok, why = in_cgroup(p, result)
  if not ok then result.cgroup_refused = why end
  local rok, rwhy = under_rlimit(p, result)
  if not rok then result.rlimit_refused = rwhy end
  return result
end

local u = vm.units

-- the cgroup part's record, or nil, why it did not run
local function cg(r)
  if r.cgroup then return r.cgroup end
  return nil, "no memory cgroup could be made: " .. tostring(r.cgroup_refused)
end

M.claims = {
  { id = "killed",
    text = "a child that writes past its memory cgroup's limit is killed with SIGKILL",
    requires = "memory_cgroup",
    decide = function(r)
      local c, why = cg(r)
      if not c then return nil, nil, why end
      return c.signaled and c.signal == "SIGKILL",
        ("wait status: %s after writing %s (limit %s)"):format(c.signaled and tostring(c.signal)
          or ("exit code " .. tostring(c.exit_code)), u.bytes(c.bytes_written), u.bytes(c.limit))
    end },
  { id = "rss_capped",
    text = "what it wrote in the group never went past the limit: the group held it there until the kill",
    requires = "memory_cgroup",
    decide = function(r)
      local c, why = cg(r)
      if not c then return nil, nil, why end
      if c.samples == 0 then return nil, "no sample", "the child was killed before its first MiB" end
      local growth = c.max_rss - c.rss_before
      return growth <= c.limit * 1.05,
        ("RSS grew by at most %s (from %s, before joining the group), limit %s, %d samples"):format(
          u.bytes(growth), u.bytes(c.rss_before), u.bytes(c.limit), c.samples)
    end },
  { id = "counted",
    text = "the kernel counted the kill in the group (oom_kill)",
    requires = "memory_cgroup",
    decide = function(r)
      local c, why = cg(r)
      if not c then return nil, nil, why end
      if c.oom_kill == nil then
        return nil, nil, "this kernel's cgroup has no oom_kill counter (memory.events / memory.oom_control)"
      end
      return c.oom_kill >= 1, ("oom_kill %d; the limit was hit %s times"):format(c.oom_kill, tostring(c.limit_hits))
    end },
  { id = "logged",
    text = "the kernel's log names the killed process",
    requires = { "memory_cgroup", "kernel_log" },
    decide = function(r)
      local _, why = cg(r)
      if why then return nil, nil, why end
      if not r.kernel_log_found then return false, "no line in dmesg names the child" end
      return true, r.kernel_log
    end },
  { id = "rlimit_null",
    text = "under RLIMIT_AS instead, malloc returns NULL at the limit and nothing is killed",
    decide = function(r)
      local c = r.rlimit
      if not c then return nil, nil, tostring(r.rlimit_refused) end
      return c.malloc_failed and not c.signaled and c.exit_code == 0,
        ("malloc %s after %s (limit %s); the child %s"):format(c.malloc_failed and "returned NULL" or "never failed",
          u.bytes(c.bytes_written), u.bytes(c.limit), c.signaled and ("died of " .. tostring(c.signal))
            or ("exited with " .. tostring(c.exit_code)))
    end },
}

function M.explain(r)
  local lines = {}
  if r.cgroup then
    lines[#lines + 1] = ("The cgroup child (oom_score %s before) wrote %s in %s (cgroup v%d)."):format(
      tostring(r.cgroup.oom_score_before), u.bytes(r.cgroup.bytes_written), r.cgroup_dir, r.cgroup.version)
  else
    lines[#lines + 1] = ("No memory cgroup: %s."):format(tostring(r.cgroup_refused))
  end
  if r.rlimit then
    lines[#lines + 1] = ("The RLIMIT_AS child got %s before malloc said: %s."):format(
      u.bytes(r.rlimit.bytes_written), tostring(r.rlimit.malloc_error or "nothing"))
  end
  return lines
end

-- Its chart (vmlab run oom --plot FILE.svg|png, vmlab report): the child's RSS over time up to the OOM kill,
-- with its memory cgroup's limit as a line.
M.charts = {
  { kind = "lines", title = "the child's RSS until the OOM killer ends it",
    x = { label = "time", quantity = "seconds" }, left = { label = "memory", quantity = "bytes" },
    series = function(r)
      local rss, written, last = {}, {}, 0
      for _, s in ipairs(r.timeline or {}) do
        rss[#rss + 1] = { s.seconds, s.rss }
        written[#written + 1] = { s.seconds, s.bytes }
        last = math.max(last, s.seconds or 0)
      end
      local series = { { name = "RSS of the child", points = rss, color = "#1f77b4" },
        { name = "bytes written", points = written, color = "#2ca02c", dash = "4 3" } }
      local limit = type(r.cgroup) == "table" and r.cgroup.limit
      if limit and #rss > 0 then
        series[#series + 1] = { name = "memory cgroup limit", points = { { 0, limit }, { last, limit } },
          color = "#d62728", dash = "8 4" }
      end
      return series
    end },
}

return M
