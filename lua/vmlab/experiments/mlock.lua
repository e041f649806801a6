--- mlock: pinning memory in RAM makes it resident at once, within RLIMIT_MEMLOCK.
-- mlock(2) faults every page of the range in before it returns (RES jumps to
-- the size with no touch) and keeps the pages from being reclaimed or swapped.
-- How much a process may lock is RLIMIT_MEMLOCK (`ulimit -l`), unless it holds
-- CAP_IPC_LOCK (root does). The limit is run into in a child that lacks the
-- capability, and tried in a child with this process's own capabilities: the
-- claims below say what each got.
-- @module vmlab.experiments.mlock
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size

local function status() return assert(vm.proc.status()) end

-- RLIMIT_MEMLOCK soft limit in bytes, or nil when unlimited.
local function memlock_limit()
  local soft = vm.getrlimit("memlock")
  return math.type(soft) == "integer" and soft or nil
end

-- Does this process hold CAP_IPC_LOCK (so no limit applies to it)? The kernel probe says.
local function has_ipc_lock()
  return require("vmlab.kernel")().cap_ipc_lock == true
end

local now = vm.now

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function which(cmd)
  local p = io.popen("command -v " .. cmd .. " 2>/dev/null")
  local out = p and p:read("l")
  if p then p:close() end
  return out ~= nil and out ~= ""
end

--- The message a person should see when mlock is refused.
local function refusal(bytes, limit, err)
  return ("mlock of %s refused (%s): RLIMIT_MEMLOCK is %s; raise it with `ulimit -l` (limits.conf, "
    .. "systemd LimitMEMLOCK=) or run with CAP_IPC_LOCK"):format(units.bytes(bytes), tostring(err),
    limit and units.bytes(limit) or "unlimited")
end

