-- The page-table experiment: splitting an address the way the MMU walks it, with this
-- machine's page size and levels; translating it needs frame numbers (CAP_SYS_ADMIN).
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

describe("the page-table experiment", function()
  local res, pt
  setup(function()
    res = experiments.run("page-table", {})
    pt = experiments.get("page-table")
  end)

  it("splits an x86-64 4 KiB address into 9-bit PML4, PDP, PD, PT indices and a 12-bit offset", function()
    local lay = pt.layout(4 * 1024, 47, "x86_64")
    assert.equal(4, lay.levels)
    local ix, off = pt.split(0x7f8634a565a8, lay)
    assert.same({ pml4 = 255, pdp = 24, pd = 421, pt = 86 }, ix)
    assert.equal(0x5a8, off)
    ix, off = pt.split((1 << 39) + (2 << 30) + (3 << 21) + (4 << 12) + 5, lay)
    assert.same({ pml4 = 1, pdp = 2, pd = 3, pt = 4 }, ix)
    assert.equal(5, off)
  end)

  it("derives other layouts from the page size and address bits (64 KiB pages: 13-bit indices)", function()
    local lay = pt.layout(64 * 1024, 48, "aarch64")
    assert.equal(16, lay.offset_bits)
    assert.equal(13, lay.index_bits)
    assert.equal(3, lay.levels)
    local a = (7 << 42) + (9 << 29) + (11 << 16) + 0x1234
    local ix, off = pt.split(a, lay)
    assert.same({ l3 = 7, l2 = 9, l1 = 11 }, ix)
    assert.equal(0x1234, off)
    assert.equal(a, pt.join(ix, off, lay))
    assert.equal(3, pt.layout(16 * 1024, 47, "aarch64").levels)
    assert.equal(3, pt.layout(4 * 1024, 39, "aarch64").levels)
  end)

  it("uses this machine's page size", function()
    assert.equal(vm.page_size, res.page_size)
    assert.equal(vm.page_size, 1 << res.offset_bits)
    assert.equal(vm.page_size // 8, 1 << res.index_bits)
    assert.equal(res.levels, #res.level_names)
  end)

  it("gives every address its indices, which put back together give the address", function()
    vassert.claim_holds(res, "split_recombines")
    assert.is_true(#res.entries >= 5)
    for _, e in ipairs(res.entries) do
      assert.is_true(e.recombined, e.name)
      assert.equal(e.address % vm.page_size, e.offset)
    end
  end)

  it("two bytes of one page share every index and the frame; only the offset differs", function()
    vassert.claim_holds(res, "same_page_same_entry")
    local a, b = res.entries[1], res.entries[2]
    assert.same(a.indices, b.indices)
    assert.are_not.equal(a.offset, b.offset)
  end)

  it("a page never touched has no frame yet", function()
    vassert.claim_holds(res, "untouched_not_present")
    local u = res.entries[3]
    assert.equal("untouched page", u.name)
    assert.is_nil(u.physical_address)
    assert.matches("not present", u.reason)
  end)

  it("the physical address is the frame number times the page size plus the same offset", function()
    vassert.claim_holds(res, "translation")
    for _, e in ipairs(res.entries) do
      if e.physical_address then assert.equal(e.pfn * vm.page_size + e.offset, e.physical_address, e.name) end
    end
  end)

  it("decides each claim from the numbers it is given", function()
    local function decided(r, id) return experiments.claim({ claims = experiments.decide(pt, r) }, id) end
    local copy = require("vmlab.report").decode(require("vmlab.report").encode(res))
    -- a touched "untouched" page, different frames for one page, a wrong physical address
    copy.entries[3].present = true
    copy.entries[2].pfn = (copy.entries[1].pfn or 1) + 1
    copy.entries[1].physical_address = 12345
    copy.entries[1].pfn = copy.entries[1].pfn or 7
    assert.is_false(decided(copy, "untouched_not_present").holds)
    assert.is_false(decided(copy, "same_page_same_entry").holds)
    assert.is_false(decided(copy, "translation").holds)
    copy.entries[4].recombined = false
    assert.is_false(decided(copy, "split_recombines").holds)
  end)
end)
