--- overcommit: how much the kernel promises. /proc/sys/vm/overcommit_memory
-- picks the policy: 0 heuristic (refuse only a single request larger than
-- RAM + swap), 1 always (never refuse), 2 strict (refuse past CommitLimit).
-- A granted private writable mapping adds its size to Committed_AS at once,
-- though RSS stays put; MAP_NORESERVE skips that charge, except under policy 2.
-- What malloc(500 GiB) does depends on all this: the claims below are decided
-- for the policy this run found, from what each request got.
-- (003_*.txt: malloc(500GB))
local vm = require "vmlab"

local M = {
  name = "overcommit",
  summary = "the overcommit policy, CommitLimit and Committed_AS; what malloc(500 GiB) and mmap(noreserve) do under it",
  params = {
    { name = "size", default = 500 * 1024 * 1024 * 1024, unit = "bytes", min = vm.page_size, max = 1 << 56,
      help = "the big request (malloc, mmap, mmap noreserve)" },
    { name = "small", default = 1024 * 1024 * 1024, unit = "bytes", min = vm.page_size, max = 1 << 56,
      help = "a request that fits (under policy 2 at most a quarter of the room below CommitLimit)" },
  },
  fields = {
    { name = "policy", unit = "integer", help = "vm.overcommit_memory: 0 heuristic, 1 always, 2 strict" },
    { name = "policy_name", unit = "text", help = "the policy in words" },
    { name = "commit_limit", unit = "bytes", help = "CommitLimit (/proc/meminfo)" },
    { name = "committed_as", unit = "bytes", help = "Committed_AS before the requests" },
    { name = "mem_total", unit = "bytes", help = "MemTotal" },
    { name = "swap_total", unit = "bytes", help = "SwapTotal" },
    { name = "big", unit = "bytes", help = "the big request" },
    { name = "small", unit = "bytes", help = "the request that fits (as used)" },
    { name = "attempts", unit = "table", help = "each request and what it got", fields = {
      { name = "call", unit = "text", help = "malloc, mmap, or mmap noreserve" },
      { name = "size", unit = "bytes", help = "the size asked for" },
      { name = "ok", unit = "boolean", help = "it was granted" },
      { name = "committed_growth", unit = "bytes", optional = true, help = "Committed_AS growth while held" },
      { name = "rss_growth", unit = "bytes", optional = true, help = "VmRSS growth while held" },
      { name = "not_tried", unit = "boolean", optional = true, help = "the request was not made, or its child died" },
      { name = "error", unit = "text", optional = true, help = "why it was refused" },
    } },
  },
  writes = function() return 0 end, -- asks for memory, never touches it
}

local POLICY = { [0] = "heuristic", [1] = "always overcommit", [2] = "strict: never overcommit" }

local function meminfo() return assert(vm.proc.meminfo()) end
local function rss() return assert(vm.proc.rss()) end

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
  if size > (64 << 30) and require("vmlab.kernel")().allocator == "asan" then
    return { call = "malloc", size = size, ok = false, not_tried = true,
      error = "not tried: AddressSanitizer's malloc reports out-of-memory and aborts instead of returning NULL" }
  end
  local a, status = vm.child.run(function()
    return attempt("malloc", size, vm.malloc)
  end, { timeout = 30 })
  if a then return a end
  return { call = "malloc", size = size, ok = false, not_tried = true,
           error = ("the allocator killed the process (%s)"):format(status.signal_name or status.error or "?") }
end

--- params: size (the big request, bytes), small (a request that fits, bytes; under
-- policy 2 no more than a quarter of what is left below CommitLimit)
function M.run(p)
  local mi = meminfo()
  local policy = math.tointeger(vm.proc.vm_settings().overcommit_memory)
  -- "a request that fits": under the strict policy, at most a quarter of the room left below CommitLimit
  local small = p.small
  local room = mi.CommitLimit - mi.Committed_AS
  if policy == 2 and small > room // 4 then
    small = math.max(vm.page_size, room // 4 // vm.page_size * vm.page_size)
  end
  p.small = small
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
    swap_total = mi.SwapTotal or 0,
    big = p.size, small = p.small,
    attempts = attempts,
  }
