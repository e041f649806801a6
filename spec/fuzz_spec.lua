--- The fuzzer in `make test`: a few fixed seeds through fuzz/run.lua with the
-- build this suite runs (VMLAB_BUILD; under the sanitizer run the batches
-- inherit LD_PRELOAD and the ASan/UBSan options), and checks that the driver
-- sees a batch that dies, hangs or leaves a shared-memory object behind.
local root = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local build = os.getenv("VMLAB_BUILD") or (root .. "/build")

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- run.lua with args (and env assignments); its output and exit code
local function run(args, env)
  local cmd = ("cd %s && env %s lua5.4 fuzz/run.lua --build %s %s 2>&1"):format(q(root), env or "", q(build), args)
  local p = io.popen(cmd)
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

local function keep_dir()
  local d = os.tmpname()
  os.remove(d)
  return d
end

describe("the fuzzer (fuzz/run.lua)", function()
  it("runs 6 fixed seeds of 400 calls each with no crash, sanitizer report, hang or leftover object", function()
    local keep = keep_dir()
    local out, code = run("--seeds 6 --first 9001 --calls 400 --jobs 2 --timeout 240 --quiet --keep " .. q(keep))
    os.execute("rm -rf " .. q(keep))
    assert.is_truthy(out:match("fuzz: 6 batches, %d+ calls, %d+ callables, 0 crashes"), out)
    local calls = tonumber(out:match("fuzz: 6 batches, (%d+) calls"))
    assert.is_true(calls >= 6 * 300, out) -- calls the constraints skip do not count
    assert.equal(0, code, out)
  end)

  for _, case in ipairs {
    { what = "segv", says = "dies of a signal", status = { "crash", "sanitizer" } },
    { what = "hang", says = "hangs past its timeout (killed by pid)", status = { "hang" } },
    { what = "leftover", says = "leaves a /dev/shm object behind", status = { "leftover" } },
  } do
    it("reports a batch that " .. case.says .. ", naming its last call, and exits non-zero", function()
      local keep = keep_dir()
      local out, code = run("--seeds 1 --first 7 --calls 20 --jobs 1 --timeout " .. (case.what == "hang" and 5 or 120)
        .. " --keep " .. q(keep),
        "FUZZ_SELFTEST=" .. case.what)
      local log = io.open(keep .. "/" .. (out:match("batch (%S+) seed") or "?") .. "-seed7.log")
      local kept = log and log:read("a") or ""
      if log then log:close() end
      os.execute("rm -rf " .. q(keep))
      local status = out:match("batch %S+ seed 7: (%a+)")
      local seen = false
      for _, s in ipairs(case.status) do seen = seen or s == status end
      assert.is_true(seen, out)
      if case.what ~= "leftover" then -- the batch that died or hung names the call it died in
        assert.is_truthy(out:find("last: seed=7 i=1 call selftest-" .. case.what, 1, true), out)
      end
      assert.is_truthy(kept:find("selftest-" .. case.what, 1, true), "the failing batch's log is kept")
      assert.is_truthy(out:match("fuzz: 1 batches, %d+ calls, %d+ callables, 1 crashes"), out)
      assert.is_true(code ~= 0, out)
      local p = io.popen("ls /dev/shm")
      local shm = p:read("a")
      p:close()
      assert.is_falsy(shm:find("vmlab-fuzz-%d+-selftest"), "run.lua removes the batch's leftovers")
    end)
  end
end)
