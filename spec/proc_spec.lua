-- vm.proc: the kernel's memory accounting read from /proc and /sys.
local vm = require "vmlab"

local PAGE = vm.page_size
local MiB = 1024 * 1024
local SANITIZED = os.getenv("VMLAB_SANITIZED") == "1"

-- The mapping that holds address (the kernel may have merged a new anonymous
-- mapping with a neighbour, so it need not start there).
local function find_mapping(list, address)
  for _, m in ipairs(list) do
    if m.start <= address and address < m.finish then return m end
  end
end

describe("proc.status", function()
  it("reports this process's resident and virtual size in bytes", function()
    local s = assert(vm.proc.status())
    assert.equal(vm.getpid(), s.Pid)
    assert.equal("lua5.4", s.Name)
    assert.is_true(s.VmRSS > MiB and s.VmRSS % 1024 == 0, "VmRSS " .. s.VmRSS)
    assert.is_true(s.VmSize >= s.VmRSS)
    assert.equal(s.VmRSS, s.rss)
    assert.equal(s.VmSize, s.virt)
    assert.equal(s.RssAnon + s.RssFile + s.RssShmem, s.VmRSS)
    if not SANITIZED then
      assert.is_true(s.VmRSS < 512 * MiB, "VmRSS " .. s.VmRSS)
    end
    assert.equal(1, s.Threads)
    assert.is_string(s.State)
  end)

  it("writing 256 fresh pages grows VmRSS by about 256 pages", function()
    local r <close> = assert(vm.mmap(256 * PAGE))
    r:advise("nohugepage")
    local before = vm.proc.status().VmRSS
    r:touch("write")
    local grown = vm.proc.status().VmRSS - before
    assert.is_true(grown >= 250 * PAGE and grown <= 300 * PAGE, "grew " .. grown)
  end)

  it("reads another process's status by pid", function()
    local c = assert(vm.spawn({ "sleep", "5" }))
    local s
    for _ = 1, 200 do -- until sleep has replaced the forked copy of us
      s = assert(vm.proc.status(c.pid))
      if s.Name == "sleep" then break end
      vm.spawn({ "sleep", "0.01" }):wait()
    end
    assert.equal("sleep", s.Name)
    assert.equal(vm.getpid(), s.PPid)
    assert.equal(c.pid, vm.proc.stat(c.pid).pid)
    c:kill("KILL")
    c:wait()
  end)

  it("a process that does not exist gives nil, a message and errno", function()
    local c = vm.fork(function() end)
    c:wait() -- its pid is now free
    for _, f in ipairs({ "status", "statm", "maps", "smaps", "smaps_rollup", "stat" }) do
      local t, msg, errno = vm.proc[f](c.pid)
      assert.is_nil(t)
      assert.matches("No such file or directory", msg)
      assert.equal(2, errno)
    end
  end)

  it("a pid that is not a positive integer or \"self\" raises naming the argument", function()
    assert.has_error(function() vm.proc.status(-1) end,
      "bad argument #1 to 'status' (pid must be a positive integer or \"self\", got -1)")
    assert.has_error(function() vm.proc.maps("me") end,
      "bad argument #1 to 'maps' (pid must be a positive integer or \"self\", got \"me\")")
    assert.has_error(function() vm.proc.smaps(1.5) end)
  end)
end)

