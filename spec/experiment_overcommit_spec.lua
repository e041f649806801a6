-- overcommit: what the kernel promises, and what malloc(500 GiB) gets under the policy.
-- The claims are decided for the policy the run found (0, 1 or 2), from what each request got.
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local GiB = 1024 ^ 3

describe("the overcommit experiment", function()
  local r
  setup(function() r = experiments.run("overcommit") end)

  it("reports the policy of /proc/sys/vm/overcommit_memory and the commit figures", function()
    local f = assert(io.open("/proc/sys/vm/overcommit_memory"))
    assert.equal(math.tointeger(tonumber(f:read("l"))), r.policy)
    f:close()
    assert.is_true(r.commit_limit > 0 and r.committed_as > 0 and r.mem_total > 0)
    assert.equal(5, #r.attempts)
  end)

  it("the policy decides the 500 GiB request", function()
    vassert.claim_holds(r, "policy_decides")
    local mm = experiments.get("overcommit").find(r, "mmap", 500 * GiB)
    if r.policy == 1 then assert.is_true(mm.ok) end
    if r.policy == 0 and 500 * GiB > 1.05 * (r.mem_total + r.swap_total) then
      assert.is_false(mm.ok)
      assert.matches("Cannot allocate memory", mm.error)
    end
  end)

  it("a granted mapping (1 GiB; less under a tight policy 2) is charged at once but uses no memory", function()
    local c = vassert.claim_holds(r, "charged_not_used")
    local a = experiments.get("overcommit").find(r, "mmap", r.small)
    if r.policy ~= 2 then assert.equal(GiB, r.small) end
    if c.holds == true then
      assert.within(a.committed_growth, 0.75 * r.small, 2 * r.small, "Committed_AS growth")
      assert.within(a.rss_growth, 0, 16 * 1024 * 1024, "RSS growth")
    end
  end)

  it("MAP_NORESERVE is not charged (except under the strict policy)", function()
    vassert.claim_holds(r, "noreserve_uncharged")
  end)

  describe("decides every claim for the policy in the result, from what the requests got", function()
    local e = experiments.get("overcommit")
    local function result(policy, big_ok, nr_ok, nr_charge, small_charge)
      return { policy = policy, policy_name = "?", mem_total = 16 * GiB, swap_total = 0,
        commit_limit = policy == 2 and 8 * GiB or 16 * GiB, committed_as = GiB // 2, big = 500 * GiB, small = GiB,
        attempts = {
          { call = "malloc", size = 500 * GiB, ok = big_ok, committed_growth = big_ok and 0 or nil, rss_growth = 0 },
          { call = "mmap", size = 500 * GiB, ok = big_ok, committed_growth = big_ok and 500 * GiB or nil,
            rss_growth = 0, error = not big_ok and "mmap: Cannot allocate memory" or nil },
          { call = "mmap noreserve", size = 500 * GiB, ok = nr_ok, committed_growth = nr_ok and nr_charge or nil,
            rss_growth = nr_ok and 8192 or nil },
          { call = "malloc", size = GiB, ok = true, committed_growth = GiB, rss_growth = 16 * 1024 },
          { call = "mmap", size = GiB, ok = true, committed_growth = small_charge, rss_growth = 0 },
        } }
    end
    local function decided(res, id) return experiments.claim({ claims = experiments.decide(e, res) }, id).holds end

    it("policy 0: refusing 500 GiB holds, granting it does not", function()
      assert.is_true(decided(result(0, false, true, 0, GiB), "policy_decides"))
      assert.is_false(decided(result(0, true, true, 0, GiB), "policy_decides"))
    end)

    it("policy 1: granting 500 GiB holds, refusing it does not", function()
      assert.is_true(decided(result(1, true, true, 0, GiB), "policy_decides"))
      assert.is_false(decided(result(1, false, true, 0, GiB), "policy_decides"))
    end)

    it("policy 2: refusing 500 GiB holds, and a refused noreserve mapping is what the strict policy does", function()
      assert.is_true(decided(result(2, false, false, nil, GiB), "policy_decides"))
      assert.is_false(decided(result(2, true, true, 500 * GiB, GiB), "policy_decides"))
      assert.is_true(decided(result(2, false, false, nil, GiB), "noreserve_uncharged"))
    end)

    it("noreserve: granted without a charge holds under 0 and 1; a charge or a refusal does not", function()
      assert.is_true(decided(result(0, false, true, 0, GiB), "noreserve_uncharged"))
      assert.is_true(decided(result(1, true, true, 0, GiB), "noreserve_uncharged"))
      assert.is_false(decided(result(0, false, true, 400 * GiB, GiB), "noreserve_uncharged"))
      assert.is_false(decided(result(1, true, false, nil, GiB), "noreserve_uncharged"))
    end)

    it("the commit charge: about the size holds, none does not", function()
      assert.is_true(decided(result(0, false, true, 0, GiB), "charged_not_used"))
      assert.is_false(decided(result(0, false, true, 0, 0), "charged_not_used"))
    end)
  end)
end)
