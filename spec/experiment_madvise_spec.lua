-- The madvise experiment: advice changes RSS the way madvise(2) says.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"

local SANITIZED = os.getenv("VMLAB_SANITIZED") == "1"
local MiB = 1024 * 1024
local SIZE = 32 * MiB
local HEAP = 32 * MiB

describe("the madvise experiment", function()
  local res
  setup(function()
    res = experiments.run("madvise", { size = SIZE, file_size = 8 * MiB, heap_size = HEAP })
  end)

  local function near(x, want, what)
    assert.is_true(x >= want * 0.9 and x <= want * 1.1 + 2 * MiB, what .. ": " .. tostring(x))
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
    assert.is_true(res.write_faults >= res.pages * 0.98 and res.write_faults <= res.pages * 1.2, res.write_faults)
  end)

  it("MADV_DONTNEED gives the pages back at once: RSS drops by the size", function()
    near(res.dontneed_rss_drop, SIZE, "RSS drop")
  end)

  it("after MADV_DONTNEED the memory reads as zeros, and reading it maps no memory", function()
    assert.is_true(res.zeros_after_dontneed)
    assert.is_true(res.read_after_dontneed_rss_growth < SIZE // 10, res.read_after_dontneed_rss_growth)
  end)

  it("MADV_FREE leaves the pages in place until memory runs short (LazyFree counts them)", function()
    if res.free_error then return pending("MADV_FREE is not available: " .. res.free_error) end
    assert.is_true(res.lazy_free >= SIZE * 0.9 and res.lazy_free <= SIZE, "LazyFree " .. res.lazy_free)
    assert.is_true(res.free_rss_drop < SIZE // 10, "RSS dropped by " .. res.free_rss_drop)
    assert.is_true(res.free_data_kept, "with 24 GiB and no pressure, the data is still there")
  end)

  it("MADV_WILLNEED on anonymous memory maps nothing", function()
    assert.is_true(math.abs(res.willneed_rss_growth) < SIZE // 10, res.willneed_rss_growth)
  end)

  it("MADV_POPULATE_WRITE faults every page in: RSS grows by the size, later writes fault nothing", function()
    if res.populate_write_error then
      return pending("MADV_POPULATE_WRITE (Linux 5.14) is not available: " .. res.populate_write_error)
    end
    near(res.populate_write_rss_growth, SIZE, "RSS growth")
    assert.is_true(res.populate_write_touch_faults <= 8, res.populate_write_touch_faults .. " faults")
  end)

  it("MADV_WILLNEED on a file reads it into the page cache without any access", function()
    local w = res.willneed_file
    if w.cached_before > w.pages // 2 then
      return pending("the page cache kept the file after " .. tostring(w.cache_drop) .. " (tmpfs?)")
    end
    assert.is_true(w.cached_before <= w.pages // 20, w.cached_before .. " pages cached after the drop")
    assert.is_true(w.cached_after >= w.pages // 8, w.cached_after .. " of " .. w.pages .. " pages read ahead")
  end)

  it("free() keeps small blocks' memory in the heap and malloc_trim gives it back", function()
    if SANITIZED then
      return pending("under AddressSanitizer malloc is ASan's allocator, which glibc's malloc_trim cannot trim")
    end
    near(res.heap_rss_growth, HEAP, "the blocks were written")
    assert.is_true(res.heap_free_rss_drop < 8 * MiB, "free() alone returned " .. res.heap_free_rss_drop)
    assert.is_true(res.trim_released)
    assert.is_true(res.trim_rss_drop >= HEAP * 0.8, "malloc_trim returned " .. res.trim_rss_drop)
  end)

  it("explains what the numbers show", function()
    local lines = experiments.get("madvise").explain(res)
    assert.is_true(#lines >= 6)
    assert.matches("DONTNEED", table.concat(lines, "\n"))
  end)
end)
