-- regions: the process's map, and where a global, a constant, a function, a
-- malloc'd block and a local variable live.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

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
    vassert.claim_holds(r, "code_and_data_placed")
    assert.equal("core.so text", r.placed.text)
    assert.equal("core.so read-only data", r.placed.static_data)
    assert.equal("core.so data", r.placed.global)
  end)

  it("a zero-filled static array is in the bss after the module's data", function()
    vassert.claim_holds(r, "bss_after_data")
    assert.equal("core.so bss", r.placed.bss)
    assert.is_true(r.addresses.bss > r.addresses.global)
  end)

  it("a local variable is on the stack, the highest mapping but the kernel's own pages", function()
    vassert.claim_holds(r, "stack_on_top")
    assert.equal(0, r.layout.above_stack)
    assert.equal("[stack]", r.placed.stack)
    local s = row("[stack]")
    assert.is_true(s.start <= r.addresses.stack and r.addresses.stack < s.start + s.size)
  end)

  it("a small malloc'd block is in the heap, above the program and below the stack", function()
    vassert.claim_holds(r, "malloc_in_heap") -- pending where malloc is not glibc's (AddressSanitizer's, ...)
    assert.equal("[heap]", r.placed.heap)
  end)

  it("decides each claim from the addresses it is given, not from the machine", function()
    local e = experiments.get("regions")
    local function decided(result, id) return experiments.claim({ claims = experiments.decide(e, result) }, id) end
    local function with(placed, layout)
      local t = setmetatable({ placed = setmetatable(placed or {}, { __index = r.placed }),
        layout = setmetatable(layout or {}, { __index = r.layout }) }, { __index = r })
      return t
    end
    local good = with({ heap = "[heap]" }, { program = 0x1000, heap = 0x100000, stack = 0x7ff000000000 })
    for _, c in ipairs(experiments.decide(e, good)) do assert.is_true(c.holds, c.id) end
    assert.is_false(decided(with { text = "[heap]" }, "code_and_data_placed").holds)
    assert.is_false(decided(with { global = "core.so read-only data" }, "code_and_data_placed").holds)
    assert.is_false(decided(with { bss = "anonymous" }, "bss_after_data").holds)
    assert.is_false(decided(with({}, { above_stack = 3 }), "stack_on_top").holds)
    assert.is_false(decided(with { stack = "anonymous" }, "stack_on_top").holds)
    -- a malloc that never calls brk (AddressSanitizer's, jemalloc): no [heap]
    local c = decided(with({ heap = "anonymous" }, { heap = false }), "malloc_in_heap")
    assert.is_false(c.holds)
    assert.matches("no %[heap%]", c.why)
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