describe("proc.statm and proc.stat", function()
  it("statm's resident size agrees with status's VmRSS", function()
    local m, s = vm.proc.statm(), vm.proc.status()
    assert.is_true(m.size > 0 and m.resident > 0 and m.size % PAGE == 0)
    assert.is_true(math.abs(m.resident - s.VmRSS) <= 64 * PAGE, m.resident .. " vs " .. s.VmRSS)
    assert.is_true(math.abs(m.size - s.VmSize) <= 64 * PAGE)
  end)

  it("stat counts the minor faults of writing fresh pages", function()
    local d, after = math.huge, nil
    for _ = 1, 3 do -- the least of three: other activity can only add faults
      local before = vm.proc.stat()
      local r <close> = assert(vm.mmap(500 * PAGE))
      r:advise("nohugepage")
      r:touch("write")
      after = vm.proc.stat()
      d = math.min(d, after.minflt - before.minflt)
    end
    assert.equal(vm.getpid(), after.pid)
    assert.equal("lua5.4", after.comm)
    assert.is_true(d >= 500 and d <= 520, d .. " faults for 500 pages")
    assert.is_true(after.utime >= 0 and math.type(after.utime_ticks) == "integer")
    assert.is_true(after.rss > 0 and after.rss == after.rss_pages * PAGE)
    assert.equal(1, after.num_threads)
  end)

  it("stat copes with a command name that holds spaces and parentheses", function()
    local dir = os.tmpname()
    os.remove(dir)
    local prog = dir .. "/) x (y"
    assert(os.execute("mkdir " .. dir .. " && ln -s \"$(command -v sleep)\" '" .. prog .. "'"))
    local c = assert(vm.spawn({ prog, "5" }))
    local st
    for _ = 1, 200 do -- until the exec has happened
      st = assert(vm.proc.stat(c.pid))
      if st.comm == ") x (y" then break end
      vm.spawn({ "sleep", "0.01" }):wait()
    end
    c:kill("KILL")
    c:wait()
    os.remove(prog)
    os.remove(dir)
    assert.equal(") x (y", st.comm)
    assert.equal(vm.getpid(), st.ppid)
    assert.equal(1, st.num_threads)
  end)
end)

describe("proc.maps and proc.smaps", function()
  it("lists the stack, the vdso and a 64-page mapping with its size and protection", function()
    local r <close> = assert(vm.mmap(64 * PAGE))
    local maps = assert(vm.proc.maps())
    local kinds = {}
    for _, m in ipairs(maps) do kinds[m.kind] = (kinds[m.kind] or 0) + 1 end
    assert.equal(1, kinds.stack)
    assert.is_true(kinds.vdso == 1 and kinds.file > 0)
    local m = find_mapping(maps, r.address)
    assert.is_table(m, "no mapping holds the region's address")
    -- the kernel may merge it with a neighbour of the same kind, never shrink it
    assert.is_true(m.size >= 64 * PAGE)
    assert.equal(m.finish - m.start, m.size)
    assert.equal("rw-p", m.perms)
    assert.equal("anon", m.kind)
    assert.is_true(m.readable and m.writable and not m.executable and not m.shared)
  end)

  it("sees a protection change and the unmap", function()
    local r = assert(vm.mmap(16 * PAGE))
    local addr = r.address
    r:protect("r")
    assert.equal("r--p", find_mapping(vm.proc.maps(), addr).perms)
    r:close()
    local m = find_mapping(vm.proc.maps(), addr)
    assert.is_true(m == nil or m.finish <= addr or m.start ~= addr)
  end)

  it("names file mappings and shared anonymous memory", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(("x"):rep(2 * PAGE))
    f:close()
    local fr <close> = assert(vm.mmap(2 * PAGE, { file = path, prot = "r" }))
    local sr <close> = assert(vm.mmap(4 * PAGE, { share = "shared" }))
    local maps = vm.proc.maps()
    local fm, sm = find_mapping(maps, fr.address), find_mapping(maps, sr.address)
    os.remove(path)
    assert.equal("file", fm.kind)
    assert.equal(path, fm.path)
    assert.is_true(fm.inode > 0)
    assert.equal("r--p", fm.perms)
    assert.equal("shm", sm.kind)
    assert.equal("rw-s", sm.perms)
  end)

  it("smaps shows a written region's pages as resident, private, dirty and anonymous", function()
    local r <close> = assert(vm.mmap(64 * PAGE))
    r:advise("nohugepage")
    r:touch("write", { length = 32 * PAGE })
    local m = find_mapping(assert(vm.proc.smaps()), r.address)
    assert.is_table(m)
    assert.equal(64 * PAGE, m.Size)
    assert.equal(32 * PAGE, m.Rss)
    assert.equal(32 * PAGE, m.Private_Dirty)
    assert.equal(32 * PAGE, m.Anonymous)
    assert.equal(0, m.Shared_Dirty)
    assert.equal(0, m.AnonHugePages)
    assert.is_true(m.flags.rd and m.flags.wr and m.flags.nh) -- nh: the nohugepage advice
    assert.equal("anon", m.kind)
  end)

  it("smaps_rollup sums to about the process's VmRSS", function()
    local roll = assert(vm.proc.smaps_rollup())
    local rss = vm.proc.status().VmRSS
    assert.is_true(math.abs(roll.Rss - rss) <= 64 * PAGE, roll.Rss .. " vs " .. rss)
    assert.is_true(roll.Pss <= roll.Rss and roll.Pss > 0)
    assert.is_true(roll.Anonymous > 0)
  end)
end)

