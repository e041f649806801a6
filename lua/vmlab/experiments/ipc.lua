--- ipc: the lab's table of IPC methods (001_*.txt, section 14), measured.
-- For each method and message size: the round-trip latency (send a message,
-- get it back) and the one-way bandwidth (a stream of messages, each copied
-- out by the receiver), with both processes on one core and on two cores.
-- Methods: shared memory where the waiting side sleeps in futex(2)
-- (shm-futex) or spins (shm-spin), a pipe, a Unix stream socket and a POSIX
-- message queue. The loops run in C (vm.ipc_measure); each phase stops at its
-- count or after `budget` seconds.
-- @module vmlab.experiments.ipc
local vm = require "vmlab"

local M = {
  name = "ipc",
  summary = "IPC methods measured: round-trip latency and bandwidth of shm (futex, spin), pipe, socket, mqueue",
  -- message sizes: a cache line, a page, 16 pages
  params = {
    { name = "sizes", default = { 64, vm.page_size, 16 * vm.page_size }, unit = "bytes", list = true,
      min = 1, max = 16 * 1024 * 1024, help = "message sizes (a cache line, a page, 16 pages)" },
    { name = "methods", default = { "shm-futex", "shm-spin", "pipe", "unix-socket", "mqueue" }, unit = "choice",
      list = true, choices = { "shm-futex", "shm-spin", "pipe", "unix-socket", "mqueue" },
      help = "the IPC methods measured" },
    { name = "placements", default = { "same-core", "cross-core" }, unit = "choice", list = true,
      choices = { "same-core", "cross-core" }, help = "the two processes on one CPU, or on two" },
    { name = "budget", default = 0.2, unit = "seconds", min = 0.001, max = 60,
      help = "time for each phase (round trips, then streaming) of each case" },
    { name = "round_trips", default = 100000, unit = "count", min = 1, max = 1 << 32,
      help = "round trips per case at most" },
    { name = "stream_messages", default = 100000, unit = "count", min = 1, max = 1 << 32,
      help = "messages streamed per case at most" },
  },
  tour = { sizes = { 64, vm.page_size }, budget = 0.05 },
  fields = {
    { name = "cpus", unit = "count", help = "CPUs this process may run on" },
    { name = "methods", unit = "table", help = "one row per method, size and placement", fields = {
      { name = "method", unit = "text", help = "the IPC method" },
      { name = "placement", unit = "text", help = "same-core or cross-core" },
      { name = "message_bytes", unit = "bytes", help = "the message size" },
      { name = "round_trip_ns", unit = "ns", optional = true, help = "time of one message there and back" },
      { name = "bytes_per_second", unit = "bytes_per_second", optional = true, help = "streaming bandwidth" },
      { name = "round_trips", unit = "count", optional = true, help = "round trips timed" },
      { name = "skipped", unit = "text", optional = true, help = "why this case was not measured" },
    } },
  },
}

local KNOWN = { ["shm-futex"] = true, ["shm-spin"] = true, pipe = true, ["unix-socket"] = true, mqueue = true }

