-- The page-table experiment: splitting an address the way the MMU walks it.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"

describe("the page-table experiment", function()
  local res
  setup(function() res = experiments.run("page-table", {}) end)

  it("splits an address into 9-bit PML4, PDP, PD, PT indices and a 12-bit offset", function()
    local ix, off = experiments.get("page-table").split(0x7f8634a565a8)
    assert.same({ pml4 = 255, pdp = 24, pd = 421, pt = 86 }, ix)
    assert.equal(0x5a8, off)
    ix, off = experiments.get("page-table").split((1 << 39) + (2 << 30) + (3 << 21) + (4 << 12) + 5)
    assert.same({ pml4 = 1, pdp = 2, pd = 3, pt = 4 }, ix)
    assert.equal(5, off)
  end)

  it("gives every address its indices, which put back together give the address", function()
    assert.is_true(#res.entries >= 5)
    for _, e in ipairs(res.entries) do
      assert.is_true(e.recombined, e.name)
      assert.equal(e.address & 0xfff, e.offset)
      for _, k in ipairs({ "pml4", "pdp", "pd", "pt" }) do
        assert.is_true(e.indices[k] >= 0 and e.indices[k] < 512, e.name .. " " .. k)
      end
    end
  end)

  it("two bytes of one page share every index and the frame; only the offset differs", function()
    local a, b = res.entries[1], res.entries[2]
    assert.same(a.indices, b.indices)
    assert.are_not.equal(a.offset, b.offset)
    if res.frames_visible then assert.is_number(a.pfn) end
    assert.equal(a.pfn, b.pfn)
  end)

  it("a page never touched has no frame yet", function()
    local u = res.entries[3]
    assert.equal("untouched page", u.name)
    assert.is_false(u.present)
    assert.is_nil(u.physical_address)
    assert.matches("not present", u.reason)
    assert.equal(res.entries[1].indices.pt + 1, u.indices.pt)
  end)

  it("the physical address is the frame number times the page size plus the same offset", function()
    if not res.frames_visible then return pending(res.frames_note or "frame numbers are hidden") end
    local n = 0
    for _, e in ipairs(res.entries) do
      if e.physical_address then
        n = n + 1
        assert.equal(e.pfn * vm.page_size + e.offset, e.physical_address, e.name)
        assert.is_true(e.pfn > 0)
      end
    end
    assert.is_true(n >= 5, n .. " entries translated")
  end)
end)
