--- overcommit: how much the kernel promises. /proc/sys/vm/overcommit_memory
-- picks the policy: 0 heuristic (refuse only what obviously cannot fit),
-- 1 always (never refuse), 2 strict (refuse past CommitLimit). An accounted
-- private mapping adds its size to Committed_AS at once, though RSS stays
-- put; MAP_NORESERVE skips the accounting (except in mode 2). What
-- malloc(500 GiB) does depends on all this. (003_*.txt: malloc(500GB))
local vm = require "vmlab"

local M = {
  name = "overcommit",
  summary = "the overcommit policy, CommitLimit and Committed_AS; what malloc(500 GiB) and mmap(noreserve) do under it",
  params = { size = 500 * 1024 ^ 3, small = 1024 ^ 3 },
  fields = { "policy", "policy_name", "commit_limit", "committed_as", "mem_total",
             "call", "size", "ok", "committed_growth", "rss_growth", "error" },
  units = { small = "bytes", mem_total = "bytes" },
  writes = function() return 0 end, -- asks for memory, never touches it
}

local POLICY = { [0] = "heuristic", [1] = "always overcommit", [2] = "strict: never overcommit" }

local function meminfo() return assert(vm.proc.meminfo()) end
local function rss() return assert(vm.proc.status()).VmRSS end

-- One attempt in this process: call(size) -> region or nil, msg. Measures the
-- commit charge and RSS while the allocation is held.
local function attempt(call, size, alloc)
  local c0, r0 = meminfo().Committed_AS, rss()
  local r, err = alloc(size)
  local a = { call = call, size = size, ok = r ~= nil }
  if r then
    local mi = meminfo()
    a.committed_growth = mi.Committed_AS - c0
    a.rss_growth = rss() - r0
    r:close()
  else
    a.error = tostring(err)
  end
  return a
end

-- malloc runs in a child: an allocator that aborts instead of returning NULL
-- (AddressSanitizer's does) must not take this process with it.
local function malloc_attempt(size)
  if os.getenv("VMLAB_SANITIZED") and size > (64 << 30) then
    return { call = "malloc", size = size, ok = false, error = "not tried: AddressSanitizer's malloc reports " ..
      "out-of-memory and aborts instead of returning NULL" }
  end
  local a, status = vm.child.run(function()
    return attempt("malloc", size, vm.malloc)
  end, { timeout = 30 })
  if a then return a end
  return { call = "malloc", size = size, ok = false,
           error = ("the allocator killed the process (%s)"):format(status.signal_name or status.error or "?") }
end

--- params: size (the big request, bytes), small (a request that fits, bytes)
function M.run(p)
  local mi = meminfo()
  local policy = vm.proc.vm_settings().overcommit_memory
  local attempts = {
    malloc_attempt(p.size),
    attempt("mmap", p.size, function(n) return vm.mmap(n) end),
    attempt("mmap noreserve", p.size, function(n) return vm.mmap(n, { noreserve = true }) end),
    malloc_attempt(p.small),
    attempt("mmap", p.small, function(n) return vm.mmap(n) end),
  }
  return {
    policy = policy,
    policy_name = POLICY[policy] or "?",
    commit_limit = mi.CommitLimit,
    committed_as = mi.Committed_AS,
    mem_total = mi.MemTotal,
    attempts = attempts,
  }
end

function M.explain(r)
  local u = vm.units
  local lines = {
    ("Policy %s (%s). CommitLimit %s, Committed_AS %s now, RAM %s."):format(
      tostring(r.policy), r.policy_name, u.bytes(r.commit_limit), u.bytes(r.committed_as), u.bytes(r.mem_total)),
  }
  for _, a in ipairs(r.attempts) do
    if a.ok then
      lines[#lines + 1] = ("%s(%s) succeeded: Committed_AS +%s, RSS +%s."):format(
        a.call, u.bytes(a.size), u.bytes(a.committed_growth or 0), u.bytes(a.rss_growth or 0))
    else
      lines[#lines + 1] = ("%s(%s) was refused: %s"):format(a.call, u.bytes(a.size), a.error)
    end
  end
  if r.policy == 0 then
    lines[#lines + 1] = "Heuristic mode refuses a single request larger than RAM + swap, but promises the rest;"
    lines[#lines + 1] = "MAP_NORESERVE is not counted at all. Pages get frames only when touched - if the"
    lines[#lines + 1] = "promises come due and memory runs out, the OOM killer picks a victim."
  elseif r.policy == 1 then
    lines[#lines + 1] = "Mode 1 never refuses: any size is promised; only touching pages uses memory."
  elseif r.policy == 2 then
    lines[#lines + 1] = "Mode 2 counts every private writable mapping (even noreserve) against CommitLimit."
  end
  return lines
end

return M
