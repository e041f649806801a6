--- race: two processes add 1 to one shared counter N times each
-- (001_*.txt, section 13). `counter++` on shared memory is a load, an add
-- and a store: when both processes run at once on two cores, one's store
-- overwrites the other's and updates are lost. An atomic add (C11
-- atomic_fetch_add, a `lock xadd`) and an increment between sem_wait and
-- sem_post of a process-shared POSIX semaphore lose nothing - at a price.
-- The loops run in C (s:plain_add_n, s:atomic_add_n, s:sem_add_n); the
-- processes start together behind a barrier. Whether the plain increments
-- overlap at all is up to the scheduler: on a busy machine a process forked
-- onto the CPU where the other spins may run its whole loop before the other
-- gets the CPU back. So in the plain contest every process goes on adding
-- (in pieces, counting what it added) until every process has added its
-- share: each loop lasts as long as the slowest one, and the expected value
-- is the sum of what each process counted. A run without loss is repeated
-- with 4 times the increments (at most plain_tries runs), and the claim says
-- what this run saw.
-- @module vmlab.experiments.race
local vm = require "vmlab"
local names = require "vmlab.sum.names"

local M = {
  name = "race",
  summary = "two processes increment one shared counter: plain increments lose updates, atomics and semaphores don't",
  params = {
    { name = "increments", default = 1000000, unit = "count", min = 1, max = 1 << 32,
      help = "increments each process adds (atomic and semaphore contests)" },
    { name = "processes", default = 2, unit = "count", min = 2, max = 64, help = "processes sharing the counter" },
    { name = "plain_tries", default = 5, unit = "count", min = 1, max = 20,
      help = "plain contests at most, each 4 times longer, until one loses updates" },
  },
  tour = { increments = 200000 },
  fields = {
    { name = "processes", unit = "count", help = "processes sharing the counter" },
    { name = "increments", unit = "count", help = "increments each process added" },
    { name = "expected", unit = "count", help = "processes x increments" },
    { name = "atomic", unit = "count", help = "the atomic counter at the end" },
    { name = "semaphore", unit = "count", help = "the semaphore-guarded counter at the end" },
    { name = "plain_increments", unit = "count",
      help = "increments each process added to the plain counter (at least)" },
    { name = "plain_expected", unit = "count", help = "what the processes counted they added to it" },
    { name = "plain", unit = "count", help = "the plain counter at the end" },
    { name = "lost", unit = "count", help = "plain updates lost" },
    { name = "lost_percent", unit = "percent", help = "of plain_expected" },
    { name = "plain_tries", unit = "count", help = "plain contests run" },
    { name = "plain_seconds", unit = "seconds", help = "time of the last plain contest" },
    { name = "atomic_seconds", unit = "seconds", help = "time of the atomic contest" },
    { name = "semaphore_seconds", unit = "seconds", help = "time of the semaphore contest" },
    { name = "cpus", unit = "count", help = "CPUs this process may run on" },
  },
}

local COUNTER, READY, DONE, SEM, TIMES = 0, 128, 136, 192, 256

-- How many CPUs this process may run on (Cpus_allowed_list).
local function cpus_allowed()
  local st = vm.proc.status()
  return st and st.cpus_allowed and #st.cpus_allowed or 1
end

-- Run `loop(s)` in `n` forked processes started together; returns the
-- counter and the slowest process's seconds. The barrier is among the
-- children alone (the last to arrive releases all), while the parent sleeps
-- in waitpid: nobody competes with them for a CPU when they start.
local function contest(s, n, loop)
  s:atomic_store(COUNTER, 0)
  s:atomic_store(READY, 0)
  local kids = {}
  for i = 1, n do
    kids[i] = assert(vm.fork(function()
      s:atomic_add(READY, 1)
      while s:atomic_load(READY) < n do end
      local seconds = loop(s)
      s:atomic_store(TIMES + 8 * (i - 1), math.floor(seconds * 1e9))
      return 0
    end))
  end
  local worst, failed = 0, nil
  for i = 1, n do
    local st = kids[i]:wait({ timeout = 300 })
    if not st then
      kids[i]:kill("KILL")
      st = kids[i]:wait()
    end
    if not (st.exited and st.code == 0) then failed = st.signal_name or ("exit code " .. tostring(st.code)) end
    worst = math.max(worst, s:atomic_load(TIMES + 8 * (i - 1)) / 1e9)
  end
  if failed then error("race: a counting process failed (" .. failed .. ")", 0) end
  return s:atomic_load(COUNTER), worst
end

-- The plain contest: each of n processes adds 1 in pieces until it has
-- added `share` and every other process has added its share too (DONE
-- counts those that have), so the loops overlap for as long as the slowest
-- takes. Returns the counter, the increments all made, the slowest's seconds.
local function contest_plain(s, n, share)
  s:atomic_store(DONE, 0)
  local piece = math.max(1, math.min(share, 16384))
  local COUNTS = TIMES + 8 * n
  local counter, worst = contest(s, n, function(r)
    local mine, seconds, done = 0, 0, false
    while not done or r:atomic_load(DONE) < n do
      seconds = seconds + r:plain_add_n(COUNTER, 1, piece)
      mine = mine + piece
      if not done and mine >= share then
        done = true
        r:atomic_add(DONE, 1)
      end
    end
    r:atomic_add(COUNTS, mine)
    return seconds
  end)
  return counter, s:atomic_load(COUNTS), worst
end

