--- mlock: pinning memory in RAM makes it resident at once, within RLIMIT_MEMLOCK.
-- mlock(2) faults every page of the range in before it returns (RES jumps to
-- the size with no touch) and keeps the pages from being reclaimed or swapped.
-- How much a process may lock is RLIMIT_MEMLOCK (`ulimit -l`), unless it holds
-- CAP_IPC_LOCK (root does); the limit is shown in a child that lacks it.
-- @module vmlab.experiments.mlock
local vm = require "vmlab"
local units = require "vmlab.units"

local PAGE = vm.page_size
local CAP_IPC_LOCK = 14 -- capability(7)

local function status() return assert(vm.proc.status()) end

-- RLIMIT_MEMLOCK soft limit in bytes, or nil when unlimited.
local function memlock_limit()
  local soft = vm.getrlimit("memlock")
  return math.type(soft) == "integer" and soft or nil
end

-- Does this process hold CAP_IPC_LOCK (so no limit applies to it)?
local function has_ipc_lock()
  for line in io.lines("/proc/self/status") do
    local hex = line:match("^CapEff:%s+(%x+)")
    if hex then return (tonumber(hex:sub(-8), 16) >> CAP_IPC_LOCK) & 1 == 1 end
  end
  return false
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

-- Lock `small` then `big` bytes in a process with RLIMIT_MEMLOCK = limit.
-- Privileged: a child with the limit set by prlimit(1) and CAP_IPC_LOCK
-- dropped by setpriv(1); otherwise right here, under our own limit.
local function limit_demo(limit, small, big, privileged)
  if not privileged then
    local cur = memlock_limit()
    if cur == nil then return { skipped = "RLIMIT_MEMLOCK is unlimited for this process: nothing to run into" } end
    if cur > 1 << 30 then
      return { skipped = ("RLIMIT_MEMLOCK is %s here: too much to run into safely"):format(units.bytes(cur)) }
    end
    big = math.max(big, 2 * cur)
    small = math.min(small, cur)
    local out = { limit = cur, small = small, big = big, how = "this process" }
    if small > 0 then
      local r <close> = assert(vm.mmap(small))
      out.small_ok = r:lock() ~= nil
    else
      out.small_ok = true
    end
    local r <close> = assert(vm.mmap(big))
    local ok, err, errno = r:lock()
    out.big_ok, out.big_error, out.big_errno = ok ~= nil, err, errno
    return out
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
    :format(limit, limit, shell_quote("/proc/" .. pid .. "/exe"), shell_quote(script))
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

local M = {
  name = "mlock",
  summary = "mlock pins memory: RES equals the size at once; RLIMIT_MEMLOCK caps it for unprivileged processes",
  params = {
    size = 64 * 1024 * 1024,   -- locked here
    limit = 1024 * 1024,       -- RLIMIT_MEMLOCK for the demonstration child
    small = 256 * 1024,        -- locked within that limit
    big = 4 * 1024 * 1024,     -- more than that limit: refused
  },
  tour = { size = 32 * 1024 * 1024 },
  units = {
    size = "bytes", pages = "count", rss_growth_lock = "bytes", resident_before = "count",
    resident_after_lock = "count", vmlck_after_lock = "bytes", vmlck_after_unlock = "bytes", lock_seconds = "seconds",
    memlock_limit = "bytes", privileged = "text", lock_error = "text", limit = "bytes", small = "bytes", big = "bytes",
    big_errno = "count", how = "text", message = "text",
  },
  fields = { "size", "pages", "resident_before", "resident_after_lock", "rss_growth_lock", "lock_seconds",
             "vmlck_after_lock", "vmlck_after_unlock", "memlock_limit", "privileged", "lock_error", "limit",
             -- inside limit:
             "how", "small", "small_ok", "big", "big_ok", "big_error", "big_errno", "message" },
}

function M.run(opts)
  local size = opts.size
  assert(math.type(size) == "integer" and size >= PAGE, "size must be at least one page")
  local privileged = has_ipc_lock()
  local limit = memlock_limit()
  local result = { size = size, pages = (size + PAGE - 1) // PAGE, memlock_limit = limit, privileged = privileged }

  do
    local r <close> = assert(vm.mmap(size))
    r:advise("nohugepage")
    local before = status()
    result.resident_before = r:resident()
    local t0 = now()
    local ok, err = r:lock()
    result.lock_seconds = now() - t0
    if not ok then
      result.lock_error = err
      result.lock_message = refusal(size, limit, err)
    else
      local after = status()
      result.resident_after_lock = r:resident()
      result.rss_growth_lock = after.VmRSS - before.VmRSS
      result.vmlck_after_lock = after.VmLck
      result.touch_faults_after_lock = r:touch("write").minor_faults
      assert(r:unlock())
      result.vmlck_after_unlock = status().VmLck
    end
  end

  result.limit = limit_demo(opts.limit, opts.small, opts.big, privileged)
  if result.limit.big_ok == false then
    result.limit.message = refusal(result.limit.big, result.limit.limit, result.limit.big_error)
  end
  return result
end

function M.explain(res)
  local b = units.bytes
  local lines = {}
  if res.lock_error then
    lines[#lines + 1] = res.lock_message
  else
    lines[#lines + 1] = ("Before mlock %d of %d pages were resident; right after it, %d: mlock faulted the whole %s in "
      .. "(%s) without a single access, and RSS grew by %s."):format(res.resident_before, res.pages,
      res.resident_after_lock, b(res.size), units.seconds(res.lock_seconds), b(res.rss_growth_lock))
    lines[#lines + 1] = ("VmLck said %s while locked and %s after munlock; writing every locked page cost %d faults.")
      :format(b(res.vmlck_after_lock), b(res.vmlck_after_unlock), res.touch_faults_after_lock)
  end
  lines[#lines + 1] = res.privileged
    and "This process holds CAP_IPC_LOCK (root), so RLIMIT_MEMLOCK does not apply to it."
    or ("This process may lock %s (RLIMIT_MEMLOCK)."):format(res.memlock_limit and b(res.memlock_limit) or "unlimited")
  local l = res.limit or {}
  if l.skipped then
    lines[#lines + 1] = "Limit not shown: " .. l.skipped
  else
    lines[#lines + 1] = ("In %s, with RLIMIT_MEMLOCK %s: locking %s %s; locking %s %s."):format(l.how, b(l.limit),
      b(l.small), l.small_ok and "worked" or "failed", b(l.big), l.big_ok and "worked (unexpected)" or "was refused")
    if l.message then lines[#lines + 1] = l.message end
  end
  return lines
end

return M
