-- The mlock experiment: pinning faults everything in at once; RLIMIT_MEMLOCK caps it.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"

local MiB = 1024 * 1024
-- 16 MiB, or half of RLIMIT_MEMLOCK when that is less (an unprivileged run may lock that much).
local SIZE = 16 * MiB
local soft = vm.getrlimit("memlock")
if math.type(soft) == "integer" and soft < 2 * SIZE then
  SIZE = math.max(16 * vm.page_size, soft // 2 // vm.page_size * vm.page_size)
end

describe("the mlock experiment", function()
  local res
  setup(function()
    res = experiments.run("mlock", { size = SIZE, limit = MiB, small = 256 * 1024, big = 4 * MiB })
  end)

  local function locked_here()
    if res.lock_error then
      pending("this process may not lock " .. SIZE .. " bytes: " .. res.lock_message)
      return false
    end
    return true
  end

  it("mlock makes every page resident before any access", function()
    if not locked_here() then return end
    assert.equal(0, res.resident_before)
    assert.equal(res.pages, res.resident_after_lock)
    assert.equal(0, res.touch_faults_after_lock, "writing locked pages faults nothing")
  end)

  it("RSS grows by the size at once and VmLck shows the locked bytes until munlock", function()
    if not locked_here() then return end
    local g = res.rss_growth_lock
    assert.is_true(g >= SIZE * 0.95 and g <= SIZE * 1.1 + 2 * MiB, "RSS grew by " .. g)
    local lck = res.vmlck_after_lock
    assert.is_true(lck >= SIZE and lck <= SIZE + MiB, "VmLck " .. lck)
    assert.is_true(res.vmlck_after_unlock < MiB, "VmLck after munlock " .. res.vmlck_after_unlock)
  end)

  it("without CAP_IPC_LOCK, locking past RLIMIT_MEMLOCK is refused with a clear message", function()
    local l = res.limit
    if l.skipped then return pending(l.skipped) end
    assert.is_true(l.small_ok, "locking within the limit works")
    assert.is_false(l.big_ok, "locking past the limit must fail")
    assert.matches("^mlock: ", l.big_error)
    assert.is_true(l.big_errno == 12 or l.big_errno == 1, "ENOMEM or EPERM, got " .. tostring(l.big_errno))
    assert.matches("RLIMIT_MEMLOCK is", l.message)
    assert.matches("ulimit %-l", l.message)
  end)

  it("explains what the numbers show", function()
    local text = table.concat(experiments.get("mlock").explain(res), "\n")
    assert.matches("RLIMIT_MEMLOCK", text)
  end)
end)
