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
      "bad argument #1 to 'timeline' (a non-empty timeline expected: r:touch(mode, {sample = bytes}).timeline)")
  end)
end)

describe("plot.bars", function()
  it("draws one bar per group with its label, in bytes when asked", function()
    if not has_lxp() then return end
    local el = parse(plot.bars("RSS after each step", { { label = "mapped", value = 0 },
      { label = "written", value = 64 << 20 }, { label = "dontneed", value = 1 << 20 } }, { unit = "bytes" }))
    local series, legend = series_and_legend(el)
    for _, name in ipairs { "mapped", "written", "dontneed" } do
      assert.is_truthy(series[name])
      assert.is_true(legend[name])
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
    local series = series_and_legend(parse(assert(plot.for_result("read-write", result))))
    assert.is_truthy(series["read RSS"])
    assert.is_truthy(series["write RSS"])
  end)

  it("draws thp as huge against small pages, and ipc as round trips per method", function()
    if not has_lxp() then return end
    local series = series_and_legend(parse(assert(plot.for_result("thp",
      { faults_huge = 32, faults_small = 16384, anon_huge_bytes = 64 << 20, anon_huge_bytes_small = 0 }))))
    assert.is_truthy(series["huge pages"])
    assert.is_truthy(series["4 KiB pages"])
    local ipc = series_and_legend(parse(assert(plot.for_result("ipc",
      { methods = { { method = "pipe", round_trip_ns = 9000 }, { method = "futex", round_trip_ns = 4000 } } }))))
    assert.is_truthy(ipc.pipe)
    assert.is_truthy(ipc.futex)
  end)

  it("says why there is nothing to draw", function()
    local svg, why = plot.for_result("segfault", { cases = {} })
    assert.is_nil(svg)
    assert.equal("experiment 'segfault' has no timeline and no chart of its own", why)
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
