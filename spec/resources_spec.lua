-- Resource checks (issue 9): many rounds of making and releasing every kind
-- of object vmlab has - closed explicitly, or dropped and collected - leave
-- this process's RSS, address space, mappings, open descriptors, children
-- and /dev/shm objects where they were. A leak of one page, one mapping or
-- one descriptor per round shows up many times over.
--
-- Rounds per kind and mode: VMLAB_RESOURCE_ROUNDS (default 1000; `make fuzz`
-- runs 10,000). Processes (fork, spawn) take a tenth of that (a fiftieth
-- under the sanitizers), at least 20.
local vm = require "vmlab"

local ROUNDS = math.tointeger(tonumber(os.getenv("VMLAB_RESOURCE_ROUNDS") or "")) or 1000
local SANITIZED = os.getenv("VMLAB_SANITIZED") == "1"
-- (a fork of a sanitized process costs ~0.1 s: its shadow memory's page tables)
local PROCESS_ROUNDS = math.max(20, ROUNDS // (SANITIZED and 50 or 10))
local PS = vm.page_size
local SIZE = 16 * PS -- each region: leaking one per round is ROUNDS * 16 pages
local PID = vm.getpid()
local PREFIX = ("vmlab-spec-res-%d-"):format(PID)

local function count_lines(path)
  local n = 0
  for _ in io.lines(path) do n = n + 1 end
  return n
end

local function count_fds()
  if vm.listdir then return #assert(vm.listdir("/proc/self/fd")) end
  local n = 0
  local p = assert(io.popen("ls /proc/" .. PID .. "/fd")) -- its own pipe is in the listing both times
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

local function count_children()
  local f = io.open(("/proc/%d/task/%d/children"):format(PID, PID))
  if not f then return 0 end
  local n = 0
  for _ in f:read("a"):gmatch("%d+") do n = n + 1 end
  f:close()
  return n
end

local function count_shm()
  return #vm.shm_list(PREFIX)
end

local function measure()
  collectgarbage("collect")
  collectgarbage("collect")
  local statm = assert(vm.proc.statm())
  return {
    rss = statm.resident, virt = statm.size, maps = count_lines("/proc/self/maps"), fds = count_fds(),
    children = count_children(), shm = count_shm(),
  }
end

-- What may move between two measurements for reasons of its own (the Lua
-- heap, malloc's arenas, the allocator keeping freed memory): far below what
-- a per-round leak of ROUNDS rounds adds.
local SLACK = { rss = 16 * 1024 * 1024, virt = 64 * 1024 * 1024, maps = 16, fds = 2, children = 0, shm = 0 }

-- Under AddressSanitizer freed heap blocks wait in its quarantine (256 MiB by
-- default) before malloc reuses them: RSS and address space of the heap kinds
-- are only checked in the plain build (mappings and descriptors in both).

local function assert_flat(before, after, what, rounds, heap)
  for k, slack in pairs(SLACK) do
    if heap and SANITIZED and (k == "rss" or k == "virt") then slack = math.huge end
    local grew = after[k] - before[k]
    assert(grew <= slack, ("%s, %d rounds: %s grew by %d (from %d to %d; allowed %s)"):format(what, rounds, k, grew,
      before[k], after[k], slack))
  end
end

local path -- a file for file mappings, made once
local serial = 0

-- Each kind: make(i) returns the object (already used a little); close(o)
-- releases it the explicit way. nil from make means "not available here".
local KINDS = {
  { "anonymous mapping (vm.mmap)", function()
    local r = assert(vm.mmap(SIZE))
    r:fill(1)
    return r
  end },
  { "shared file mapping (vm.mmap file=)", function()
    local r = assert(vm.mmap(SIZE, { file = path, share = "shared" }))
    r:write(0, "x")
    return r
  end },
  { "heap block (vm.malloc)", heap = true, function()
    local r = assert(vm.malloc(SIZE))
    r:fill(2)
    return r
  end },
  { "heap block (vm.calloc)", heap = true, function()
    local r = assert(vm.calloc(16, PS))
    r:fill(3)
    return r
  end },
  { "shared-memory object (vm.shm_open)", function()
    serial = serial + 1
    local s = assert(vm.shm_open(PREFIX .. serial, { create = true, size = SIZE }))
    s:fill(4)
    assert(s:sem_init(0, 1))
    return s
  end },
  { "fault counter (vm.fault_counter)", function()
    local c = vm.fault_counter("minor")
    c:read()
    return c
  end },
  { "fault sampler (vm.fault_sampler)", function()
    local s = vm.fault_sampler({ pages = 8 })
    if s then
      s:start()
      s:stop()
      s:read()
    end
    return s
  end },
  { "line summer (vm.line_summer)", function()
    if not vm.line_summer then return nil end
    local s = vm.line_summer()
    s:feed("1 2\n3")
    return s
  end },
  { "heap blocks (vm.blocks)", heap = true, function()
    if not vm.blocks then return nil end
    return assert(vm.blocks(8, 256))
  end },
  { "Lua file on a region (r:as_file)", function()
    serial = serial + 1
    local r = assert(vm.shm_open(PREFIX .. serial, { create = true, size = PS }))
    if not r.as_file then
      r:close()
      return nil
    end
    local f = assert(r:as_file())
    r:close()
    return f
  end },
}

local PROCESSES = {
  { "forked child (vm.fork)", function() return assert(vm.fork(function() return 0 end)) end },
  { "spawned program (vm.spawn)", function() return assert(vm.spawn({ "true" }, { stdout = "null" })) end },
}

local function close(o) o:close() end

describe("resources after many rounds (" .. ROUNDS .. " per kind)", function()
  setup(function()
    path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(("\0"):rep(SIZE))
    f:close()
  end)
  teardown(function() os.remove(path) end)

  for _, kind in ipairs(KINDS) do
    local name, make = kind[1], kind[2]
    it(name .. ": made and closed, made and dropped, leaves RSS, mappings and descriptors flat", function()
      local probe = make()
      if probe == nil then
        pending(name .. " is not available here")
        return
      end
      close(probe)
      for _ = 1, math.min(50, ROUNDS) do close(make()) end -- warm up: the allocator's and Lua's own pools
      local before = measure()
      for _ = 1, ROUNDS do close(make()) end
      local after = measure()
      assert_flat(before, after, name .. " closed", ROUNDS, kind.heap)
      for i = 1, ROUNDS do
        make() -- dropped: __gc releases it
        if i % 64 == 0 then collectgarbage("collect") end
      end
      assert_flat(before, measure(), name .. " dropped", ROUNDS, kind.heap)
    end)
  end

  for _, kind in ipairs(PROCESSES) do
    local name, make = kind[1], kind[2]
    it(name .. ": waited for, or dropped while running, leaves no child, descriptor or memory behind", function()
      for _ = 1, 5 do make():wait() end
      local before = measure()
      for _ = 1, PROCESS_ROUNDS do make():wait() end
      assert_flat(before, measure(), name .. " waited for", PROCESS_ROUNDS)
      for i = 1, PROCESS_ROUNDS do
        make() -- dropped: __gc kills and reaps it
        if i % 8 == 0 then collectgarbage("collect") end
      end
      assert_flat(before, measure(), name .. " dropped", PROCESS_ROUNDS)
    end)
  end
end)
