-- The Lua facade modules under bad arguments (issue 9, family 11): every
-- public function of vmlab.faults, vmlab.proc, vmlab.child, vmlab.units and
-- vmlab.self raises an error that names the function and the argument, never
-- a raw "attempt to index a number value" from deep inside.
local vm = require "vmlab"
local faults = require "vmlab.faults"
local proc = require "vmlab.proc"
local child = require "vmlab.child"
local units = require "vmlab.units"
local self_ = require "vmlab.self"

-- fn(...) raises; its message names the function fname and holds `names`
-- (the argument or option), and is no raw Lua runtime error.
local function refuses(fname, names, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, tostring(fname or names) .. " accepted a bad argument")
  err = tostring(err)
  assert.is_nil(err:find("attempt to", 1, true), err)
  if fname then assert.is_truthy(err:find("'" .. fname .. "'", 1, true), err) end
  assert.is_truthy(err:find(names, 1, true), err)
end

-- Values that are wrong for nearly every argument.
local hostile = { 42, -1, 0.5, true, "x", function() end, coroutine.create(function() end),
  setmetatable({}, { __index = function() error("boom") end, __tostring = function() error("boom") end }) }

describe("vmlab.faults with bad arguments", function()
  it("kind_of(42) names its argument", function()
    refuses("kind_of", "bad argument #1", faults.kind_of, 42)
    refuses("kind_of", "bad argument #1", faults.kind_of, nil)
    refuses("kind_of", "bad argument #1", faults.kind_of, "heap")
  end)

  it("classify checks samples, maps and options", function()
    refuses("classify", "bad argument #1", faults.classify, 42, {})
    refuses("classify", "bad argument #2", faults.classify, {}, "maps")
    refuses("classify", "bad argument #3", faults.classify, {}, {}, 7)
    refuses("classify", "bad argument #1", faults.classify, { { address = "x" } }, {})
    refuses("classify", "bad argument #2", faults.classify, {}, { 5 })
    refuses(nil, "bad option 'regions'", faults.classify, {}, {}, { regions = { a = 1 } })
    refuses(nil, "bad option 'maps_before'", faults.classify, {}, {}, { maps_before = 3 })
    local r = faults.classify({ { address = 10 } }, { { start = 0, finish = 100, kind = "anon" } },
      { regions = { x = { address = 0, size = 20 } } })
    assert.equal(1, r.by_kind.anonymous)
    assert.equal(1, r.regions.x)
  end)

  it("by_region, format and demo check theirs", function()
    refuses("by_region", "bad argument #1", faults.by_region, 42)
    refuses("by_region", "bad argument #2", faults.by_region, function() end, 42)
    refuses("format", "bad argument #1", faults.format, 42)
    refuses("format", "bad argument #1", faults.format, {})
    local report = faults.classify({}, {})
    refuses("format", "bad argument #2", faults.format, report, "x")
    refuses(nil, "bad option 'top'", faults.format, report, { top = "x" })
    assert.is_table(faults.format(report, { top = 2 }))
    refuses("demo", "bad argument #1", faults.demo, 42)
    refuses(nil, "bad option 'pages'", faults.demo, { pages = -1 })
  end)
end)

describe("vmlab.proc with bad arguments", function()
  it("mapping_at(\"x\") names its address argument", function()
    refuses("mapping_at", "bad argument #1", proc.mapping_at, "x")
    refuses("mapping_at", "bad argument #1", proc.mapping_at, nil)
    refuses("mapping_at", "bad argument #1", proc.mapping_at, 1.5)
    refuses("mapping_at", "bad argument #2", proc.mapping_at, 4096, -3)
  end)

  it("every pid-taking function names a bad pid, even a hostile table", function()
    for _, name in ipairs { "status", "statm", "maps", "smaps", "smaps_rollup", "stat" } do
      for _, v in ipairs(hostile) do
        if v ~= 42 then refuses(name, "bad argument #1", proc[name], v) end
      end
      refuses(name, "bad argument #1", proc[name], ("9"):rep(30))
    end
  end)

  it("a good address still finds its mapping", function()
    local r <close> = assert(vm.mmap(vm.page_size))
    local m = proc.mapping_at(r.address)
    assert.is_true(m.start <= r.address and r.address < m.finish)
  end)
end)

describe("vmlab.child with bad arguments", function()
  it("decode names a non-string argument and calls a damaged one a bad encoding", function()
    refuses("decode", "bad argument #1", child.decode, 42)
    refuses("decode", "bad argument #1", child.decode, nil)
    for _, damaged in ipairs { "", "i12", "s\255\255\255\255", "t\1\0\0\0", "?" } do
      local ok, err = pcall(child.decode, damaged)
      assert.is_false(ok)
      assert.matches("^vmlab%.child: ", err)
    end
    assert.same({ a = 1 }, child.decode(child.encode({ a = 1 })))
  end)

  it("run names its function and options", function()
    refuses("run", "bad argument #1", child.run, 42)
    refuses("run", "bad argument #2", child.run, function() end, 42)
    refuses(nil, "bad option 'buffer'", child.run, function() end, { buffer = math.maxinteger })
    refuses(nil, "bad option 'timeout'", child.run, function() end, { timeout = 0 / 0 })
  end)
end)

describe("vmlab.units with bad arguments", function()
  it("bytes, seconds and count name a non-number; nil stays n/a", function()
    for _, name in ipairs { "bytes", "seconds", "count" } do
      refuses(name, "bad argument #1", units[name], "12")
      refuses(name, "bad argument #1", units[name], {})
      assert.equal("n/a", units[name](nil))
    end
  end)

  it("parse_size names a unit that is no string and returns nil, msg for bad text", function()
    refuses("parse_size", "bad argument #2", units.parse_size, "12", 42)
    assert.equal(12 * 1024, units.parse_size("12", "KiB"))
    for _, v in ipairs(hostile) do
      if v ~= 42 and v ~= "x" then assert.is_nil((units.parse_size(v))) end
    end
  end)
end)

describe("vmlab.self with bad arguments", function()
  it("summary names a bad options table or top", function()
    refuses("summary", "bad argument #1", self_.summary, 42)
    refuses(nil, "bad option 'top'", self_.summary, { top = "all" })
    refuses(nil, "bad option 'top'", self_, { top = -1 })
    assert.is_string(self_.summary({ top = 0 }))
  end)
end)
