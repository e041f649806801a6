--- The Lua modules name a wrong argument (issue 9 item 11): given nil, a
-- number, a string or a table of the wrong shape, each function raises an
-- error that names the function and the argument ("bad argument #1 to
-- 'report.text' (table expected, got number)", "plot.lines: spec.x must be
-- ..."), never a raw Lua error such as "attempt to index a nil value" from
-- deep inside; and plot refuses sizes no chart can have instead of drawing
-- for ever.
local vm = require "vmlab"
local report = require "vmlab.report"
local plot = require "vmlab.plot"
local record = require "vmlab.record"
local html = require "vmlab.html"
local undo = require "vmlab.undo"
local pagecache = require "vmlab.pagecache"
local vassert = require "vmlab.assert"
local ring = require "vmlab.sum.ring"
local parent = require "vmlab.sum.parent"
local child = require "vmlab.sum.child"
local args = require "vmlab.args"
local describe_mod = require "vmlab.describe"
local experiments = require "vmlab.experiments"
local progress = require "vmlab.progress"
local names_mod = require "vmlab.sum.names"

-- The message of the error f raises (it must raise).
local function raised(f)
  local ok, e = pcall(f)
  assert.is_false(ok, "it should have raised an error")
  return tostring(e)
end

-- f raises an error that contains every one of `says` (plain text) and no raw Lua error.
local function names(f, ...)
  local e = raised(f)
  for _, s in ipairs { ... } do assert.is_truthy(e:find(s, 1, true), ("%q not in: %s"):format(s, e)) end
  assert.is_falsy(e:find("attempt to", 1, true), "a raw Lua error: " .. e)
  assert.is_falsy(e:find("for iterator", 1, true), "a raw Lua error: " .. e)
end

local samples = { { t = 0, bytes = 0, rss = 0, virt = 4096, minor_faults = 0, major_faults = 0 },
  { t = 0.1, bytes = 4096, rss = 4096, virt = 4096, minor_faults = 1, major_faults = 0 } }

describe("vmlab.report with a wrong argument", function()
  it("report.text says its record must be a table", function()
    names(function() report.text(42) end, "bad argument #1 to 'report.text'", "table expected, got number")
  end)
  it("report.text says which field of the record has the wrong type", function()
    names(function() report.text({ experiment = "lazy", params = 5 }) end, "report.text: record.params must be a table")
    names(function() report.text({ result = "x" }) end, "report.text: record.result must be a table")
    names(function() report.text({ system = { probes = 1 } }) end, "report.text: record.system.probes")
  end)
  it("report.text says the experiment module must be a table", function()
    names(function() report.text({}, 42) end, "bad argument #2 to 'report.text'", "got number")
  end)
  it("report.json says its record must be a table", function()
    names(function() report.json(nil) end, "bad argument #1 to 'report.json'", "got nil")
  end)
  it("report.kind says its unit map must be a table", function()
    names(function() report.kind("rss", 42) end, "bad argument #2 to 'report.kind'")
    assert.is_nil(report.kind(nil)) -- no map: no unit, not an error
  end)
  it("report.format says its unit map must be a table", function()
    names(function() report.format("rss", 1, "bytes") end, "bad argument #3 to 'report.format'")
  end)
  it("report.claims_lines says its output list and its result must be tables", function()
    names(function() report.claims_lines("x") end, "bad argument #1 to 'report.claims_lines'")
    names(function() report.claims_lines({}, nil) end, "bad argument #2 to 'report.claims_lines'", "got nil")
    names(function() report.claims_lines({}, { claims = { 7 } }) end,
      "report.claims_lines: result.claims[1] must be a table")
  end)
  it("report.verdict says its claim must be a table", function()
    names(function() report.verdict(1) end, "bad argument #1 to 'report.verdict'", "got number")
  end)
  it("report.text_view says its result must be a table", function()
    names(function() report.text_view(nil) end, "bad argument #1 to 'report.text_view'", "got nil")
    names(function() report.text_view({}, { text_omit = 3 }) end, "report.text_view: e.text_omit must be a table")
  end)
  it("report.wrap says its line starts must be strings", function()
    names(function() report.wrap("a b", nil, "") end, "bad argument #2 to 'report.wrap'")
  end)
  it("report.decode says its text must be a string", function()
    names(function() report.decode(42) end, "bad argument #1 to 'report.decode'")
  end)
end)

describe("vmlab.record with a wrong argument", function()
  it("record.json, record.new and record.encode name the argument", function()
    names(function() record.json("x") end, "bad argument #1 to 'record.json'", "got string")
    names(function() record.new(nil) end, "bad argument #1 to 'record.new'")
    names(function() record.encode({}, 42) end, "bad argument #2 to 'record.encode'")
    names(function() record.encode({}, { order = 1 }) end, "record.encode: opts.order must be a table")
  end)
end)

describe("vmlab.plot with a wrong argument", function()
  it("plot.lines says its spec must be a table, and which part of it is wrong", function()
    names(function() plot.lines(nil) end, "bad argument #1 to 'plot.lines'", "got nil")
    names(function() plot.lines({ series = {} }) end, "plot.lines: spec.x")
    names(function() plot.lines({ x = {}, left = {}, series = { { points = { { 1, "2" } } } } }) end,
      "plot.lines: spec.series[1].points[1] must be a pair of numbers")
  end)
  it("plot.timeline and plot.timelines name the timeline and its samples", function()
    names(function() plot.timeline({ 1, 2 }) end, "plot.timeline: timeline[1] must be a sample table")
    names(function() plot.timeline(samples, 42) end, "bad argument #2 to 'plot.timeline'")
    names(function() plot.timelines(5) end, "bad argument #1 to 'plot.timelines'", "got number")
    names(function() plot.timelines({ 5 }) end, "plot.timelines: runs[1] must be a table")
    names(function() plot.timelines({ { name = "a" } }) end,
      "plot.timelines: runs[1].timeline must be a non-empty timeline")
  end)
  it("plot.hbar_chart, plot.bar_chart and plot.bars name the argument and the row", function()
    names(function() plot.hbar_chart({}) end, "bad argument #1 to 'plot.hbar_chart'", "got table")
    names(function() plot.hbar_chart("t", nil) end, "bad argument #2 to 'plot.hbar_chart'")
    names(function() plot.hbar_chart("t", { { label = "a", value = "big" } }) end, "plot.hbar_chart: rows[1].value")
    names(function() plot.bar_chart("t", 42) end, "bad argument #2 to 'plot.bar_chart'")
    names(function() plot.bar_chart("t", { { groups = { { value = 1 } } } }) end,
      "plot.bar_chart: panels[1].groups[1].label must be a string")
    names(function() plot.bars("t", { 3 }) end, "plot.bars: groups[1] must be a table")
    names(function() plot.bar_panels("t", { 3 }) end, "plot.bar_panels: panels[1] must be a table")
  end)
  it("plot.chart, plot.write and the text helpers name the argument", function()
    names(function() plot.chart(nil, {}) end, "bad argument #1 to 'plot.chart'")
    names(function() plot.write(nil, "<svg/>") end, "bad argument #1 to 'plot.write'")
    names(function() plot.save("x.svg", 42) end, "bad argument #2 to 'plot.save'")
    names(function() plot.fit("abc", nil) end, "bad argument #2 to 'plot.fit'")
    names(function() plot.wrap("abc", "x") end, "bad argument #2 to 'plot.wrap'")
    names(function() plot.text_width("abc", {}) end, "bad argument #2 to 'plot.text_width'")
    names(function() plot.value_text(nil, "bytes") end, "bad argument #1 to 'plot.value_text'")
  end)

  for _, v in ipairs { math.maxinteger, 1e300, 0 / 0, math.huge, -1, 0 } do
    it(("refuses a width or height of %s with a message naming the option"):format(tostring(v)), function()
      names(function() plot.hbar_chart("t", { { label = "a", value = 1 } }, { width = v }) end,
        "plot.hbar_chart: opts.width must be a number of pixels from 100 to 100000")
      names(function() plot.bars("t", { { label = "a", value = 1 } }, { height = v }) end, "plot.bars: opts.height")
      names(function() plot.timeline(samples, { width = v }) end, "plot.timeline: opts.width")
    end)
  end

  it("draws values no axis can hold (infinite, NaN, 5e-324, 1e300) on a log axis in bounded time", function()
    -- each of these once looped for ever (a log axis from 0 or to infinity) or drew 600 tick labels
    for _, v in ipairs { math.huge, 0 / 0, 5e-324, 1e300, -1e300, 0 } do
      local n = 0
      debug.sethook(function()
        n = n + 1
        if n > 200 then error("over 200 million instructions", 0) end
      end, "", 1000000)
      local rows = { { label = "a", value = v }, { label = "b", value = 3 } }
      local ok, svg = pcall(plot.hbar_chart, "t", rows, { log = true })
      local ok2, svg2 = pcall(plot.bar_chart, "t", { { log = true, stacked = true,
        groups = { { label = "x", bars = { { name = "a", value = v } } } } } })
      debug.sethook()
      assert.is_true(ok, tostring(svg))
      assert.is_true(ok2, tostring(svg2))
      assert.is_true(#svg < 100000 and #svg2 < 100000, "a chart of two bars stays small")
    end
  end)
end)

describe("vmlab.html with a wrong argument", function()
  it("html.page and html.write name the argument", function()
    names(function() html.page(nil) end, "bad argument #1 to 'html.page'", "got nil")
    names(function() html.page({ 7 }) end, "html.page: records[1] must be a record table")
    names(function() html.page({}, 42) end, "bad argument #2 to 'html.page'")
    names(function() html.write("x.html", nil) end, "bad argument #2 to 'html.write'")
  end)
end)

describe("vmlab.undo called the wrong way", function()
  it("a method called with a dot instead of a colon says how to call it", function()
    local u = undo.new("spec")
    u.done = true -- nothing to undo
    names(function() u.script() end, "calling 'script' on bad self", "u:script(...)")
    names(function() u.write_back("/proc/sys/vm/overcommit_memory") end, "calling 'write_back' on bad self")
    names(function() u.command("true") end, "calling 'command' on bad self")
    assert.equal(":", u:script())
  end)
end)

describe("vmlab.pagecache with a wrong argument", function()
  it("pagecache.drop names the path and the region", function()
    names(function() pagecache.drop(nil) end, "bad argument #1 to 'pagecache.drop'", "got nil")
    names(function() pagecache.drop(42) end, "bad argument #1 to 'pagecache.drop'", "got number")
    names(function() pagecache.drop("/dev/null", "x") end, "bad argument #2 to 'pagecache.drop'")
  end)
  it("pagecache.fill names the path and the size", function()
    names(function() pagecache.fill(nil, 10, "a") end, "bad argument #1 to 'pagecache.fill'")
    names(function() pagecache.fill("/nonexistent/x", "10", "a") end, "bad argument #2 to 'pagecache.fill'")
  end)
end)

describe("vmlab.assert's helpers with a wrong argument", function()
  it("measure says it wants a function", function()
    names(function() vassert.measure(nil) end, "bad argument #1 to 'vmlab.assert.measure'",
      "function expected, got nil")
  end)
  it("bytes and tolerance say they want numbers", function()
    names(function() vassert.bytes("x") end, "bad argument #1 to 'vmlab.assert.bytes'")
    names(function() vassert.tolerance(0.5, "x") end, "bad argument #2 to 'vmlab.assert.tolerance'")
    assert.equal("nan B", (vassert.bytes(0 / 0):gsub("^%-", ""))) -- NaN is shown, not a format error
  end)
  it("assert.resident says it wants a region", function()
    names(function() assert.resident(42, 1) end, "bad argument #1 to 'resident'", "a region expected")
  end)
end)

describe("vmlab.sum with a wrong argument", function()
  it("sum.parent.summary names its result and the fields it prints", function()
    names(function() parent.summary(nil) end, "bad argument #1 to 'sum.parent.summary'", "got nil")
    names(function() parent.summary({ lines = 1 }) end, "sum.parent.summary: res.numbers must be an integer")
  end)
  it("sum.parent.summary says 1 line, 1 number, 1 error line", function()
    local res = { lines = 1, numbers = 1, errors = 1, seconds = 0.5, lines_per_second = 2, sync = "futex", out = "-" }
    assert.equal("1 line, 1 number, 1 error line, 0.500 s, 2 lines/s (sync futex, out standard output)",
      parent.summary(res))
    res.lines, res.numbers, res.errors, res.out = 6, 7, 2, "sums.txt"
    assert.matches("^6 lines, 7 numbers, 2 error lines, ", parent.summary(res))
    res.lines, res.numbers, res.errors = 6774, 13548, 0 -- plain digits, as ever (no 6,774)
    assert.matches("^6774 lines, 13548 numbers, 0 error lines, ", parent.summary(res))
  end)
  it("sum.parent.run says its options must be a table", function()
    names(function() parent.run(42) end, "bad argument #1 to 'sum.parent.run'", "got number")
  end)
  it("sum.child.main says its arguments must be a table", function()
    names(function() child.main(nil) end, "bad argument #1 to 'sum.child.main'")
  end)
  it("the ring's functions say they want the shared object (a region) and words they know", function()
    names(function() ring.attach(nil) end, "bad argument #1 to 'sum.ring.attach'", "vmlab.Region")
    names(function() ring.stats("x") end, "bad argument #1 to 'sum.ring.stats'")
    names(function() ring.child_state({}) end, "bad argument #1 to 'sum.ring.child_state'")
    names(function() ring.size(nil, 4096) end, "bad argument #1 to 'sum.ring.size'")
    names(function() ring.consumer(nil, 42) end, "bad argument #2 to 'sum.ring.consumer'")
    local r = vm.mmap(ring.size(1, 64), { share = "shared" })
    names(function() ring.init(r, "spin", 1, 64, 1) end, "bad argument #2 to 'sum.ring.init'", "futex, poll or sem")
    names(function() ring.set_child_state(r, "sleeping") end, "bad argument #2 to 'sum.ring.set_child_state'")
    names(function() ring.store_stats(r, { lines = 1 }) end, "sum.ring.store_stats: st.numbers must be an integer")
    names(function() ring.announce(r, "me") end, "bad argument #2 to 'sum.ring.announce'")
    r:close()
  end)
end)

describe("vmlab.args, the one way the Lua modules name a wrong argument", function()
  it("check passes a value of the expected type (nil too when optional) and names the argument otherwise", function()
    assert.equal(5, args.check("m.f", 1, 5, "integer"))
    assert.is_nil(args.check("m.f", 2, nil, "table", true))
    names(function() args.check("m.f", 2, 1.5, "integer") end, "bad argument #2 to 'm.f' (integer expected, got float)")
    names(function() args.check("m.f", 1, nil, "table") end, "bad argument #1 to 'm.f' (table expected, got nil)")
    names(function() args.check("m.f", 1, 3, "table", true) end, "(table or nil expected, got number)")
    names(function() args.check("m.f", 1, vm.mmap(4096), "string") end, "got vmlab.Region")
    names(function() args.option("m.f", "width", "9", "integer") end, "bad option 'width' to 'm.f' (integer expected")
  end)
  it("reports the error at the line that called the checking module, not inside it", function()
    local line = debug.getinfo(1, "l").currentline + 1
    local ok, e = pcall(function() progress.new(42) end)
    assert.is_false(ok)
    assert.matches("facade_args_spec%.lua:" .. line .. ": bad argument #1 to 'progress%.new'", e)
  end)
  it("its own arguments are checked too", function()
    names(function() args.check(nil, 1, 5, "integer") end, "bad argument #1 to 'args.check'")
    names(function() args.bad("m.f", 1.5, "x", 1) end, "bad argument #2 to 'args.bad'")
    names(function() args.check("m.f", 1, 5) end, "bad argument #4 to 'args.check'")
    names(function() args.fail(42) end, "bad argument #1 to 'args.fail'")
  end)
end)

describe("describe, experiments, progress and sum.names with a wrong argument", function()
  it("describe's functions want a param description", function()
    names(function() describe_mod.parse(42, "1") end, "bad argument #1 to 'describe.parse'", "got number")
    names(function() describe_mod.parse({ unit = "bytes" }, 7) end, "bad argument #2 to 'describe.parse'")
    names(function() describe_mod.word(nil, 1) end, "bad argument #1 to 'describe.word'")
    names(function() describe_mod.check({ unit = "furlongs" }, 1) end, "describe.check", "a known unit")
    names(function() describe_mod.check({ unit = "bytes", min = "1" }, 1) end, "describe.check", "numeric min")
    names(function() describe_mod.coerce("x", 1) end, "bad argument #1 to 'describe.coerce'")
    -- a bound against a value that is no number (found by the fuzzer): a reason, not a raw compare error
    assert.equal("size: must be a number, got table", describe_mod.check({ min = 8 }, {}, "size"))
    names(function() describe_mod.plural(2) end, "bad argument #2 to 'describe.plural'")
    assert.equal("2 lines", describe_mod.plural(2, "line"))
  end)
  it("experiments' functions want an experiment, a field path, params and claims", function()
    names(function() experiments.param(42, "size") end, "bad argument #1 to 'experiments.param'", "experiment")
    names(function() experiments.defaults(nil) end, "bad argument #1 to 'experiments.defaults'")
    names(function() experiments.field("lazy", 7) end, "bad argument #2 to 'experiments.field'")
    names(function() experiments.check_params("lazy", nil) end, "bad argument #2 to 'experiments.check_params'")
    names(function() experiments.unmet("zero_page") end, "bad argument #1 to 'experiments.unmet'")
    names(function() experiments.tally({ 1, 2 }) end, "bad argument #1 to 'experiments.tally'", "item 1")
    assert.equal("size", experiments.param("lazy", "size").name)
  end)
  it("progress wants options, a region, a mode and a bar", function()
    names(function() progress.new(42) end, "bad argument #1 to 'progress.new'")
    names(function() progress.new { out = {} } end, "bad option 'out' to 'progress.new'")
    names(function() progress.new { width = 0 } end, "bad option 'width' to 'progress.new'")
    local bar = progress.new { enabled = false }
    names(function() bar.line(42, 1) end, "progress.Bar:line", "a progress bar")
    names(function() bar:line("half") end, "bad argument #2 to 'progress.Bar:line'")
    names(function() bar.finish() end, "progress.Bar:finish")
    names(function() progress.during_touches(true) end, "bad argument #1 to 'progress.during_touches'")
    names(function() progress.touch({}, "write") end, "bad argument #1 to 'progress.touch'", "vmlab.Region")
    local r <close> = vm.mmap(4 * vm.page_size)
    names(function() progress.touch(r, "poke") end, "bad argument #2 to 'progress.touch'")
    names(function() progress.touch(r, "write", { chunk = "big" }) end, "bad option 'chunk' to 'progress.touch'")
    assert.equal(4, progress.touch(r, "write", { progress = { enabled = false } }).pages)
  end)
  it("sum.names.creator_alive wants a pid and a time", function()
    names(function() names_mod.creator_alive(nil, 1) end, "bad argument #1 to 'sum.names.creator_alive'")
    names(function() names_mod.creator_alive(1, true) end, "bad argument #2 to 'sum.names.creator_alive'")
  end)
end)