describe("proc.meminfo and proc.vm_settings", function()
  it("meminfo reports the machine's memory in bytes", function()
    local mi = assert(vm.proc.meminfo())
    assert.is_true(mi.MemTotal > 256 * MiB and mi.MemTotal % 1024 == 0)
    assert.is_true(mi.MemAvailable <= mi.MemTotal and mi.MemFree <= mi.MemTotal)
    assert.equal(mi.MemTotal, mi.total)
    assert.is_true(math.type(mi.HugePages_Total) == "integer") -- a count, not bytes
    assert.is_true(mi["Active(anon)"] >= 0)
  end)

  it("vm_settings gives the overcommit policy, the THP mode and the page sizes", function()
    local s = vm.proc.vm_settings()
    assert.is_true(s.overcommit_memory == 0 or s.overcommit_memory == 1 or s.overcommit_memory == 2)
    assert.is_true(s.overcommit_ratio >= 0)
    assert.is_true(s.max_map_count > 0)
    assert.is_true(s.min_free_kbytes > 0)
    assert.equal(vm.page_size, s.page_size)
    if s.thp_enabled ~= nil then
      assert.is_true(s.thp_enabled == "always" or s.thp_enabled == "madvise" or s.thp_enabled == "never")
      assert.is_string(s.thp_defrag)
    end
    -- a huge page is a power of two larger than a base page: 2 MiB on x86-64, 1 MiB on s390,
    -- 32 MiB or 512 MiB on arm64 with 16 or 64 KiB pages
    if s.hugepage_size ~= nil then
      local h = s.hugepage_size
      assert.is_true(h > vm.page_size and h & (h - 1) == 0, "huge page size " .. h)
    end
  end)
end)

describe("proc.mapping_at", function()
  it("finds the smaps entry of the mapping that holds an address, and nothing where nothing is mapped", function()
    local r <close> = assert(vm.mmap(16 * vm.page_size))
    r:touch("write")
    local m = assert(vm.proc.mapping_at(r.address + 5 * vm.page_size))
    assert.is_true(m.start <= r.address and r.address + r.size <= m.finish)
    assert.is_true(m.Rss >= 16 * vm.page_size)
    assert.is_nil(vm.proc.mapping_at(0))
  end)
end)

