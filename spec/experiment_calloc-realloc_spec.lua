-- The calloc-realloc experiment: a large calloc maps nothing until touched, reads as zeros, reading it maps the
-- zero page where the kernel has one, writing it grows RSS by its size; realloc of a large block remaps its pages
-- (the allocator's choice: decided from frames or page faults, not from glibc's thresholds).
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local MiB = 1024 * 1024
local SIZE = 64 * MiB
local N = SIZE // vm.page_size

local function decided(result, id)
  local e = experiments.get("calloc-realloc")
  return experiments.claim({ claims = experiments.decide(e, result) }, id)
end

describe("the calloc-realloc experiment", function()
  local res
  setup(function() res = experiments.run("calloc-realloc", { size = SIZE }) end)

  it("a large calloc maps nothing: the block's pages are not present, whatever the allocator", function()
    vassert.claim_holds(res, "calloc_lazy")
    assert.equal(N, res.pages)
    assert.within(res.calloc_present, 0, 4, "pages present after calloc")
  end)

  it("calloc'd memory reads as zeros", function()
    vassert.claim_holds(res, "calloc_zeros")
    assert.is_true(res.sampled_pages >= 2)
  end)

  it("reading calloc'd memory maps no memory where the kernel maps the zero page", function()
    vassert.claim_holds(res, "read_maps_nothing")
    assert.is_true(res.rss_growth_read < SIZE // 32, "reading grew RSS by " .. res.rss_growth_read)
  end)

  it("without the zero page, reading it gives every page a frame, and the claim says so", function()
    if require("vmlab.kernel")().zero_page ~= false then
      return pending("this kernel maps the zero page for reads")
    end
    local c = experiments.claim(res, "read_maps_nothing")
    assert.is_false(c.holds)
    assert.matches("RSS %+", c.evidence)
    assert.matches("does not map the zero page", c.why)
    assert.within(res.rss_growth_read, 0.9 * SIZE, 1.1 * SIZE, "rss_growth_read")
  end)

  it("writing calloc'd memory grows RSS by its size", function()
    vassert.claim_holds(res, "write_grows_rss")
    assert.within(math.max(res.rss_growth_calloc_to_written, res.rss_growth_write), 0.9 * SIZE, 1.1 * SIZE,
      "RSS growth from calloc to written")
    assert.within(res.write_faults, 0, 1.1 * N, "write_faults")
  end)

  it("realloc keeps the data", function()
    assert.equal(res.sampled_pages, res.intact_pages)
    assert.equal("integer", math.type(res.old_address))
    assert.equal("integer", math.type(res.new_address))
  end)

  it("growing a large block with the C library's malloc copies nothing: no faults, the same frames", function()
    vassert.claim_holds(res, "realloc_no_copy")
    assert.is_true(res.realloc_faults * 10 < res.fill_faults,
      ("realloc took %d faults, writing the block %d"):format(res.realloc_faults, res.fill_faults))
    if res.frames_kept then assert.equal(res.frames_sampled, res.frames_kept) end
  end)

  describe("decides its claims from the numbers it is given, not from the machine", function()
    local base = { size = SIZE, pages = N, rss_growth_calloc = 8192, calloc_present = 1, zero_pages = 16,
      sampled_pages = 16, rss_growth_write = SIZE, write_faults = N, old_address = 0x7f0000000000,
      new_address = 0x7f1000000000, moved = true, realloc_seconds = 0.001, write_seconds = 0.1,
      fill_faults = N, intact_pages = 16 }
    local function with(t) return setmetatable(t, { __index = base }) end

    it("a calloc that cleared its block, or reads that are not zero, are said as such", function()
      assert.is_true(decided(base, "calloc_lazy").holds)
      local cleared = decided(with { calloc_present = N, rss_growth_calloc = SIZE }, "calloc_lazy")
      assert.is_false(cleared.holds)
      assert.matches("16,384 of 16,384 pages present", cleared.evidence)
      assert.matches("cleared", cleared.why)
      assert.is_true(decided(base, "calloc_zeros").holds)
      assert.is_false(decided(with { zero_pages = 15 }, "calloc_zeros").holds)
    end)

    it("reads on the zero page hold; reads that got frames do not", function()
      local zero = decided(with { rss_growth_read = 0, read_present = N, read_pfnzero = N }, "read_maps_nothing")
      assert.is_true(zero.holds, zero.evidence)
      local own = decided(with { rss_growth_read = SIZE, read_present = N, read_pfnzero = 0 }, "read_maps_nothing")
      assert.is_false(own.holds)
      assert.matches("RSS %+64%.0 MiB, PAGEMAP_SCAN: 0 of 16,384", own.evidence)
      -- an older kernel without PAGEMAP_SCAN: RSS alone decides
      assert.is_true(decided(with { rss_growth_read = 0 }, "read_maps_nothing").holds)
      assert.is_false(decided(with { rss_growth_write = SIZE // 2, rss_growth_calloc_to_written = SIZE // 2 },
        "write_grows_rss").holds)
      assert.is_true(decided(base, "write_grows_rss").holds)
    end)

    it("a remap keeps the frames and takes no faults; a copy moves the data to new frames", function()
      local remap = with { frames_kept = 16, frames_sampled = 16, realloc_faults = 0 }
      local copy = with { frames_kept = 0, frames_sampled = 16, realloc_faults = N, realloc_seconds = 0.1 }
      assert.is_true(decided(remap, "realloc_no_copy").holds)
      local c = decided(copy, "realloc_no_copy")
      assert.is_false(c.holds)
      assert.matches("0 of 16 sampled pages kept their physical frames", c.evidence)
      -- frame numbers hidden (not root): the page faults of the realloc decide
      assert.is_true(decided(with { realloc_faults = 3 }, "realloc_no_copy").holds)
      assert.is_false(decided(with { realloc_faults = N }, "realloc_no_copy").holds)
      assert.equal("skipped", decided(with { realloc_faults = 0, fill_faults = 2 }, "realloc_no_copy").holds)
      -- data lost: not a faithful remap
      assert.is_false(decided(with { frames_kept = 16, frames_sampled = 16, realloc_faults = 0, intact_pages = 3 },
        "realloc_no_copy").holds)
    end)
  end)
end)
