-- luacheck: max line length 180
--- fuzz/run.lua: the fuzz driver. Runs batches of fuzz/fuzz.lua, each in a
-- fresh process (fuzz/batch.sh), a few at a time, prints one line per batch
-- and a summary:
--   fuzz: B batches, N calls, C callables, K crashes[, F oracle failures]
-- Exit status: non-zero on any crash, sanitizer report, hang, memory blow-up,
-- leftover /dev/shm object or oracle failure.
--
--   lua5.4 fuzz/run.lua --build DIR [--sanitize asan|fco] [--seeds N] [--first S]
--                       [--calls C] [--jobs J] [--timeout T] [--keep DIR] [--quiet]
--
-- --build: the build dir holding vmlab/core.so (absolute or relative to the
-- checkout). --sanitize asan|fco: preload the sanitizer runtime as .ci/test
-- does (fco: UBSan only). Without it the environment is passed as it is (so a
-- spec run under LD_PRELOAD=libasan keeps it). Failing batches' logs, stdout
-- and stderr go to --keep (default <build>/fuzz-failures).
local opt = { seeds = 20, first = 1, calls = 2500, jobs = 2, timeout = 180, quiet = false, mem_mb = 1536 }
local i = 1
while i <= #arg do
  local a, v = arg[i], arg[i + 1]
  if a == "--build" then opt.build = v
  elseif a == "--sanitize" then opt.sanitize = v
  elseif a == "--seeds" then opt.seeds = math.tointeger(tonumber(v))
  elseif a == "--first" then opt.first = math.tointeger(tonumber(v))
  elseif a == "--calls" then opt.calls = math.tointeger(tonumber(v))
  elseif a == "--jobs" then opt.jobs = math.tointeger(tonumber(v))
  elseif a == "--timeout" then opt.timeout = math.tointeger(tonumber(v))
  elseif a == "--keep" then opt.keep = v
  elseif a == "--mem-mb" then opt.mem_mb = math.tointeger(tonumber(v))
  elseif a == "--quiet" then opt.quiet = true; i = i - 1
  else io.stderr:write("run.lua: unknown argument ", a, "\n"); os.exit(2) end
  i = i + 2
end

local function sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function capture(cmd)
  local p = io.popen(cmd)
  local s = p:read("a")
  p:close()
  return (s:gsub("%s+$", ""))
end

local root = (debug.getinfo(1, "S").source:match("^@(.*)/fuzz/run%.lua$")) or "."
root = capture("cd " .. sh_quote(root) .. " && pwd")
local build = opt.build or os.getenv("VMLAB_BUILD") or (root .. "/build")
if build:sub(1, 1) ~= "/" then build = root .. "/" .. build end
if not io.open(build .. "/vmlab/core.so", "rb") then
  io.stderr:write("run.lua: no ", build, "/vmlab/core.so (build it first)\n")
  os.exit(2)
end
local flavour = opt.sanitize or (os.getenv("VMLAB_SANITIZED") and "sanitized" or "plain")
local keep = opt.keep or (build .. "/fuzz-failures")

