-- The madvise experiment: advice changes RSS the way madvise(2) says. Each claim is
-- checked live where this machine can show it, and its decide function is fed
-- results of both kinds.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local MiB = 1024 * 1024
local SIZE = 32 * MiB
local HEAP = 32 * MiB

describe("the madvise experiment", function()
  local res
  setup(function()
    res = experiments.run("madvise", { size = SIZE, file_size = 8 * MiB, heap_size = HEAP })
  end)

  local function near(x, want, what)
    assert.within(x, want * 0.9, want * 1.1 + 2 * MiB, what)
  end

  it("reports the RSS after every step", function()
    assert.is_true(#res.steps >= 12)
    for _, s in ipairs(res.steps) do
      assert.is_string(s.step)
      assert.is_string(s.detail)
      assert.equal("integer", math.type(s.rss), s.step)
      assert.is_true(s.rss > 0, s.step)
    end
    assert.equal(SIZE // vm.page_size, res.pages)
  end)

  it("writing every page grows RSS by the size, one fault per page", function()
    near(res.steps[2].rss - res.steps[1].rss, SIZE, "RSS growth")
    assert.within(res.write_faults, res.pages * 0.98, res.pages * 1.2, "write faults")
  end)

  it("MADV_DONTNEED gives the pages back at once: RSS drops by the size", function()
    vassert.claim_holds(res, "dontneed_drops_rss")
    near(res.dontneed_rss_drop, SIZE, "RSS drop")
  end)

  it("after MADV_DONTNEED the memory reads as zeros", function()
    vassert.claim_holds(res, "dontneed_reads_zeros")
    assert.is_true(res.zeros_after_dontneed)
  end)

  it("MADV_FREE leaves the pages in place until memory runs short (LazyFree counts them)", function()
    vassert.claim_holds(res, "free_is_lazy")
    assert.within(res.lazy_free, SIZE * 0.5, SIZE, "LazyFree")
  end)

  it("MADV_WILLNEED on anonymous memory maps nothing", function()
    assert.within(res.willneed_rss_growth, -SIZE // 10, SIZE // 10, "RSS growth after WILLNEED")
  end)

  it("MADV_POPULATE_WRITE faults every page in: RSS grows by the size, later writes fault nothing", function()
    local c = vassert.claim_holds(res, "populate_write_prefaults")
    assert.is_true(c.holds)
    near(res.populate_write_rss_growth, SIZE, "RSS growth")
  end)

  it("MADV_WILLNEED on a file reads it into the page cache without any access", function()
    vassert.claim_holds(res, "willneed_reads_ahead")
    local w = res.willneed_file
    assert.within(w.cached_after, w.pages // 8, w.pages, "pages read ahead")
  end)

  it("free() keeps small blocks' memory in the heap and malloc_trim gives it back (glibc's heap)", function()
    local c = vassert.claim_holds(res, "trim_returns_heap")
    if c.holds == true then
      near(res.heap_rss_growth, HEAP, "the blocks were written")
      assert.is_true(res.trim_released)
    end
  end)

  it("says only what it measured: no zero-page story, numbers in every line", function()
    local text = require("vmlab.report").text({ experiment = "madvise", params = {}, result = res })
    assert.is_nil(text:find("zero page", 1, true))
    assert.matches("What it shows", text)
  end)

  describe("decides each claim from the numbers it is given", function()
    local e = experiments.get("madvise")
    local N = SIZE // vm.page_size
    local base = { size = SIZE, pages = N, block = 64 * 1024, heap_size = HEAP, heap_blocks = 512,
      heap_blocks_in_brk = 512, read_after_dontneed_rss_growth = 0, mem_available = 8 << 30 }
    local function decided(fields, id)
      local r = setmetatable(fields, { __index = base })
      return experiments.claim({ claims = experiments.decide(e, r) }, id)
    end

    it("DONTNEED: RSS dropped by the size and zeros read back hold; no drop or old data do not", function()
      assert.is_true(decided({ dontneed_rss_drop = SIZE }, "dontneed_drops_rss").holds)
      assert.is_false(decided({ dontneed_rss_drop = 0 }, "dontneed_drops_rss").holds)
      assert.is_true(decided({ zeros_after_dontneed = true }, "dontneed_reads_zeros").holds)
      assert.is_false(decided({ zeros_after_dontneed = false }, "dontneed_reads_zeros").holds)
    end)

    it("FREE: pages kept with their data hold; taken at once do not, and say why", function()
      assert.is_true(decided({ lazy_free = SIZE, free_rss_drop = 0, free_read = "old" }, "free_is_lazy").holds)
      local c = decided({ lazy_free = 0, free_rss_drop = SIZE, free_read = "zeros" }, "free_is_lazy")
      assert.is_false(c.holds)
      assert.matches("took the pages at once", c.why)
      assert.is_false(decided({ lazy_free = SIZE, free_rss_drop = 0, free_read = "other" }, "free_is_lazy").holds)
      assert.equal("skipped", decided({ free_error = "madvise: Invalid argument" }, "free_is_lazy").holds)
    end)

    it("POPULATE_WRITE: RSS up by the size and no later faults hold; faults per page do not", function()
      assert.is_true(decided({ populate_write_rss_growth = SIZE, populate_write_touch_faults = 0,
        populate_write_seconds = 0.01 }, "populate_write_prefaults").holds)
      assert.is_false(decided({ populate_write_rss_growth = 0, populate_write_touch_faults = N,
        populate_write_seconds = 0.01 }, "populate_write_prefaults").holds)
    end)

    it("file WILLNEED: pages cached without access hold; none does not; a file that stayed cached decides nothing",
      function()
        local w = { pages = 2048, cached_before = 0, seconds = 0.01, fs_type = "ext4", cache_drop = "fadvise" }
        w.cached_after = 2048
        assert.is_true(decided({ willneed_file = w }, "willneed_reads_ahead").holds)
        local none = setmetatable({ cached_after = 0 }, { __index = w })
        assert.is_false(decided({ willneed_file = none }, "willneed_reads_ahead").holds)
        local kept = setmetatable({ cached_before = 2048, fs_type = "tmpfs" }, { __index = w })
        local c = decided({ willneed_file = kept }, "willneed_reads_ahead")
        assert.equal("skipped", c.holds)
        assert.matches("kept the file", c.why)
      end)

    it("malloc_trim: memory kept by free() and returned by the trim holds; an allocator that returns it in "
      .. "free() does not", function()
      assert.is_true(decided({ heap_rss_growth = HEAP, heap_free_rss_drop = MiB, trim_rss_drop = HEAP - MiB },
        "trim_returns_heap").holds)
      local c = decided({ heap_rss_growth = HEAP, heap_free_rss_drop = HEAP, trim_rss_drop = 0,
        heap_blocks_in_brk = 0 }, "trim_returns_heap")
      assert.is_false(c.holds)
      assert.matches("free%(%) itself", c.why)
      assert.is_false(decided({ heap_rss_growth = HEAP, heap_free_rss_drop = 0, trim_rss_drop = 0 },
        "trim_returns_heap").holds)
    end)
  end)
end)