--- params: increments (per process), processes
function M.run(p)
  local n, procs = math.tointeger(p.increments), math.tointeger(p.processes)
  if not n or n < 1 then error("race: increments must be a positive integer", 0) end
  if not procs or procs < 2 or procs > 64 then error("race: processes must be 2 .. 64", 0) end
  names.sweep("race")
  local s <close> = assert(vm.shm_open(names.unique("race"), { create = true, exclusive = true,
    size = TIMES + 16 * procs, mode = tonumber("600", 8) }))
  s:unlink() -- forked children inherit the mapping; no name needs to outlive this line
  assert(s:sem_init(SEM, 1))
  local result = { expected = n * procs, processes = procs, increments = n, cpus = cpus_allowed() }
  -- a loss needs both processes inside the loop at the same moment; a short run may finish
  -- before the other starts, so a run without loss is repeated with 4 times the increments
  local pn = n
  for try = 1, math.max(1, math.tointeger(p.plain_tries) or 1) do
    s:atomic_store(TIMES + 8 * procs, 0)
    result.plain, result.plain_expected, result.plain_seconds = contest_plain(s, procs, pn)
    result.plain_increments, result.plain_tries = pn, try
    if result.plain < result.plain_expected or result.cpus < 2 then break end
    pn = pn * 4
  end
  result.atomic, result.atomic_seconds = contest(s, procs, function(r) return r:atomic_add_n(COUNTER, 1, n) end)
  result.semaphore, result.semaphore_seconds = contest(s, procs, function(r)
    return assert(r:sem_add_n(SEM, COUNTER, 1, n))
  end)
  s:sem_destroy(SEM)
  result.lost = result.plain_expected - result.plain
  result.lost_percent = 100 * result.lost / result.plain_expected
  return result
end

local u = vm.units

M.claims = {
  { id = "plain_loses",
    text = "plain counter++ from processes running at once loses updates: load, add and store interleave",
    requires = "two_cpus",
    timing = true, -- whether the processes overlap is up to the scheduler
    decide = function(r)
      local ev = ("plain counter++: %s of %s (%s lost, %.2f %%) with at least %s increments per process, try %d")
        :format(
        u.count(r.plain), u.count(r.plain_expected), u.count(r.lost), r.lost_percent, u.count(r.plain_increments),
        r.plain_tries)
      local why
      if r.lost == 0 then
        why = r.cpus < 2 and "one CPU only: the processes never ran at the same moment"
          or "the processes hardly overlapped on this run (the scheduler ran them one after the other)"
      end
      return r.lost > 0 and r.plain <= r.plain_expected, ev, why
    end,
    explain = function()
      return "Both processes loaded the same value, added 1 and stored it: one of the two increments vanished."
    end },
  { id = "atomic_exact",
    text = "atomic_fetch_add loses no update",
    decide = function(r)
      return r.atomic == r.expected, ("atomic_fetch_add: %s of %s"):format(u.count(r.atomic), u.count(r.expected))
    end,
    explain = function() return "The CPU does each atomic read-modify-write as one indivisible step." end },
  { id = "semaphore_exact",
    text = "counter++ between sem_wait and sem_post of a shared semaphore loses no update",
    decide = function(r)
      return r.semaphore == r.expected, ("semaphore around counter++: %s of %s"):format(u.count(r.semaphore),
        u.count(r.expected))
    end,
    explain = function() return "Only one process at a time is between sem_wait and sem_post." end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  return {
    ("%d processes each added 1 %s times (plain counter++: at least %s times each, each going on until all had):"
      .. " the counters should read %s (plain: %s, what they counted).")
      :format(r.processes, u.count(r.increments), u.count(r.plain_increments), u.count(r.expected),
        u.count(r.plain_expected)),
    ("They read: plain %s (%s lost), atomic %s, semaphore %s."):format(u.count(r.plain), u.count(r.lost),
      u.count(r.atomic), u.count(r.semaphore)),
    ("Time of the slowest process: %s plain, %s atomic, %s with the semaphore."):format(
      u.seconds(r.plain_seconds), u.seconds(r.atomic_seconds), u.seconds(r.semaphore_seconds)),
  }
end

-- Its chart (vmlab run race --plot FILE.svg|png, vmlab report): updates lost by a plain counter++ against an
-- atomic add and a semaphore, and what each costs per update.
M.charts = {
  { kind = "bars", title = "a plain counter++ loses updates; atomics and a semaphore do not",
    panels = function(r)
      local function per(sec, n) return sec and n and n > 0 and sec / n or nil end
      return {
        { title = "updates lost", unit = "updates", groups = {
          { label = "plain", value = r.lost },
          { label = "atomic", value = r.expected and r.atomic and r.expected - r.atomic },
          { label = "semaphore", value = r.expected and r.semaphore and r.expected - r.semaphore } } },
        { title = "updates counted", unit = "percent", axis = "% of the updates made", groups = {
          { label = "plain", value = r.plain_expected and r.plain and 100 * r.plain / r.plain_expected },
          { label = "atomic", value = r.expected and r.atomic and 100 * r.atomic / r.expected },
          { label = "semaphore", value = r.expected and r.semaphore and 100 * r.semaphore / r.expected } } },
        { title = "time per update", unit = "seconds", groups = {
          { label = "plain", value = per(r.plain_seconds, r.plain_expected) },
          { label = "atomic", value = per(r.atomic_seconds, r.expected) },
          { label = "semaphore", value = per(r.semaphore_seconds, r.expected) } } },
      }
    end },
}

return M
