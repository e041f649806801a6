-- The lab's habits: vmlab's processes are found by name (pgrep -f, pidof, comm), `vmlab maps PID`
-- is a pmap -x view, and `vmlab sum --keep` shows its object in /dev/shm while it runs.
local vm = require "vmlab"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local ENV = ("LUA_PATH=%s LUA_CPATH=%s"):format(q(package.path), q(package.cpath))
local CMD = ("lua5.4 -e 'arg[0]=\"vmlab\"' %s"):format(q(here .. "/bin/vmlab"))
local VMLAB = ENV .. " " .. CMD

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- Poll f() (at most ~20 s) until it returns a truthy value.
local function eventually(f)
  for _ = 1, 400 do
    local v = f()
    if v then return v end
    vm.sleep(0.05)
  end
  return nil
end

-- the pids a process-listing tool prints; run without the suite's ASan preload
-- (procps tools deadlock under it)
local function pids(cmd)
  local set = {}
  for pid in sh("env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS " .. cmd):gmatch("%d+") do
    set[tonumber(pid)] = true
  end
  return set
end

-- The parent pid of process pid, or nil (gone).
local function ppid_of(pid)
  local st = vm.proc.stat(pid)
  return st and st.ppid
end

local function shm_names(prefix)
  local list = {}
  for _, n in ipairs(vm.listdir("/dev/shm") or {}) do
    if n:sub(1, #prefix) == prefix then list[#list + 1] = n end
  end
  return list
end

describe("vmlab's processes name themselves", function()
  it("memtest runs as vmlab-memtest: pgrep -f, pgrep, pidof and /proc/PID/comm find it", function()
    local child = assert(vm.spawn({ "sh", "-c", VMLAB .. " memtest w 16 --pause 30" },
      { stdout = "/dev/null", stderr = "/dev/null" }))
    local ok, err = pcall(function()
      -- sh execs nothing here: the pid vmlab runs as is sh's child; find it by name
      local pid = eventually(function()
        for p in pairs(pids("pgrep -f vmlab-memtest")) do
          if ppid_of(p) == child.pid then return p end
        end
      end)
      assert.is_not_nil(pid, "pgrep -f vmlab-memtest did not find it")
      assert.is_true(pids("pgrep -x vmlab-memtest")[pid], "pgrep (comm)")
      if os.execute("command -v pidof >/dev/null 2>&1") then
        assert.is_true(pids("pidof vmlab-memtest")[pid], "pidof")
      end
      assert.equal("vmlab-memtest\n", io.open("/proc/" .. pid .. "/comm"):read("a"))
      assert.matches("^vmlab%-memtest%z", io.open("/proc/" .. pid .. "/cmdline"):read("a"))
      vm.kill(pid, "TERM")
    end)
    if child:running() then child:kill("KILL") end
    child:wait()
    assert(ok, err)
  end)
end)

describe("vmlab sum --keep", function()
  -- Start `vmlab sum --keep` reading from a pipe we hold; returns the pipe and the pid of vmlab.
  local function start()
    local pidfile = os.tmpname()
    local p = assert(io.popen(("echo $$ > %s; %s exec %s sum --keep >/dev/null 2>&1"):format(q(pidfile), ENV, CMD),
      "w"))
    local pid = eventually(function()
      local f = io.open(pidfile)
      local n = f and tonumber(f:read("a"))
      if f then f:close() end
      return n
    end)
    os.remove(pidfile)
    return p, pid
  end

  it("shows its object in /dev/shm while it runs, and its child as vmlab-sum-child; gone after the run", function()
    local p, pid = start()
    local prefix = "vmlab-sum-" .. pid .. "-"
    local seen = eventually(function() return #shm_names(prefix) == 1 end)
    local child_found = eventually(function()
      for c in pairs(pids("pgrep -f vmlab-sum-child")) do
        if ppid_of(c) == pid then return c end
      end
    end)
    p:write("1 2 3\n")
    local _, _, code = p:close()
    assert.is_true(seen, "ls /dev/shm did not show " .. prefix .. "*")
    assert.is_not_nil(child_found, "pgrep -f vmlab-sum-child did not find the child")
    assert.equal(0, code)
    assert.same({}, shm_names(prefix))
  end)

  it("unlinks the object when stopped by SIGINT", function()
    local p, pid = start()
    local prefix = "vmlab-sum-" .. pid .. "-"
    assert.is_true(eventually(function() return #shm_names(prefix) == 1 end), "never in /dev/shm")
    vm.kill(pid, "INT")
    -- its end comes from the signal, not from the end of its input: wait for it before closing the pipe
    eventually(function()
      local st = vm.proc.stat(pid)
      return not st or st.state == "Z"
    end)
    local _, _, code = p:close()
    assert.equal(130, code)
    assert.same({}, shm_names(prefix))
  end)
end)

describe("vmlab maps PID", function()
  it("shows this process as pmap -x does, totals equal to the rows' sums", function()
    local out, code = sh(VMLAB .. " maps " .. vm.getpid())
    assert.equal(0, code, out)
    assert.matches("^%d+:   %S+\nAddress%s+Kbytes%s+RSS%s+PSS%s+Dirty%s+Swap%s+Mode%s+Mapping\n", out)
    assert.matches("\n%x+%s+%d+%s+%d+%s+%d+%s+%d+%s+%d+ [r-][w-][x-][sp]%s+%[stack%]\n", out)
    local sums = { 0, 0, 0, 0, 0 }
    for a, b, c, d, e in out:gmatch("\n%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)") do
      for i, v in ipairs { a, b, c, d, e } do sums[i] = sums[i] + tonumber(v) end
    end
    local total = { out:match("\ntotal kB%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)\n$") }
    assert.equal(5, #total, out)
    for i = 1, 5 do assert.equal(sums[i], tonumber(total[i])) end
    assert.is_true(tonumber(total[2]) > 0)
  end)

  it("--json: every mapping of a child with its sizes in bytes, keys in a fixed order", function()
    local child = assert(vm.spawn({ "sleep", "30" }))
    local out, code = sh(VMLAB .. " maps " .. child.pid .. " --json")
    child:kill("KILL")
    child:wait()
    assert.equal(0, code, out)
    local doc = cjson.decode(out)
    assert.equal(child.pid, doc.pid)
    assert.equal("sleep", doc.name)
    local rss, exe = 0, false
    for _, m in ipairs(doc.mappings) do
      rss = rss + m.rss
      if m.mapping:match("/sleep$") then exe = true end
      assert.is_true(m.size % vm.page_size == 0 and m.rss <= m.size and m.pss <= m.rss)
    end
    assert.is_true(exe, "the program's own file is mapped")
    assert.equal(rss, doc.total.rss)
    assert.matches('^{"pid":%d+,"name":"sleep","mappings":%[{"address":"%x+","size":%d+,"rss":%d+,"pss":%d+,'
      .. '"dirty":%d+,"swap":%d+,"mode":"[^"]+","mapping":', out)
  end)

  it("refuses a process that does not exist with exit status 2", function()
    local missing = 4000000
    while io.open("/proc/" .. missing .. "/stat") do missing = missing + 1 end
    local out, code = sh(VMLAB .. " maps " .. missing)
    assert.equal(2, code)
    assert.matches("^vmlab maps: cannot read /proc/" .. missing .. "/smaps", out)
  end)
end)
