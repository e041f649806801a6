-- luacheck: max line length 180
--- fuzz/fuzz.lua: one batch of the vmlab fuzzer (issue 9).
--
--   lua5.4 fuzz/fuzz.lua --seed S --calls N [--log FILE] [--tmp DIR] [--list]
--
-- Enumerates every callable of `vmlab` (the facade, its lazily loaded
-- submodules, the other lua/vmlab modules), of `vmlab.core`, and every
-- method and metamethod of every class registered in the Lua registry
-- (vmlab.Region, vmlab.Child, ... found at run time, not from a list), then
-- makes N calls, each inside pcall, with hostile and plausible arguments, plus
-- round-trip oracles. Each call is logged (seed, index, callable, arguments)
-- and flushed BEFORE it is made, so a batch that dies names its last call.
--
-- Run it through fuzz/run.lua, which starts each batch in a fresh process (cwd
-- = a fresh temp dir), sees crashes, sanitizer reports and hangs, and checks
-- for leftover /dev/shm objects.
--
-- Safety: this process only ever signals children it forked or spawned, only
-- writes files under its temp dir (its cwd), only creates and unlinks shared
-- memory objects whose names start with its own prefix, keeps every region
-- it may fill at or under 16 MiB (bigger ones, made by hostile sizes, only
-- get calls that do not populate them), and bounds every wait and sleep.
-- See DENY, CONSTRAIN and KNOWN_CRASHES below.
local unpack = table.unpack
local PROFILE
local LUA_BUDGET = 50000000 -- Lua instructions one Lua callable may run (about a second)

-- ------------------------------------------------------------------------
-- Command line

local opt = { seed = 1, calls = 1000, log = nil, tmp = nil, list = false }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--seed" then opt.seed = math.tointeger(tonumber(arg[i + 1])); i = i + 1
    elseif a == "--calls" then opt.calls = math.tointeger(tonumber(arg[i + 1])); i = i + 1
    elseif a == "--log" then opt.log = arg[i + 1]; i = i + 1
    elseif a == "--tmp" then opt.tmp = arg[i + 1]; i = i + 1
    elseif a == "--list" then opt.list = true
    else io.stderr:write("fuzz.lua: unknown argument ", a, "\n"); os.exit(2) end
    i = i + 1
  end
  assert(opt.seed and opt.calls, "usage: fuzz.lua --seed S --calls N [--log FILE] [--tmp DIR] [--list]")
end

local vm = require "vmlab"
local core = require "vmlab.core"
local PAGE = vm.page_size
local SMALL = 16 * 1024 * 1024 -- the largest region this fuzzer creates on purpose
local BIG = 64 * 1024 * 1024   -- above this a region is "big": only calls that do not populate it
local TMP = opt.tmp or "."     -- the batch's own temp dir (run.lua makes it the cwd too)
local MYPID = vm.getpid()
local PREFIX = ("/vmlab-fuzz-%d-"):format(MYPID) -- every shm name this batch may create or unlink

