-- read-write: a first read maps the zero page; a first write allocates a frame per page.
local experiments = require "vmlab.experiments"
require "vmlab.assert"

local MiB = 1024 * 1024
local SIZE = 32 * MiB
local N = SIZE // 4096

describe("the read-write experiment", function()
  local r
  setup(function() r = experiments.run("read-write", { size = SIZE }) end)

  it("reading fresh memory faults once per page but hardly grows RSS", function()
    assert.equal(N, r.pages)
    assert.within(r.read.minor_faults, 0.98 * N, 1.1 * N, "read.minor_faults")
    assert.is_true(r.read.rss_growth < SIZE / 10, "read grew RSS by " .. r.read.rss_growth)
  end)

  it("reading untouched memory maps the zero page: one frame behind every page", function()
    if r.read.distinct_frames == nil then
      pending("frame numbers are hidden here: " .. tostring(r.frames_hidden))
      return
    end
    assert.equal(1, r.read.distinct_frames)
  end)

  it("writing pages that were only read faults again, once per page, and RSS grows", function()
    assert.within(r.write_after_read_faults, 0.98 * N, 1.1 * N, "write_after_read_faults")
    assert.within(r.write_after_read_rss_growth, 0.9 * SIZE, 1.1 * SIZE, "write_after_read_rss_growth")
  end)

  it("writing fresh memory faults once per page, grows RSS by the size, a frame per page", function()
    assert.within(r.write.minor_faults, 0.98 * N, 1.1 * N, "write.minor_faults")
    assert.within(r.write.rss_growth, 0.9 * SIZE, 1.1 * SIZE, "write.rss_growth")
    if r.write.distinct_frames ~= nil then
      assert.within(r.write.distinct_frames, 0.98 * N, N, "write.distinct_frames")
    end
  end)

  it("reports the time per page and the speed of both", function()
    for _, k in ipairs { "read", "write" } do
      assert.is_true(r[k].seconds > 0)
      assert.is_true(math.abs(r[k].ns_per_page - r[k].seconds * 1e9 / N) < 1e-6 * r[k].ns_per_page + 1e-9)
      assert.is_true(r[k].gib_per_s > 0)
    end
  end)
end)
