-- The kernel probes: what this machine can show, each saying how it was found,
-- and agreeing with a measurement made here and now.
local vm = require "vmlab"
local kernel = require "vmlab.kernel"

local PAGE = vm.page_size

describe("the kernel probes", function()
  local k
  setup(function() k = vm.kernel() end)

  it("are measured once and cached (vm.kernel() twice is the same table)", function()
    assert.equal(k, vm.kernel())
    assert.equal(k, kernel())
  end)

  it("say how every field was found", function()
    for _, f in ipairs(kernel.fields) do
      assert.is_string(k.how[f], "no 'how' for " .. f)
      assert.is_string(kernel.meaning[f], "no meaning for " .. f)
    end
    assert.equal(PAGE, k.page_size)
    assert.is_true(k.huge_page_size == nil or k.huge_page_size > PAGE)
    assert.is_true(k.overcommit_memory == 0 or k.overcommit_memory == 1 or k.overcommit_memory == 2)
    assert.is_boolean(k.root)
  end)

  it("know whether a read of fresh private memory maps the zero page, as a fresh measurement shows", function()
    assert.is_boolean(k.zero_page, k.how.zero_page)
    local pages = 256
    local r <close> = assert(vm.mmap(pages * PAGE))
    r:advise("nohugepage")
    r:touch("read")
    local rss = vm.proc.mapping_at(r.address).Rss
    if k.zero_page then
      assert.is_true(rss < pages * PAGE / 2, "zero page probed, but reading grew Rss by " .. rss)
    else
      assert.is_true(rss >= pages * PAGE * 0.9, "no zero page probed, but reading grew Rss only by " .. rss)
    end
  end)

  it("name the missing capability in has()", function()
    local ok, why = kernel.has("zero_page")
    assert.equal(k.zero_page == true, ok)
    if not ok then assert.matches("zero page", why) end
    assert.has_error(function() kernel.has("no-such-thing") end)
    local sw, swhy = kernel.has("swap")
    assert.equal((k.swap_total or 0) > 0, sw)
    if not sw then assert.matches("swap", swhy) end
  end)

  it("go into every experiment's JSON record under system.probes", function()
    local _, record = vm.experiments.run("read-write", { size = 64 * PAGE })
    assert.equal(k.zero_page, record.system.probes.zero_page)
    local json = require("vmlab.report").json(record)
    assert.matches('"probes":{', json)
  end)
end)

describe("PAGEMAP_SCAN (r:scan, vm.pagemap_scan)", function()
  it("counts present pages and, where the kernel has it, zero-page pages without privilege", function()
    local r <close> = assert(vm.mmap(32 * PAGE))
    r:advise("nohugepage")
    local s0, err, errno = r:scan()
    if not s0 then
      assert.is_string(err); assert.is_number(errno)
      return require("vmlab.assert").pending("PAGEMAP_SCAN: " .. err)
    end
    assert.equal(32, s0.pages)
    assert.equal(0, s0.present)
    r:touch("read", { length = 16 * PAGE })
    local s1 = r:scan()
    assert.equal(16, s1.present)
    assert.equal(vm.kernel().zero_page and 16 or 0, s1.pfnzero)
    r:touch("write")
    local s2 = r:scan()
    assert.equal(32, s2.present)
    assert.equal(0, s2.pfnzero)
    assert.equal(0, s2.file)
    local part = r:scan(8 * PAGE, 4 * PAGE)
    assert.equal(4, part.pages)
    local any = vm.pagemap_scan(r.address, r.size)
    assert.equal(32, any.present)
  end)

  it("rejects ranges past the region or of negative length, naming the argument", function()
    local r <close> = assert(vm.mmap(4 * PAGE))
    assert.has_error(function() r:scan(5 * PAGE) end)
    assert.has_error(function() r:scan(0, -1) end)
    assert.has_error(function() vm.pagemap_scan(-1, 10) end)
    assert.has_error(function() vm.pagemap_scan(0, 0) end)
  end)

  it("returns nil, message, errno where the kernel refuses the range", function()
    local t, msg, errno = vm.pagemap_scan(math.maxinteger - 2 * PAGE, PAGE) -- past user space
    assert.is_nil(t)
    assert.matches("^PAGEMAP_SCAN: ", msg)
    assert.is_number(errno)
  end)
end)

describe("vmlab info", function()
  local function run(args)
    local p = assert(io.popen("lua5.4 bin/vmlab info " .. args .. " 2>&1"))
    local out = p:read("a")
    local ok, _, code = p:close()
    return out, ok and 0 or code
  end

  it("prints every probe with how it was found", function()
    local out, code = run("")
    assert.equal(0, code, out)
    for _, f in ipairs(kernel.fields) do assert.matches("\n?" .. f .. " ", out) end
    assert.matches("zero_page%s+%a+", out)
  end)

  it("prints the probes as one JSON object with --json", function()
    local out, code = run("--json")
    assert.equal(0, code, out)
    local t = require("vmlab.report").decode(out)
    assert.equal(vm.page_size, t.page_size)
    assert.is_string(t.how.zero_page)
  end)

  it("refuses an unknown argument with exit status 2", function()
    local _, code = run("--bogus")
    assert.equal(2, code)
  end)
end)
