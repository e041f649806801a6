-- `vmlab run NAME --plot FILE.svg` and `vmlab memtest ... --plot`: charts a
-- browser opens, checked as well-formed XML (lua-expat) with their series.
local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Run bin/vmlab with lua5.4 and this process's package.path/cpath (the build
-- the specs were started with, plain or sanitized); stderr joins stdout
-- unless stderr = false. Returns the output and the exit status.
local function vmlab(args, stderr, env)
  local cmd = ("%s LUA_PATH=%s LUA_CPATH=%s lua5.4 -e 'arg[0]=\"vmlab\"' %s %s %s < /dev/null"):format(
    env or "", q(package.path), q(package.cpath), q(here .. "/bin/vmlab"), args,
    stderr == false and "2>/dev/null" or "2>&1")
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- Run `vmlab ARGS --plot PATH` with a fresh PATH (os.tmpname creates the
-- file: it is removed, so a chart that is not written leaves nothing there).
-- Returns the output, the exit status, the chart's text (nil when none was
-- written) and the path; the chart file is removed.
local function plot_run(args, stderr)
  local path = os.tmpname()
  os.remove(path)
  path = path .. ".svg"
  local out, code = vmlab(args .. " --plot " .. q(path), stderr)
  local f = io.open(path, "rb")
  local svg = f and f:read("a")
  if f then f:close() end
  os.remove(path)
  return out, code, svg, path
end

local function has_lxp()
  local ok = pcall(require, "lxp")
  if not ok then pending("lua-expat (lxp) is not installed: cannot check the XML") end
  return ok
end

local parse = dofile(here .. "/spec/support/svg.lua").parse

-- data-series name -> list of the series' elements.
local function series(elements)
  local by_name = {}
  for _, e in ipairs(elements) do
    if e.attrs.class == "series" then
      local n = e.attrs["data-series"]
      by_name[n] = by_name[n] or {}
      table.insert(by_name[n], e)
    end
  end
  return by_name
end

local function points(e)
  local n = 0
  for _ in (e.attrs.points or ""):gmatch("[%d.%-]+,[%d.%-]+") do n = n + 1 end
  return n
end

