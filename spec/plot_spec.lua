-- Plots: SVG a browser opens, checked as well-formed XML with its series and legend.
local vm = require "vmlab"
local plot = require "vmlab.plot"

local PAGE = vm.page_size
local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil

local parse = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support/svg.lua").parse

-- name -> element of every series, and the legend's item names.
local function series_and_legend(elements)
  local series, legend = {}, {}
  for _, e in ipairs(elements) do
    if e.attrs.class == "series" then series[e.attrs["data-series"]] = e end
    if e.attrs.class == "legend-item" then legend[e.attrs["data-series"]] = true end
  end
  return series, legend
end

local function texts(elements)
  local all = {}
  for _, e in ipairs(elements) do if e.name == "text" then all[#all + 1] = e.text end end
  return table.concat(all, "\n")
end

local function has_lxp()
  local ok = pcall(require, "lxp")
  if not ok then pending("lua-expat (lxp) is not installed: cannot check the XML") end
  return ok
end

describe("the XML check these specs use", function()
  it("rejects a raw & and an unclosed element", function()
    if not has_lxp() then return end
    assert.has_error(function() parse('<svg xmlns="http://www.w3.org/2000/svg"><text>a & b</text></svg>') end)
    assert.has_error(function() parse('<svg xmlns="http://www.w3.org/2000/svg"><g></svg>') end)
  end)
end)

describe("plot.timeline", function()
  it("draws RSS and VIRT against bytes touched with faults on a second axis, all in the legend", function()
    if not has_lxp() then return end
    local r <close> = assert(vm.mmap(64 << 20))
    r:advise("nohugepage")
    local t = r:touch("write", { sample = 1 << 20 })
    local svg = plot.timeline(t.timeline, { title = "first touch of 64 MiB" })
    local el = parse(svg)
    local series, legend = series_and_legend(el)
    for _, name in ipairs { "RSS", "VIRT", "minor faults" } do
      assert.is_truthy(series[name], "no series " .. name)
      assert.is_true(legend[name], "no legend entry " .. name)
    end
    assert.equal("right", series["minor faults"].attrs["data-axis"])
    assert.equal("left", series.RSS.attrs["data-axis"])
    -- one point per sample
    local _, points = series.RSS.attrs.points:gsub("%S+", "")
    assert.equal(#t.timeline, points)
    local words = texts(el)
    assert.matches("first touch of 64 MiB", words, 1, true)
    assert.matches("bytes touched (MiB)", words, 1, true)
    -- under ASan VIRT holds terabytes of shadow memory, and the axis says so
    assert.matches(sanitized and "memory %(%a+%)" or "memory %(MiB%)", words)
    assert.matches("page faults so far", words, 1, true)
  end)

  it("the RSS line climbs as the touch goes on: its last point is higher than its first", function()
    if not has_lxp() then return end
    local r <close> = assert(vm.mmap(32 << 20))
    r:advise("nohugepage")
    local t = r:touch("write", { sample = 1 << 20 })
    -- without VIRT (ASan's terabytes of it would flatten everything else)
    local series = series_and_legend(parse(plot.timeline(t.timeline, { virt = false })))
    assert.is_nil(series.VIRT)
    local ys = {}
    for y in series.RSS.attrs.points:gmatch("[%d.]+,([%d.]+)") do ys[#ys + 1] = tonumber(y) end
    -- under ASan the RSS baseline holds hundreds of MiB of shadow memory, so the rise is shorter on the chart
    local rise = sanitized and 1 or 50
    assert.is_true(ys[#ys] < ys[1] - rise, "RSS did not rise on the chart (SVG y grows downwards)")
  end)

  it("can put time on the x axis", function()
    if not has_lxp() then return end
    local tl = { { t = 0, bytes = 0, rss = 1 << 20, virt = 8 << 20, minor_faults = 0, major_faults = 0 },
      { t = 0.002, bytes = 4 << 20, rss = 5 << 20, virt = 8 << 20, minor_faults = 1024, major_faults = 3 } }
    local el = parse(plot.timeline(tl, { x = "t" }))
    assert.matches("time (ms)", texts(el), 1, true)
    local series = series_and_legend(el)
    assert.is_truthy(series["major faults"], "major faults appear when there are some")
  end)

  it("escapes text so a title with <, & and quotes stays well-formed", function()
    if not has_lxp() then return end
    local tl = { { t = 0, bytes = 0, rss = 0, virt = 0, minor_faults = 0, major_faults = 0 } }
    local el = parse(plot.timeline(tl, { title = [[a <b> & "c" 'd']] }))
    assert.matches([[a <b> & "c" 'd']], texts(el), 1, true)
  end)

  it("refuses an empty timeline with a message that says what it wants", function()
    assert.has_error(function() plot.timeline({}) end,
      "bad argument #1 to 'plot.timeline' (a non-empty timeline expected: r:touch(mode, {sample = bytes}).timeline)")
  end)
end)

describe("plot.bars", function()
  it("draws one bar per group with its label under it, in bytes when asked", function()
    if not has_lxp() then return end
    local el = parse(plot.bars("RSS after each step", { { label = "mapped", value = 0 },
      { label = "written", value = 64 << 20 }, { label = "dontneed", value = 1 << 20 } }, { unit = "bytes" }))
    local series = series_and_legend(el)
    local words = texts(el)
    for _, name in ipairs { "mapped", "written", "dontneed" } do
      assert.is_truthy(series[name])
      assert.matches(name, words, 1, true)
    end
    assert.equal("rect", series.written.name)
    assert.is_true(tonumber(series.written.attrs.height) > tonumber(series.dontneed.attrs.height))
    assert.equal(0, tonumber(series.mapped.attrs.height))
    assert.matches("64 MiB", texts(el), 1, true)
  end)
end)

describe("plot.for_result", function()
  it("draws an experiment's timeline when its result has one", function()
    if not has_lxp() then return end
    local r <close> = assert(vm.mmap(8 << 20))
    local t = r:touch("write", { sample = 1 << 20 })
    local svg = assert(plot.for_result("lazy", { size = 8 << 20, timeline = t.timeline }))
    local series = series_and_legend(parse(svg))
    assert.is_truthy(series.RSS)
  end)

  it("draws read-write as bars of ns per page and faults, or as two timelines when it has them", function()
    if not has_lxp() then return end
    local result = { size = 64 << 20, write_after_read_faults = 16384,
      read = { ns_per_page = 250, minor_faults = 16384, rss_growth = 0 },
      write = { ns_per_page = 900, minor_faults = 16384, rss_growth = 64 << 20 } }
    local el = parse(assert(plot.for_result("read-write", result)))
    local panels = {}
    for _, e in ipairs(el) do if e.attrs.class == "panel" then panels[#panels + 1] = e.attrs["data-panel"] end end
    assert.same({ "time per page", "page faults", "RSS growth" }, panels)
    local tl = { { t = 0, bytes = 0, rss = 0, virt = 0, minor_faults = 0, major_faults = 0 },
      { t = 1, bytes = PAGE, rss = PAGE, virt = PAGE, minor_faults = 1, major_faults = 0 } }
    result.read.timeline, result.write.timeline = tl, tl
    local series = series_and_legend(parse(assert(plot.for_result("read-write", result, { chart = "timeline" }))))
    assert.is_truthy(series["read RSS"])
    assert.is_truthy(series["write RSS"])
  end)

  it("draws thp as huge against small pages, and ipc as round trips per method", function()
    if not has_lxp() then return end
    local series = series_and_legend(parse(assert(plot.for_result("thp",
      { faults_huge = 32, faults_small = 16384, anon_huge_bytes = 64 << 20, anon_huge_bytes_small = 0,
        page_size = PAGE }))))
    assert.is_truthy(series["huge pages"])
    assert.is_truthy(series[vm.units.bytes(PAGE) .. " pages"])
    local el = parse(assert(plot.for_result("ipc", { methods = {
      { method = "pipe", placement = "same-core", message_bytes = 64, round_trip_ns = 9000 },
      { method = "futex", placement = "same-core", message_bytes = 64, round_trip_ns = 4000 },
      { method = "pipe", placement = "same-core", message_bytes = PAGE, round_trip_ns = 12000 },
      { method = "futex", placement = "same-core", message_bytes = PAGE, round_trip_ns = 5000 },
      { method = "pipe", placement = "cross-core", message_bytes = 64, round_trip_ns = 30000 },
      { method = "futex", placement = "cross-core", message_bytes = 64, round_trip_ns = 20000 } } })))
    local ipc, legend = series_and_legend(el)
    assert.is_truthy(ipc.pipe)
    assert.is_true(legend.pipe and legend.futex, "the methods are named in the legend")
    -- one panel per placement, the bars grouped by message size under one label per size
    local panels, words = {}, texts(el)
    for _, e in ipairs(el) do if e.attrs.class == "panel" then panels[#panels + 1] = e.attrs["data-panel"] end end
    assert.same({ "same-core", "cross-core" }, panels)
    assert.matches("64 B messages", words, 1, true)
  end)

  it("says why there is nothing to draw", function()
    local svg, why = plot.for_result("segfault", { cases = {} })
    assert.is_nil(svg)
    assert.matches("^experiment 'segfault' has no chart: ", why)
    svg, why = plot.for_result("thp", { skipped = "THP is off" })
    assert.is_nil(svg)
    assert.matches("skipped %(THP is off%)", why)
  end)

  it("writes the file a browser opens", function()
    local path = os.tmpname()
    assert.is_true(plot.write(path, plot.bars("x", { { label = "a", value = 1 } })))
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    os.remove(path)
    assert.matches("^<%?xml", text)
    assert.matches("</svg>\n$", text)
  end)
end)

-- Text boxes: every text of a chart from its position, anchor, size and rotation (spec/support/svg.lua).
local svgcheck = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "support/svg.lua")

local function assert_readable(svg, what)
  local problems = svgcheck.text_problems(parse(svg))
  assert.equal(0, #problems, what .. ": " .. table.concat(problems, "; "))
end

describe("the text-box check these specs use", function()
  it("finds two texts on top of each other, a text off the canvas, and rotated texts that cross", function()
    if not has_lxp() then return end
    local function svg(body)
      return '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200">' .. body .. "</svg>"
    end
    local t = '<text x="%s" y="%s" font-size="12" text-anchor="%s"%s>%s</text>'
    assert.equal(1, #svgcheck.text_problems(parse(svg(t:format(10, 50, "start", "", "overlapping") ..
      t:format(40, 52, "start", "", "labels")))))
    assert.equal(0, #svgcheck.text_problems(parse(svg(t:format(10, 50, "start", "", "apart") ..
      t:format(10, 70, "start", "", "labels")))))
    assert.equal(1, #svgcheck.text_problems(parse(svg(t:format(190, 50, "start", "", "off the edge")))))
    -- two labels turned 45 degrees 10 px apart cross; 30 px apart they do not
    local r = ' transform="rotate(-45 %s 60)"'
    assert.equal(1, #svgcheck.text_problems(parse(svg(t:format(100, 60, "end", r:format(100), "a long label") ..
      t:format(110, 60, "end", r:format(110), "a long label")))))
    assert.equal(0, #svgcheck.text_problems(parse(svg(t:format(100, 60, "end", r:format(100), "a long label") ..
      t:format(130, 60, "end", r:format(130), "a long label")))))
    -- a y-axis title turned 90 degrees into its tick labels
    assert.equal(1, #svgcheck.text_problems(parse(svg(t:format(90, 100, "end", "", "40,000,000") ..
      t:format(30, 100, "middle", ' transform="rotate(-90 30 100)"', "ns per round trip")))))
  end)
