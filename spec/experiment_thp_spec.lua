-- The thp experiment: a huge page costs one fault; base pages one each. Sizes come
-- from the probes (vm.page_size, the kernel's huge page size), never assumed.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local SANITIZED = os.getenv("VMLAB_SANITIZED") == "1"
local HUGE = require("vmlab.kernel")().huge_page_size or vm.page_size * (vm.page_size // 8)
local SIZE = 16 * HUGE

describe("the thp experiment", function()
  local res, plain
  setup(function()
    res = experiments.run("thp", { size = SIZE })
    -- the other kind, on any machine: the second region refuses huge pages too
    plain = experiments.run("thp", { size = SIZE, advice = "nohugepage" })
  end)

  it("uses the probed page and huge page sizes", function()
    assert.equal(vm.page_size, res.page_size)
    assert.equal(HUGE, res.huge_page_size)
    assert.equal(SIZE, res.size)
    assert.equal(16, res.chunks)
  end)

  it("with MADV_NOHUGEPAGE, every base page costs one fault and no huge page appears", function()
    vassert.claim_holds(res, "base_page_faults")
    local pages = SIZE // vm.page_size
    -- Under ASan each 8 bytes written also read a shadow byte, whose fresh pages fault too.
    assert.within(res.faults_small, pages * 0.98, SANITIZED and pages * 1.2 or pages * 1.02, "faults")
    assert.equal(0, res.anon_huge_bytes_small)
  end)

  it("with MADV_HUGEPAGE, smaps shows AnonHugePages and there is about one fault per huge page", function()
    local c = vassert.claim_holds(res, "huge_pages_backed")
    vassert.claim_holds(res, "huge_page_faults")
    if c.holds == true then
      assert.within(res.anon_huge_bytes, SIZE // 2, SIZE, "AnonHugePages")
      assert.is_true(res.faults_huge * 4 < res.faults_small)
    end
  end)

  it("a huge page is one contiguous, aligned run of frames", function()
    local c = vassert.claim_holds(res, "huge_frames_contiguous")
    assert.is_true(c.holds, c.why) -- (the global assert also lets vassert find busted's pending here)
    assert.within(res.contiguous_chunks, 1, res.chunks, "contiguous chunks")
  end)

  it("a region advised MADV_NOHUGEPAGE twice decides the huge-page claims as not held, saying why", function()
    for _, id in ipairs { "huge_pages_backed", "huge_page_faults" } do
      local c = experiments.claim(plain, id)
      assert.equal(false, c.holds, id .. ": " .. tostring(c.evidence))
      assert.matches("NOHUGEPAGE", c.why)
    end
    assert.equal(true, experiments.claim(plain, "base_page_faults").holds)
    local text = require("vmlab.report").text({ experiment = "thp", params = {}, result = plain })
    assert.matches("DID NOT HOLD%s+a huge page costs one fault", text)
  end)

  it("decides from the numbers it is given: huge pages with one fault each hold, base pages do not", function()
    local e = experiments.get("thp")
    local pages = SIZE // vm.page_size
    local base = { size = SIZE, page_size = vm.page_size, huge_page_size = HUGE, chunks = 16, advice = "hugepage",
      mode = "always", defrag = "madvise", faults_small = pages, anon_huge_bytes_small = 0 }
    local function decided(fields, id)
      return experiments.claim({ claims = experiments.decide(e, setmetatable(fields, { __index = base })) }, id)
    end
    local huge = { anon_huge_bytes = SIZE, faults_huge = 16, contiguous_chunks = 16 }
    local small = { anon_huge_bytes = 0, faults_huge = pages, contiguous_chunks = 0 }
    for _, id in ipairs { "huge_pages_backed", "huge_page_faults", "huge_frames_contiguous" } do
      assert.is_true(decided(huge, id).holds, id)
      assert.is_false(decided(small, id).holds, id)
    end
    assert.is_false(decided({ faults_small = 16 }, "base_page_faults").holds)
  end)
end)
