-- lazy: malloc and mmap give addresses, not memory; the first write gives frames.
local experiments = require "vmlab.experiments"
require "vmlab.assert"

local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil
local MiB = 1024 * 1024

describe("the lazy experiment", function()
  it("malloc makes VIRT jump by the size while RES stays put", function()
    local size = 64 * MiB
    local r = experiments.run("lazy", { size = size, alloc = "malloc" })
    assert.equal(size, r.size)
    assert.equal(size // 4096, r.pages)
    assert.is_true(r.virt_growth >= size, "VIRT grew " .. r.virt_growth)
    -- AddressSanitizer's allocator poisons the block's shadow (1 byte per 8) when it hands it out
    assert.within(r.rss_growth_alloc, -MiB, (sanitized and size / 5 or size / 20) + MiB, "rss_growth_alloc")
  end)

  it("writing every page costs one minor fault per page and RES grows by the size", function()
    local size = 64 * MiB
    local r = experiments.run("lazy", { size = size, alloc = "mmap" })
    local n = size // 4096
    assert.within(r.minor_faults_touch, 0.98 * n, 1.1 * n, "minor_faults_touch")
    assert.within(r.rss_growth_touch, 0.9 * size, 1.1 * size, "rss_growth_touch")
    assert.is_true(r.rss_growth_alloc < size / 20, "mmap itself grew RES by " .. r.rss_growth_alloc)
    assert.is_true(r.seconds_touch > 0 and r.ns_per_page > 0)
  end)

  it("reading every page faults as often but leaves RES nearly unchanged (the zero page)", function()
    local size = 64 * MiB
    local r = experiments.run("lazy", { size = size, alloc = "mmap", mode = "read" })
    local n = size // 4096
    assert.within(r.minor_faults_touch, 0.98 * n, 1.1 * n, "minor_faults_touch")
    assert.is_true(r.rss_growth_touch < size / 10, "reading grew RES by " .. r.rss_growth_touch)
  end)

  it("refuses an allocator it does not know", function()
    assert.has_error(function() experiments.run("lazy", { alloc = "sbrk" }) end)
  end)
end)
