-- vm.self(): a one-screen summary of this process's memory.
local vm = require "vmlab"
local self_summary = require "vmlab.self"

local PAGE = vm.page_size
local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil

describe("vm.self", function()
  it("is a short text with VIRT, RES, faults and the regions by kind", function()
    local text = self_summary()
    assert.equal("string", type(text))
    assert.matches("^process %d+ %(lua[%w.]*%): VIRT %d+%.%d %a+, RES %d+%.%d %a+", text)
    assert.matches("\npage faults: [%d,]+ minor, [%d,]+ major\n", text)
    -- (ASan's allocator does not use the brk heap)
    for _, kind in ipairs { sanitized and "anonymous" or "heap", "stack", "file" } do
      assert.matches("\n" .. kind .. " +%d+ ", text)
    end
    local _, lines = text:gsub("\n", "")
    assert.is_true(lines < 24, "more than a screen: " .. lines .. " lines")
  end)

  it("shows a 32 MiB region just written among the anonymous memory and the most resident mappings", function()
    local r <close> = assert(vm.mmap(32 << 20))
    r:advise("nohugepage")
    r:touch("write")
    local d = assert(self_summary.data())
    assert.is_true(d.kinds.anonymous.rss >= 32 << 20, "anonymous RSS " .. d.kinds.anonymous.rss)
    assert.is_true(d.rss >= 32 << 20)
    -- the list is ordered by RSS and holds the region; whatever ranks above it (the test runner's own heap,
    -- ASan's shadow) is at least as resident, whatever ranks below is not more resident
    local rank
    for i, m in ipairs(d.largest) do if m.start == r.address then rank = rank or i end end
    assert.is_not_nil(rank, "the region is not among the most resident mappings")
    assert.equal(32 << 20, d.largest[rank].Rss)
    for i = 2, #d.largest do
      assert.is_true(d.largest[i - 1].Rss >= d.largest[i].Rss, "most resident mappings out of order at " .. i)
    end
    -- outside ASan only the test runner's own heap may be as resident as 32 MiB
    if not sanitized then assert.is_true(rank <= 2, "the region ranks " .. rank) end
    local text = self_summary { top = rank }
    assert.matches(("%012x"):format(r.address) .. "%-%x+ rw%-p +32%.0 MiB RSS +32%.0 MiB", text)
  end)

  it("counts the faults this process has taken so far", function()
    local before = self_summary.data().minor_faults
    local r <close> = assert(vm.mmap(64 * PAGE))
    r:advise("nohugepage")
    r:touch("write")
    assert.is_true(self_summary.data().minor_faults - before >= 64)
  end)
end)
