-- The tlb experiment: time per access in page order, random order and a pointer chase, base and huge pages.
-- Robust claims are checked live (no faults are timed; huge pages are granted where THP is on; a chase is many
-- times slower than page order). The claims about small speed differences (random vs page order, huge vs base
-- pages) are ratios a noisy machine may not show: live, the spec checks only that they were decided; their
-- decide functions are checked with results of both kinds.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"
local kernel = require "vmlab.kernel"

local MiB = 1024 * 1024
local HUGE = kernel().huge_page_size or 0
local SIZE = math.max(64 * MiB, 2 * HUGE)

local function decided(result, id)
  local e = experiments.get("tlb")
  return experiments.claim({ claims = experiments.decide(e, result) }, id)
end

-- a timing claim: decided (held or not) from this run's ratio where the machine can show it
local function timing_decided(result, id)
  local c = experiments.claim(result, id)
  if c.expected == false then return vassert.pending("this machine cannot show it: " .. tostring(c.why)) end
  assert.is_true(c.holds == true or c.holds == false, id .. " was not decided: " .. tostring(c.why))
  assert.matches("ratio %d+%.%d+", c.evidence)
  if c.holds == false then assert.is_true(type(c.why) == "string" and #c.why > 0) end
end

describe("the tlb experiment", function()
  local res
  setup(function()
    res = experiments.run("tlb", { size = SIZE, accesses = 100000, repeats = 1 })
  end)

  local function ok_ns(x) return type(x) == "number" and x > 0 and x < 1e6 end

  it("derives its defaults from this machine's page sizes", function()
    local e = experiments.get("tlb")
    local d = experiments.defaults(e)
    assert.equal(vm.page_size + 64, d.stride)
    assert.is_true(d.size >= 2 * HUGE and e.tour.size >= 2 * HUGE)
    assert.equal(vm.page_size, res.page_size)
    assert.equal(kernel().huge_page_size, res.huge_page_size)
    assert.error_matches(function() experiments.run("tlb", { size = SIZE, stride = vm.page_size - 1 }) end,
      "parameter 'stride': " .. (vm.page_size - 1) .. "B is below the minimum")
  end)

  it("times base pages in page order, random order and a chase, in ns per access", function()
    assert.is_nil(res.skipped)
    assert.is_true(ok_ns(res.small_sequential_ns), tostring(res.small_sequential_ns))
    assert.is_true(ok_ns(res.small_random_ns), tostring(res.small_random_ns))
    assert.is_true(ok_ns(res.small_chase_ns), tostring(res.small_chase_ns))
    assert.equal(0, res.anon_huge_bytes_small, "the base-page case must not get huge pages")
  end)

  it("walks whole passes over pre-faulted memory, so no page fault is timed", function()
    local per_pass = (SIZE + res.stride - 1) // res.stride
    assert.equal(0, res.accesses % per_pass)
    assert.is_true(res.accesses >= 100000)
    vassert.claim_holds(res, "prefaulted")
    assert.is_true(res.small_faults <= 8, res.small_faults .. " faults during the timed walks")
  end)

  it("a pointer chase is many times slower than reads in page order", function()
    vassert.claim_holds(res, "chase_slower")
  end)

  it("gets huge pages with MADV_HUGEPAGE where THP is on, and times them", function()
    local c = vassert.claim_holds(res, "huge_pages_backed")
    if c.expected == false then
      assert.is_string(res.huge_skipped)
      assert.equal("skipped", c.holds)
      return
    end
    assert.is_true(res.anon_huge_bytes >= SIZE // 2, "AnonHugePages " .. res.anon_huge_bytes)
    assert.is_true(ok_ns(res.huge_sequential_ns))
    assert.is_true(ok_ns(res.huge_random_ns))
    assert.is_true(ok_ns(res.huge_chase_ns))
    assert.is_true(res.huge_faults <= 8, res.huge_faults .. " faults during the timed walks")
  end)

  it("decides the speed claims from this run's ratios (held or not: the ratio is the evidence)", function()
    timing_decided(res, "random_slower")
    timing_decided(res, "huge_faster_random")
  end)

  describe("decides its claims from the numbers it is given, not from the machine", function()
    local P, H = vm.page_size, 512 * vm.page_size -- a fed result: any page sizes decide the same way
    local base = { size = 64 * MiB, stride = P + 64, accesses = 100000, page_size = P, huge_page_size = H,
      small_faults = 0, huge_faults = 0, anon_huge_bytes_small = 0, anon_huge_bytes = 64 * MiB }
    local function with(t) return setmetatable(t, { __index = base }) end
    local fast_huge = with { small_sequential_ns = 10, small_random_ns = 40, small_chase_ns = 300,
      huge_sequential_ns = 8, huge_random_ns = 20, huge_chase_ns = 150 }
    local noisy = with { small_sequential_ns = 30, small_random_ns = 25, small_chase_ns = 40,
      huge_sequential_ns = 30, huge_random_ns = 26, huge_chase_ns = 45 }

    it("speed claims hold past their margin and not below it", function()
      assert.is_true(decided(fast_huge, "random_slower").holds)
      assert.is_true(decided(fast_huge, "chase_slower").holds)
      assert.is_true(decided(fast_huge, "huge_faster_random").holds)
      assert.matches("ratio 2%.00", decided(fast_huge, "huge_faster_random").evidence)
      local c = decided(noisy, "random_slower")
      assert.is_false(c.holds)
      assert.matches("ratio 0%.83", c.evidence)
      assert.matches("noisy machine", c.why)
      assert.is_false(decided(noisy, "chase_slower").holds)
      assert.is_false(decided(noisy, "huge_faster_random").holds)
      -- a ratio just above 1 is inside the margin: not counted as faster
      assert.is_false(decided(with { small_sequential_ns = 10, small_random_ns = 10.5, small_chase_ns = 15,
        huge_sequential_ns = 10, huge_random_ns = 10, huge_chase_ns = 14.5 }, "random_slower").holds)
    end)

    it("faults in the timed walks and missing huge pages are said as such", function()
      assert.is_true(decided(fast_huge, "prefaulted").holds)
      assert.is_false(decided(with { small_faults = 16384, small_sequential_ns = 1, small_random_ns = 1,
        small_chase_ns = 1 }, "prefaulted").holds)
      assert.is_true(decided(fast_huge, "huge_pages_backed").holds)
      local frag = decided(with { anon_huge_bytes = 4 * MiB, huge_skipped = "the kernel gave only 4.0 MiB" },
        "huge_pages_backed")
      assert.is_false(frag.holds)
      assert.matches("AnonHugePages: 4%.0 MiB of 64%.0 MiB", frag.evidence)
      local never = decided(with { anon_huge_bytes = false, huge_skipped = "transparent huge pages are off" },
        "huge_faster_random")
      assert.equal("skipped", never.holds)
      assert.equal("skipped", decided({ skipped = "no madvise" }, "random_slower").holds)
    end)

    it("its report says a claim that did not hold, with the ratio", function()
      local e = experiments.get("tlb")
      local r = with { small_sequential_ns = 30, small_random_ns = 25, small_chase_ns = 40, huge_sequential_ns = 30,
        huge_random_ns = 26, huge_chase_ns = 45, passes = 1, thp = "madvise" }
      r.claims = experiments.decide(e, r)
      local text = require("vmlab.report").text({ experiment = "tlb", params = {}, result = r })
      assert.matches("DID NOT HOLD%s+reading one byte per page in random page order", text)
      assert.matches("ratio 0%.83", text)
      assert.not_matches("nearly every access misses the TLB", text) -- the held-only explanation is not said
    end)
  end)
end)
