-- The tlb experiment: time per access in page order and random order, small and huge pages.
-- (No timing thresholds: a noisy VM decides those; the spec checks what was measured.)
local experiments = require "vmlab.experiments"

local MiB = 1024 * 1024
local SIZE = 64 * MiB

describe("the tlb experiment", function()
  local res
  setup(function()
    res = experiments.run("tlb", { size = SIZE, accesses = 100000, repeats = 1 })
  end)

  local function ok_ns(x) return type(x) == "number" and x > 0 and x < 1e6 end

  it("times 4 KiB pages in page order and in random order, in ns per access", function()
    assert.is_nil(res.skipped)
    assert.is_true(ok_ns(res.small_sequential_ns), tostring(res.small_sequential_ns))
    assert.is_true(ok_ns(res.small_random_ns), tostring(res.small_random_ns))
    assert.equal(0, res.anon_huge_bytes_small, "the 4 KiB case must not get huge pages")
  end)

  it("walks whole passes over pre-faulted memory, so no page fault is timed", function()
    local per_pass = (SIZE + res.stride - 1) // res.stride
    assert.equal(0, res.accesses % per_pass)
    assert.is_true(res.accesses >= 100000)
    assert.is_true(res.small_faults <= 8, res.small_faults .. " faults during the timed walks")
  end)

  it("times huge pages too, on memory smaps shows as AnonHugePages, or says why not", function()
    if res.huge_skipped then return pending(res.huge_skipped) end
    assert.is_true(res.anon_huge_bytes >= SIZE // 2, "AnonHugePages " .. res.anon_huge_bytes)
    assert.is_true(ok_ns(res.huge_sequential_ns))
    assert.is_true(ok_ns(res.huge_random_ns))
    assert.is_true(res.huge_faults <= 8, res.huge_faults .. " faults during the timed walks")
  end)
end)
