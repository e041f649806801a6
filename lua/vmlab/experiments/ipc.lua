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
  params = { sizes = "64,4096,65536", methods = "shm-futex,shm-spin,pipe,unix-socket,mqueue",
    placements = "same-core,cross-core", budget = 0.2, round_trips = 100000, stream_messages = 100000 },
  tour = { sizes = "64,4096", budget = 0.05 },
  units = { message_bytes = "bytes", round_trip_ns = "ns", bytes_per_second = "bytes", round_trips = "count" },
  fields = { "cpus", "methods" },
}

local KNOWN = { ["shm-futex"] = true, ["shm-spin"] = true, pipe = true, ["unix-socket"] = true, mqueue = true }

local function words(text)
  local list = {}
  for w in tostring(text):gmatch("[^,%s]+") do list[#list + 1] = w end
  return list
end

-- The CPUs this process may run on, from /proc/self/status.
local function cpus_allowed()
  local cpus = {}
  for line in io.lines("/proc/self/status") do
    local list = line:match("^Cpus_allowed_list:%s*(%S+)")
    if list then
      for a, b in list:gmatch("(%d+)%-?(%d*)") do
        for c = tonumber(a), b ~= "" and tonumber(b) or tonumber(a) do cpus[#cpus + 1] = c end
      end
    end
  end
  return cpus
end

local function read_number(path)
  local f = io.open(path)
  local v = f and tonumber(f:read("l"))
  if f then f:close() end
  return v
end

--- params: sizes, methods, placements (comma lists), budget (seconds per
-- phase), round_trips, stream_messages (the most per phase)
function M.run(p)
  local sizes, methods, placements = {}, words(p.methods), words(p.placements)
  for _, w in ipairs(words(p.sizes)) do
    local n = math.tointeger(tonumber(w))
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
              local max = read_number("/proc/sys/fs/mqueue/msgsize_max")
              if max and size > max then
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
    lines[#lines + 1] = ("%s, %d-byte messages: fastest round trip %s (%.0f ns)."):format(b.placement,
      b.message_bytes, b.method, b.round_trip_ns)
  end
  lines[#lines + 1] = "Shared memory moves the data without the kernel; what it costs is the waiting:"
  lines[#lines + 1] = "spinning is fastest across cores and disastrous on one core (the spinner holds the CPU"
  lines[#lines + 1] = "its partner needs); futex sleeps cost a system call and a wake-up, like a pipe's."
  return lines
end

return M
