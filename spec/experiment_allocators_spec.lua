-- allocators: one workload under glibc malloc and each allocator LD_PRELOAD can put in
-- its place; what each gives back to the kernel, and when.
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local P = { small_blocks = 50000, large_blocks = 4 }

describe("the allocators experiment", function()
  local r
  setup(function() r = experiments.run("allocators", P) end)

  it("runs glibc's child and says why any other allocator did not run", function()
    assert.equal("glibc", r.allocators[1].name)
    for _, m in ipairs(r.missing) do assert.matches("%S", m.why) end
    assert.equal(#r.allocators + #r.missing, 4)
  end)

  it("finds in each child's own maps the allocator LD_PRELOAD put there", function()
    if #r.allocators < 2 then
      return vassert.pending("no allocator besides glibc could run here: " .. r.missing[1].why)
    end
    vassert.claim_holds(r, "preload_serves")
  end)

  it("shows glibc returning a freed mmap'd block at once, then raising its mmap threshold", function()
    vassert.claim_holds(r, "glibc_large_at_once")
    vassert.claim_holds(r, "glibc_threshold_rises")
  end)

  it("shows that scattered frees give nothing back, and that malloc_trim returns glibc's free memory", function()
    vassert.claim_holds(r, "scattered_free_kept")
    vassert.claim_holds(r, "glibc_trim_returns")
    local g = r.allocators[1]
    assert.within(g.small_growth, P.small_blocks * 64 * 0.8, P.small_blocks * 64 * 4, "glibc small_growth")
  end)

  it("decides its claims from the numbers it is given", function()
    local e = experiments.get("allocators")
    local function rec(name, served, kept_purge)
      return { name = name, served_by = served, large_returned_first_percent = 100, large_returned_second_percent = 0,
        small_growth = 1 << 20, kept_after_9_of_10_percent = 100, kept_after_all_percent = 100,
        kept_after_purge_percent = kept_purge }
    end
    local good = { allocators = { rec("glibc", "glibc", 5), rec("jemalloc", "jemalloc", 90) }, missing = {} }
    local claims = { claims = experiments.decide(e, good) }
    for _, id in ipairs { "preload_serves", "glibc_large_at_once", "glibc_trim_returns", "allocators_differ" } do
      assert.is_true(experiments.claim(claims, id).holds, id)
    end
    -- a preload that did not take, and a glibc that kept its freed memory after trimming
    local bad = { allocators = { rec("glibc", "glibc", 95), rec("jemalloc", "glibc", 95) }, missing = {} }
    claims = { claims = experiments.decide(e, bad) }
    assert.is_false(experiments.claim(claims, "preload_serves").holds)
    assert.is_false(experiments.claim(claims, "glibc_trim_returns").holds)
    assert.is_false(experiments.claim(claims, "allocators_differ").holds)
    -- glibc's child served by something else: its claims are skipped with the reason
    local other = { allocators = { rec("glibc", "asan", 5) }, missing = {} }
    claims = { claims = experiments.decide(e, other) }
    local c = experiments.claim(claims, "glibc_trim_returns")
    assert.equal("skipped", c.holds)
    assert.matches("served by asan", c.why)
  end)

  it("refuses an allocator it does not know, before starting anything", function()
    assert.has_error(function() experiments.run("allocators", { allocators = "glibc,nosuch" }) end,
      "experiment 'allocators': parameter 'allocators': must be one of glibc, jemalloc, mimalloc, tcmalloc, got nosuch")
  end)
end)
