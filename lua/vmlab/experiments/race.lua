--- race: two processes add 1 to one shared counter N times each
-- (001_*.txt, section 13). `counter++` on shared memory is a load, an add
-- and a store: when both processes run at once on two cores, one's store
-- overwrites the other's and updates are lost. An atomic add (C11
-- atomic_fetch_add, a `lock xadd`) and an increment between sem_wait and
-- sem_post of a process-shared POSIX semaphore lose nothing - at a price.
-- The loops run in C (s:plain_add_n, s:atomic_add_n, s:sem_add_n); the
-- processes start together behind a barrier.
-- @module vmlab.experiments.race
local vm = require "vmlab"
local names = require "vmlab.sum.names"

local M = {
  name = "race",
  summary = "two processes increment one shared counter: plain increments lose updates, atomics and semaphores don't",
  params = { increments = 1000000, processes = 2 },
  tour = { increments = 200000 },
  fields = { "processes", "increments", "expected", "plain", "atomic", "semaphore", "lost", "lost_percent",
    "plain_seconds", "atomic_seconds", "semaphore_seconds", "cpus" },
  units = { processes = "count", increments = "count", expected = "count", plain = "count", atomic = "count",
    semaphore = "count", lost = "count", cpus = "count" },
}

local COUNTER, READY, SEM, TIMES = 0, 128, 192, 256

local function cpus_allowed()
  for line in io.lines("/proc/self/status") do
    local list = line:match("^Cpus_allowed_list:%s*(%S+)")
    if list then
      local n = 0
      for a, b in list:gmatch("(%d+)%-?(%d*)") do n = n + (b ~= "" and tonumber(b) - tonumber(a) + 1 or 1) end
      return n
    end
  end
  return 1
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

--- params: increments (per process), processes
function M.run(p)
  local n, procs = math.tointeger(p.increments), math.tointeger(p.processes)
  if not n or n < 1 then error("race: increments must be a positive integer", 0) end
  if not procs or procs < 2 or procs > 64 then error("race: processes must be 2 .. 64", 0) end
  names.sweep("race")
  local s <close> = assert(vm.shm_open(names.unique("race"), { create = true, exclusive = true,
    size = TIMES + 8 * procs, mode = tonumber("600", 8) }))
  s:unlink() -- forked children inherit the mapping; no name needs to outlive this line
  assert(s:sem_init(SEM, 1))
  local result = { expected = n * procs, processes = procs, increments = n, cpus = cpus_allowed() }
  result.plain, result.plain_seconds = contest(s, procs, function(r) return r:plain_add_n(COUNTER, 1, n) end)
  result.atomic, result.atomic_seconds = contest(s, procs, function(r) return r:atomic_add_n(COUNTER, 1, n) end)
  result.semaphore, result.semaphore_seconds = contest(s, procs, function(r)
    return assert(r:sem_add_n(SEM, COUNTER, 1, n))
  end)
  s:sem_destroy(SEM)
  result.lost = result.expected - result.plain
  result.lost_percent = 100 * result.lost / result.expected
  return result
end

function M.explain(r)
  local u = vm.units
  local lines = {
    ("%d processes each added 1 %s times: the counter should read %s."):format(r.processes, u.count(r.increments),
      u.count(r.expected)),
  }
  lines[#lines + 1] = ("plain `counter++`: %s - %s updates (%.1f %%) lost: load, add, store interleaved."):format(
    u.count(r.plain), u.count(r.lost), r.lost_percent)
  if r.lost == 0 then
    lines[#lines + 1] = r.cpus < 2 and "(one CPU only: the processes never ran at the same time, so nothing was lost)"
      or "(nothing lost this time: the processes hardly overlapped - try more increments)"
  end
  lines[#lines + 1] = ("atomic_fetch_add: %s; semaphore around counter++: %s - exact, because each"
    .. " read-modify-write is indivisible."):format(u.count(r.atomic), u.count(r.semaphore))
  lines[#lines + 1] = ("The price: %s plain, %s atomic, %s with the semaphore."):format(
    u.seconds(r.plain_seconds), u.seconds(r.atomic_seconds), u.seconds(r.semaphore_seconds))
  return lines
end

return M