-- A list param: a list already, or (from older callers) "a,b,c".
local function words(v)
  if type(v) == "table" then return v end
  local list = {}
  for w in tostring(v):gmatch("[^,%s]+") do list[#list + 1] = w end
  return list
end

-- The CPUs this process may run on (Cpus_allowed_list in /proc/self/status).
local function cpus_allowed()
  local st = vm.proc.status()
  return st and st.cpus_allowed or {}
end

--- params: sizes, methods, placements (comma lists), budget (seconds per
-- phase), round_trips, stream_messages (the most per phase)
function M.run(p)
  local sizes, methods, placements = {}, words(p.methods), words(p.placements)
  for _, w in ipairs(words(p.sizes)) do
    local n = math.tointeger(w) or math.tointeger(tonumber(w))
    if not n or n < 1 or n > 1 << 24 then error("ipc: sizes must be byte counts 1 .. 16 MiB, got " .. w, 0) end
    sizes[#sizes + 1] = n
  end
  for _, m in ipairs(methods) do
    if not KNOWN[m] then
      error("ipc: unknown method '" .. m .. "' (shm-futex, shm-spin, pipe, unix-socket, mqueue)", 0)
    end
  end
  for _, pl in ipairs(placements) do
    if pl ~= "same-core" and pl ~= "cross-core" then
      error("ipc: placements are same-core and cross-core, got " .. pl, 0)
    end
  end
  local cpus = cpus_allowed()
  local rows = {}
  for _, placement in ipairs(placements) do
    for _, size in ipairs(sizes) do
      for _, method in ipairs(methods) do
        local row = { method = method, message_bytes = size, placement = placement }
        if placement == "cross-core" and #cpus < 2 then
          row.skipped = "only one CPU is allowed here"
        else
          local child_cpu = placement == "same-core" and cpus[1] or cpus[2]
          local r, err = vm.ipc_measure(method, { message_bytes = size, budget = p.budget,
            round_trips = p.round_trips, stream_messages = p.stream_messages,
            cpu_parent = cpus[1] or -1, cpu_child = child_cpu or -1 })
          if r then
            row.round_trip_ns, row.bytes_per_second = r.round_trip_ns, r.bytes_per_second
            row.round_trips = r.round_trips
          else
            row.skipped = err
            if method == "mqueue" and tostring(err):find("Invalid argument") then
              local max = vm.proc.sysctl("fs.mqueue.msgsize_max")
              if math.type(max) == "integer" and size > max then
                row.skipped = ("%s (msgsize_max is %d)"):format(err, max)
              end
            end
          end
        end
        rows[#rows + 1] = row
      end
    end
  end
  return { methods = rows, cpus = #cpus }
end

local u = vm.units

-- The row of a method at a size and placement, measured (nil where skipped or not run).
local function row_of(r, method, size, placement)
  for _, row in ipairs(r.methods) do
    if row.method == method and row.message_bytes == size and row.placement == placement and row.round_trip_ns then
      return row
    end
  end
  return nil
end

-- The message sizes of the result, smallest first.
local function sizes_of(r)
  local seen, list = {}, {}
  for _, row in ipairs(r.methods) do
    if not seen[row.message_bytes] then seen[row.message_bytes] = true; list[#list + 1] = row.message_bytes end
  end
  table.sort(list)
  return list
end

local function ns(x) return u.seconds(x / 1e9) end

-- A row may be skipped only for what the machine lacks: a second CPU, or a message queue the kernel refuses.
local function limit(row)
  return row.placement == "cross-core" and tostring(row.skipped):find("one CPU", 1, true) or row.method == "mqueue"
end

--- Margins of the speed claims: a ratio counts only past them.
M.margins = { spin_one_core = 2, spin_fastest = 1.2, futex_pipe = 1.1 }

M.claims = {
  { id = "every_method_measured",
    text = "every method carried messages both ways: a round trip and a stream measured for each size",
    decide = function(r)
      local measured, bad, limited = 0, {}, {}
      for _, row in ipairs(r.methods) do
        local name = ("%s %s %s"):format(row.method, u.bytes(row.message_bytes), row.placement)
        if row.round_trip_ns and row.round_trip_ns > 0 and (row.bytes_per_second or 0) > 0 then
          measured = measured + 1
        elseif row.skipped and limit(row) then
          limited[#limited + 1] = name .. ": " .. tostring(row.skipped)
        else
          bad[#bad + 1] = name .. ": " .. tostring(row.skipped or "no numbers")
        end
      end
      local ev = ("%d of %d method/size/placement cases measured"):format(measured, #r.methods)
      if #limited > 0 then ev = ev .. "; skipped for this machine's limits: " .. table.concat(limited, "; ") end
      return #bad == 0 and measured > 0, ev, #bad > 0 and ("failed: " .. table.concat(bad, "; ")) or nil
    end },
  { id = "spin_slow_on_one_core",
    text = "spinning on shared memory is far slower on one core than across two: the spinner holds the CPU "
      .. "its partner needs",
    requires = "two_cpus",
    decide = function(r)
      local parts, holds = {}, nil
      for _, size in ipairs(sizes_of(r)) do
        local same, cross = row_of(r, "shm-spin", size, "same-core"), row_of(r, "shm-spin", size, "cross-core")
        if same and cross then
          local ratio = same.round_trip_ns / cross.round_trip_ns
          parts[#parts + 1] = ("%s: %s per round trip on one core, %s across cores (ratio %.0f)"):format(
            u.bytes(size), ns(same.round_trip_ns), ns(cross.round_trip_ns), ratio)
          holds = (holds == nil or holds) and ratio >= M.margins.spin_one_core
        end
      end
      if holds == nil then return nil, "shm-spin was not measured on one core and across cores" end
      return holds, "shm-spin " .. table.concat(parts, "; ") .. (" (counted from %.0f)"):format(M.margins.spin_one_core)
    end,
    explain = function()
      return "On one core the spinner burns its whole time slice waiting for a partner that cannot run until it "
        .. "stops; across cores the partner answers while it spins."
    end },
  { id = "spin_fastest_across_cores",
    text = "across cores, spinning on shared memory gives the fastest round trip of all methods",
    requires = "two_cpus",
    timing = true,
    decide = function(r)
      local size = sizes_of(r)[1]
      local spin = size and row_of(r, "shm-spin", size, "cross-core")
      if not spin then return nil, "shm-spin was not measured across cores" end
      local best
      for _, row in ipairs(r.methods) do
        if row.method ~= "shm-spin" and row.message_bytes == size and row.placement == "cross-core"
            and row.round_trip_ns and (not best or row.round_trip_ns < best.round_trip_ns) then
          best = row
        end
      end
      if not best then return nil, "no other method was measured across cores" end
      local ratio = best.round_trip_ns / spin.round_trip_ns
      return ratio >= M.margins.spin_fastest, ("%s messages across cores: shm-spin %s per round trip, the next "
        .. "best %s %s: ratio %.2f (counted from %.2f)"):format(u.bytes(size), ns(spin.round_trip_ns), best.method,
        ns(best.round_trip_ns), ratio, M.margins.spin_fastest),
        ratio < M.margins.spin_fastest and "the spinner was descheduled on this run (a busy or virtual machine)" or nil
    end,
    explain = function()
      return "A spinning partner sees the message as soon as the cache line arrives: no system call, no wake-up."
    end },
  { id = "futex_beats_pipe",
    text = "shared memory with a futex beats a pipe on round-trip latency",
    timing = true,
    decide = function(r)
      local parts, logsum, n = {}, 0, 0
      for _, placement in ipairs({ "same-core", "cross-core" }) do
        for _, size in ipairs(sizes_of(r)) do
          local futex, pipe = row_of(r, "shm-futex", size, placement), row_of(r, "pipe", size, placement)
          if futex and pipe then
            local ratio = pipe.round_trip_ns / futex.round_trip_ns
            parts[#parts + 1] = ("%s %s: futex %s, pipe %s (%.2f)"):format(placement, u.bytes(size),
              ns(futex.round_trip_ns), ns(pipe.round_trip_ns), ratio)
            logsum, n = logsum + math.log(ratio), n + 1
          end
        end
      end
      if n == 0 then return nil, "shm-futex and pipe were not both measured" end
      local mean = math.exp(logsum / n)
      return mean >= M.margins.futex_pipe, table.concat(parts, "; ") .. ("; geometric mean ratio %.2f (counted "
        .. "from %.2f)"):format(mean, M.margins.futex_pipe),
        mean < M.margins.futex_pipe and "both wait in the kernel (futex wait / pipe read) and pay a wake-up; on "
          .. "this run the copy shared memory saves was lost in that cost or in noise" or nil
    end,
    explain = function()
      return "Both sleep in the kernel while they wait, but shared memory moves the data without copying it "
        .. "through the kernel."
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  local lines = {}
  local best = {}
  for _, row in ipairs(r.methods) do
    if row.round_trip_ns then
      local key = row.placement .. " " .. row.message_bytes
      local b = best[key]
      if not b or row.round_trip_ns < b.round_trip_ns then best[key] = row end
    end
  end
  local keys = {}
  for k in pairs(best) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local b = best[k]
    lines[#lines + 1] = ("%s, %s messages: fastest round trip %s (%s)."):format(b.placement,
      u.bytes(b.message_bytes), b.method, ns(b.round_trip_ns))
  end
  return lines
end

-- Its chart (vmlab run ipc --plot FILE.svg|png, vmlab report): round-trip time per method, grouped by message
-- size, one panel per placement (log scale: the methods differ by orders of magnitude).
M.charts = {
  { kind = "bars", title = "round-trip time per method, by message size (log scale)", same_scale = true,
    panels = function(r)
      local units_of = require "vmlab.units"
      local placements, sizes, by = {}, {}, {}
      for _, m in ipairs(r.methods or {}) do
        local pl, sz = m.placement or "any", m.message_bytes or 0
        if not by[pl] then by[pl] = {}; placements[#placements + 1] = pl end
        if not by[pl][sz] then
          by[pl][sz] = {}
          local seen = false
          for _, s in ipairs(sizes) do if s == sz then seen = true end end
          if not seen then sizes[#sizes + 1] = sz end
        end
        table.insert(by[pl][sz], { name = m.method, value = m.round_trip_ns and m.round_trip_ns * 1e-9 })
      end
      table.sort(sizes)
      local panels = {}
      for _, pl in ipairs(placements) do
        local groups = {}
        for _, sz in ipairs(sizes) do
          if by[pl][sz] then groups[#groups + 1] = { label = units_of.bytes(sz) .. " messages", bars = by[pl][sz] } end
        end
        panels[#panels + 1] = { title = pl, unit = "seconds", axis = "round trip", log = true, groups = groups }
      end
      return panels
    end },
}

return M