describe("vmlab run NAME --plot FILE.svg", function()
  it("draws lazy's timeline: RSS and VIRT against the bytes touched, one point per MiB", function()
    if not has_lxp() then return end
    local out, code, svg, path = plot_run("run lazy --size 64MiB")
    assert.equal(0, code, out)
    assert.matches("chart written to " .. path:gsub("%p", "%%%0"), out)
    assert.is_string(svg, "no chart at " .. path)
    local s = series(parse(svg))
    assert.is_table(s.RSS, "no RSS series")
    assert.is_table(s.VIRT, "no VIRT series")
    assert.equal("polyline", s.RSS[1].name)
    -- 64 MiB sampled every 1 MiB: 65 samples (0 .. 64 MiB)
    assert.equal(65, points(s.RSS[1]))
    assert.equal(65, points(s.VIRT[1]))
    assert.is_table(s["minor faults"], "no faults series")
  end)

  it("draws read-write as bars: read against write", function()
    if not has_lxp() then return end
    local out, code, svg, path = plot_run("run read-write --size 8MiB")
    assert.equal(0, code, out)
    assert.is_string(svg, "no chart at " .. path)
    local s = series(parse(svg))
    for _, name in ipairs { "read", "write" } do
      assert.is_table(s[name], "no bars for " .. name)
      assert.equal("rect", s[name][1].name)
    end
    assert.is_nil(s.RSS, "bars, not a timeline")
  end)

  it("draws read-write's two timelines when asked with --chart timeline", function()
    if not has_lxp() then return end
    local out, code, svg = plot_run("run read-write --size 8MiB --chart timeline")
    assert.equal(0, code, out)
    local s = series(parse(assert(svg)))
    assert.is_table(s["read RSS"], "no read RSS series")
    assert.is_table(s["write RSS"], "no write RSS series")
    assert.equal(9, points(s["write RSS"][1]))
  end)

  it("draws ipc's round trips as bars", function()
    if not has_lxp() then return end
    if not require("vmlab.experiments").get("ipc") then
      pending("there is no ipc experiment")
      return
    end
    local out, code, svg = plot_run("run ipc --sizes 64B --methods pipe,unix-socket --budget 0.02")
    assert.equal(0, code, out)
    local s = series(parse(assert(svg, "no chart: " .. out)))
    local bars = 0
    for _, list in pairs(s) do
      for _, e in ipairs(list) do if e.name == "rect" then bars = bars + 1 end end
    end
    assert.is_true(bars >= 2, "expected a bar per method, found " .. bars)
  end)

  it("refuses an experiment without a chart with exit status 2 before running it, writing no file", function()
    local out, code, svg = plot_run("run page-table")
    assert.equal(2, code, out)
    assert.matches("^vmlab run: %-%-plot: experiment 'page%-table' has no chart: [^\n]+\n$", out)
    assert.is_nil(svg)
  end)

  it("writes a PNG when the name ends in .png (rsvg-convert renders it)", function()
    if not require("vmlab.plot").png_renderer() then
      pending("rsvg-convert is not installed (Debian: librsvg2-bin)")
      return
    end
    local path = os.tmpname()
    os.remove(path)
    path = path .. ".png"
    local out, code = vmlab("run read-write --size 4MiB --plot " .. q(path))
    local f = io.open(path, "rb")
    local png = f and f:read("a")
    if f then f:close() end
    os.remove(path)
    assert.equal(0, code, out)
    assert.is_string(png, "no PNG at " .. path)
    assert.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    -- the canvas of the SVG: at least 560 pixels wide (IHDR width, big-endian)
    assert.is_true(string.unpack(">I4", png, 17) >= 560)
  end)

  it("refuses .png without rsvg-convert, and any other name, with exit status 2 before running", function()
    -- a PATH with lua5.4 and nothing else: no renderer
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir) .. " && ln -s \"$(command -v lua5.4)\" " .. q(dir .. "/lua5.4")))
    local out, code = vmlab("run lazy --size 4MiB --plot /tmp/x-vmlab-never.png", nil, "PATH=" .. q(dir))
    os.execute("rm -rf " .. q(dir))
    assert.equal(2, code, out)
    assert.matches("^vmlab run: %-%-plot: cannot write /tmp/x%-vmlab%-never%.png: a PNG needs rsvg%-convert[^\n]*\n$",
      out)
    assert.is_nil(io.open("/tmp/x-vmlab-never.png"))
    out, code = vmlab("run lazy --size 4MiB --plot /tmp/x-vmlab-never.txt")
    assert.equal(2, code, out)
    assert.matches("^vmlab run: %-%-plot: cannot write /tmp/x%-vmlab%-never%.txt: a chart file ends in %.svg", out)
  end)

  it("draws cow as shared against private bytes over the child's writes", function()
    if not has_lxp() then return end
    local out, code, svg = plot_run("run cow")
    assert.equal(0, code, out)
    local s = series(parse(assert(svg, "no chart: " .. out)))
    assert.is_table(s["shared with the parent"], "no shared series")
    assert.is_table(s["private (the child's copies)"], "no private series")
  end)

  it("with --json prints only the JSON, and still writes the chart", function()
    if not has_lxp() then return end
    local out, code, svg = plot_run("run lazy --size 4MiB --json", false)
    assert.equal(0, code, out)
    assert.matches("^{.*}\n$", out)
    assert.not_matches("chart written", out)
    assert.is_table(series(parse(assert(svg))).RSS)
  end)

  it("refuses --chart without --plot with exit status 2", function()
    local out, code = vmlab("run lazy --size 4MiB --chart bars")
    assert.equal(2, code, out)
    assert.matches("%-%-chart goes with %-%-plot", out)
  end)
end)

describe("vmlab memtest --plot FILE.svg", function()
  it("draws the memtest's timeline with RSS growing as it writes", function()
    if not has_lxp() then return end
    local out, code, svg = plot_run("memtest w 32")
    assert.equal(0, code, out)
    assert.matches("chart written to ", out)
    local s = series(parse(assert(svg, "no chart: " .. out)))
    assert.is_table(s.RSS)
    assert.is_table(s.VIRT)
    assert.equal(33, points(s.RSS[1]))
  end)
end)