end)

describe("labels that never overlap", function()
  local long = { "mmap", "write", "madvise dontneed", "read after dontneed", "write again", "madvise free",
    "madvise dontneed", "madvise willneed", "madvise populate_write", "munmap", "madvise willneed (file)",
    "malloc + write", "free", "malloc_trim(0)" }

  it("14 long labels under bars: wrapped, turned or numbered with a key, never on top of each other", function()
    if not has_lxp() then return end
    for _, n in ipairs { 3, 6, 14, 40 } do
      local groups = {}
      for i = 1, n do groups[i] = { label = long[(i - 1) % #long + 1], value = i * 3 << 20 } end
      assert_readable(plot.bars("RSS after each step", groups, { unit = "bytes" }), n .. " bars")
      assert_readable(plot.bars("RSS after each step", groups, { unit = "bytes", width = 500 }), n .. " narrow bars")
    end
  end)

  it("huge tick values, long axis titles and log scales keep clear of each other", function()
    if not has_lxp() then return end
    local groups = {}
    for i = 1, 5 do groups[i] = { label = ("method %d"):format(i), value = 10 ^ (i + 3) } end
    assert_readable(plot.bars("ns", groups, { unit = "nanoseconds per round trip of one message" }), "counts")
    assert_readable(plot.bars("log", groups, { unit = "seconds", log = true }), "log seconds")
    assert_readable(plot.hbar_chart("rows", { { label = long[9], value = 1 << 40 }, { label = "x", value = 1 } },
      { unit = "bytes", log = true }), "hbars")
    local tl = {}
    for i = 0, 10 do
      tl[#tl + 1] = { t = i, bytes = i * (1 << 30), rss = i * (1 << 30), virt = 1 << 42, minor_faults = i * 10 ^ 9,
        major_faults = 0 }
    end
    assert_readable(plot.timeline(tl, { title = ("a very long title "):rep(12) }), "timeline")
  end)
end)

describe("every experiment's charts at tour params", function()
  local experiments = require "vmlab.experiments"
  local results = {}

  it("every experiment describes its charts, or says why it has none", function()
    for _, name in ipairs(experiments.names()) do
      local e = assert(experiments.get(name))
      assert.is_table(e.charts, name .. " has no charts field")
      if #e.charts == 0 then
        assert.is_string(e.charts.none, name .. ": no charts and no reason")
      end
      for i, spec in ipairs(e.charts) do
        assert.is_truthy(({ timeline = true, lines = true, bars = true, hbars = true })[spec.kind],
          ("%s chart %d: kind %s"):format(name, i, tostring(spec.kind)))
      end
    end
  end)

  it("draws each one with no text on top of another and none off the canvas", function()
    if not has_lxp() then return end
    local drawn, dir = 0, os.getenv("VMLAB_CHARTS_DIR") -- set it to keep the SVGs (and look at them)
    for _, name in ipairs(experiments.names()) do
      local e = experiments.get(name)
      if #e.charts > 0 then
        local ok, result = pcall(experiments.run, name, nil, { tour = true })
        assert(ok, name .. ": " .. tostring(result))
        results[name] = result
        for i, spec in ipairs(e.charts) do
          local svg, why = plot.chart(spec, result, name)
          if svg then
            drawn = drawn + 1
            assert_readable(svg, ("%s chart %d"):format(name, i))
            if dir then plot.write(("%s/%s-%d.svg"):format(dir, name, i), svg) end
          else
            -- only a chart of something this run did not do may be missing (regions without --faults)
            -- (regions without --faults; oom where no cgroup could be made, so no child was watched; ksm where
            -- KSM could not run, so every claim was skipped)
            local shown = false
            for _, c in ipairs(result.claims or {}) do if c.holds ~= "skipped" then shown = true end end
            assert.is_truthy(result.skipped or (name == "regions" and i == 2) or (name == "oom" and not result.cgroup)
              or (name == "ksm" and not shown),
              ("%s chart %d: %s"):format(name, i, tostring(why)))
          end
        end
      end
    end
    assert.is_true(drawn >= 20, drawn .. " charts")
  end)

  it("cow's chart shows the sharing: shared falls from the whole mapping to nothing while private rises", function()
    if not has_lxp() then return end
    local r = results.cow or experiments.run("cow", nil, { tour = true })
    local series = series_and_legend(parse(assert(plot.for_result("cow", r))))
    local function ys(name)
      local list = {}
      for y in series[name].attrs.points:gmatch("[%d.]+,([%d.]+)") do list[#list + 1] = tonumber(y) end
      return list
    end
    local shared, private = ys("shared with the parent"), ys("private (the child's copies)")
    assert.is_true(#shared >= 3)
    -- SVG y grows downwards: shared starts high and ends at the axis, private the other way
    assert.is_true(shared[1] < shared[#shared] - 100, "shared did not fall")
    assert.is_true(private[1] > private[#private] + 100, "private did not rise")
    local first, last = r.timeline[1], r.timeline[#r.timeline]
    assert.is_true(first.shared >= 0.98 * r.size and first.private <= 0.02 * r.size)
    assert.is_true(last.private >= 0.98 * r.size and last.shared <= 0.02 * r.size)
  end)
end)