end

local u = vm.units

-- The attempt of `call` for `size` bytes in a result.
local function find(r, call, size)
  for _, a in ipairs(r.attempts or {}) do
    if a.call == call and a.size == size then return a end
  end
end
M.find = find

local function said(a)
  if not a then return "not made" end
  if a.not_tried then return "not tried" end
  return a.ok and "granted" or "refused"
end

-- What the policy of this result predicts for one request of `size` bytes
-- charged to the commit: true (granted), false (refused) or nil (too close to call).
local function predicted(r, size)
  if r.policy == 1 then return true end
  if r.policy == 0 then
    -- the heuristic refuses one request larger than all of RAM + swap
    local total = r.mem_total + r.swap_total
    if size > total * 1.05 then return false end
    if size < total * 0.5 then return true end
    return nil
  end
  if r.policy == 2 then
    local room = r.commit_limit - r.committed_as
    if size > room * 1.05 then return false end
    if size < room * 0.8 then return true end
    return nil
  end
  return nil
end

local function policy_words(r)
  return ("policy %s (%s)"):format(tostring(r.policy), r.policy_name or "?")
end

M.claims = {
  { id = "policy_decides",
    text = "the overcommit policy decides a request for more than RAM + swap: "
      .. "heuristic (0) and strict (2) refuse it, always (1) grants it",
    decide = function(r)
      local want = predicted(r, r.big)
      local m, mm = find(r, "malloc", r.big), find(r, "mmap", r.big)
      local ev = ("%s; RAM + swap %s, CommitLimit %s, Committed_AS %s; malloc(%s) %s, mmap(%s) %s"):format(
        policy_words(r), u.bytes(r.mem_total + r.swap_total), u.bytes(r.commit_limit), u.bytes(r.committed_as),
        u.bytes(r.big), said(m), u.bytes(r.big), said(mm))
      if want == nil then
        return nil, ev, r.policy ~= 0 and r.policy ~= 1 and r.policy ~= 2 and "an unknown overcommit policy"
          or ("%s is too close to what this policy allows to say which way it goes"):format(u.bytes(r.big))
      end
      local holds = mm ~= nil and mm.ok == want and (m == nil or m.not_tried or m.ok == want)
      local why
      if not holds and want == true then
        why = "a limit other than the overcommit policy refused it (RLIMIT_AS or RLIMIT_DATA? address space?)"
      end
      return holds, ev, why
    end,
    explain = function(r)
      if r.policy == 0 then
        return "The heuristic refuses only a single request that could never fit in RAM + swap, and promises "
          .. "the rest: pages get frames only when touched, and if the promises come due the OOM killer picks a victim."
      elseif r.policy == 1 then
        return "Policy 1 never refuses: any size is promised; only touching pages uses memory."
      end
      return "Policy 2 refuses whatever would take Committed_AS past CommitLimit (swap + overcommit_ratio % of RAM)."
    end },
  { id = "charged_not_used",
    text = "a granted private writable mapping is charged to Committed_AS at once, by its size, "
      .. "but uses no memory (RSS) until touched",
    decide = function(r)
      local a = find(r, "mmap", r.small)
      if not a or not a.ok then
        return nil, ("%s; mmap(%s) %s%s"):format(policy_words(r), u.bytes(r.small), said(a),
          a and a.error and (": " .. a.error) or ""), "the kernel refused the small mapping: nothing was charged"
      end
      local holds = a.committed_growth >= r.small * 0.75 and a.committed_growth <= r.small * 2
        and a.rss_growth < math.max(16 << 20, r.small // 16)
      return holds, ("mmap(%s) granted: Committed_AS +%s, RSS +%s"):format(u.bytes(r.small),
        u.bytes(a.committed_growth), u.bytes(a.rss_growth))
    end,
    explain = function()
      return "The kernel promised the memory and wrote the promise down; no frame is given before a page is touched."
    end },
  { id = "noreserve_uncharged",
    text = "MAP_NORESERVE skips the commit charge, so even a huge mapping is granted; "
      .. "only the strict policy (2) charges it anyway",
    decide = function(r)
      local a = find(r, "mmap noreserve", r.big)
      if not a then return nil, "no noreserve mapping was tried" end
      local ev = ("%s; mmap(%s, noreserve) %s"):format(policy_words(r), u.bytes(r.big), said(a))
      if a.ok then ev = ev .. (": Committed_AS +%s, RSS +%s"):format(u.bytes(a.committed_growth), u.bytes(a.rss_growth))
      elseif a.error then ev = ev .. ": " .. a.error end
      if r.policy == 2 then
        -- charged like any mapping: granted with the charge, or refused as the policy says
        local want = predicted(r, r.big)
        if a.ok then return a.committed_growth >= r.big * 0.75, ev end
        if want == nil then return nil, ev, "too close to CommitLimit to say which way it goes" end
        return want == false, ev
      end
      if not a.ok then return false, ev, "a limit other than the overcommit policy refused it (RLIMIT_AS?)" end
      return a.committed_growth < math.max(1 << 30, r.big // 64) and a.rss_growth < 16 << 20, ev
    end,
    explain = function(r)
      if r.policy == 2 then
        return "Under the strict policy MAP_NORESERVE is ignored: the mapping is charged like any other."
      end
      return "No promise was recorded, so nothing stood in the way: pages that get touched are simply taken "
        .. "when the time comes, and if there are none left, the process is killed."
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  local lines = {
    ("Policy %s (%s). CommitLimit %s, Committed_AS %s before the requests, RAM %s, swap %s."):format(
      tostring(r.policy), r.policy_name, u.bytes(r.commit_limit), u.bytes(r.committed_as), u.bytes(r.mem_total),
      u.bytes(r.swap_total)),
  }
  for _, a in ipairs(r.attempts) do
    if a.ok then
      lines[#lines + 1] = ("%s(%s) was granted: Committed_AS +%s, RSS +%s."):format(
        a.call, u.bytes(a.size), u.bytes(a.committed_growth or 0), u.bytes(a.rss_growth or 0))
    else
      lines[#lines + 1] = ("%s(%s) %s: %s"):format(a.call, u.bytes(a.size),
        a.not_tried and "was not made" or "was refused", a.error)
    end
  end
  return lines
end

-- Its chart (vmlab run overcommit --plot FILE.svg|png, vmlab report): each request against the machine's
-- memory and commit limit, and what a granted one was charged and used (log scale: gigabytes to kilobytes).
M.charts = {
  { kind = "hbars", title = "requests against the machine's memory and commit limit (log scale)", unit = "bytes",
    log = true, axis = "bytes",
    rows = function(r)
      local units_of = require "vmlab.units"
      local rows = {
        { label = "RAM (MemTotal)", value = r.mem_total, key = "the machine" },
        { label = "CommitLimit", value = r.commit_limit, key = "the machine" },
        { label = "Committed_AS before", value = r.committed_as, key = "the machine" },
      }
      for _, a in ipairs(r.attempts or {}) do
        local what = ("%s(%s)"):format(a.call, units_of.bytes(a.size or 0))
        rows[#rows + 1] = { label = what .. (a.ok and " granted" or " refused"), value = a.size,
          key = a.ok and "asked and granted" or "asked and refused" }
        if a.ok then
          rows[#rows + 1] = { label = what .. ": Committed_AS +", value = a.committed_growth, key = "charged" }
          rows[#rows + 1] = { label = what .. ": RSS +", value = a.rss_growth, key = "used (RSS)" }
        end
      end
      return rows
    end },
}

return M