math.randomseed(opt.seed)
local rnd = math.random
local function pick(t) return t[rnd(#t)] end
local function chance(p) return rnd() < p end

local logf = opt.log and assert(io.open(opt.log, "w")) or nil
if logf then logf:setvbuf("no") end
local function log(line)
  if logf then logf:write(line, "\n"); logf:flush() end
end

-- FUZZ_SELFTEST=segv|hang|leftover: first thing, die, hang or leave a shm
-- object on purpose (spec/fuzz_spec.lua checks that run.lua sees each).
local SELFTEST = os.getenv("FUZZ_SELFTEST")
if SELFTEST and not opt.list then
  log(("seed=%d i=1 call selftest-%s()"):format(opt.seed, SELFTEST))
  if SELFTEST == "segv" then
    local probe = (type(rawget(vm, "lab")) == "table" and vm.lab.probe) or vm.probe
    probe(0, "read", { catch = false }) -- an unguarded read of address 0: SIGSEGV in this process
  elseif SELFTEST == "hang" then
    while true do vm.sleep(1) end
  elseif SELFTEST == "leftover" then
    vm.shm_open(PREFIX .. "selftest", { create = true, size = PAGE, keep = true })
  end
end

local stats = { calls = 0, raised = 0, returned = 0, skipped = 0, known = 0, oracle_ok = 0, oracle_fail = 0,
  forks = 0, spawns = 0 }
local failures = {}
local function oracle_fail(what, detail)
  stats.oracle_fail = stats.oracle_fail + 1
  local line = ("ORACLE FAIL seed=%d %s: %s"):format(opt.seed, what, detail)
  failures[#failures + 1] = line
  io.stderr:write(line, "\n")
  log(line)
end
local function oracle_ok() stats.oracle_ok = stats.oracle_ok + 1 end

-- ------------------------------------------------------------------------
-- Describing values for the log (never calls library code: no __tostring)

local tags = setmetatable({}, { __mode = "k" }) -- value -> short description
local ids = setmetatable({}, { __mode = "k" })
local next_id = 0
local function class_of(v)
  local mt = getmetatable(v)
  local n = type(mt) == "table" and rawget(mt, "__name")
  return type(n) == "string" and n or nil
end
local function short_class(n) return (n or "?"):gsub("^vmlab%.", "") end

local function describe(v, depth)
  depth = depth or 0
  local t = type(v)
  if t == "nil" or t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v then return "nan" end
    return ("%.17g"):format(v)
  end
  if t == "string" then
    if #v > 48 then return ("str#%d:%q..."):format(#v, v:sub(1, 16)) end
    return ("%q"):format(v):gsub("\n", "n")
  end
  if tags[v] then return tags[v] end
  if t == "table" then
    if getmetatable(v) ~= nil or depth > 1 then return "table" end
    local parts, n = {}, 0
    for k, x in pairs(v) do
      n = n + 1
      if n > 8 then parts[#parts + 1] = "..."; break end
      parts[#parts + 1] = (type(k) == "string" and k or "[" .. describe(k, depth + 1) .. "]") .. "=" .. describe(x, depth + 1)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  if t == "userdata" then
    if not ids[v] then next_id = next_id + 1; ids[v] = next_id end
    return ("%s#%d"):format(short_class(class_of(v)), ids[v])
  end
  return t
end

local function describe_args(args, n)
  local parts = {}
  for i = 1, n do parts[i] = describe(args[i]) end
  return table.concat(parts, ", ")
end

-- ------------------------------------------------------------------------
-- Object pools: instances of every class, open and closed

local pools = {}      -- class name -> list of objects
local closed = setmetatable({}, { __mode = "k" }) -- objects this batch closed
local big = setmetatable({}, { __mode = "k" })    -- regions over BIG bytes
local children = {}   -- every Child this batch made: killed and reaped at the end
local signalled = setmetatable({}, { __mode = "k" }) -- children a fuzzed call may have signalled
local shm_names = {}  -- every shm name this batch passed to shm_open
local open_files = {} -- Lua files to close at the end

local function region_size(r)
  local ok, s = pcall(function() return r.size end)
  return ok and math.type(s) == "integer" and s or nil
end

-- Classes made in Lua (a table whose metatable carries __name): name -> { mt =, why = }; filled below.
local LUA_CLASSES = {}

local function add_object(o)
  local cls = class_of(o)
  if not cls or (type(o) ~= "userdata" and not (type(o) == "table" and LUA_CLASSES[cls])) then return end
  if cls == "FILE*" then return end
  pools[cls] = pools[cls] or {}
  local p = pools[cls]
  for _, x in ipairs(p) do if rawequal(x, o) then return end end
  if #p >= 24 then table.remove(p, rnd(#p)) end
  p[#p + 1] = o
  if cls == "vmlab.Child" then children[#children + 1] = o end
  if cls == "vmlab.Region" then
    local s = region_size(o)
    if s and s > BIG then big[o] = true end
  end
end

-- Is o (a pool object) closed? Regions say so; others as this batch saw it.
local function is_closed(o)
  if closed[o] then return true end
  if class_of(o) == "vmlab.Region" then
    local ok, c = pcall(function() return o.closed end)
    if ok and c == true then closed[o] = true; return true end
  end
  return false
end

local function small_regions(open_only)
  local out = {}
  for _, r in ipairs(pools["vmlab.Region"] or {}) do
    if not big[r] and (not open_only or not is_closed(r)) then
      local s = region_size(r)
      if s and s > BIG then big[r] = true else out[#out + 1] = r end
    end
  end
  return out
end

local function any_object(small_only)
  local all = {}
  for cls, p in pairs(pools) do
    for _, o in ipairs(p) do
      if not (small_only and big[o]) then all[#all + 1] = o end
    end
    local _ = cls
  end
  return #all > 0 and pick(all) or nil
end

-- ------------------------------------------------------------------------
-- Scratch files in the temp dir

local function tmp_path(name) return TMP .. "/" .. name end
local SCRATCH = tmp_path("scratch.bin")
do
  local f = assert(io.open(SCRATCH, "wb"))
  f:write(("vmlab-fuzz\n"):rep(3 * PAGE // 11 + 1))
  f:close()
  f = assert(io.open(tmp_path("empty.bin"), "wb")); f:close()
end
-- Descriptors a fd-taking call may get: two scratch files of the temp dir,
-- found through /proc/self/fd, and numbers that are no descriptor. Never 1
-- or 2 (the batch's stdout and stderr: a sanitizer report must reach them)
-- nor the log's.
local scratch_fds = {}
do
  local keepers = { assert(io.open(tmp_path("fd-a.bin"), "w+b")), assert(io.open(tmp_path("fd-b.bin"), "w+b")) }
  keepers[1]:write(("fd-a\n"):rep(PAGE)); keepers[1]:flush()
  _G.FUZZ_FD_KEEPERS = keepers -- never collected
  local p = io.popen("ls -l /proc/" .. MYPID .. "/fd 2>/dev/null")
  for l in p:lines() do
    local n, target = l:match(" (%d+) %-> (.*)$")
    if n and target and (target:find("fd%-a%.bin$") or target:find("fd%-b%.bin$")) then scratch_fds[#scratch_fds + 1] = tonumber(n) end
  end
  p:close()
  table.sort(scratch_fds)
end
local function fd_value()
  local v = { 0, -1, 999, 1 << 31, (1 << 32) + 3, math.maxinteger }
  for _, fd in ipairs(scratch_fds) do v[#v + 1] = fd; v[#v + 1] = fd; v[#v + 1] = fd + (1 << 32) end
  return pick(v)
end
local HAVE_FIFO = os.execute("mkfifo " .. tmp_path("fifo") .. " 2>/dev/null") == true

-- Paths a file-taking call may get. None outside the temp dir that could be
-- written: /dev/zero and /proc/self/maps are mapped or read, never written
-- (a shared writable mapping of them is refused or harmless).
local function path_value()
  local paths = { SCRATCH, tmp_path("empty.bin"), tmp_path("new.bin"), tmp_path("no/such/file"), TMP,
    "scratch.bin", "", "/dev/zero", "/dev/null", "/proc/self/maps", SCRATCH .. "\0junk",
    tmp_path(("n"):rep(300)), tmp_path(("d/"):rep(2100)) }
  if HAVE_FIFO then paths[#paths + 1] = tmp_path("fifo") end
  return pick(paths)
end

-- shm names this batch may use: all start with PREFIX.
local function shm_name()
  local base = PREFIX .. rnd(0, 7)
  local v = pick { base, base, base, base .. "\0junk", PREFIX .. ("x"):rep(300), base .. "/sub", base:sub(2),
    PREFIX .. "%s%n" }
  shm_names[#shm_names + 1] = v
  return v
end

-- ------------------------------------------------------------------------
-- Values: hostile and plausible

local fresh_n = 0
local function fresh_string()
  fresh_n = fresh_n + 1
  return "fresh-" .. fresh_n .. "-" .. ("z"):rep(rnd(0, 40))
end

local hooks -- filled below (functions a callback slot may get)

local function tagged(v, tag) tags[v] = tag; return v end

-- An __index that answers every key would make the table an endless
-- sequence (ipairs and `while t[i]` never stop: Lua's own semantics, not a
-- bug), so the answering ones answer string keys only.
local function strkeys(f) return function(t, k) if type(k) == "string" then return f(t, k) end end end
local function hostile_table()
  local k = rnd(9)
  if k == 1 then return tagged(setmetatable({}, { __index = function(_, key) error("fuzz: __index throws for " .. tostring(key)) end }), "tbl<__index throws>") end
  if k == 2 then return tagged(setmetatable({}, { __index = strkeys(function() return fresh_string() end) }), "tbl<__index fresh strings>") end
  if k == 3 then return tagged(setmetatable({ 1, 2 }, { __len = function() error("fuzz: __len throws") end }), "tbl<__len throws>") end
  if k == 4 then return tagged(setmetatable({ "a" }, { __len = function() return fresh_string() end }), "tbl<__len fresh string>") end
  if k == 5 then
    local n = pick { math.maxinteger, -1, 2 ^ 40, 1 << 31, 0.5, 0 / 0 }
    return tagged(setmetatable({ "true" }, { __len = function() return n end }), "tbl<__len " .. describe(n) .. ">")
  end
  if k == 6 then
    local inner = function() return setmetatable({}, { __index = function() error("fuzz: nested") end }) end
    return tagged(setmetatable({}, { __index = strkeys(inner) }), "tbl<__index fresh tables>")
  end
  if k == 7 then return tagged(setmetatable({}, { __tostring = function() error("fuzz: __tostring throws") end, __name = "fuzz.Weird" }), "tbl<__tostring throws>") end
  if k == 8 then return tagged(setmetatable({}, { __index = strkeys(function() collectgarbage(); return fresh_string() end) }), "tbl<__index collects garbage>") end
  return tagged(setmetatable({}, { __index = strkeys(function(_, key) return pick { 0, -1, math.maxinteger, 0 / 0, true, key } end) }), "tbl<__index numbers>")
end

local HOSTILE_NUMBERS = { 0, -1, 1, math.maxinteger, -math.maxinteger, math.mininteger, 2 ^ 53, 1 << 53, 2 ^ 63,
  -2 ^ 63, 2 ^ 64, 1 << 31, (1 << 32) + 1, (1 << 32) + 11, -(1 << 31) - 1, 0.5, 1.5, -0.0, 0 / 0, math.huge,
  -math.huge, 1e300, -1e300, 4129981496591, 255, 256, 65536 }

local LONG, HUGE = ("x"):rep(5000), ("y"):rep(1 << 20) -- made once: a fresh 1 MiB string per call costs
local function hostile_string()
  return pick { "", "\0", "a\0b", "rw\0", "read\0x", "TERM\0", "-1", "0x10", "1e400", "nan", "\255\254\253",
    "%s%s%n%p", LONG, HUGE, "  42  ", "9223372036854775808", "sequential", "chase", fresh_string() }
end

local closed_file
do
  closed_file = io.open(SCRATCH, "rb"); closed_file:close()
end
local dead_co = coroutine.create(function() end); coroutine.resume(dead_co)
local suspended_co = coroutine.create(function() coroutine.yield() end); coroutine.resume(suspended_co)
tags[dead_co] = "coroutine<dead>"; tags[suspended_co] = "coroutine<suspended>"

local function hostile_value()
  local k = rnd(20)
  if k <= 7 then return pick(HOSTILE_NUMBERS) end
  if k <= 11 then return hostile_string() end
  if k == 12 then return nil end
  if k == 13 then return pick { true, false } end
  if k <= 15 then return hostile_table() end
  if k == 16 then return pick(hooks) end
  if k == 17 then
    local c = pick { coroutine.create(function() end), dead_co, suspended_co }
    return c
  end
  if k == 18 then return pick { io.stdout, closed_file, io.stderr } end
  if k == 19 then return any_object(true) end
  return pick { {}, { 1, 2, 3 }, { [1.5] = 1, [true] = 2 } }
end

-- Words the library understands, harvested at start from csrc/*.c and
-- lua/vmlab/**/*.lua string literals, so new option names and modes are
-- tried without editing this file.
local WORDS = {}
do
  local here = debug.getinfo(1, "S").source:match("^@(.*)/fuzz/[^/]*$") or "."
  local seen = {}
  local files = {}
  local p = io.popen("ls " .. here .. "/csrc/*.c " .. here .. "/lua/vmlab/*.lua 2>/dev/null")
  if p then for l in p:lines() do files[#files + 1] = l end p:close() end
  for _, fname in ipairs(files) do
    local f = io.open(fname, "r")
    if f then
      local src = f:read("a"); f:close()
      for w in src:gmatch('"([%a_][%w_]*)"') do
        if #w <= 24 and not seen[w] then seen[w] = true; WORDS[#WORDS + 1] = w end
      end
    end
  end
  table.sort(WORDS) -- deterministic order
  if #WORDS == 0 then WORDS = { "read", "write", "rw", "r", "none", "shared", "private", "dontneed" } end
end

local function plausible_int(r)
  local s = r and region_size(r) or pick { PAGE, 64, 4096 * 3 }
  return pick { 0, 1, 2, 7, 8, 16, 63, 64, PAGE - 1, PAGE, PAGE + 1, s - 1, s, s + 1, s - 8, s // 2, 3, 32, 15 }
end

local function plausible_value(r)
  local k = rnd(10)
  if k <= 4 then return plausible_int(r) end
  if k <= 7 then return pick(WORDS) end
  if k == 8 then return pick { true, false } end
  if k == 9 then return rnd() * 0.01 end
  return nil
end

local function option_table(r)
  local t = {}
  for _ = 1, rnd(0, 4) do
    local key = pick(WORDS)
    local v
    if chance(0.6) then v = plausible_value(r) else v = hostile_value() end
    t[key] = v
  end
  return t
end

local function arg_value(r)
  local k = rnd(100)
  if k <= 40 then return plausible_value(r) end
  if k <= 75 then return hostile_value() end
  if k <= 85 then return option_table(r) end
  return any_object(true)
end

-- ------------------------------------------------------------------------
-- Callbacks: what a function-taking slot (touch hook, fork body, ...) gets

local function close_some()
  for _, r in ipairs(small_regions(true)) do
    if chance(0.3) then pcall(r.close, r) end
  end
end
hooks = {
  tagged(function() end, "fn<noop>"),
  tagged(function() error("fuzz: thrower") end, "fn<throws>"),
  tagged(function() error(setmetatable({}, { __tostring = function() error("nested") end })) end, "fn<throws table>"),
  tagged(function() return 1, "two", {}, math.maxinteger end, "fn<returns many>"),
  tagged(function() collectgarbage(); collectgarbage() end, "fn<collects garbage>"),
  tagged(function() return coroutine.yield(1) end, "fn<yields>"),
  tagged(type, "fn<C type>"),
  tagged(function(...) local n = select("#", ...); return n end, "fn<counts args>"),
}
-- Only in the known-crash lists below (they close or realloc a region mid-walk).
local closing_hook = tagged(function() close_some() end, "fn<closes regions>")

-- Bodies for vm.fork: all end quickly; none signals or writes outside.
local fork_bodies = {
  tagged(function() return 0 end, "body<0>"),
  tagged(function() return 3 end, "body<3>"),
  tagged(function() return false end, "body<false>"),
  tagged(function() error("fuzz: child throws") end, "body<throws>"),
  tagged(function() return 2 ^ 63 end, "body<returns 2^63>"),
  tagged(function(...) return select("#", ...) % 256 end, "body<counts args>"),
  tagged(function() -- fork safety: the child closes and collects everything it inherited
    for _, p in pairs(pools) do for _, o in ipairs(p) do local mt = getmetatable(o); if mt and mt.__close then pcall(mt.__close, o) end end end
    pools = {}; collectgarbage(); collectgarbage(); return 0
  end, "body<closes everything>"),
}

-- ------------------------------------------------------------------------
-- Enumeration: every callable, found at run time

local targets = {}   -- { name=, fn=, class= (for methods), meta= (metamethod name) }
local by_fn = {}
local function add_target(name, fn, extra)
  if by_fn[fn] then return end
  by_fn[fn] = true
  local t = extra or {}
  t.name, t.fn = name, fn
  targets[#targets + 1] = t
end

local visited = {}
local function add_table(prefix, t, depth)
  if visited[t] or depth > 2 then return end
  visited[t] = true
  local keys = {}
  for k in pairs(t) do if type(k) == "string" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = rawget(t, k)
    if type(v) == "function" then add_target(prefix .. "." .. k, v)
    elseif type(v) == "table" and k ~= "signals" then add_table(prefix .. "." .. k, v, depth + 1) end
  end
  local mt = getmetatable(t)
  if type(mt) == "table" and type(rawget(mt, "__call")) == "function" then
    add_target(prefix .. "()", function(...) return t(...) end, { call_of = mt.__call })
  end
end

-- Lua modules that are not libraries: they run a command or a process's
-- main loop when required, or are the CLI (covered by cli_spec).
local SKIP_MODULES = {
  ["vmlab.sum.child_main"] = "a program: runs `vmlab sum`'s child and exits on require",
  ["vmlab.sum.peer_main"] = "a program: exits on require",
}

-- Lua modules fuzzed: each was read for what it does outside the process
-- (files, shell commands, cgroups, signals). A module not listed here is
-- NOT fuzzed but named in the batch's output ("fuzz-unreviewed") until it is
-- reviewed and added, with DENY/CONSTRAIN entries for its dangerous functions.
local REVIEWED = {
  ["vmlab.assert"] = true, ["vmlab.child"] = true, ["vmlab.experiments"] = true, ["vmlab.faults"] = true,
  ["vmlab.kernel"] = true, ["vmlab.pagecache"] = true, ["vmlab.plot"] = true, ["vmlab.proc"] = true,
  ["vmlab.progress"] = true, ["vmlab.report"] = true, ["vmlab.self"] = true, ["vmlab.units"] = true,
  ["vmlab.sum.names"] = true, ["vmlab.sum.ring"] = true, ["vmlab.sum.parent"] = true, ["vmlab.sum.child"] = true,
  ["vmlab.cgroup"] = true, -- memory() only: create/sweep are denied below
  -- html: page() builds text (it reads the kernel probes when given none); write() only in the temp dir (below)
  ["vmlab.html"] = true,
  -- describe: parses and shows described values (pure)
  ["vmlab.describe"] = true,
  -- record: builds JSON text and the schema; no file, no process
  ["vmlab.record"] = true,
  -- undo: new() and quote() build values; an undo list's methods are fuzzed on disarmed lists only
  -- (vmlab.Undo below): arm() and run() are denied, so no undo script (which writes sysctls/sysfs
  -- files as root, or runs shell commands) ever runs
  ["vmlab.undo"] = true,
  -- args: builds and raises argument errors (pure)
  ["vmlab.args"] = true,
}
local unreviewed = {}

local modules = {}
do
  -- the facade's lazy table, read from its __index closure
  local mt = getmetatable(vm)
  local lazy
  if mt and type(mt.__index) == "function" then
    for i = 1, 20 do
      local n, v = debug.getupvalue(mt.__index, i)
      if not n then break end
      if n == "lazy" and type(v) == "table" then lazy = v end
    end
  end
  local names = {}
  for k in pairs(lazy or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do local _ = vm[k] end -- load each
  -- every lua/vmlab/*.lua, */init.lua and sum/*.lua module
  local dir = package.searchpath("vmlab", package.path)
  dir = dir and dir:match("^(.*)/init%.lua$")
  if dir then
    local p = io.popen("cd " .. dir .. " && ls *.lua */init.lua sum/*.lua 2>/dev/null")
    for l in p:lines() do
      local m = l:gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
      if m ~= "init" and not m:match("^cli") then modules[#modules + 1] = "vmlab." .. m end
    end
    p:close()
  end
  table.sort(modules)
end

-- modules first, so their functions carry their module's name (vmlab.proc.status)
for _, m in ipairs(modules) do
  if not REVIEWED[m] and not SKIP_MODULES[m] then unreviewed[#unreviewed + 1] = m end
  if REVIEWED[m] and not SKIP_MODULES[m] then
    local ok, mod = pcall(require, m)
    if ok and type(mod) == "table" then add_table(m, mod, 1)
    elseif ok and type(mod) == "function" then add_target(m, mod) end
  end
end
add_table("vm", vm, 0) -- vmlab.core's functions are the facade's; plus vm.lab and anything new
add_table("core", core, 0)

-- Classes: every metatable in the registry whose name starts with "vmlab.".
local classes = {}
do
  local reg = debug.getregistry()
  for k, v in pairs(reg) do
    if type(k) == "string" and k:match("^vmlab%.") and type(v) == "table" and rawget(v, "__name") == k then
      classes[#classes + 1] = k
    end
  end
  table.sort(classes)
end
-- vmlab.undo's lists: Lua tables with the metatable vmlab.Undo. The pool holds
-- only disarmed lists (done = true: run(), close and __gc return at once), so
-- the steps write_back/command add never run; arm() and run() are denied.
do
  local ok, undo = pcall(require, "vmlab.undo")
  local mt = ok and type(undo) == "table" and type(undo.new) == "function" and getmetatable(undo.new("fuzz"))
  if type(mt) == "table" and rawget(mt, "__name") == "vmlab.Undo" then
    LUA_CLASSES["vmlab.Undo"] = { mt = mt, make = function()
      local u = undo.new("fuzz")
      u.done = true
      return u
    end }
    classes[#classes + 1] = "vmlab.Undo"
  end
end

-- The method table of a class: __methods, a table __index, or the table
-- upvalue of an __index closure (vmlab_new_class).
local function methods_of(mt)
  if type(rawget(mt, "__methods")) == "table" then return mt.__methods end
  local idx = rawget(mt, "__index")
  if type(idx) == "table" then return idx end
  if type(idx) == "function" then
    for i = 1, 10 do
      local n, v = debug.getupvalue(idx, i)
      if n == nil then break end
      if type(v) == "table" then return v end
    end
  end
  return {}
end

local class_methods = {} -- class -> list of method names
local function class_mt(cls) return LUA_CLASSES[cls] and LUA_CLASSES[cls].mt or debug.getregistry()[cls] end
local function add_class(cls)
  local mt = class_mt(cls)
  local short = short_class(cls)
  local ms = methods_of(mt)
  local names = {}
  for k, v in pairs(ms) do if type(v) == "function" then names[#names + 1] = k end end
  table.sort(names)
  class_methods[cls] = names
  for _, k in ipairs(names) do
    local t = { class = cls }
    -- the same C function may serve two classes (close): keep one target per (class, name)
    t.name, t.fn = short .. ":" .. k, ms[k]
    targets[#targets + 1] = t
  end
  local metas = {}
  for k, v in pairs(mt) do if type(k) == "string" and k:match("^__") and type(v) == "function" then metas[#metas + 1] = k end end
  table.sort(metas)
  for _, k in ipairs(metas) do
    targets[#targets + 1] = { name = short .. "." .. k, fn = mt[k], class = cls, meta = k }
  end
end
for _, cls in ipairs(classes) do add_class(cls) end

-- ------------------------------------------------------------------------
-- Factories: how to get an instance of each class (plausible arguments)

local function F(name) -- a facade function by name, or nil
  local v = rawget(vm, name)
  return type(v) == "function" and v or nil
end

local factories = {
  ["vmlab.Region"] = {
    function() return F("mmap") and vm.mmap(PAGE * rnd(1, 8)) end,
    function() return F("mmap") and vm.mmap(rnd(1, 3 * PAGE), { share = "shared" }) end,
    function() return F("mmap") and vm.mmap(PAGE * rnd(1, 4), { prot = pick { "r", "none", "rw" } }) end,
    function() return F("mmap") and vm.mmap(nil, { file = SCRATCH, share = pick { "shared", "private" } }) end,
    function() return F("mmap") and vm.mmap(rnd(1, SMALL // PAGE) * PAGE) end,
    function() return F("malloc") and vm.malloc(pick { 1, 9, 64, 4096, 100000 }) end,
    function() return F("calloc") and vm.calloc(rnd(1, 16), pick { 1, 8, 4096 }) end,
    function() return F("shm_open") and vm.shm_open(shm_name(), { create = true, size = PAGE * rnd(1, 4) }) end,
    function() -- a big region: reserved address space, never populated here
      return F("mmap") and vm.mmap(pick { 1 << 30, (1 << 32) + PAGE, 64 << 30 }, { noreserve = true })
    end,
  },
  ["vmlab.Child"] = {
    function()
      if stats.forks >= 25 or not F("fork") then return nil end
      stats.forks = stats.forks + 1
      return vm.fork(pick(fork_bodies))
    end,
    function()
      if stats.spawns >= 25 or not F("spawn") then return nil end
      stats.spawns = stats.spawns + 1
      return vm.spawn(pick { { "true" }, { "sh", "-c", "exit 3" }, { "/nonexistent/prog" } }, { stdout = "null" })
    end,
  },
  ["vmlab.FaultCounter"] = { function() return F("fault_counter") and vm.fault_counter(pick { "minor", "major", "all" }) end },
  ["vmlab.FaultSampler"] = { function() return F("fault_sampler") and vm.fault_sampler({ pages = pick { 1, 2, 8 } }) end },
  ["vmlab.LineSummer"] = { function() return F("line_summer") and vm.line_summer() end },
  ["vmlab.Blocks"] = { function() return F("blocks") and vm.blocks(rnd(1, 64), pick { 1, 100, 4096, 70000 }) end },
  ["vmlab.Undo"] = LUA_CLASSES["vmlab.Undo"] and { LUA_CLASSES["vmlab.Undo"].make } or nil,
}

local no_factory = {}
local function make(cls)
  local fs = factories[cls]
  if not fs then no_factory[cls] = true; return nil end
  local f = pick(fs)
  log(("seed=%d factory %s #%d"):format(opt.seed, cls, stats.calls))
  local t0 = PROFILE and vm.now()
  local ok, o = pcall(f)
  if PROFILE then PROFILE["factory " .. cls] = (PROFILE["factory " .. cls] or 0) + vm.now() - t0 end
  if ok and o then add_object(o) end
  return ok and o or nil
end

-- ------------------------------------------------------------------------
-- DENY: callables never called, and why.
local DENY = {
  ["vm.exit"] = "ends the process (_exit): the batch would stop",
  ["vm.lab.exit"] = "ends the process",
  ["vmlab.experiments.run"] = "runs a whole experiment: seconds and up to GiBs each; the experiment specs cover them",
  ["vmlab.sum.names.sweep"] = "unlinks other processes' vmlab-sum-* objects in /dev/shm",
  ["vmlab.sum.parent.run"] = "runs `vmlab sum` (spawns its child, reads stdin, writes ./sums.txt)",
  ["vmlab.sum.child.main"] = "the `vmlab sum` child's main loop (reads stdin until EOF, writes files)",
  ["vmlab.sum.ring.producer"] = "returns the ring's producer loop (blocks on futex/semaphores for a reader)",
  ["vmlab.sum.ring.consumer"] = "the ring's consumer loop (blocks on futex/semaphores for a writer)",
  ["Region.__gc"] = "same C function as Region.__close / Region:close (fuzzed there)",
  ["vmlab.cgroup.create"] = "makes memory cgroups under /sys/fs/cgroup (system state, as root) and arms shell undo watchers",
  ["vmlab.cgroup.sweep"] = "removes vmlab-* cgroups of other processes",
  ["Undo:arm"] = "starts a shell watcher that runs the undo script (sysfs/sysctl writes, shell commands) when this process ends",
  ["Undo:run"] = "runs the undo script now (on the pool's disarmed lists it does nothing; a live list would write sysfs/sysctl files)",
}
-- Lua functions whose names say they run, write or remove things: denied
-- unless constrained below (safety first for modules added later).
local DENY_PATTERNS = { "^set_", "sweep", "main$", "^run$", "exit", "drop_caches", "^write$", "^fill$" }

-- ------------------------------------------------------------------------
-- CONSTRAIN: callables called only with their dangerous arguments rewritten.
-- Each gets (args, n, target) and returns n (args edited in place), or false
-- to skip this call. Hostile values of the wrong type are left alone (they
-- must raise); only values that would do real harm are replaced.

local function finite(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end
local function my_children_pids()
  local out = {}
  for _, c in ipairs(children) do
    local ok, pid = pcall(function() return c.pid end)
    if ok and math.type(pid) == "integer" and pid > 0 then out[#out + 1] = pid end
  end
  return out
end
local function cap_number(v, cap, low) -- numbers over cap become small; NaN/inf/negatives stay (must raise)
  if finite(v) and v > cap then return (low or 0) + rnd() * (cap - (low or 0)) end
  return v
end
local function cap_int(v, cap)
  if type(v) == "number" and finite(v) and v > cap then return rnd(1, cap) end
  return v
end
-- a timeout: nil, +inf and anything over 0.05 s become a short one; NaN and negatives stay
local function short_timeout(v)
  if v == nil or v == math.huge or (finite(v) and v > 0.05) then return rnd() * 0.02 end
  return v
end
local function plain(t) return type(t) == "table" and getmetatable(t) == nil end
local function in_small_region(a)
  for _, r in ipairs(small_regions(true)) do
    local ok, addr = pcall(function() return r.address end)
    local s = region_size(r)
    if ok and addr and s and a >= addr and a < addr + s then return true end
  end
  return false
end

local CONSTRAIN = {}
-- signals: only ever to this batch's own children; a pid that truncates
-- (2^32 + pid) is tried too, since it must be refused, not truncated.
CONSTRAIN["vm.kill"] = function(a, n)
  local pids = my_children_pids()
  if #pids == 0 then return false end
  if type(a[1]) == "number" or (type(a[1]) == "string" and tonumber(a[1])) then
    local p = pick(pids)
    a[1] = pick { p, p, p, p + (1 << 32) }
  end
  return math.max(n, 1)
end
CONSTRAIN["vm.sleep"] = function(a, n) a[1] = cap_number(a[1], 0.01); return n end
CONSTRAIN["vm.setrlimit"] = function(a, n) -- never changes a limit: valid values become the current ones
  local ok, soft, hard = pcall(vm.getrlimit, a[1])
  if not ok or soft == nil then return n end
  if type(a[2]) == "number" or a[2] == "unlimited" then a[2] = soft end
  if type(a[3]) == "number" or a[3] == "unlimited" then a[3] = hard end
  return n
end
CONSTRAIN["vm.lab.setrlimit"] = CONSTRAIN["vm.setrlimit"]
CONSTRAIN["vm.probe"] = function(a, n) -- writes only into our own small regions ({catch=false} must raise: vm.lab.probe is the unguarded one)
  if a[2] == "write" and math.type(a[1]) == "integer" then
    local safe = { 0, 1, math.maxinteger, math.mininteger, 1 << 60, 1 << 62, -4096 }
    if not in_small_region(a[1]) then a[1] = pick(safe) end
  elseif a[2] == "write" and type(a[1]) == "number" then
    a[1] = pick { 2 ^ 63, 0 / 0, 0.5 }
  end
  return math.max(n, 2)
end
CONSTRAIN["vm.lab.probe"] = CONSTRAIN["vm.probe"]
CONSTRAIN["vm.stack_recurse"] = function(a) -- always a small max_depth, frame x depth <= 2 MiB
  local frame = math.type(a[1]) == "integer" and a[1] or 64
  local maxd = math.max(1, (2 << 20) // math.max(frame, 16))
  if not (type(a[4]) == "number" and finite(a[4]) and a[4] <= maxd) then a[4] = rnd(1, math.min(maxd, 64)) end
  if big[a[2]] then return false end
  return 4
end
CONSTRAIN["vm.lab.stack_recurse"] = CONSTRAIN["vm.stack_recurse"]
CONSTRAIN["vm.fork"] = function(a, n) -- luacheck: no unused
  if stats.forks >= 25 then return false end
  if type(a[1]) == "function" then a[1] = pick(fork_bodies) end
  stats.forks = stats.forks + 1
  return n
end
CONSTRAIN["vm.spawn"] = function(a, n) -- only harmless programs; paths land in the temp dir (cwd)
  if stats.spawns >= 25 then return false end
  stats.spawns = stats.spawns + 1
  if plain(a[1]) then
    local argv = pick { { "true" }, { "false" }, { "sh", "-c", "exit 3" }, { "/nonexistent/prog" }, { "" }, { "true", "a\0b" } }
    for i = 1, #a[1] do a[1][i] = nil end
    for i, v in ipairs(argv) do a[1][i] = v end
  end
  if plain(a[2]) then
    for _, k in ipairs { "stdin", "stdout", "stderr" } do
      local v = a[2][k]
      if type(v) == "string" and v:sub(1, 1) == "/" then a[2][k] = "spawn-out.txt" end
    end
    if type(a[2].cwd) == "string" and a[2].cwd:sub(1, 1) == "/" then a[2].cwd = TMP end
  end
  return n
end
local function file_opts(t) -- option tables naming files: only the temp dir's or read-only ones
  if plain(t) and t.file ~= nil and type(t.file) == "string" then t.file = path_value() end
  return t
end
CONSTRAIN["vm.mmap"] = function(a, n)
  a[2] = file_opts(a[2])
  local size = tonumber(a[1])
  if plain(a[2]) and size and size > SMALL then a[2].populate = nil end -- never populate a big region
  if plain(a[2]) and a[2].populate and a[2].file then a[2].populate = nil end
  return n
end
for _, f in ipairs { "vm.fadvise", "vm.file_resident", "vm.listdir", "vm.lab.listdir", "vmlab.pagecache.drop" } do
  CONSTRAIN[f] = function(a, n)
    if type(a[1]) == "string" or type(a[1]) == "number" then a[1] = path_value() end
    return math.max(n, 1)
  end
end
CONSTRAIN["vmlab.pagecache.fill"] = function(a, n) -- writes a file: only in the temp dir, at most 1 MiB
  a[1] = pick { tmp_path("fill.bin"), tmp_path("no/dir/x"), "", "fill2.bin" }
  a[2] = cap_int(a[2], 1 << 20)
  return math.max(n, 2)
end
CONSTRAIN["vmlab.plot.write"] = function(a, n) -- writes a file: only in the temp dir
  a[1] = pick { tmp_path("plot.svg"), tmp_path("no/dir/plot.svg"), "", "plot2.svg" }
  return math.max(n, 1)
end
CONSTRAIN["vmlab.html.write"] = function(a, n) -- writes a file: only in the temp dir
  if type(a[1]) == "string" or type(a[1]) == "number" then
    a[1] = pick { tmp_path("report.html"), tmp_path("no/dir/report.html"), "", "report2.html" }
  end
  return math.max(n, 1)
end
CONSTRAIN["Undo:write_back"] = function(a, n) -- reads the file whole: only small files of the temp dir (no /dev/zero, no FIFO)
  if type(a[2]) == "string" or type(a[2]) == "number" then
    a[2] = pick { SCRATCH, tmp_path("empty.bin"), tmp_path("no/such/file"), TMP, "", SCRATCH .. "\0junk" }
  end
  return math.max(n, 2)
end
CONSTRAIN["vm.shm_open"] = function(a, n)
  if type(a[1]) == "string" or type(a[1]) == "number" then a[1] = shm_name() end
  if plain(a[2]) then a[2].size = cap_int(a[2].size, SMALL) end
  return n
end
CONSTRAIN["vm.shm_unlink"] = function(a, n)
  if type(a[1]) == "string" or type(a[1]) == "number" then a[1] = shm_name() end
  return n
end
CONSTRAIN["vm.ipc_measure"] = function(a, n) -- short runs: few messages, a tiny budget
  if a[2] == nil then a[2] = {} end
  if plain(a[2]) then
    local o = a[2]
    o.round_trips = cap_int(o.round_trips == nil and 20 or o.round_trips, 50)
    o.stream_messages = cap_int(o.stream_messages == nil and 20 or o.stream_messages, 50)
    o.message_bytes = cap_int(o.message_bytes, 1 << 16)
    if o.budget == nil then o.budget = 0.005 end
    if finite(o.budget) and o.budget > 0.02 and o.budget <= 600 then o.budget = 0.01 end
  else
    return false -- a hostile table would leave the defaults: 100,000 round trips
  end
  return math.max(n, 2)
end
CONSTRAIN["vm.set_touch_hook"] = function(a, n)
  if type(a[1]) == "function" then a[1] = chance(0.1) and closing_hook or pick(hooks) end
  return n
end
CONSTRAIN["vmlab.faults.demo"] = function(a, n)
  if plain(a[1]) then a[1].pages = cap_int(a[1].pages, 64) end
  if a[1] ~= nil and not plain(a[1]) and type(a[1]) == "table" then return false end
  return n
end
CONSTRAIN["vmlab.faults.by_region"] = function(a, n)
  if type(a[1]) == "function" then a[1] = pick(hooks) end
  return n
end
CONSTRAIN["vmlab.child.run"] = function(a, n)
  if stats.forks >= 25 then return false end
  stats.forks = stats.forks + 1
  if type(a[1]) == "function" then a[1] = pick(fork_bodies) end
  if plain(a[2]) then a[2].timeout = short_timeout(a[2].timeout) end
  return n
end
CONSTRAIN["vmlab.progress.touch"] = function(a, n)
  if big[a[1]] then return false end
  if plain(a[3]) then a[3].passes = cap_int(a[3].passes, 3) end
  return n
end
CONSTRAIN["vmlab.progress.new"] = function(a, n)
  if plain(a[1]) and a[1].out ~= nil then a[1].out = pick { io.stderr, hostile_table(), 42 } end
  return n
end

-- Methods (the first argument is the object).
local BIG_SAFE = { close = true, resident = true, protect = true, unlock = true, advise = true, unlink = true,
  atomic_load = true, atomic_store = true, atomic_add = true, compare_swap = true, wake = true,
  __tostring = true, __len = true, __index = true, __close = true, __gc = true, sync = true }
local POPULATING_ADVICE = { populate_read = true, populate_write = true, willneed = true }

CONSTRAIN["Region:touch"] = function(a, n)
  if plain(a[3]) then
    a[3].passes = cap_int(a[3].passes, 3)
  end
  return n
end
CONSTRAIN["Region:advise"] = function(a, n)
  if big[a[1]] and (type(a[2]) ~= "string" or POPULATING_ADVICE[a[2]]) then return false end
  return n
end
for _, m in ipairs { "Region:wait", "Region:sem_wait" } do
  CONSTRAIN[m] = function(a, n)
    local i = m == "Region:wait" and 4 or 3
    a[i] = short_timeout(a[i])
    return math.max(n, i)
  end
end
CONSTRAIN["Region:sleep_poll"] = function(a, n)
  a[4] = cap_number(a[4], 0.002)
  a[5] = short_timeout(a[5])
  return math.max(n, 5)
end
for _, m in ipairs { "Region:plain_add_n", "Region:atomic_add_n" } do
  CONSTRAIN[m] = function(a, n) a[4] = cap_int(a[4], 100000); return n end
end
CONSTRAIN["Region:sem_add_n"] = function(a, n) a[5] = cap_int(a[5], 100000); return n end
CONSTRAIN["Region:count_wait"] = function(a, n) a[3] = short_timeout(a[3]); return math.max(n, 3) end
-- descriptors: only the temp dir's scratch files or numbers that are none
for _, f in ipairs { "vm.write_lines", "vm.shm_adopt" } do
  CONSTRAIN[f] = function(a, n)
    if type(a[1]) == "number" or type(a[1]) == "string" then a[1] = fd_value() end
    return math.max(n, 1)
  end
end
CONSTRAIN["Region:read_from"] = function(a, n)
  if type(a[2]) == "number" or type(a[2]) == "string" then a[2] = fd_value() end
  a[5] = short_timeout(a[5])
  return math.max(n, 5)
end
CONSTRAIN["vm.open_output"] = function(a, n) -- creates or truncates: only in the temp dir
  if type(a[1]) == "string" or type(a[1]) == "number" then a[1] = pick { tmp_path("out.txt"), "out2.txt", tmp_path("fifo"), TMP, "", tmp_path("no/dir/x"), "out\0x" } end
  return math.max(n, 1)
end
CONSTRAIN["vm.blocks"] = function(a, n) -- blocks are written in full: at most 64 MiB of them
  local c, s = math.tointeger(a[1]), math.tointeger(a[2])
  if c and c > 0 and c <= (1 << 26) then
    if s and s > 0 and c * s > BIG then a[2] = math.max(1, BIG // c) end
  elseif s and s > BIG then a[2] = rnd(1, 4096) end
  return n
end
CONSTRAIN["Child:wait"] = function(a, n)
  if plain(a[2]) then a[2].timeout = short_timeout(a[2].timeout) elseif a[2] == nil then a[2] = { timeout = 0.5 } end
  return math.max(n, 2)
end
CONSTRAIN["FaultSampler:read"] = nil

-- ------------------------------------------------------------------------
-- KNOWN_CRASHES: calls that still kill the process, skipped until their
-- issue-9 family is fixed (run.lua prints this list at the end: nothing is
-- hidden). Each: target name, family, a test on the arguments.
local KNOWN_CRASHES = {
  -- (empty: plot's long-label hang of findings H4 is fixed: plot.fit searches the cut by halves and
  -- plot.text_width counts a long text's characters in C)
}

local function known_crash(name, a, n)
  for _, k in ipairs(KNOWN_CRASHES) do
    local hit = k.target == name or (k.target:sub(-1) == "*" and name:sub(1, #k.target - 1) == k.target:sub(1, -2))
    if hit and (not k.match or k.match(a, n)) then return k end
  end
end

-- ------------------------------------------------------------------------
-- Per-call checks

-- Per class: methods a closed object may answer without raising, and why.
local CLOSED_OK = {
  ["vmlab.Blocks"] = { __len = "#b of closed blocks is 0 live blocks (csrc/blocks.c blocks_len)" },
}
local ALLOWED_ON_CLOSED = { close = true, __gc = true, __close = true, __tostring = true, __index = true,
  __eq = true, wait = true, running = true, kill = true }

-- A failing system call returns exactly nil, message, errno.
-- Documented exceptions with a 4th value:
local EXTRA_RESULT = {
  ["vm.write_lines"] = "nil, msg, errno, lines: the lines that reached fd (csrc/sum.c, issue 9 item 16)",
}
local function check_results(t, res)
  local nres = res.n
  if nres >= 2 and res[1] == nil and t.fn and debug.getinfo(t.fn, "S").what == "C" then
    local msg, err = res[2], res[3]
    local ok = (nres == 3 or (nres == 4 and EXTRA_RESULT[t.name])) and type(msg) == "string" and math.type(err) == "integer" and err > 0
    -- documented two-value answers: nil, "running" | "timeout" (Child:wait)
    if nres == 2 and type(msg) == "string" and (msg == "running" or msg == "timeout") then ok = true end
    if not ok then
      oracle_fail("syscall-shape", ("%s returned nil then %d values: %s"):format(t.name, nres - 1,
        describe_args({ res[2], res[3], res[4] }, math.min(nres - 1, 3))))
    else
      oracle_ok()
    end
  end
end

-- ------------------------------------------------------------------------
-- Oracles: round trips on open, small, writable regions

local function writable_region()
  local rs = {}
  for _, r in ipairs(small_regions(true)) do
    local ok, p = pcall(function() return r.prot end)
    if ok and (p == "rw" or p == "rwx") then rs[#rs + 1] = r end
  end
  return #rs > 0 and pick(rs) or nil
end

local oracles = {}
oracles.write_read = function()
  local r = writable_region(); if not r then return end
  local s = region_size(r); if not s or s < 1 then return end
  local len = rnd(0, math.min(s, 5000))
  local off = rnd(0, s - len)
  local chunk = {}
  for i = 1, len do chunk[i] = string.char(rnd(0, 255)) end
  local data = table.concat(chunk)
  local ok, e = pcall(r.write, r, off, data)
  if not ok then return oracle_fail("write/read", ("write(%d, %d bytes) raised: %s"):format(off, len, tostring(e))) end
  local ok2, got = pcall(r.read, r, off, len)
  if not ok2 or got ~= data then return oracle_fail("write/read", ("read(%d, %d) gave %s"):format(off, len, describe(got))) end
  oracle_ok()
end
oracles.fill_read = function()
  local r = writable_region(); if not r then return end
  local s = region_size(r); if not s or s < 1 then return end
  local len = rnd(0, math.min(s, 9000))
  local off = rnd(0, s - len)
  local byte = rnd(0, 255)
  local ok, e = pcall(r.fill, r, byte, off, len)
  if not ok then return oracle_fail("fill/read", ("fill(%d, %d, %d) raised: %s"):format(byte, off, len, tostring(e))) end
  local ok2, got = pcall(r.read, r, off, len)
  if not ok2 or got ~= string.char(byte):rep(len) then return oracle_fail("fill/read", ("read(%d,%d) after fill(%d) differs"):format(off, len, byte)) end
  oracle_ok()
end
oracles.atomics = function()
  local r = writable_region(); if not r or not r.atomic_store then return end
  local s = region_size(r); if not s or s < 8 then return end
  local bits = pick { 64, 32 }
  local w = bits // 8
  local off = rnd(0, s // w - 1) * w
  local lim = bits == 64 and math.maxinteger or 0x7fffffff
  local v = rnd(-1000, 1000)
  local ok, e = pcall(r.atomic_store, r, off, v, bits)
  if not ok then return oracle_fail("atomics", "atomic_store raised: " .. tostring(e)) end
  local ok2, got = pcall(r.atomic_load, r, off, bits)
  if not ok2 or got ~= v then return oracle_fail("atomics", ("load after store(%d) gave %s"):format(v, describe(got))) end
  local d = rnd(-50, 50)
  local ok3, old = pcall(r.atomic_add, r, off, d, bits)
  local _, now = pcall(r.atomic_load, r, off, bits)
  if not ok3 or old ~= v or now ~= v + d then return oracle_fail("atomics", ("add(%d) to %d: old %s, now %s"):format(d, v, describe(old), describe(now))) end
  local ok4, swapped = pcall(r.compare_swap, r, off, v + d, 7, bits)
  local _, after = pcall(r.atomic_load, r, off, bits)
  if not ok4 or swapped ~= true or after ~= 7 then return oracle_fail("atomics", ("compare_swap(%d -> 7): %s, now %s"):format(v + d, describe(swapped), describe(after))) end
  local ok5, sw2 = pcall(r.compare_swap, r, off, 8, 9, bits)
  local _, after2 = pcall(r.atomic_load, r, off, bits)
  if not ok5 or sw2 ~= false or after2 ~= 7 then return oracle_fail("atomics", "compare_swap with a wrong old value swapped") end
  local _ = lim
  oracle_ok()
end
oracles.pages = function()
  for _, r in ipairs(small_regions(true)) do
    local s = region_size(r)
    local okp, pages = pcall(function() return r.pages end)
    if s and okp then
      if pages ~= (s + PAGE - 1) // PAGE then oracle_fail("pages", ("size %d, pages %s"):format(s, describe(pages))) else oracle_ok() end
      local ok, res, total = pcall(r.resident, r)
      if ok and res ~= nil then
        if not (math.type(res) == "integer" and res >= 0 and total and res <= total) then
          oracle_fail("resident", ("resident() gave %s, %s for %d pages"):format(describe(res), describe(total), pages))
        else oracle_ok() end
      end
    end
  end
end
oracles.closed_raises = function()
  for cls, p in pairs(pools) do
    for _, o in ipairs(p) do
      if is_closed(o) then
        for _, m in ipairs(class_methods[cls] or {}) do
          if not ALLOWED_ON_CLOSED[m] and not (CLOSED_OK[cls] and CLOSED_OK[cls][m]) then
            local mt = class_mt(cls)
            local f = methods_of(mt)[m]
            local ok, e = pcall(f, o)
            if ok then oracle_fail("closed", ("%s:%s on a closed object did not raise"):format(short_class(cls), m))
            elseif not tostring(e):find("closed") then
              oracle_fail("closed", ("%s:%s on a closed object raised without 'closed': %s"):format(short_class(cls), m, tostring(e):sub(1, 120)))
            else oracle_ok() end
          end
        end
        return
      end
    end
  end
end
oracles.fork_safety = function()
  if stats.forks >= 25 or not F("fork") or not F("shm_open") then return end
  stats.forks = stats.forks + 1
  local name = PREFIX .. "fs" .. rnd(1000)
  shm_names[#shm_names + 1] = name
  local s = vm.shm_open(name, { create = true, size = PAGE })
  local m = vm.mmap(PAGE, { share = "shared" })
  local h = vm.malloc(64)
  if not (s and m and h) then return end
  s:write(0, "parent"); m:write(0, "parent"); h:write(0, "parent")
  local c = vm.fork(function()
    s:write(8, "child"); m:write(8, "child")
    s:close(); m:close(); h:close()
    s, m, h = nil, nil, nil
    collectgarbage(); collectgarbage()
    return 0
  end)
  if not c then return end
  children[#children + 1] = c
  local st = c:wait({ timeout = 60 }) -- a loaded machine can take seconds to run the child
  if type(st) ~= "table" or st.code ~= 0 then
    oracle_fail("fork-safety", "the child did not exit 0: " .. describe(st))
  end
  local ok1, a = pcall(s.read, s, 0, 13)
  local ok2, b = pcall(m.read, m, 0, 13)
  local ok3, hh = pcall(h.read, h, 0, 6)
  local f = io.open("/dev/shm" .. name, "rb")
  if f then f:close() end
  if not (ok1 and a == "parent\0\0child" and ok2 and b == "parent\0\0child" and ok3 and hh == "parent" and f) then
    oracle_fail("fork-safety", ("after the child closed its copies: shm %s %s, mmap %s %s, heap %s, name %s"):format(
      tostring(ok1), describe(a), tostring(ok2), describe(b), describe(hh), f and "exists" or "gone"))
  else
    oracle_ok()
  end
  s:close(); m:close(); h:close()
end
-- r:touch("read", ...) changes no byte, whatever the order (issue 9 item 1:
-- the chase order wrote its chain into the region, and past a heap block).
oracles.read_touch_preserves = function()
  local r = writable_region(); if not r or not r.touch then return end
  local s = region_size(r); if not s or s < 1 or s > (1 << 20) then return end
  local data = {}
  for i = 1, s do data[i] = string.char((i * 7 + 3) % 256) end
  data = table.concat(data)
  if not pcall(r.write, r, 0, data) then return end
  local opts = pick { {}, { order = "random" }, { order = "chase", stride = 8 }, { order = "chase" }, { stride = 1 },
    { stride = 8, passes = 2 }, { sample = 1 } }
  pcall(vm.set_touch_hook, nil)
  local ok = pcall(r.touch, r, "read", opts)
  local ok2, got = pcall(r.read, r, 0, s)
  if opts.order == "chase" then
    -- documented: the chase writes its chain into the first 8 bytes of each
    -- stride, only in private regions (a shared one must be refused)
    local okp, shared = pcall(function() return r.shared end)
    if okp and shared and ok then
      oracle_fail("read-touch", ("r:touch(\"read\", %s) ran on a shared region"):format(describe(opts)))
      return
    end
    if ok2 and got then
      local stride = opts.stride or PAGE
      local a, b = {}, {}
      for i = 1, s do
        if (i - 1) % stride >= 8 then a[#a + 1] = got:sub(i, i); b[#b + 1] = data:sub(i, i) end
      end
      got, data = table.concat(a), table.concat(b)
    end
  end
  if ok2 and got ~= data then
    oracle_fail("read-touch", ("r:touch(\"read\", %s) on a %d-byte %s region changed its bytes (touch %s)"):format(
      describe(opts), s, tostring(r.kind), ok and "returned" or "raised"))
  else
    oracle_ok()
  end
end
local oracle_names = {}
for k in pairs(oracles) do oracle_names[#oracle_names + 1] = k end
table.sort(oracle_names)

-- ------------------------------------------------------------------------
-- The batch

local denied = {}
local function is_denied(t)
  if DENY[t.name] then return DENY[t.name] end
  if t.name:match("^vm%.lab%.") or t.name:match("^core%.lab%.") then
    return "vm.lab holds the probes that end the process on purpose (no fault guard); the guarded vm.probe is fuzzed"
  end
  if t.class then return nil end
  if CONSTRAIN[t.name] then return nil end
  local leaf = t.name:match("([^.:()]+)%(?%)?$") or t.name
  if debug.getinfo(t.fn, "S").what == "Lua" then
    for _, p in ipairs(DENY_PATTERNS) do
      if leaf:match(p) then return "name matches deny pattern '" .. p .. "' (a Lua function that may run, write or remove things)" end
    end
  end
  return nil
end

-- Slow callables (a fork, a measurement, a file) are picked less often.
local RARE = { ["vmlab.faults.demo"] = 0.1, ["vmlab.experiments.params"] = 0.2, ["vmlab.kernel.probes"] = 0.3,
  ["vm.kernel"] = 0.3, ["vmlab.kernel()"] = 0.3, ["vmlab.self.data"] = 0.3, ["vm.ipc_measure"] = 0.3,
  ["vmlab.child.run"] = 0.3, ["vm.fault_sampler"] = 0.5,
  -- /proc parsers: an ASan process has thousands of mappings to read
  ["vmlab.proc.smaps"] = 0.15, ["vmlab.proc.mapping_at"] = 0.15, ["vmlab.proc.maps"] = 0.3, ["vmlab.self.summary"] = 0.15,
  ["vmlab.kernel.has"] = 0.2, ["vmlab.kernel.record"] = 0.2, ["vmlab.faults.by_region"] = 0.3,
  ["vmlab.experiments.system_info"] = 0.2, ["vmlab.experiments.system_record"] = 0.2,
  -- the whole schema (every experiment's description); a page reads the kernel probes when given none
  ["vmlab.record.schema"] = 0.2, ["vmlab.record.schema_json"] = 0.2, ["vmlab.html.page"] = 0.3 }
local callable = {}
for _, t in ipairs(targets) do
  local why = is_denied(t)
  if why then denied[#denied + 1] = t.name .. ": " .. why else callable[#callable + 1] = t end
end
local function pick_target()
  while true do
    local t = pick(callable)
    local w = RARE[t.name]
    if not w or rnd() < w then return t end
  end
end

if opt.list then
  for _, t in ipairs(callable) do print("callable", t.name) end
  for _, d in ipairs(denied) do print("denied", d) end
  for _, cls in ipairs(classes) do if factories[cls] == nil then print("no-factory", cls) end end
  for _, m in ipairs(unreviewed) do print("unreviewed", m) end
  for _, k in ipairs(KNOWN_CRASHES) do print("known-crash", k.target .. " (family " .. k.family .. "): " .. k.why) end
  os.exit(0)
end

-- fill the pools
for _, cls in ipairs(classes) do for _ = 1, 3 do make(cls) end end
for _, cls in ipairs(classes) do if factories[cls] == nil then no_factory[cls] = true end end

local function self_for(t)
  local p = pools[t.class] or {}
  if #p == 0 or chance(0.03) then make(t.class); p = pools[t.class] or {} end
  if #p == 0 or chance(0.06) then return hostile_value() end
  return pick(p)
end

local function after_call(t, a, _, res)
  -- objects returned join the pools; closed ones are remembered
  for i = 1, res.n do if type(res[i]) == "userdata" then add_object(res[i]) end end
  if t.class and (t.name:match(":close$") or t.meta == "__close" or t.meta == "__gc") and res.ok
    and type(a[1]) == "userdata" then -- (a Lua class's __close, Undo's, undoes; it closes no handle)
    if class_of(a[1]) == t.class then closed[a[1]] = true end
  end
  if t.class == "vmlab.Region" and type(a[1]) == "userdata" and class_of(a[1]) == "vmlab.Region" then
    local s = region_size(a[1]); if s and s > BIG then big[a[1]] = true end
  end
  -- a signal may have stopped one of our children: let it go on
  if t.name == "vm.kill" or t.name == "Child:kill" then
    for _, c in ipairs(children) do signalled[c] = true end
    for _, pid in ipairs(my_children_pids()) do pcall(vm.kill, pid, "CONT") end
  end
end

-- A raw Lua error: what the VM says when code uses a value of the wrong type
-- (not an error a function raised about its argument).
local RAW = { "attempt to index", "attempt to call", "attempt to perform arithmetic", "attempt to compare",
  "attempt to concatenate", "attempt to get length", "to 'for iterator'", "number has no integer representation" }
local function is_raw_error(e)
  for _, p in ipairs(RAW) do if e:find(p, 1, true) then return true end end
  return false
end
-- Lua modules whose functions check their arguments (issue 9 item 11): a raw
-- Lua error from one of them is an oracle failure; from the others, a note in the log.
local ARGS_CHECKED = { "vmlab.report.", "vmlab.plot.", "vmlab.assert.", "vmlab.pagecache.", "vmlab.html.",
  "vmlab.undo.", "vmlab.record.", "vmlab.sum.", "vmlab.progress.", "vmlab.describe.", "vmlab.experiments.",
  "vmlab.kernel", "vmlab.proc.", "vmlab.faults.", "vmlab.self", "vmlab.units.", "vmlab.cgroup.", "vmlab.args.", "Undo:", "Undo." }
local function args_checked(name)
  for _, p in ipairs(ARGS_CHECKED) do if name:sub(1, #p) == p then return true end end
  return false
end

local function run_call(i, t)
  local a, n = {}, 0
  if t.class then
    n = 1
    a[1] = self_for(t)
    if big[a[1]] and not BIG_SAFE[t.meta or t.name:match(":(.*)$")] then stats.skipped = stats.skipped + 1; return end
  end
  local extra = pick { 0, 1, 1, 2, 2, 2, 3, 3, 4, 5 }
  local r = t.class == "vmlab.Region" and a[1] or nil
  if class_of(r) ~= "vmlab.Region" then r = nil end
  for j = n + 1, n + extra do a[j] = arg_value(r) end
  n = n + extra
  -- the name of a lazily loaded module key (vm.proc ...) as __index's key
  if t.meta == "__index" and chance(0.5) then a[2] = pick { "size", "pages", "address", "closed", "kind", "prot", "pid", "fd", "name", "shared" } end
  local con = CONSTRAIN[t.name]
  if con then
    local m = con(a, n, t)
    if m == false then stats.skipped = stats.skipped + 1; return end
    n = m
  end
  local k = known_crash(t.name, a, n)
  if k then stats.known = stats.known + 1; return end
  stats.calls = stats.calls + 1
  log(("seed=%d i=%d call %s(%s)"):format(opt.seed, i, t.name, describe_args(a, n)))
  local t0 = PROFILE and vm.now()
  -- A Lua callable gets an instruction budget: an endless Lua loop becomes an
  -- error noted in the log (a "slow" finding), not a batch that hangs.
  local is_lua = debug.getinfo(t.fn, "S").what == "Lua"
  if is_lua then debug.sethook(function() error("fuzz: instruction budget exceeded", 0) end, "", LUA_BUDGET) end
  local res = table.pack(pcall(t.fn, unpack(a, 1, n)))
  if is_lua then debug.sethook() end
  if PROFILE then PROFILE[t.name] = (PROFILE[t.name] or 0) + vm.now() - t0 end
  res.ok = table.remove(res, 1); res.n = res.n - 1
  if res.ok then
    stats.returned = stats.returned + 1
    check_results(t, res)
    -- a method on an object this batch closed must raise "closed"
    if t.class and a[1] ~= nil and closed[a[1]] and class_of(a[1]) == t.class then
      local m = t.meta or t.name:match(":(.*)$")
      if not ALLOWED_ON_CLOSED[m] and not (CLOSED_OK[t.class] and CLOSED_OK[t.class][m]) then
        oracle_fail("closed", ("%s on a closed object returned instead of raising"):format(t.name))
      end
    end
  else
    stats.raised = stats.raised + 1
    local e = res[1]
    if e == "fuzz: instruction budget exceeded" then
      stats.slow = (stats.slow or 0) + 1
      log(("note: SLOW %s(%s): over %d Lua instructions"):format(t.name, describe_args(a, n), LUA_BUDGET))
    end
    if type(e) == "string" and t.fn and debug.getinfo(t.fn, "S").what == "Lua" and is_raw_error(e) then
      if args_checked(t.name) then
        oracle_fail("raw-error", ("%s(%s) raised a raw Lua error instead of naming the bad argument: %s"):format(
          t.name, describe_args(a, n), e:sub(1, 200)))
      else
        log(("note: raw Lua error from %s: %s"):format(t.name, e:sub(1, 160)))
      end
      stats.raw_errors = (stats.raw_errors or 0) + 1
    end
  end
  after_call(t, a, n, res)
end

local start = os.time()
PROFILE = os.getenv("FUZZ_PROFILE") and {} or nil
for i = 1, opt.calls do
  if chance(0.06) then
    local name = pick(oracle_names)
    log(("seed=%d i=%d oracle %s"):format(opt.seed, i, name))
    local t0 = PROFILE and vm.now()
    local ok, e = pcall(oracles[name])
    if PROFILE then PROFILE["oracle " .. name] = (PROFILE["oracle " .. name] or 0) + vm.now() - t0 end
    if not ok then oracle_fail(name, "the oracle itself raised: " .. tostring(e)) end
  end
  if chance(0.02) then make(pick(classes)) end
  run_call(i, pick_target())
  if i % 200 == 0 then collectgarbage() end
end

-- ------------------------------------------------------------------------
-- Cleanup: hooks off, children killed and reaped, objects closed, names gone

log(("seed=%d cleanup"):format(opt.seed))
local cleanup_t0 = vm.now()
pcall(vm.set_touch_hook, nil)
pcall(vm.signal_restore)
for _, c in ipairs(children) do
  pcall(function()
    if c:running() then c:kill("KILL") end
    local st = c:wait({ timeout = 5 })
    if type(st) == "table" and st.signal and not signalled[c] and st.signal ~= 9 then
      oracle_fail("child", ("a child nobody signalled died of %s"):format(tostring(st.signal)))
    end
  end)
end
for _, p in pairs(pools) do
  for _, o in ipairs(p) do local mt = getmetatable(o); if mt and mt.__close then pcall(mt.__close, o) end end
end
pools = {}
collectgarbage(); collectgarbage()
local unlinked = 0
for _, name in ipairs(shm_names) do
  local base = name:match("^[^\0]*")
  if base:sub(1, 1) ~= "/" then base = "/" .. base end
  if base:sub(1, #PREFIX) == PREFIX and pcall(vm.shm_unlink, base) then unlinked = unlinked + 1 end
end
for _, f in ipairs(open_files) do pcall(io.close, f) end

local known_list = {}
for _, k in ipairs(KNOWN_CRASHES) do known_list[#known_list + 1] = k.target .. " (family " .. k.family .. "): " .. k.why end
print(("fuzz-batch seed=%d calls=%d callables=%d raised=%d returned=%d skipped=%d known=%d oracles_ok=%d oracle_failures=%d raw_lua_errors=%d slow_lua_calls=%d seconds=%d"):format(
  opt.seed, stats.calls, #callable, stats.raised, stats.returned, stats.skipped, stats.known, stats.oracle_ok,
  stats.oracle_fail, stats.raw_errors or 0, stats.slow or 0, os.time() - start))
for _, d in ipairs(denied) do print("fuzz-denied " .. d) end
for _, k in ipairs(known_list) do print("fuzz-known-crash " .. k) end
local nf = {}
for cls in pairs(no_factory) do nf[#nf + 1] = cls end
table.sort(nf)
for _, cls in ipairs(nf) do print("fuzz-no-factory " .. cls) end
for _, m in ipairs(unreviewed) do print("fuzz-unreviewed " .. m) end
if PROFILE then
  PROFILE.cleanup = vm.now() - cleanup_t0
  local ks = {}
  for k, v in pairs(PROFILE) do ks[#ks + 1] = { k, v } end
  table.sort(ks, function(x, y) return x[2] > y[2] end)
  for j = 1, math.min(15, #ks) do io.stderr:write(("profile %-32s %.3f s\n"):format(ks[j][1], ks[j][2])) end
end
log(("seed=%d done"):format(opt.seed))
if logf then logf:close() end
os.exit(stats.oracle_fail > 0 and 3 or 0)