local env = {
  "FUZZ_ROOT=" .. sh_quote(root),
  "FUZZ_CALLS=" .. opt.calls,
  "FUZZ_TIMEOUT=" .. opt.timeout,
  "FUZZ_MEM_KB=" .. opt.mem_mb * 1024,
  "FUZZ_KEEP=" .. sh_quote(keep),
  "FUZZ_FLAVOUR=" .. flavour,
  "LUA_PATH=" .. sh_quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"),
  "LUA_CPATH=" .. sh_quote(build .. "/?.so;;"),
  "VMLAB_BUILD=" .. sh_quote(build),
}
-- the sanitizer runtime goes to the batches only (batch.sh), not to seq, xargs or ps
local preload = os.getenv("LD_PRELOAD")
if opt.sanitize then
  local cc = os.getenv("CC") or "cc"
  local so = opt.sanitize == "asan" and "libasan.so" or "libubsan.so"
  preload = capture(cc .. " -print-file-name=" .. so)
  env[#env + 1] = "ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allow_user_segv_handler=1:allocator_may_return_null=1"
  env[#env + 1] = "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
  env[#env + 1] = "VMLAB_SANITIZED=1"
end
if preload and preload ~= "" then env[#env + 1] = "FUZZ_PRELOAD=" .. sh_quote(preload) end
local envs = "-u LD_PRELOAD " .. table.concat(env, " ")

-- what the batches will call, and what they will not (printed at the end)
local with_preload = preload and (" LD_PRELOAD=" .. sh_quote(preload)) or ""
-- in a temp dir of its own: a scratch file left in a shared /tmp by another user would refuse it
local list_dir = capture("mktemp -d 2>/dev/null"):match("^%s*(.-)%s*$")
if list_dir == "" then list_dir = "/tmp" end
local listing = capture("cd " .. sh_quote(list_dir) .. " && env -u FUZZ_SELFTEST " .. envs .. with_preload
  .. " lua5.4 " .. sh_quote(root .. "/fuzz/fuzz.lua") .. " --seed 1 --calls 0 --list --tmp . 2>&1")
if list_dir ~= "/tmp" then os.execute("rm -rf " .. sh_quote(list_dir)) end
local ncallables, denied, known, nofactory = 0, {}, {}, {}
for line in listing:gmatch("[^\n]+") do
  local k, rest = line:match("^(%S+)\t(.*)$")
  if k == "callable" then ncallables = ncallables + 1
  elseif k == "denied" then denied[#denied + 1] = rest
  elseif k == "known-crash" then known[#known + 1] = rest
  elseif k == "no-factory" then nofactory[#nofactory + 1] = rest
  elseif k == "unreviewed" then nofactory[#nofactory + 1] = "module " .. rest .. " (unreviewed: not fuzzed)" end
end
if ncallables == 0 then
  io.stderr:write("run.lua: fuzz.lua --list found no callable:\n", listing, "\n")
  os.exit(2)
end

local last = opt.first + opt.seeds - 1
local cmd = ("seq %d %d | env %s xargs -P %d -n 1 bash %s"):format(opt.first, last, envs, opt.jobs,
  sh_quote(root .. "/fuzz/batch.sh"))
local p = io.popen(cmd)
local batches, calls, crashes, oracle = 0, 0, 0, 0
local bad = {}
for line in p:lines() do
  if line:match("^RESULT ") then
    batches = batches + 1
    local seed = line:match("seed=(%d+)")
    local status = line:match("status=(%S+)")
    local n = tonumber(line:match(" calls=(%d+)")) or 0
    calls = calls + n
    if status == "oracle" then oracle = oracle + 1; bad[#bad + 1] = line
    elseif status ~= "ok" then crashes = crashes + 1; bad[#bad + 1] = line end
    if not opt.quiet or status ~= "ok" then
      local lastcall = line:match(" last=(.*)$") or ""
      print(("batch %s seed %s: %s, %d calls%s"):format(flavour, seed, status, n,
        status == "ok" and "" or (" | last: " .. lastcall)))
      io.stdout:flush()
    end
  else
    print(line)
  end
end
p:close()

for _, d in ipairs(denied) do print("fuzz: denied " .. d) end
for _, k in ipairs(known) do print("fuzz: known_crashes " .. k) end
for _, c in ipairs(nofactory) do
  if c:match("^module ") then print("fuzz: " .. c) else print("fuzz: no factory for class " .. c .. " (its methods only get hostile self values)") end
end
if #bad > 0 then print("fuzz: failing batches kept in " .. keep) end
local line = ("fuzz: %d batches, %d calls, %d callables, %d crashes"):format(batches, calls, ncallables, crashes)
if oracle > 0 then line = line .. (", %d oracle failures"):format(oracle) end
print(line .. " (" .. flavour .. ")")
os.exit((crashes == 0 and oracle == 0 and batches == opt.seeds) and 0 or 1)
