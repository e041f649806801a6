-- lazy: malloc and mmap give addresses, not memory; the first write gives frames;
-- pages only read take none where the kernel maps the zero page.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil
local MiB = 1024 * 1024
local SIZE = 64 * MiB
local N = SIZE // vm.page_size

local function decided(result, id)
  local e = experiments.get("lazy")
  return experiments.claim({ claims = experiments.decide(e, result) }, id)
end

describe("the lazy experiment", function()
  it("malloc makes VIRT jump by the size while RES stays put", function()
    local r = experiments.run("lazy", { size = SIZE, alloc = "malloc" })
    assert.equal(SIZE, r.size)
    assert.equal(N, r.pages)
    vassert.claim_holds(r, "virt_at_once")
    vassert.claim_holds(r, "no_rss_at_allocation")
    assert.is_true(r.virt_growth >= SIZE, "VIRT grew " .. r.virt_growth)
    -- AddressSanitizer's allocator poisons the block's shadow (1 byte per 8) when it hands it out
    assert.within(r.rss_growth_alloc, -MiB, (sanitized and SIZE / 5 or SIZE / 20) + MiB, "rss_growth_alloc")
  end)

  it("writing every page costs one minor fault per page and RES grows by the size", function()
    local r = experiments.run("lazy", { size = SIZE, alloc = "mmap" })
    for _, c in ipairs(r.claims) do vassert.claim_holds(r, c.id) end
    assert.within(r.minor_faults_touch, 0.98 * N, 1.1 * N, "minor_faults_touch")
    assert.within(r.rss_growth_touch, 0.9 * SIZE, 1.1 * SIZE, "rss_growth_touch")
    assert.is_true(r.rss_growth_alloc < SIZE / 20, "mmap itself grew RES by " .. r.rss_growth_alloc)
    assert.is_true(r.touch_seconds > 0 and r.ns_per_page > 0)
  end)

  it("reading every page faults as often; RES stays put where the kernel maps the zero page", function()
    local r = experiments.run("lazy", { size = SIZE, alloc = "mmap", mode = "read" })
    vassert.claim_holds(r, "first_touch_faults")
    vassert.claim_holds(r, "no_rss_at_allocation")
    assert.within(r.minor_faults_touch, 0.98 * N, 1.1 * N, "minor_faults_touch")
    assert.equal(0, r.written)
    local c = experiments.claim(r, "rss_follows_writes")
    if require("vmlab.kernel").has("zero_page") then
      vassert.claim_holds(r, "rss_follows_writes")
      assert.is_true(r.rss_growth_touch < SIZE / 10, "reading grew RES by " .. r.rss_growth_touch)
    else
      -- the probe measured reads getting frames: the claim must say it did not hold, and why
      assert.equal(false, c.holds, c.evidence)
      assert.matches("does not map the zero page", c.why)
      assert.within(r.rss_growth_touch, 0.9 * SIZE, 1.1 * SIZE, "rss_growth_touch")
    end
  end)

  it("reading shared memory gives every page a frame: RES grows, on every kernel", function()
    local r = experiments.run("lazy", { size = SIZE, alloc = "shared", mode = "read" })
    vassert.claim_holds(r, "first_touch_faults")
    vassert.claim_holds(r, "virt_at_once")
    local c = experiments.claim(r, "rss_follows_writes")
    assert.equal(false, c.holds, c.evidence)
    assert.matches("shared memory never maps the zero page", c.why)
    assert.within(r.rss_growth_touch, 0.9 * SIZE, 1.1 * SIZE, "rss_growth_touch")
    if r.pfnzero then assert.equal(0, r.pfnzero) end
    local text = require("vmlab.report").text({ experiment = "lazy", params = {}, result = r })
    assert.matches("DID NOT HOLD%s+RES grows by what was written", text)
    assert.not_matches("shared page of zeros", text)
  end)

  it("decides each claim from the numbers it is given, not from the machine", function()
    local base = { alloc = "mmap", size = SIZE, pages = N, virt_growth = SIZE, rss_growth_alloc = 0,
      minor_faults_touch = N, ns_per_page = 100 }
    local function with(t) return setmetatable(t, { __index = base }) end
    local zero = with { mode = "read", written = 0, rss_growth_touch = 0, pfnzero = N }
    local own = with { mode = "read", written = 0, rss_growth_touch = SIZE, pfnzero = 0 }
    local wrote = with { mode = "write", written = SIZE, rss_growth_touch = SIZE }
    local lost = with { mode = "write", written = SIZE, rss_growth_touch = 0 }
    assert.is_true(decided(zero, "rss_follows_writes").holds)
    assert.is_false(decided(own, "rss_follows_writes").holds)
    assert.is_true(decided(wrote, "rss_follows_writes").holds)
    assert.is_false(decided(lost, "rss_follows_writes").holds)
    -- populated at allocation: RES grew at once, the touch faulted nothing
    local eager = with { mode = "write", written = SIZE, rss_growth_alloc = SIZE, rss_growth_touch = 0,
      minor_faults_touch = 0 }
    assert.is_false(decided(eager, "no_rss_at_allocation").holds)
    assert.is_false(decided(eager, "first_touch_faults").holds)
    assert.is_true(decided(wrote, "no_rss_at_allocation").holds)
    assert.is_true(decided(wrote, "first_touch_faults").holds)
    -- a huge page per fault: far fewer faults than pages
    assert.is_false(decided(with { mode = "write", written = SIZE, rss_growth_touch = SIZE,
      minor_faults_touch = N // 512 }, "first_touch_faults").holds)
    -- malloc that reused heap memory it already had
    local reused = with { alloc = "malloc", mode = "write", written = SIZE, rss_growth_touch = SIZE,
      virt_growth = 0 }
    local c = decided(reused, "virt_at_once")
    assert.is_false(c.holds)
    assert.matches("already had", c.why)
    assert.is_true(decided(wrote, "virt_at_once").holds)
  end)

  it("refuses an allocator it does not know", function()
    assert.has_error(function() experiments.run("lazy", { alloc = "sbrk" }) end)
  end)
end)
