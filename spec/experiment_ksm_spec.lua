-- ksm: identical pages advised MERGEABLE are merged by KSM into one frame, a
-- write unmerges one (copy-on-write); pages of different contents never merge.
-- Root starts KSM for the run; its settings are as before afterwards, also
-- after a SIGKILL of the process that changed them.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local KSM = "/sys/kernel/mm/ksm/"

local first_line = vm.proc.first_line

-- Every KSM setting (the files root may write) with its value, and the
-- counters of merged pages.
local function ksm_state()
  local t = {}
  local p = io.popen("find " .. KSM .. " -maxdepth 1 -type f -perm -u+w 2>/dev/null")
  for path in (p and p:read("a") or ""):gmatch("[^\n]+") do t[path:match("[^/]+$")] = first_line(path) end
  if p then p:close() end
  t.pages_shared, t.pages_sharing = first_line(KSM .. "pages_shared"), first_line(KSM .. "pages_sharing")
  return t
end

local function wait_for(state, seconds)
  local now
  for _ = 1, seconds * 10 do
    now = ksm_state()
    local same = true
    for k, v in pairs(state) do if now[k] ~= v then same = false end end
    if same then return true, now end
    vm.sleep(0.1)
  end
  return false, now
end

describe("the ksm experiment", function()
  local before
  setup(function()
    -- another vmlab process changing KSM's settings for its run (it holds the lock): wait for it
    local lock = experiments.get("ksm").lock_path
    for _ = 1, 300 do
      local p = io.popen("readlink " .. require("vmlab.undo").quote(lock) .. " 2>/dev/null")
      local held = p:read("a") ~= ""
      p:close()
      if not held then break end
      vm.sleep(0.1)
    end
    before = ksm_state()
  end)
  teardown(function()
    local same, now = wait_for(before, 10)
    assert.is_true(same, "KSM's settings are not as before: " .. require("vmlab.report").json(now))
  end)

  describe("identical pages", function()
    local r
    setup(function() r = experiments.run("ksm", { size = 32 * vm.page_size, timeout = 5 }) end)

    it("are merged by KSM, into one frame, and Pss falls", function()
      vassert.claim_holds(r, "merged")
      vassert.claim_holds(r, "pss_drops")
      assert.equal(32, r.before.exclusive_pages or 32)
    end)

    it("map one physical frame once merged (PFNs)", function()
      vassert.claim_holds(r, "same_frame")
      assert.equal(32, r.before.distinct_frames)
      assert.equal(1, r.merged.distinct_frames)
    end)

    it("unmerge one page on a write: one copy-on-write fault", function()
      vassert.claim_holds(r, "write_unmerges")
      assert.within(r.write_faults, 1, 2)
    end)

    it("leave KSM's settings as they were", function()
      if not r.ksm_refused and r.restored ~= nil then
        assert.is_true(r.restored, tostring(r.restore_error))
      end
      local same, now = wait_for(before, 10)
      for k, v in pairs(before) do assert.equal(v, now[k], k) end
      assert.is_true(same)
    end)
  end)

  describe("pages of different contents (--content distinct)", function()
    local r
    setup(function() r = experiments.run("ksm", { size = 32 * vm.page_size, content = "distinct", timeout = 3 }) end)

    it("are not merged, and a write to one is no fault at all", function()
      if not vassert.requires("ksm_usable") then return end
      for _, id in ipairs { "merged", "pss_drops", "write_unmerges" } do
        local c = experiments.claim(r, id)
        assert.is_false(c.holds, id .. ": " .. tostring(c.evidence))
      end
      if r.merged.distinct_frames then
        assert.is_false(experiments.claim(r, "same_frame").holds)
        assert.equal(32, r.merged.distinct_frames)
      end
      assert.equal(0, r.write_faults)
      assert.matches("different contents", experiments.claim(r, "merged").why, 1, true)
    end)
  end)

  it("puts KSM's settings back when the process that changed them is killed with SIGKILL (the undo watcher)",
    function()
      if not vassert.requires("ksm", "root") then return end
      local q = require("vmlab.undo").quote
      local p = assert(io.popen(("LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s 2>&1"):format(q(package.path),
        q(package.cpath), q([[
        local vm = require "vmlab"
        require("vmlab.kernel")()
        vm.set_touch_hook(function() -- the write after merging: KSM is started and sped up
          local f = io.open("/sys/kernel/mm/ksm/run"); print("run " .. f:read("l")); f:close()
          io.stdout:flush()
          vm.kill(vm.getpid(), "KILL")
        end)
        require("vmlab.experiments").run("ksm", { size = 16 * vm.page_size, timeout = 5 })]]))))
      local out = p:read("a")
      p:close()
      assert.matches("run 1", out, 1, true) -- it was killed while KSM ran for it
      local same, now = wait_for(before, 10)
      for k, v in pairs(before) do assert.equal(v, now[k], k) end
      assert.is_true(same)
    end)

  it("refuses bad params with a clear message", function()
    assert.error_matches(function() experiments.run("ksm", { size = vm.page_size }) end,
      "experiment 'ksm': parameter 'size': %S+ is below the minimum %S+") -- one page; two at least
    assert.error_matches(function() experiments.run("ksm", { timeout = 0 }) end,
      "experiment 'ksm': parameter 'timeout': 0 s is below the minimum 10%.0 ms")
  end)

  it("decides its claims from the numbers it is given", function()
    local e = experiments.get("ksm")
    local ps = vm.page_size
    local n = 32
    local function snap(t)
      t.rss = t.rss or n * ps
      return t
    end
    local merged = { pages = n, content = "same", ksm_run_before = 0, started = true, wait_seconds = 0.05,
      full_scans = 2, write_faults = 1, max_page_sharing = 256,
      before = snap { distinct_frames = n, exclusive_pages = n, merging_pages = 0, smaps_ksm = 0, pss = n * ps,
        pages_shared = 0, pages_sharing = 0, frame0 = 100, frame1 = 101, page0_exclusive = true },
      merged = snap { distinct_frames = 1, exclusive_pages = 0, merging_pages = n, smaps_ksm = n * ps, pss = ps,
        pages_shared = 1, pages_sharing = n - 1, frame0 = 7, frame1 = 7, page0_exclusive = false },
      after_write = snap { distinct_frames = 2, exclusive_pages = 1, merging_pages = n - 1,
        smaps_ksm = (n - 1) * ps, pss = 2 * ps, pages_shared = 1, pages_sharing = n - 2, frame0 = 200, frame1 = 7,
        page0_exclusive = true } }
    local apart = { pages = n, content = "distinct", ksm_run_before = 0, started = true, wait_seconds = 0.05,
      full_scans = 4, write_faults = 0, max_page_sharing = 256,
      before = merged.before,
      merged = snap { distinct_frames = n, exclusive_pages = n, merging_pages = 0, smaps_ksm = 0, pss = n * ps,
        pages_shared = 0, pages_sharing = 0, frame0 = 100, frame1 = 101, page0_exclusive = true },
      after_write = snap { distinct_frames = n, exclusive_pages = n, merging_pages = 0, smaps_ksm = 0,
        pss = n * ps, pages_shared = 0, pages_sharing = 0, frame0 = 100, frame1 = 101, page0_exclusive = true } }
    local a = { claims = experiments.decide(e, merged) }
    local b = { claims = experiments.decide(e, apart) }
    for _, id in ipairs { "merged", "same_frame", "pss_drops", "write_unmerges" } do
      assert.is_true(experiments.claim(a, id).holds, id)
      assert.is_false(experiments.claim(b, id).holds, id)
    end
    -- without frame numbers (not root) the frame claim has no evidence; the rest still decide
    local hidden = {}
    for k, v in pairs(merged) do hidden[k] = v end
    for _, s in ipairs { "before", "merged", "after_write" } do
      hidden[s] = {}
      for k, v in pairs(merged[s]) do hidden[s][k] = v end
      hidden[s].distinct_frames, hidden[s].frame0, hidden[s].frame1 = nil, nil, nil
    end
    local h = { claims = experiments.decide(e, hidden) }
    assert.equal("skipped", experiments.claim(h, "same_frame").holds)
    assert.is_true(experiments.claim(h, "merged").holds)
    assert.is_true(experiments.claim(h, "write_unmerges").holds)
    -- KSM stopped and not root: every claim skipped with the reason
    local refused = { pages = n, content = "same", ksm_run_before = 0,
      ksm_refused = "KSM is not running (/sys/kernel/mm/ksm/run is 0) and only root may start it" }
    local c = { claims = experiments.decide(e, refused) }
    for _, id in ipairs { "merged", "same_frame", "pss_drops", "write_unmerges" } do
      assert.equal("skipped", experiments.claim(c, id).holds, id)
      assert.matches("only root", experiments.claim(c, id).why, 1, true)
    end
  end)
end)
