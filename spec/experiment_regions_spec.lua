-- regions: the process's map, and where a global, a constant, a function, a
-- malloc'd block and a local variable live.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"

local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil

describe("the regions experiment", function()
  local r
  setup(function() r = experiments.run("regions") end)

  local function row(name)
    for _, x in ipairs(r.regions) do if x.name == name then return x end end
  end

  it("shows the heap, the stack, the vdso and the program's and module's code and data", function()
    for _, n in ipairs { "[stack]", "[vdso]", "core.so text", "core.so data", "core.so read-only data" } do
      assert.is_not_nil(row(n), n .. " is missing")
    end
    -- AddressSanitizer's malloc never calls brk(2), so then there is no [heap]
    if not sanitized then assert.is_not_nil(row("[heap]"), "[heap] is missing") end
    local text = 0
    for _, x in ipairs(r.regions) do
      if x.name:match(" text$") then text = text + 1 end
    end
    assert.is_true(text >= 2, "the program's and the module's text")
    assert.equal("r-xp", row("core.so text").perms)
    assert.equal("rw-p", row("[stack]").perms)
  end)

  it("gives each region a size and a resident set no larger than it", function()
    for _, x in ipairs(r.regions) do
      assert.is_true(x.size > 0 and x.size % vm.page_size == 0, x.name)
      assert.is_true(x.rss >= 0 and x.rss <= x.size, x.name)
    end
    assert.equal("integer", math.type(r.mappings))
  end)

  it("a function is in the module's text, a constant in its read-only data, a global in its data", function()
    assert.equal("core.so text", r.placed.text)
    assert.equal("core.so read-only data", r.placed.static_data)
    assert.equal("core.so data", r.placed.global)
  end)

  it("a zero-filled static array is in the bss after the module's data", function()
    assert.equal("core.so bss", r.placed.bss)
    assert.is_true(r.addresses.bss > r.addresses.global)
  end)

  it("a local variable is on the stack", function()
    assert.equal("[stack]", r.placed.stack)
    local s = row("[stack]")
    assert.is_true(s.start <= r.addresses.stack and r.addresses.stack < s.start + s.size)
  end)

  it("a small malloc'd block is in the heap", function()
    if sanitized then
      pending("AddressSanitizer replaces malloc: its blocks live in its own anonymous mappings, not [heap]")
      return
    end
    assert.equal("[heap]", r.placed.heap)
  end)

  it("the heap lies above the program and below the stack", function()
    if sanitized then
      pending("AddressSanitizer's malloc never calls brk(2): there is no [heap] mapping")
      return
    end
    local heap, stack = row("[heap]"), row("[stack]")
    assert.is_true(heap.start > row("lua5.4 text").start)
    assert.is_true(heap.start < stack.start)
  end)
end)
