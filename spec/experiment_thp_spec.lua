-- The thp experiment: a huge page costs one fault per 2 MiB.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"

local SANITIZED = os.getenv("VMLAB_SANITIZED") == "1"
local MiB = 1024 * 1024
local SIZE = 32 * MiB

describe("the thp experiment", function()
  local res
  setup(function() res = experiments.run("thp", { size = SIZE }) end)

  it("with MADV_NOHUGEPAGE, every 4 KiB page costs one fault and no huge page appears", function()
    local pages = SIZE // vm.page_size
    -- Under ASan each 8 pages written also read one fresh page of shadow memory: +1/8.
    local high = SANITIZED and pages * 1.2 or pages * 1.02
    assert.is_true(res.faults_small >= pages * 0.98 and res.faults_small <= high, res.faults_small .. " faults")
    assert.equal(0, res.anon_huge_bytes_small)
  end)

  it("with MADV_HUGEPAGE, smaps shows AnonHugePages and there is about one fault per 2 MiB", function()
    if res.skipped then return pending(res.skipped) end
    local huge = res.huge_page_size
    assert.is_true(res.anon_huge_bytes >= huge and res.anon_huge_bytes <= SIZE, "AnonHugePages " .. res.anon_huge_bytes)
    -- Each huge page is one fault; whatever did not get one costs a fault per 4 KiB.
    local expected = res.anon_huge_bytes // huge + (SIZE - res.anon_huge_bytes) // vm.page_size
    local slack = SANITIZED and SIZE // vm.page_size // 8 + 64 or 16
    assert.is_true(res.faults_huge >= res.anon_huge_bytes // huge, res.faults_huge .. " faults")
    assert.is_true(res.faults_huge <= expected + slack, res.faults_huge .. " faults, expected about " .. expected)
    assert.is_true(res.faults_huge * 4 < res.faults_small)
  end)

  it("a huge page is 512 consecutive frames starting on a 2 MiB boundary", function()
    if res.skipped then return pending(res.skipped) end
    if res.frames_contiguous == nil then return pending("frame numbers are hidden (pagemap needs CAP_SYS_ADMIN)") end
    if res.anon_huge_bytes < SIZE then return pending("the first 2 MiB may not have got a huge page") end
    assert.is_true(res.frames_contiguous)
    assert.is_true(res.first_frame_aligned)
  end)

  it("skips with the reason when THP is off", function()
    local mode = res.mode
    if mode ~= "never" then
      assert.is_nil(res.skipped and res.skipped:match("'never'"))
      return
    end
    assert.matches("never", res.skipped)
  end)
end)
