-- The mlock experiment: pinning faults everything in at once; RLIMIT_MEMLOCK caps a
-- process without CAP_IPC_LOCK, and does not stop one with it (root).
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local MiB = 1024 * 1024
local SIZE = 16 * MiB

describe("the mlock experiment", function()
  local res
  setup(function()
    res = experiments.run("mlock", { size = SIZE, limit = MiB, small = 256 * 1024, big = 4 * MiB })
  end)

  it("mlock makes every page resident before any access", function()
    local c = vassert.claim_holds(res, "lock_faults_in")
    if c.holds == true then
      assert.equal(0, res.resident_before)
      assert.equal(res.locked_pages, res.resident_after_lock)
      assert.within(res.touch_faults_after_lock, 0, 8, "faults writing locked pages")
    end
  end)

  it("locks the whole size where the limit or CAP_IPC_LOCK allows it, else what fits", function()
    local soft = vm.getrlimit("memlock")
    if res.privileged or SIZE <= soft then
      assert.equal(SIZE, res.locked)
      assert.is_nil(res.lock_error)
    else
      assert.matches("RLIMIT_MEMLOCK is", res.lock_message)
      assert.within(res.locked, vm.page_size, soft, "bytes locked within the limit")
    end
  end)

  it("VmLck shows the locked bytes until munlock", function()
    local c = vassert.claim_holds(res, "vmlck_counts")
    if c.holds == true then assert.within(res.vmlck_after_unlock, 0, MiB, "VmLck after munlock") end
  end)

  it("without CAP_IPC_LOCK, locking past RLIMIT_MEMLOCK is refused with a clear message", function()
    vassert.claim_holds(res, "limit_refuses")
    local l = res.limit
    assert.is_true(l.big_errno == 12 or l.big_errno == 1, "ENOMEM or EPERM, got " .. tostring(l.big_errno))
    assert.matches("^mlock: ", l.big_error)
    assert.matches("RLIMIT_MEMLOCK is", l.message)
    assert.matches("ulimit %-l", l.message)
  end)

  it("with CAP_IPC_LOCK the limit does not stop a lock (root)", function()
    vassert.claim_holds(res, "cap_lifts_limit")
    assert.is_true(res.limit_here.big_ok)
  end)

  it("decides each claim from the numbers it is given", function()
    local e = experiments.get("mlock")
    local function decided(r, id) return experiments.claim({ claims = experiments.decide(e, r) }, id) end
    local N = SIZE // vm.page_size
    local locked = { locked = SIZE, locked_pages = N, resident_before = 0, resident_after_lock = N,
      rss_growth_lock = SIZE, lock_seconds = 0.01, touch_faults_after_lock = 0, vmlck_before = 0,
      vmlck_after_lock = SIZE, vmlck_after_unlock = 0, memlock_limit = 8 * MiB }
    assert.is_true(decided(locked, "lock_faults_in").holds)
    assert.is_true(decided(locked, "vmlck_counts").holds)
    local lazy = setmetatable({ resident_after_lock = 0, rss_growth_lock = 0, touch_faults_after_lock = N,
      vmlck_after_lock = 0 }, { __index = locked })
    assert.is_false(decided(lazy, "lock_faults_in").holds)
    assert.is_false(decided(lazy, "vmlck_counts").holds)
    local refused = { small = 256 * 1024, big = 4 * MiB, limit = MiB, how = "a child", small_ok = true,
      big_ok = false, big_error = "mlock: Cannot allocate memory", big_errno = 12 }
    local granted = setmetatable({ big_ok = true, big_error = false, big_errno = false }, { __index = refused })
    assert.is_true(decided({ limit = refused, limit_here = granted }, "limit_refuses").holds)
    assert.is_false(decided({ limit = granted, limit_here = granted }, "limit_refuses").holds)
    assert.is_true(decided({ limit = refused, limit_here = granted }, "cap_lifts_limit").holds)
    local c = decided({ limit = refused, limit_here = refused }, "cap_lifts_limit")
    assert.is_false(c.holds)
    assert.is_string(c.why)
    assert.equal("skipped", decided({ lock_error = "mlock: Operation not permitted" }, "lock_faults_in").holds)
  end)
end)
