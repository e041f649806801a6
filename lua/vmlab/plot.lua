--- vmlab.plot: SVG charts a browser opens, with no dependencies.
--
--     local plot = require "vmlab.plot"
--     local t = r:touch("write", { sample = 1 << 20 })
--     plot.write("touch.svg", plot.timeline(t.timeline, { title = "first touch of 1 GiB" }))
--
-- `timeline` draws RSS and VIRT (left axis, in KiB/MiB/GiB) and the page
-- faults so far (right axis) against the bytes touched or the time; `bars`
-- draws one bar per {label=, value=}; `for_result` picks the right chart for
-- an experiment's result. Every series is a <polyline> or <rect> carrying
-- class="series" and data-series="NAME", and the legend names it too.
-- @module vmlab.plot
local M = {}

local floor, max, min, abs = math.floor, math.max, math.min, math.abs
local concat, fmt = table.concat, string.format

local COLORS = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf" }
local FONT = 'font-family="sans-serif"'

--- Text made safe for XML content and attribute values.
function M.escape(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;", ["'"] = "&apos;" }):gsub("[\0-\8\11\12\14-\31]", "?"))
end
local esc = M.escape

-- Numbers ------------------------------------------------------------------

local BYTE_UNITS = { { "B", 1 }, { "KiB", 1024 }, { "MiB", 1024 ^ 2 }, { "GiB", 1024 ^ 3 }, { "TiB", 1024 ^ 4 } }
local TIME_UNITS = { { "ns", 1e-9 }, { "us", 1e-6 }, { "ms", 1e-3 }, { "s", 1 } }

-- The largest unit in which vmax is at least 1: name, divisor.
local function pick_unit(units, vmax)
  local name, div = units[1][1], units[1][2]
  for _, u in ipairs(units) do
    if vmax >= u[2] then name, div = u[1], u[2] end
  end
  return name, div
end

--- A scale for an axis: unit name and divisor for quantity "bytes",
-- "seconds" or anything else (plain numbers).
function M.unit_for(quantity, vmax)
  if quantity == "bytes" then return pick_unit(BYTE_UNITS, vmax) end
  if quantity == "seconds" then return pick_unit(TIME_UNITS, vmax) end
  return nil, 1
end

-- Round steps: 1, 2 or 5 times a power of ten, about n of them up to vmax.
local function nice_ticks(vmax, n)
  if vmax ~= vmax or vmax <= 0 or vmax == math.huge then vmax = 1 end
  local raw = vmax / n
  local mag = 10 ^ floor(math.log(raw, 10))
  local f = raw / mag
  local step = (f <= 1 and 1 or f <= 2 and 2 or f <= 5 and 5 or 10) * mag
  local top = step * math.ceil(vmax / step - 1e-9)
  local decimals = max(0, -floor(math.log(step, 10) + 1e-9))
  local list = {}
  for i = 0, math.floor(top / step + 0.5) do list[#list + 1] = i * step end
  return list, top, decimals
end

-- "1,234,567" for counts on bars.
local function human(v)
  if math.type(v) == "integer" or (v == floor(v) and abs(v) < 1e15) then
    local s = fmt("%d", v)
    local sign, int = s:match("^(-?)(%d+)$")
    return sign .. int:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  end
  if abs(v) >= 100 then return fmt("%.0f", v) end
  if abs(v) >= 1 then return fmt("%.2f", v) end
  return fmt("%.3g", v)
end

-- A tick label: "0.5", "200", "150,000".
local function num(v, decimals)
  if (decimals or 0) == 0 and abs(v) >= 10000 then return human(floor(v + 0.5)) end
  return fmt("%." .. (decimals or 0) .. "f", v)
end

-- SVG pieces ---------------------------------------------------------------

local function header(w, h, title)
  return {
    '<?xml version="1.0" encoding="UTF-8"?>',
    fmt('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">', w, h, w, h),
    "<title>" .. esc(title) .. "</title>",
    fmt('<rect x="0" y="0" width="%d" height="%d" fill="white"/>', w, h),
    fmt('<text class="title" x="%d" y="28" text-anchor="middle" font-size="18" %s>%s</text>', w // 2, FONT, esc(title)),
  }
end

local function text(out, x, y, s, attrs)
  out[#out + 1] = fmt('<text x="%.1f" y="%.1f" font-size="12" %s %s>%s</text>', x, y, FONT, attrs or "", esc(s))
end

-- Legend entries {name=, color=, dash=, bar=} split into rows no wider than width.
local function legend_rows(entries, width)
  local rows, row, used = {}, {}, 0
  for _, e in ipairs(entries) do
    local ew = 30 + 7.2 * #e.name + 24
    if #row > 0 and used + ew > width then
      rows[#rows + 1] = row
      row, used = {}, 0
    end
    row[#row + 1] = e
    used = used + ew
  end
  if #row > 0 then rows[#rows + 1] = row end
  return rows
end

-- The legend's rows from (x0, y): one row every 18 pixels down.
local function legend(out, x0, y, rows)
  out[#out + 1] = '<g class="legend">'
  for _, row in ipairs(rows) do
    local x = x0
    for _, e in ipairs(row) do
      out[#out + 1] = fmt('<g class="legend-item" data-series="%s">', esc(e.name))
      if e.bar then
        out[#out + 1] = fmt('<rect x="%.1f" y="%.1f" width="14" height="10" fill="%s"/>', x, y - 9, e.color)
      else
        out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"%s/>',
          x, y - 4, x + 24, y - 4, e.color, e.dash and fmt(' stroke-dasharray="%s"', e.dash) or "")
      end
      text(out, x + 30, y, e.name)
      out[#out + 1] = "</g>"
      x = x + 30 + 7.2 * #e.name + 24
    end
    y = y + 18
  end
  out[#out + 1] = "</g>"
end

--- A line chart of series sharing one x axis, on a left and (optionally) a
-- right y axis.
-- @param spec {title=, x = {label=, quantity="bytes"|"seconds"|nil},
--   left = {label=, quantity=}, right = {label=, quantity=} or nil,
--   series = { {name=, axis="left"|"right", points = {{x, y}, ...}, color=, dash=}, ... },
--   width = 860, height = 500}
-- @return svg string
function M.lines(spec)
  local w, h = spec.width or 860, spec.height or 500
  local entries = {}
  for i, sr in ipairs(spec.series) do
    entries[i] = { name = sr.name, color = sr.color or COLORS[(i - 1) % #COLORS + 1], dash = sr.dash }
  end
  local rows = legend_rows(entries, w - 86 - 10)
  local L, R, T, B = 86, spec.right and 86 or 30, 50, 66 + 18 * #rows
  local pw, ph = w - L - R, h - T - B
  local xmax, ymax = { 0 }, { left = 0, right = 0 }
  for _, s in ipairs(spec.series) do
    for _, p in ipairs(s.points) do
      xmax[1] = max(xmax[1], p[1])
      ymax[s.axis or "left"] = max(ymax[s.axis or "left"], p[2])
    end
  end
  local out = header(w, h, spec.title or "vmlab")
  -- x axis
  local xunit, xdiv = M.unit_for(spec.x.quantity, xmax[1])
  local xticks, xtop, xdec = nice_ticks(xmax[1] / xdiv, 8)
  local function X(v) return L + pw * (v / xdiv) / xtop end
  local axes = {}
  for _, side in ipairs { "left", "right" } do
    local a = spec[side]
    if a then
      local unit, div = M.unit_for(a.quantity, ymax[side])
      local ticks, top, dec = nice_ticks(ymax[side] / div, 6)
      axes[side] = { unit = unit, div = div, ticks = ticks, top = top, dec = dec, label = a.label }
    end
  end
  local function Y(side, v)
    local a = axes[side]
    return T + ph - ph * (v / a.div) / a.top
  end
  out[#out + 1] = '<g class="grid" stroke="#dddddd" stroke-width="1">'
  for _, t in ipairs(axes.left.ticks) do
    local y = T + ph - ph * t / axes.left.top
    out[#out + 1] = fmt('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>', L, y, L + pw, y)
  end
  out[#out + 1] = "</g>"
  out[#out + 1] = '<g class="axes" stroke="#333333" stroke-width="1">'
  out[#out + 1] = fmt('<line x1="%d" y1="%d" x2="%d" y2="%d"/>', L, T + ph, L + pw, T + ph)
  out[#out + 1] = fmt('<line x1="%d" y1="%d" x2="%d" y2="%d"/>', L, T, L, T + ph)
  if axes.right then out[#out + 1] = fmt('<line x1="%d" y1="%d" x2="%d" y2="%d"/>', L + pw, T, L + pw, T + ph) end
  out[#out + 1] = "</g>"
  out[#out + 1] = '<g class="x-axis">'
  for _, t in ipairs(xticks) do
    local x = L + pw * t / xtop
    out[#out + 1] = fmt('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333333"/>', x, T + ph, x, T + ph + 5)
    text(out, x, T + ph + 19, num(t, xdec), 'text-anchor="middle"')
  end
  text(out, L + pw / 2, T + ph + 40, spec.x.label .. (xunit and " (" .. xunit .. ")" or ""),
    'text-anchor="middle" class="axis-label"')
  out[#out + 1] = "</g>"
  for side, a in pairs(axes) do
    local right = side == "right"
    out[#out + 1] = fmt('<g class="y-axis" data-axis="%s">', side)
    for _, t in ipairs(a.ticks) do
      local y = T + ph - ph * t / a.top
      local x0 = right and L + pw or L - 5
      out[#out + 1] = fmt('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333333"/>', x0, y, x0 + 5, y)
      text(out, right and L + pw + 8 or L - 8, y + 4, num(t, a.dec), right and "" or 'text-anchor="end"')
    end
    local label = a.label .. (a.unit and " (" .. a.unit .. ")" or "")
    local cx, cy = right and w - 18 or 20, T + ph / 2
    text(out, cx, cy, label, fmt('text-anchor="middle" class="axis-label" transform="rotate(-90 %.1f %.1f)"', cx, cy))
    out[#out + 1] = "</g>"
  end
  for i, s in ipairs(spec.series) do
    local side = s.axis or "left"
    local color = entries[i].color
    local pts = {}
    for _, p in ipairs(s.points) do pts[#pts + 1] = fmt("%.1f,%.1f", X(p[1]), Y(side, p[2])) end
    out[#out + 1] = fmt('<polyline class="series" data-series="%s" data-axis="%s" fill="none" stroke="%s" '
      .. 'stroke-width="2"%s points="%s"><title>%s</title></polyline>', esc(s.name), side, color,
      s.dash and fmt(' stroke-dasharray="%s"', s.dash) or "", concat(pts, " "), esc(s.name))
  end
  legend(out, L, T + ph + 62, rows)
  out[#out + 1] = "</svg>"
  return concat(out, "\n") .. "\n"
end

-- Timelines ----------------------------------------------------------------

local function check_timeline(tl, what)
  if type(tl) ~= "table" or #tl == 0 then
    error(("bad argument #1 to '%s' (a non-empty timeline expected: r:touch(mode, {sample = bytes}).timeline)")
      :format(what), 3)
  end
end

-- RSS, VIRT (unless no_virt) and faults series of one timeline; prefix names them per run.
local function timeline_series(tl, xkey, prefix, color, no_virt)
  local rss, virt, minor, major, any_major = {}, {}, {}, {}, false
  for _, s in ipairs(tl) do
    local x = s[xkey] or 0
    rss[#rss + 1] = { x, s.rss or 0 }
    virt[#virt + 1] = { x, s.virt or 0 }
    minor[#minor + 1] = { x, s.minor_faults or 0 }
    major[#major + 1] = { x, s.major_faults or 0 }
    if (s.major_faults or 0) > 0 then any_major = true end
  end
  local p = prefix and prefix .. " " or ""
  local list = {
    { name = p .. "RSS", points = rss, color = color or "#1f77b4" },
    { name = p .. "VIRT", points = virt, color = color or "#ff7f0e", dash = "8 4" },
    { name = p .. "minor faults", points = minor, axis = "right", color = color or "#2ca02c", dash = "2 3" },
  }
  if no_virt then table.remove(list, 2) end
  if any_major then
    list[#list + 1] = { name = p .. "major faults", points = major, axis = "right", color = color or "#d62728",
      dash = "2 6" }
  end
  return list
end

local function x_axis(x)
  if x == "t" then return { label = "time", quantity = "seconds" } end
  return { label = "bytes touched", quantity = "bytes" }
end

--- A timeline (r:touch(..., {sample=}).timeline, a list of {t=, bytes=,
-- rss=, virt=, minor_faults=, major_faults=}) as an SVG line chart: RSS and
-- VIRT on the left axis, faults so far on the right, against bytes touched
-- (opts.x = "bytes", the default) or time (opts.x = "t"). opts.virt = false
-- leaves VIRT out (when it dwarfs RSS: a huge reservation, a sanitizer).
-- @param timeline the list of samples
-- @param opts {title=, x = "bytes"|"t", virt = true, width=, height=}
-- @return svg string
function M.timeline(timeline, opts)
  opts = opts or {}
  check_timeline(timeline, "timeline")
  local xkey = opts.x == "t" and "t" or "bytes"
  return M.lines {
    title = opts.title or "memory while touching", width = opts.width, height = opts.height,
    x = x_axis(xkey), left = { label = "memory", quantity = "bytes" }, right = { label = "page faults so far" },
    series = timeline_series(timeline, xkey, nil, nil, opts.virt == false),
  }
end

--- Several timelines on one chart, one colour per run.
-- @param runs list of {name=, timeline=}
-- @param opts as for timeline
-- @return svg string
function M.timelines(runs, opts)
  opts = opts or {}
  local xkey = opts.x == "t" and "t" or "bytes"
  local series = {}
  for i, run in ipairs(runs) do
    check_timeline(run.timeline, "timelines")
    for _, s in ipairs(timeline_series(run.timeline, xkey, run.name, COLORS[(i - 1) % #COLORS + 1],
      opts.virt == false)) do
      series[#series + 1] = s
    end
  end
  return M.lines {
    title = opts.title or "memory while touching", width = opts.width, height = opts.height,
    x = x_axis(xkey), left = { label = "memory", quantity = "bytes" }, right = { label = "page faults so far" },
    series = series,
  }
end

-- Bars ---------------------------------------------------------------------

local function bar_label(v, quantity, unit, div)
  if quantity == "bytes" or quantity == "seconds" then return fmt("%.3g %s", v / div, unit) end
  return human(v)
end

--- Panels of bars side by side in one SVG, each with its own y axis.
-- @param title the chart's title
-- @param panels list of {title=, groups = { {label=, value=}, ... },
--   unit = "bytes"|"seconds"|"faults"|any label}
-- @param opts {width=, height=}
-- @return svg string
function M.bar_panels(title, panels, opts)
  opts = opts or {}
  local n = #panels
  local w = opts.width or max(480, 60 + n * 340)
  local h = opts.height or 460
  local out = header(w, h, title)
  -- one colour per label, the same in every panel
  local entries, seen = {}, {}
  for _, panel in ipairs(panels) do
    for _, g in ipairs(panel.groups) do
      if not g.color and not seen[g.label] then
        seen[g.label] = COLORS[#entries % #COLORS + 1]
        entries[#entries + 1] = { name = g.label, color = seen[g.label], bar = true }
      end
    end
  end
  local rows = legend_rows(entries, w - 40)
  local T, B = 60, 62 + 18 * #rows
  local ph = h - T - B
  local slot = (w - 20) / n
  for pi, panel in ipairs(panels) do
    local quantity = panel.unit
    local vmax = 0
    for _, g in ipairs(panel.groups) do vmax = max(vmax, g.value or 0) end
    local unit, div = M.unit_for(quantity, vmax)
    local ticks, top, dec = nice_ticks(vmax / div, 5)
    local L = 20 + (pi - 1) * slot + 70
    local pw = slot - 90
    out[#out + 1] = fmt('<g class="panel" data-panel="%s">', esc(panel.title or title))
    if panel.title then text(out, L + pw / 2, T - 12, panel.title, 'text-anchor="middle" font-weight="bold"') end
    for _, t in ipairs(ticks) do
      local y = T + ph - ph * t / top
      out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>', L, y, L + pw, y)
      text(out, L - 6, y + 4, num(t, dec), 'text-anchor="end"')
    end
    out[#out + 1] = fmt('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333333"/>', L, T + ph, L + pw, T + ph)
    out[#out + 1] = fmt('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333333"/>', L, T, L, T + ph)
    local ylabel = (quantity == "bytes" or quantity == "seconds") and unit or quantity
    local cx, cy = L - 52, T + ph / 2
    if ylabel then
      text(out, cx, cy, ylabel,
        fmt('text-anchor="middle" class="axis-label" transform="rotate(-90 %.1f %.1f)"', cx, cy))
    end
    local k = #panel.groups
    local bw = min(80, pw / max(k, 1) * 0.6)
    for gi, g in ipairs(panel.groups) do
      local v = g.value or 0
      local color = g.color or seen[g.label]
      local cxb = L + pw * (gi - 0.5) / k
      local bh = ph * (v / div) / top
      out[#out + 1] = fmt('<rect class="series" data-series="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" '
        .. 'fill="%s"><title>%s: %s</title></rect>', esc(g.label), cxb - bw / 2, T + ph - bh, bw, bh, color,
        esc(g.label), esc(bar_label(v, quantity, unit, div)))
      text(out, cxb, T + ph - bh - 5, bar_label(v, quantity, unit, div), 'text-anchor="middle"')
      text(out, cxb, T + ph + 17, g.label, 'text-anchor="middle"')
    end
    out[#out + 1] = "</g>"
  end
  legend(out, 30, T + ph + 44, rows)
  out[#out + 1] = "</svg>"
  return concat(out, "\n") .. "\n"
end

--- A bar chart: one bar per group.
-- @param title the chart's title
-- @param groups list of {label=, value=}
-- @param opts {unit = "bytes"|"seconds"|label of the numbers, e.g. "faults"; width=, height=}
-- @return svg string
function M.bars(title, groups, opts)
  opts = opts or {}
  assert(type(groups) == "table", "bad argument #2 to 'bars' (list of {label=, value=} expected)")
  return M.bar_panels(title, { { groups = groups, unit = opts.unit } }, opts)
end

-- Charts per experiment ----------------------------------------------------

local function has_timeline(t)
  return type(t) == "table" and type(t.timeline) == "table" and #t.timeline > 0
end

local function group(label, value)
  if type(value) ~= "number" then return nil end
  return { label = label, value = value }
end

local function panel(title, unit, ...)
  local groups = {}
  for _, g in ipairs { ... } do if g then groups[#groups + 1] = g end end
  if #groups == 0 then return nil end
  return { title = title, unit = unit, groups = groups }
end

local function panels_of(...)
  local list = {}
  for i = 1, select("#", ...) do
    local p = select(i, ...)
    if p then list[#list + 1] = p end
  end
  return list
end

-- The natural bar charts of experiments without a timeline.
local natural = {}

natural["read-write"] = function(r)
  local rd, wr = r.read or {}, r.write or {}
  return panels_of(
    panel("time per page", "ns per page", group("read", rd.ns_per_page), group("write", wr.ns_per_page)),
    panel("page faults", "faults", group("read", rd.minor_faults), group("write", wr.minor_faults),
      group("write after read", r.write_after_read_faults)),
    panel("RSS growth", "bytes", group("read", rd.rss_growth), group("write", wr.rss_growth)))
end

natural.thp = function(r)
  return panels_of(
    panel("page faults", "faults", group("huge pages", r.faults_huge), group("4 KiB pages", r.faults_small)),
    panel("AnonHugePages", "bytes", group("huge pages", r.anon_huge_bytes),
      group("4 KiB pages", r.anon_huge_bytes_small)),
    panel("touch time", "seconds", group("huge pages", r.seconds_huge), group("4 KiB pages", r.seconds_small)))
end

-- ipc: round trips per method, as {method = {round_trip_ns=}} or a list of
-- {method|name=, round_trip_ns=} in result.methods, or the result itself.
natural.ipc = function(r)
  local groups = {}
  local src = r.methods or r.results or r
  local names = {}
  for k, v in pairs(src) do
    if type(v) == "table" and type(v.round_trip_ns) == "number" then
      names[#names + 1] = { label = v.method or v.name or tostring(k), value = v.round_trip_ns, key = k }
    end
  end
  table.sort(names, function(a, b)
    if type(a.key) == type(b.key) then return a.key < b.key end
    return type(a.key) == "number"
  end)
  for _, g in ipairs(names) do groups[#groups + 1] = { label = g.label, value = g.value } end
  if #groups == 0 then return {} end
  return { { title = "round trip", unit = "ns per round trip", groups = groups } }
end

natural.madvise = function(r)
  local groups = {}
  for _, s in ipairs(r.steps or {}) do
    if type(s.rss) == "number" then groups[#groups + 1] = { label = tostring(s.step or #groups + 1), value = s.rss,
      color = "#1f77b4" } end
  end
  if #groups == 0 then return {} end
  return { { title = "RSS after each step", unit = "bytes", groups = groups } }
end

-- regions --faults: the faults per region kind (result.faults, from vmlab.faults).
natural.regions = function(r)
  local f = r.faults
  if type(f) ~= "table" or type(f.by_kind) ~= "table" then return {} end
  local groups = {}
  for _, k in ipairs { "heap", "stack", "anonymous", "file", "shared", "other", "unmapped" } do
    local n = f.by_kind[k]
    if type(n) == "number" and (n > 0 or k ~= "other" and k ~= "unmapped") then
      groups[#groups + 1] = { label = k, value = n }
    end
  end
  return { { title = "page faults per region", unit = "faults", groups = groups } }
end

--- The chart for an experiment's result: its timeline, the read and write
-- timelines (read-write), or the experiment's own bars (read-write, ipc,
-- thp, madvise, regions with faults).
-- @param name experiment name
-- @param result the table run() returned (or the JSON's "result")
-- @param opts {x = "bytes"|"t", virt = false (leave VIRT out), prefer = "bars" (bars over timelines)}
-- @return svg string, or nil and the reason there is no chart
function M.for_result(name, result, opts)
  opts = opts or {}
  if type(result) ~= "table" then return nil, "no result to draw" end
  local title = ("vmlab %s"):format(name)
  if math.type(result.size) == "integer" then
    title = title .. (" (%s)"):format(bar_label(result.size, "bytes", M.unit_for("bytes", result.size)))
  end
  local function bars()
    local build = natural[name]
    local panels = build and build(result) or {}
    if #panels > 0 then return M.bar_panels(title, panels) end
  end
  if opts.prefer == "bars" then
    local svg = bars()
    if svg then return svg end
  end
  if has_timeline(result) then return M.timeline(result.timeline, { title = title, x = opts.x, virt = opts.virt }) end
  if has_timeline(result.read) or has_timeline(result.write) then
    local runs = {}
    for _, k in ipairs { "read", "write" } do
      if has_timeline(result[k]) then runs[#runs + 1] = { name = k, timeline = result[k].timeline } end
    end
    return M.timelines(runs, { title = title, x = opts.x, virt = opts.virt })
  end
  local svg = bars()
  if svg then return svg end
  -- any other timelines one level down (result.touch.timeline, ...)
  local runs, keys = {}, {}
  for k, v in pairs(result) do if has_timeline(v) then keys[#keys + 1] = tostring(k) end end
  table.sort(keys)
  for _, k in ipairs(keys) do runs[#runs + 1] = { name = k, timeline = result[k].timeline } end
  if #runs > 0 then return M.timelines(runs, { title = title, x = opts.x, virt = opts.virt }) end
  if result.skipped then
    return nil, "nothing to draw: the experiment was skipped (" .. tostring(result.skipped) .. ")"
  end
  return nil, ("experiment '%s' has no timeline and no chart of its own"):format(name)
end

--- Write an SVG string to a file.
-- @return true, or nil, msg, errno
function M.write(path, svg)
  local f, err, code = io.open(path, "w")
  if not f then return nil, err, code end
  local ok, werr, wcode = f:write(svg)
  local cok, cerr, ccode = f:close()
  if not ok then return nil, werr, wcode end
  if not cok then return nil, cerr, ccode end
  return true
end

return M
