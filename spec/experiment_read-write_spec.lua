-- read-write: a first read of fresh memory faults once per page; where the kernel
-- uses the zero page it maps that one frame (no RSS), and a later write faults
-- again; a first write allocates a frame per page.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local MiB = 1024 * 1024
local SIZE = 32 * MiB
local N = SIZE // vm.page_size

describe("the read-write experiment", function()
  local r, shared
  setup(function()
    r = experiments.run("read-write", { size = SIZE })
    shared = experiments.run("read-write", { size = SIZE, share = "shared" })
  end)

  it("reading fresh memory faults once per page (private and shared memory alike)", function()
    assert.equal(N, r.pages)
    assert.within(r.read.minor_faults, 0.98 * N, 1.1 * N, "read.minor_faults")
    vassert.claim_holds(r, "read_faults")
    vassert.claim_holds(shared, "read_faults")
  end)

  it("reading untouched private memory maps the zero page: no RSS, one frame behind every page", function()
    vassert.claim_holds(r, "read_zero_page")
    assert.is_true(r.read.rss_growth < SIZE / 10, "read grew RSS by " .. r.read.rss_growth)
    if r.read.distinct_frames then assert.within(r.read.distinct_frames, 1, 2, "read.distinct_frames") end
  end)

  it("writing pages that were only read faults again, once per page, and RSS grows", function()
    vassert.claim_holds(r, "write_after_read_faults")
    assert.within(r.write_after_read_faults, 0.98 * N, 1.1 * N, "write_after_read_faults")
  end)

  it("writing fresh memory faults once per page, grows RSS by the size, a frame per page", function()
    vassert.claim_holds(r, "write_gets_frames")
    assert.within(r.write.minor_faults, 0.98 * N, 1.1 * N, "write.minor_faults")
    assert.within(r.write.rss_growth, 0.9 * SIZE, 1.1 * SIZE, "write.rss_growth")
  end)

  it("decides the zero-page claims as not held for shared memory, whose reads get frames of their own", function()
    -- on every kernel: shmem never maps the zero page, so this result is the other kind
    local c = experiments.claim(shared, "read_zero_page")
    assert.equal(false, c.holds, c.evidence)
    assert.within(shared.read.rss_growth, 0.9 * SIZE, 1.1 * SIZE, "shared read.rss_growth")
    assert.matches("RSS %+", c.evidence)
    assert.matches("shared memory never maps the zero page", c.why)
    assert.equal(false, experiments.claim(shared, "write_after_read_faults").holds)
    -- ... and its words say so instead of telling the zero-page story
    local text = require("vmlab.report").text({ experiment = "read-write", params = {}, result = shared })
    assert.matches("DID NOT HOLD%s+a first read maps the shared zero page", text)
  end)

  it("decides the zero-page claims from the numbers it is given, not from the machine", function()
    local e = experiments.get("read-write")
    local base = { share = "private", size = SIZE, pages = N,
      write = { minor_faults = N, rss_growth = SIZE, distinct_frames = N } }
    local zero = setmetatable({ read = { minor_faults = N, rss_growth = 0, distinct_frames = 1, pfnzero = N },
      write_after_read_faults = N, write_after_read_rss_growth = SIZE }, { __index = base })
    local own = setmetatable({ read = { minor_faults = N, rss_growth = SIZE, distinct_frames = N, pfnzero = 0 },
      write_after_read_faults = 0, write_after_read_rss_growth = 0 }, { __index = base })
    local function decided(result, id) return experiments.claim({ claims = experiments.decide(e, result) }, id) end
    assert.is_true(decided(zero, "read_zero_page").holds)
    assert.is_true(decided(zero, "write_after_read_faults").holds)
    assert.is_false(decided(own, "read_zero_page").holds)
    assert.is_false(decided(own, "write_after_read_faults").holds)
    assert.is_true(decided(own, "read_faults").holds)
  end)

  it("reports the time per page and the speed of both", function()
    for _, k in ipairs { "read", "write" } do
      assert.is_true(r[k].seconds > 0)
      assert.is_true(math.abs(r[k].ns_per_page - r[k].seconds * 1e9 / N) < 1e-6 * r[k].ns_per_page + 1e-9)
      assert.is_true(r[k].bytes_per_second > 0)
    end
  end)
end)