describe("proc.rss, proc.alive, proc.cmdline and proc.path", function()
  it("rss grows by about 256 pages when 256 fresh pages are written, and agrees with statm", function()
    local r <close> = assert(vm.mmap(256 * PAGE))
    r:advise("nohugepage")
    local before = assert(vm.proc.rss())
    r:touch("write")
    local after = assert(vm.proc.rss())
    assert.is_true(math.type(before) == "integer" and before % PAGE == 0)
    -- at least the 256 pages; other allocations of this process may add a little
    assert.is_true(after - before >= 256 * PAGE and after - before < 256 * PAGE + 8 * MiB,
      ("grew by %d bytes"):format(after - before))
    local statm = assert(vm.proc.statm())
    assert.is_true(math.abs(statm.resident - vm.proc.rss()) < 4 * MiB)
  end)

  it("rss of a process that does not exist is nil, a message and errno; a bad pid raises naming rss", function()
    local c = vm.spawn({ "true" })
    c:wait()
    local v, msg, errno = vm.proc.rss(c.pid)
    assert.is_nil(v)
    assert.is_string(msg)
    assert.is_number(errno)
    assert.has_error(function() vm.proc.rss(-1) end,
      "bad argument #1 to 'rss' (pid must be a positive integer or \"self\", got -1)")
  end)

  it("alive tells a running child from one that has been reaped", function()
    local c = vm.spawn({ "sleep", "5" })
    assert.is_true(vm.proc.alive(c.pid))
    assert.is_true(vm.proc.alive())
    c:kill()
    c:wait()
    assert.is_false(vm.proc.alive(c.pid))
  end)

  it("cmdline gives a child's argument vector word by word, spaces kept", function()
    local c = vm.spawn({ "sleep", "5", "a b" })
    local words
    for _ = 1, 200 do -- until the exec has happened
      words = vm.proc.cmdline(c.pid)
      if words and words[1] == "sleep" then break end
      vm.sleep(0.005)
    end
    c:kill()
    c:wait()
    assert.same({ "sleep", "5", "a b" }, words)
    assert.is_true(#assert(vm.proc.cmdline()) >= 1)
  end)

  it("path names a file under /proc/PID and refuses a name with a slash", function()
    assert.equal("/proc/self/exe", vm.proc.path("self", "exe"))
    assert.equal("/proc/42/exe", vm.proc.path(42, "exe"))
    assert.has_error(function() vm.proc.path(42, "../etc") end,
      "bad argument #2 to 'path' (a /proc file name of letters, digits and _ expected)")
  end)
end)

describe("proc.status conveniences", function()
  it("gives the user ids as integers and the capability masks as the file's hexadecimal", function()
    local s = assert(vm.proc.status())
    local text = assert(vm.proc.read_file("/proc/self/status"))
    assert.equal(tonumber(text:match("\nUid:%s*(%d+)")), s.uid)
    assert.equal(tonumber(text:match("\nUid:%s*%d+%s+(%d+)")), s.euid)
    assert.equal(text:match("\nCapEff:%s*(%x+)"), s.CapEff)
    assert.is_string(s.CapEff)
    assert.equal(tonumber(s.CapEff, 16), s.cap_eff)
  end)

  it("lists the CPUs this process may run on, one number per CPU", function()
    local s = assert(vm.proc.status())
    assert.is_true(#s.cpus_allowed >= 1)
    local seen = {}
    for _, c in ipairs(s.cpus_allowed) do
      assert.is_true(math.type(c) == "integer" and c >= 0 and not seen[c])
      seen[c] = true
    end
  end)
end)

describe("proc.cgroup and proc.mountinfo", function()
  it("cgroup lists this process's hierarchies, each with a path that starts at /", function()
    local list = assert(vm.proc.cgroup())
    assert.is_true(#list >= 1)
    for _, e in ipairs(list) do
      assert.is_true(math.type(e.id) == "integer" and e.id >= 0)
      assert.is_table(e.controllers)
      assert.equal("/", e.path:sub(1, 1))
    end
  end)

  it("mountinfo has the root mount and decodes escaped spaces", function()
    local list = assert(vm.proc.mountinfo())
    local root
    for _, m in ipairs(list) do
      assert.is_string(m.fstype)
      assert.is_nil(m.mountpoint:find("\\040", 1, true))
      if m.mountpoint == "/" then root = m end
    end
    assert.is_table(root)
    assert.is_true(math.type(root.id) == "integer")
    assert.matches("^%d+:%d+$", root.dev)
  end)
end)

describe("proc.sysctl, proc.vmstat, proc.swaps, proc.oom_score, proc.ksm_stat and proc.cpu_flags", function()
  it("sysctl reads a setting by its sysctl name or its path, numbers as integers", function()
    local a = vm.proc.sysctl("vm.overcommit_memory")
    assert.is_true(a == 0 or a == 1 or a == 2)
    assert.equal(a, vm.proc.sysctl("vm/overcommit_memory"))
    local release = vm.proc.sysctl("kernel.osrelease")
    assert.is_string(release)
    assert.matches("^%d+%.%d+", release)
    local v, msg, errno = vm.proc.sysctl("vm.no_such_setting")
    assert.is_nil(v)
    assert.is_string(msg)
    assert.is_number(errno)
  end)

  it("sysctl refuses a name that would leave /proc/sys", function()
    assert.has_error(function() vm.proc.sysctl("../../etc/passwd") end)
    assert.has_error(function() vm.proc.sysctl("vm/../../etc") end)
    assert.has_error(function() vm.proc.sysctl(nil) end,
      "bad argument #1 to 'sysctl' (a setting name such as \"vm.swappiness\" expected, got nil)")
  end)

  it("vmstat counts a page fault for each fresh page written", function()
    local before = assert(vm.proc.vmstat())
    assert.is_true(math.type(before.pgfault) == "integer")
    local r <close> = assert(vm.mmap(64 * PAGE))
    r:advise("nohugepage")
    r:touch("write")
    local after = assert(vm.proc.vmstat())
    assert.is_true(after.pgfault - before.pgfault >= 64)
  end)

  it("swaps lists the swap areas in bytes, agreeing with meminfo's SwapTotal", function()
    local list = assert(vm.proc.swaps())
    local total = 0
    for _, s in ipairs(list) do
      assert.is_string(s.filename)
      assert.is_true(s.size % 1024 == 0 and s.used <= s.size)
      total = total + s.size
    end
    local mi = assert(vm.proc.meminfo())
    -- meminfo's SwapTotal counts the same areas (less the header page of each)
    assert.is_true(total >= mi.SwapTotal and total - mi.SwapTotal <= #list * 64 * 1024)
  end)

  it("oom_score is a number between 0 and 2000 for this process", function()
    local score = assert(vm.proc.oom_score())
    assert.is_true(math.type(score) == "integer" and score >= 0 and score <= 2000)
  end)

  it("ksm_stat gives this process's KSM counters as numbers where the kernel has them", function()
    local t, msg = vm.proc.ksm_stat()
    if not t then
      assert.is_string(msg) -- Linux before 6.1: no such file
      return
    end
    assert.is_true(math.type(t.ksm_rmap_items) == "integer" and t.ksm_rmap_items >= 0)
  end)

  it("cpu_flags gives the first CPU's flags as a set", function()
    local flags = assert(vm.proc.cpu_flags())
    local n = 0
    for f, v in pairs(flags) do
      assert.is_string(f)
      assert.is_true(v)
      n = n + 1
    end
    -- x86 and arm64 list their feature flags; other machines may list none
    if vm.proc.sysctl("kernel.arch") == "x86_64" then assert.is_true(flags.fpu and n > 10) end
  end)
  it("boot_time is the epoch second the system booted, before this process started", function()
    local btime = assert(vm.proc.boot_time())
    assert.equal("integer", math.type(btime))
    local started = btime + assert(vm.proc.stat("self")).starttime
    assert.is_true(started <= os.time() + 1 and started > os.time() - 24 * 3600, "started at " .. started)
  end)

  it("sum names: creator_alive tells a live creator from a gone one or a reused pid", function()
    local names = require "vmlab.sum.names"
    local me = vm.getpid()
    assert.is_true(names.creator_alive(me, os.time()))
    assert.is_true(names.creator_alive(me, nil))
    -- an object modified before this process started cannot be its creator's
    local started = vm.proc.boot_time() + vm.proc.stat("self").starttime
    assert.is_false(names.creator_alive(me, math.floor(started) - 3600))
    local child = assert(vm.spawn({ "true" }))
    local pid = child.pid
    child:wait()
    assert.is_false(names.creator_alive(pid, os.time()))
  end)
end)