-- In a child (vm.child.run) with this process's capabilities: lower
-- RLIMIT_MEMLOCK to `limit`, then lock `small` and `big` bytes.
local function child_demo(limit, small, big, how)
  local out, st = vm.child.run(function()
    local _, hard = vm.getrlimit("memlock")
    if math.type(hard) == "integer" and hard < limit then -- an unprivileged child cannot raise it
      limit = hard
      small, big = math.min(small, limit // 2 // PAGE * PAGE), math.max(big, 2 * limit)
    end
    local o = { small = small, big = big, how = how }
    local ok, err = vm.setrlimit("memlock", limit)
    if not ok then return { skipped = "setrlimit(RLIMIT_MEMLOCK) failed: " .. tostring(err) } end
    o.limit = memlock_limit()
    local a = assert(vm.mmap(small))
    o.small_ok = a:lock() ~= nil
    a:close()
    local b = assert(vm.mmap(big))
    local bok, berr, errno = b:lock()
    o.big_ok, o.big_error, o.big_errno = bok ~= nil, berr, errno
    b:close()
    return o
  end, { timeout = 30 })
  return out or { skipped = "the child failed: " .. tostring(st and (st.error or st.signal_name)) }
end

-- Lock `small` then `big` bytes in a process without CAP_IPC_LOCK and with
-- RLIMIT_MEMLOCK = limit. Privileged: a child with the limit set by prlimit(1)
-- and CAP_IPC_LOCK dropped by setpriv(1); otherwise a child of ours (which
-- lacks the capability as we do) that lowers its own limit.
local function limit_demo(limit, small, big, privileged)
  if not privileged then
    return child_demo(limit, small, big, "a child without CAP_IPC_LOCK (its limit lowered by setrlimit)")
  end
  if not (which("prlimit") and which("setpriv")) then
    return { skipped = "we hold CAP_IPC_LOCK (root), which lifts the limit; showing it needs prlimit(1) and "
      .. "setpriv(1) (util-linux) to start a child without that capability" }
  end
  local pid = vm.getpid()
  local script = table.concat({
    ("package.path = %q; package.cpath = %q"):format(package.path, package.cpath),
    'local vm = require "vmlab"',
    ("local small, big = %d, %d"):format(small, big),
    "local a = assert(vm.mmap(small)); local ok, err = a:lock(); print('small', ok ~= nil, err)",
    "local b = assert(vm.mmap(big)); ok, err, errno = b:lock(); print('big', ok ~= nil, err, errno)",
    "for l in io.lines('/proc/self/limits') do local s = l:match('^Max locked memory%s+(%S+)') "
      .. "if s then print('limit', s) end end",
  }, "\n")
  local cmd = ("prlimit --memlock=%d:%d setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock %s -e %s 2>&1")
    :format(limit, limit, shell_quote(vm.proc.path(pid, "exe")), shell_quote(script))
  local p = io.popen(cmd)
  local text = p:read("a")
  p:close()
  local out = { small = small, big = big,
                how = "a child without CAP_IPC_LOCK (prlimit --memlock, setpriv)" }
  for line in text:gmatch("[^\n]+") do
    local what, ok, rest = line:match("^(%a+)\t(%a+)\t?(.*)$")
    if what == "small" then
      out.small_ok = ok == "true"
    elseif what == "big" then
      out.big_ok = ok == "true"
      local msg, errno = rest:match("^(.-)\t(%d+)$")
      out.big_error, out.big_errno = msg or (rest ~= "nil" and rest or nil), math.tointeger(tonumber(errno))
    end
    local lim = line:match("^limit\t(%S+)")
    if lim then out.limit = math.tointeger(tonumber(lim)) end
  end
  if out.small_ok == nil or out.big_ok == nil then
    return { skipped = "the child did not report: " .. text:sub(1, 300) }
  end
  return out
end

local demo_fields = {
  { name = "how", unit = "text", help = "which child, and how its limit was set" },
  { name = "limit", unit = "bytes", optional = true, help = "its RLIMIT_MEMLOCK" },
  { name = "small", unit = "bytes", optional = true, help = "the lock within the limit" },
  { name = "small_ok", unit = "boolean", optional = true, help = "it worked" },
  { name = "big", unit = "bytes", optional = true, help = "the lock past the limit" },
  { name = "big_ok", unit = "boolean", optional = true, help = "it worked" },
  { name = "big_error", unit = "text", optional = true, help = "why it was refused" },
  { name = "big_errno", unit = "integer", optional = true, help = "the errno of the refusal" },
  { name = "message", unit = "text", optional = true, help = "what to do about the refusal" },
  { name = "skipped", unit = "text", optional = true, help = "why this child could not show it" },
}

local M = {
  name = "mlock",
  summary = "mlock pins memory: RES equals the size at once; RLIMIT_MEMLOCK caps it for processes without CAP_IPC_LOCK",
  params = {
    { name = "size", default = 64 * 1024 * 1024, unit = "bytes", min = PAGE, max = 1 << 40,
      help = "memory locked by this process (less where RLIMIT_MEMLOCK refuses it)" },
    { name = "limit", default = 1024 * 1024, unit = "bytes", min = PAGE, max = 1 << 40,
      help = "RLIMIT_MEMLOCK of the demonstration children" },
    { name = "small", default = 256 * 1024, unit = "bytes", min = PAGE, max = 1 << 40,
      help = "what the children lock within that limit" },
    { name = "big", default = 4 * 1024 * 1024, unit = "bytes", min = PAGE, max = 1 << 40,
      help = "what the children lock past that limit" },
  },
  validate = function(p)
    if p.small > p.limit then return "--small: must be at most --limit (it is locked within the limit)" end
    if p.big <= p.limit then return "--big: must be more than --limit (it is locked past the limit)" end
  end,
  tour = { size = 32 * 1024 * 1024 },
  fields = {
    { name = "size", unit = "bytes", help = "memory this process tried to lock" },
    { name = "pages", unit = "count", help = "its pages" },
    { name = "lock_error", unit = "text", optional = true, help = "why locking all of it was refused" },
    { name = "lock_errno", unit = "integer", optional = true, help = "the errno of that refusal" },
    { name = "lock_message", unit = "text", optional = true, help = "what to do about the refusal" },
    { name = "locked", unit = "bytes", optional = true, help = "memory locked" },
    { name = "locked_pages", unit = "count", optional = true, help = "its pages" },
    { name = "resident_before", unit = "count", optional = true, help = "pages resident before mlock" },
    { name = "resident_after_lock", unit = "count", optional = true, help = "pages resident right after mlock" },
    { name = "rss_growth_lock", unit = "bytes", optional = true, help = "VmRSS growth at mlock" },
    { name = "lock_seconds", unit = "seconds", optional = true, help = "time of mlock" },
    { name = "touch_faults_after_lock", unit = "count", optional = true,
      help = "minor faults writing the locked pages" },
    { name = "vmlck_before", unit = "bytes", optional = true, help = "VmLck before" },
    { name = "vmlck_after_lock", unit = "bytes", optional = true, help = "VmLck while locked" },
    { name = "vmlck_after_unlock", unit = "bytes", optional = true, help = "VmLck after munlock" },
    { name = "memlock_limit", unit = "bytes", optional = true,
      help = "this process's RLIMIT_MEMLOCK (absent: unlimited)" },
    { name = "privileged", unit = "boolean", help = "this process holds CAP_IPC_LOCK" },
    { name = "limit", unit = "object", help = "the limit met by a child without CAP_IPC_LOCK", fields = demo_fields },
    { name = "limit_here", unit = "object", help = "the same limit in a child with our capabilities",
      fields = demo_fields },
  },
}

-- Map `bytes`, lock it, and measure: residency, RSS, VmLck, faults of a write afterwards.
local function lock_and_measure(bytes, result)
  local r <close> = assert(vm.mmap(bytes))
  r:advise("nohugepage")
  local before = status()
  local resident_before = r:resident()
  local t0 = now()
  local ok, err, errno = r:lock()
  local seconds = now() - t0
  if not ok then return nil, err, errno end
  local after = status()
  result.locked, result.locked_pages = bytes, r.pages
  result.resident_before = resident_before
  result.lock_seconds = seconds
  result.resident_after_lock = r:resident()
  result.rss_growth_lock = after.VmRSS - before.VmRSS
  result.vmlck_before = before.VmLck
  result.vmlck_after_lock = after.VmLck
  result.touch_faults_after_lock = r:touch("write").minor_faults
  assert(r:unlock())
  result.vmlck_after_unlock = status().VmLck
  return true
end

function M.run(opts)
  local size = opts.size
  assert(math.type(size) == "integer" and size >= PAGE, "size must be at least one page")
  local privileged = has_ipc_lock()
  local limit = memlock_limit()
  local result = { size = size, pages = (size + PAGE - 1) // PAGE, memlock_limit = limit, privileged = privileged }

  local ok, err, errno = lock_and_measure(size, result)
  if not ok then
    -- refused (RLIMIT_MEMLOCK): show residency on what the limit lets this process lock
    result.lock_error, result.lock_errno = err, errno
    result.lock_message = refusal(size, limit, err)
    local fits = limit and (limit - (status().VmLck or 0)) // 2 // PAGE * PAGE or 0
    if fits >= PAGE then
      local ok2, err2 = lock_and_measure(fits, result)
      if not ok2 then result.lock_error = result.lock_error .. "; and of " .. units.bytes(fits) .. ": " .. err2 end
    end
  end

  result.limit = limit_demo(opts.limit, opts.small, opts.big, privileged)
  if result.limit.big_ok == false then
    result.limit.message = refusal(result.limit.big, result.limit.limit, result.limit.big_error)
  end
  -- the same limit, in a child with this process's own capabilities
  result.limit_here = privileged
    and child_demo(opts.limit, opts.small, opts.big, "a child with our CAP_IPC_LOCK (its limit lowered by setrlimit)")
    or result.limit
  return result
end

local b = units.bytes

-- "locking 256.0 KiB worked, locking 4.0 MiB was refused (ENOMEM)" for a demo.
local function demo_words(l)
  return ("in %s, RLIMIT_MEMLOCK %s: locking %s %s, locking %s %s"):format(l.how, l.limit and b(l.limit) or
    "unlimited", b(l.small), l.small_ok and "worked" or "was refused", b(l.big),
    l.big_ok and "worked" or ("was refused (" .. tostring(l.big_error) .. ")"))
end

M.claims = {
  { id = "lock_faults_in",
    text = "mlock makes every page resident before it returns: RES grows by the locked size with no access, "
      .. "and writing the pages afterwards faults nothing",
    decide = function(r)
      if not r.locked then
        return nil, nil, "nothing could be locked: " .. tostring(r.lock_message or r.lock_error)
      end
      local holds = r.resident_before == 0 and r.resident_after_lock == r.locked_pages
        and r.rss_growth_lock >= r.locked * 0.95
        and r.touch_faults_after_lock <= math.max(8, r.locked_pages // 100)
      return holds, ("mlock(%s): %s -> %s of %s pages resident, RSS +%s in %s; writing them afterwards: %s faults")
        :format(b(r.locked), units.count(r.resident_before), units.count(r.resident_after_lock),
          units.count(r.locked_pages), b(r.rss_growth_lock), units.seconds(r.lock_seconds),
          units.count(r.touch_faults_after_lock))
    end,
    explain = function()
      return "mlock faulted the whole range in itself, so no access afterwards has anything left to fault."
    end },
  { id = "vmlck_counts",
    text = "VmLck counts the locked memory while it is locked, and drops it at munlock",
    decide = function(r)
      if not r.locked then return nil, nil, "nothing could be locked" end
      local grew = r.vmlck_after_lock - (r.vmlck_before or 0)
      return grew >= r.locked and grew <= r.locked + (1 << 20) and r.vmlck_after_lock - r.vmlck_after_unlock >=
        r.locked, ("VmLck %s before, %s while %s was locked, %s after munlock"):format(b(r.vmlck_before or 0),
        b(r.vmlck_after_lock), b(r.locked), b(r.vmlck_after_unlock))
    end },
  { id = "limit_refuses",
    text = "without CAP_IPC_LOCK, mlock within RLIMIT_MEMLOCK works and past it is refused",
    decide = function(r)
      local l = r.limit or {}
      if l.skipped then return nil, nil, l.skipped end
      return l.small_ok == true and l.big_ok == false and (l.big_errno == 12 or l.big_errno == 1), demo_words(l)
    end,
    explain = function(r)
      return r.limit and r.limit.message or nil
    end },
  { id = "cap_lifts_limit",
    text = "a process with CAP_IPC_LOCK (root has it) may lock past RLIMIT_MEMLOCK",
    requires = "cap_ipc_lock",
    decide = function(r)
      local l = r.limit_here or {}
      if l.skipped then return nil, nil, l.skipped end
      local ev = demo_words(l)
      if r.locked and r.memlock_limit and r.locked > r.memlock_limit then
        ev = ev .. ("; and this process locked %s past its own RLIMIT_MEMLOCK of %s"):format(b(r.locked),
          b(r.memlock_limit))
      end
      return l.big_ok == true, ev -- where it did not hold, the cap_ipc_lock probe says why
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(res)
  local lines = {}
  if res.lock_error then lines[#lines + 1] = res.lock_message end
  if res.locked then
    lines[#lines + 1] = ("mlock(%s): %d of %d pages resident before, %d right after (%s); RSS +%s; VmLck %s while "
      .. "locked, %s after munlock; writing every locked page: %d faults."):format(b(res.locked),
      res.resident_before, res.locked_pages, res.resident_after_lock, units.seconds(res.lock_seconds),
      b(res.rss_growth_lock), b(res.vmlck_after_lock), b(res.vmlck_after_unlock), res.touch_faults_after_lock)
  end
  lines[#lines + 1] = ("This process: RLIMIT_MEMLOCK %s, CAP_IPC_LOCK %s."):format(
    res.memlock_limit and b(res.memlock_limit) or "unlimited", res.privileged and "yes" or "no")
  for _, l in ipairs({ res.limit, res.limit_here ~= res.limit and res.limit_here or nil }) do
    lines[#lines + 1] = l.skipped and ("Not shown: " .. l.skipped) or (demo_words(l):gsub("^i", "I") .. ".")
  end
  return lines
end

-- Its chart (vmlab run mlock --plot FILE.svg|png, vmlab report): VmLck and the resident pages around mlock.
M.charts = {
  { kind = "bars", title = "mlock makes every page resident and locked; munlock unlocks",
    panels = function(r)
      return {
        { title = "VmLck", unit = "bytes", axis = "VmLck", groups = {
          { label = "before", value = r.vmlck_before }, { label = "after mlock", value = r.vmlck_after_lock },
          { label = "after munlock", value = r.vmlck_after_unlock } } },
        { title = "resident pages (mincore)", unit = "pages", groups = {
          { label = "before", value = r.resident_before }, { label = "after mlock", value = r.resident_after_lock } } },
        { title = "faults touching it after mlock", unit = "faults", groups = {
          { label = "pages", value = r.pages }, { label = "faults", value = r.touch_faults_after_lock } } },
      }
    end },
}

return M
