--- vmlab.plot: SVG charts a browser opens, with no dependencies (and PNG
-- through rsvg-convert where it is installed).
--
--     local plot = require "vmlab.plot"
--     local t = r:touch("write", { sample = 1 << 20 })
--     plot.write("touch.svg", plot.timeline(t.timeline, { title = "first touch of 1 GiB" }))
--
-- Only the drawing lives here: `lines` (series on a left and a right axis),
-- `timeline`/`timelines` (RSS, VIRT and faults against bytes touched or
-- time), `bar_chart` (panels of bars: one bar per group, grouped bars or
-- stacked bars, a linear or a log axis) and `hbar_chart` (one labelled row
-- per bar). What an experiment draws is data in its own file: `M.charts`, a
-- list of chart specs (see `chart`), or `M.charts = { none = "why" }`.
-- `charts`/`for_result` draw an experiment's result from them.
--
-- Text never overlaps: every label's width is estimated (`text_width`, an
-- upper bound for DejaVu Sans), margins are made from the widest tick label,
-- axis titles sit outside the tick labels, category labels are kept flat,
-- wrapped, turned 45 degrees or replaced by numbers with a key below, and
-- tick labels that would touch are thinned out. Every series is a
-- <polyline> or <rect> carrying class="series" and data-series="NAME", and
-- the legend names it too.
-- @module vmlab.plot
local M = {}

local floor, max, min, abs, ceil, log = math.floor, math.max, math.min, math.abs, math.ceil, math.log
local concat, fmt = table.concat, string.format

local COLORS = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#7f7f7f" }
M.COLORS = COLORS
local FONT = 'font-family="DejaVu Sans, Verdana, sans-serif"'
local SQRT_HALF = math.sqrt(0.5)

--- Text made safe for XML content and attribute values.
function M.escape(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;", ["'"] = "&apos;" }):gsub("[\0-\8\11\12\14-\31]", "?"))
end
local esc = M.escape

-- Text metrics --------------------------------------------------------------

--- The width in pixels of s at font size `size` (default 12): an upper
-- estimate of DejaVu Sans (what rsvg-convert and most browsers use for
-- sans-serif) from its character classes, never less than 0.6 em a
-- character (0.74 for capitals). bold: 12 % wider.
function M.text_width(s, size, bold)
  s = tostring(s)
  local sum, n, upper = 0, 0, 0
  for i = 1, #s do
    local b = s:byte(i)
    if b < 0x80 or b >= 0xC0 then -- not a UTF-8 continuation byte
      n = n + 1
      local c = string.char(b)
      if b >= 0xC0 or c:match("[mwMW%%@]") then sum = sum + 1.0
      elseif c:match("%u") then sum, upper = sum + 0.78, upper + 1
      elseif c:match("[ijlft%.,:;'|!%(%)%[%] %-/]") then sum = sum + 0.42
      else sum = sum + 0.64 end
    end
  end
  return (size or 12) * max(sum, 0.6 * n + 0.14 * upper) * (bold and 1.12 or 1)
end
local tw = M.text_width

-- s in lines no wider than width (broken at spaces), at most maxlines of
-- them; nil when a word alone is wider or more lines are needed.
local function wrap(s, width, size, maxlines, bold)
  local lines, cur = {}, nil
  for word in tostring(s):gmatch("%S+") do
    if tw(word, size, bold) > width then return nil end
    local try = cur and (cur .. " " .. word) or word
    if tw(try, size, bold) <= width then cur = try
    else
      lines[#lines + 1] = cur
      if #lines >= (maxlines or 3) then return nil end -- more lines are needed: stop measuring
      cur = word
    end
  end
  lines[#lines + 1] = cur or ""
  if #lines > (maxlines or 3) then return nil end
  return lines
end
M.wrap = wrap

-- s cut to at most width pixels, with an ellipsis when cut.
local function fit(s, width, size, bold)
  s = tostring(s)
  if tw(s, size, bold) <= width then return s end
  -- the longest prefix that fits with the ellipsis: a binary search over its
  -- length (a text's width grows with its prefix), so a huge label costs
  -- log2(#s) measurements, not #s of them
  local function prefix(n) -- s cut at n bytes, back to a UTF-8 character boundary
    while n > 0 and (s:byte(n + 1) or 0) >= 0x80 and (s:byte(n + 1) or 0) < 0xC0 do n = n - 1 end
    return n
  end
  local lo, hi = 0, #s - 1 -- lo fits (the empty prefix), hi may not
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    local n = prefix(mid)
    if n > lo and tw(s:sub(1, n) .. "…", size, bold) <= width then lo = n else hi = mid - 1 end
  end
  return lo > 0 and s:sub(1, lo) .. "…" or "…"
end
M.fit = fit

-- s wrapped into at most maxlines lines of width, the last one cut when needed.
local function wrap_or_fit(s, width, size, maxlines, bold)
  local lines = wrap(s, width, size, maxlines, bold)
  if lines then return lines end
  lines = {}
  local rest = tostring(s)
  for i = 1, maxlines do
    if i == maxlines then
      lines[i] = fit(rest, width, size, bold)
      break
    end
    local cur = nil
    for word in rest:gmatch("%S+") do
      local try = cur and (cur .. " " .. word) or word
      if tw(try, size, bold) > width then break end
      cur = try
    end
    if not cur then
      lines[i] = fit(rest, width, size, bold)
      break
    end
    lines[i] = cur
    rest = rest:sub(#cur + 1):gsub("^%s+", "")
    if rest == "" then break end
  end
  return lines
end

-- Numbers ------------------------------------------------------------------

local BYTE_UNITS = { { "B", 1 }, { "KiB", 1024 }, { "MiB", 1024 ^ 2 }, { "GiB", 1024 ^ 3 }, { "TiB", 1024 ^ 4 } }
local TIME_UNITS = { { "ns", 1e-9 }, { "us", 1e-6 }, { "ms", 1e-3 }, { "s", 1 } }

-- The largest unit in which vmax is at least 1: name, divisor.
local function pick_unit(units, vmax)
  local name, div = units[1][1], units[1][2]
  for _, u in ipairs(units) do
    if vmax >= u[2] * (1 - 1e-9) then name, div = u[1], u[2] end
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
  local mag = 10 ^ floor(log(raw, 10))
  local f = raw / mag
  local step = (f <= 1 and 1 or f <= 2 and 2 or f <= 5 and 5 or 10) * mag
  local top = step * ceil(vmax / step - 1e-9)
  local decimals = max(0, -floor(log(step, 10) + 1e-9))
  local list = {}
  for i = 0, floor(top / step + 0.5) do list[#list + 1] = i * step end
  return list, top, decimals
end

-- "1,234,567" for counts.
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
  if (decimals or 0) == 0 and abs(v) >= 1000 then return human(floor(v + 0.5)) end
  return fmt("%." .. (decimals or 0) .. "f", v)
end

-- A value with its unit: "3.2 MiB", "48 us", "1,024", "93.9 %".
local function value_text(v, quantity)
  if quantity == "bytes" or quantity == "seconds" then
    local unit, div = M.unit_for(quantity, abs(v))
    local x = v / div
    return (abs(x) >= 100 and fmt("%.0f", x) or fmt("%.3g", x)) .. " " .. unit
  end
  if quantity == "percent" then return fmt(abs(v) >= 10 and "%.0f %%" or "%.2g %%", v) end
  return human(v)
end
M.value_text = value_text

-- Scales: { frac = function(v) -> 0..1, marks = { {f=, label=} }, unit = name or nil, log = bool }.
-- Steps that are powers of two (8, 16, 32 MiB): about n of them up to vmax, or nil.
local function binary_ticks(vmax, n)
  if vmax ~= vmax or vmax <= 0 or vmax == math.huge then return nil end
  local step = 2 ^ ceil(log(vmax / n, 2) - 1e-9)
  local top = step * ceil(vmax / step - 1e-9)
  if top / step < n / 2 then return nil end
  local list = {}
  for i = 0, floor(top / step + 0.5) do list[#list + 1] = i * step end
  local dec = step >= 1 and 0 or #fmt("%g", step) - 2
  return list, top, dec
end

local function linear_scale(quantity, vmax, n)
  local unit, div = M.unit_for(quantity, vmax)
  local ticks, top, dec
  if quantity == "bytes" then ticks, top, dec = binary_ticks(vmax / div, n or 6) end
  if not ticks then ticks, top, dec = nice_ticks(vmax / div, n or 6) end
  local marks = {}
  for i, t in ipairs(ticks) do marks[i] = { f = t / top, label = num(t, dec) } end
  return { marks = marks, unit = unit, frac = function(v) return (v / div) / top end }
end

local function log_label(v, quantity)
  if quantity == "bytes" or quantity == "seconds" then
    local unit, div = M.unit_for(quantity, v)
    return fmt("%g %s", tonumber(fmt("%.3g", v / div)), unit)
  end
  if v >= 1 then return human(floor(v + 0.5)) end
  return fmt("%g", v)
end

local function log_scale(quantity, vmin, vmax)
  local base = quantity == "bytes" and 1024 or 10
  if vmin ~= vmin or vmin <= 0 then vmin = vmax > 0 and vmax / base or 1 end
  if vmax ~= vmax or vmax <= 0 then vmax = vmin * base end
  local lo = base ^ floor(log(vmin, base) + 1e-9)
  local hi = base ^ ceil(log(vmax, base) - 1e-9)
  if hi <= lo then hi = lo * base end
  local llo, lhi = log(lo), log(hi)
  local marks, v = {}, lo
  while v <= hi * 1.0001 do
    marks[#marks + 1] = { f = (log(v) - llo) / (lhi - llo), label = log_label(v, quantity) }
    v = v * base
  end
  return { marks = marks, log = true, frac = function(x)
    if x ~= x or x <= 0 then return 0 end
    return max(0, (log(x) - llo) / (lhi - llo))
  end }
end

local function scale_for(quantity, vmin, vmax, uselog, n)
  if uselog then return log_scale(quantity, vmin, vmax) end
  return linear_scale(quantity, vmax, n)
end

-- The axis title: "memory (MiB)"; a log axis carries its units on its ticks.
local function axis_title(label, scale)
  label = label or ""
  if scale.unit and not scale.log then return label .. (label ~= "" and " (" or "(") .. scale.unit .. ")" end
  if scale.log then return label .. (label ~= "" and ", log scale" or "log scale") end
  return label
end

local function widest(marks, size)
  local w = 0
  for _, m in ipairs(marks) do w = max(w, tw(m.label, size)) end
  return w
end

-- SVG pieces ---------------------------------------------------------------

-- One <text>: o = { size = 12, anchor = "start"|"middle"|"end", rotate = degrees about (x, y), bold, class }.
local function text(out, x, y, s, o)
  o = o or {}
  local attrs = { fmt('x="%.1f" y="%.1f" font-size="%d"', x, y, o.size or 12), FONT,
    fmt('text-anchor="%s"', o.anchor or "start") }
  if o.rotate then attrs[#attrs + 1] = fmt('transform="rotate(%g %.1f %.1f)"', o.rotate, x, y) end
  if o.bold then attrs[#attrs + 1] = 'font-weight="bold"' end
  if o.class then attrs[#attrs + 1] = fmt('class="%s"', o.class) end
  if o.fill then attrs[#attrs + 1] = fmt('fill="%s"', o.fill) end
  out[#out + 1] = fmt("<text %s>%s</text>", concat(attrs, " "), esc(s))
end

local TITLE_SIZE, TITLE_LINE = 17, 22

-- The title's lines for a canvas w wide (at most 2 of about even length, the last one cut).
local function title_lines(title, w)
  local room = w - 24
  if tw(title, TITLE_SIZE, true) <= room then return { title } end
  for width = tw(title, TITLE_SIZE, true) / 2, room, 8 do
    local lines = wrap(title, width, TITLE_SIZE, 2, true)
    if lines then return lines end
  end
  return wrap_or_fit(title, room, TITLE_SIZE, 2, true)
end

-- The top of the SVG with its title; returns the list and the y below the title.
local function header(w, h, title, lines)
  w, h = ceil(w), ceil(h)
  local out = {
    '<?xml version="1.0" encoding="UTF-8"?>',
    fmt('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">', w, h, w, h),
    "<title>" .. esc(title) .. "</title>",
    fmt('<rect x="0" y="0" width="%d" height="%d" fill="white"/>', w, h),
  }
  for i, line in ipairs(lines) do
    text(out, w / 2, 26 + (i - 1) * TITLE_LINE, line, { size = TITLE_SIZE, anchor = "middle", bold = true,
      class = "title" })
  end
  return out
end

local function title_bottom(lines) return 26 + (#lines - 1) * TITLE_LINE + 8 end

local function legend_item_width(e) return 30 + tw(e.name, 12) + 18 end

-- Legend entries {name=, color=, dash=, bar=} split into rows no wider than width.
local function legend_rows(entries, width)
  local rows, row, used = {}, {}, 0
  for _, e in ipairs(entries) do
    if legend_item_width(e) > width then e.name = fit(e.name, width - 48, 12) end
    local ew = legend_item_width(e)
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
        out[#out + 1] = fmt('<rect x="%.1f" y="%.1f" width="14" height="10" fill="%s"/>', x + 5, y - 9, e.color)
      else
        out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"%s/>',
          x, y - 4, x + 24, y - 4, e.color, e.dash and fmt(' stroke-dasharray="%s"', e.dash) or "")
      end
      text(out, x + 30, y, e.name)
      out[#out + 1] = "</g>"
      x = x + legend_item_width(e)
    end
    y = y + 18
  end
  out[#out + 1] = "</g>"
end

-- A vertical axis at x from y=T down to T+ph: ticks, labels (left of it, or
-- right with right = true) and its title outside the labels.
local AXIS_TITLE_SIZE = 12
local function y_axis(out, x, T, ph, scale, title, right, side)
  out[#out + 1] = fmt('<g class="y-axis" data-axis="%s">', side or (right and "right" or "left"))
  local lw = widest(scale.marks, 12)
  for _, m in ipairs(scale.marks) do
    local y = T + ph - ph * m.f
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>',
      right and x or x - 5, y, right and x + 5 or x, y)
    text(out, right and x + 8 or x - 8, y + 4, m.label, { anchor = right and "start" or "end" })
  end
  if title and title ~= "" then
    local s = fit(title, ph - 4, AXIS_TITLE_SIZE)
    local cx = right and x + 8 + lw + 8 + 0.8 * AXIS_TITLE_SIZE or x - 8 - lw - 8 - 0.25 * AXIS_TITLE_SIZE
    local cy = T + ph / 2
    text(out, cx, cy, s, { anchor = "middle", rotate = -90, class = "axis-label", size = AXIS_TITLE_SIZE })
  end
  out[#out + 1] = "</g>"
end

-- The room an axis takes beside the plot: tick, labels, gap, title.
local function y_axis_room(scale, title)
  return 8 + widest(scale.marks, 12) + ((title and title ~= "") and (8 + 1.05 * AXIS_TITLE_SIZE + 4) or 4)
end

-- Which x tick labels to show so that none touches its neighbour: every k-th.
local function thin(xs, labels, size)
  local k = 1
  while k < #xs do
    local ok = true
    for i = 1 + k, #xs, k do
      local gap = xs[i] - xs[i - k]
      if (tw(labels[i], size) + tw(labels[i - k], size)) / 2 + 8 > gap then ok = false break end
    end
    if ok then break end
    k = k + 1
  end
  return k
end

--- A line chart of series sharing one x axis, on a left and (optionally) a
-- right y axis.
-- @param spec {title=, x = {label=, quantity="bytes"|"seconds"|nil},
--   left = {label=, quantity=, log=}, right = {label=, quantity=} or nil,
--   series = { {name=, axis="left"|"right", points = {{x, y}, ...}, color=, dash=}, ... },
--   width = 860, height = 500}
-- @return svg string
function M.lines(spec)
  local w = spec.width or 860
  local entries = {}
  for i, sr in ipairs(spec.series) do
    entries[i] = { name = sr.name, color = sr.color or COLORS[(i - 1) % #COLORS + 1], dash = sr.dash }
  end
  local xmax, ymax, ymin = 0, { left = 0, right = 0 }, { left = math.huge, right = math.huge }
  for _, s in ipairs(spec.series) do
    local side = s.axis or "left"
    for _, p in ipairs(s.points) do
      xmax = max(xmax, p[1])
      ymax[side] = max(ymax[side], p[2])
      if p[2] > 0 then ymin[side] = min(ymin[side], p[2]) end
    end
  end
  local axes, titles = {}, {}
  for _, side in ipairs { "left", "right" } do
    local a = spec[side]
    if a then
      axes[side] = scale_for(a.quantity, ymin[side], ymax[side], a.log, 6)
      titles[side] = axis_title(a.label, axes[side])
    end
  end
  local xs = linear_scale(spec.x.quantity, xmax, 8)
  local L = 10 + y_axis_room(axes.left, titles.left)
  local last_half = tw(xs.marks[#xs.marks].label, 12) / 2 + 6
  local R = axes.right and 10 + y_axis_room(axes.right, titles.right) or max(30, last_half)
  local pw = w - L - R
  local tlines = title_lines(spec.title or "vmlab", w)
  local rows = legend_rows(entries, w - 20)
  local T = title_bottom(tlines) + 12
  local B = 5 + 19 + 24 + 12 + 18 * #rows
  local h = max(spec.height or 500, T + B + 220)
  local ph = h - T - B
  local out = header(w, h, spec.title or "vmlab", tlines)
  local function X(v) return L + pw * xs.frac(v) end
  local function Y(side, v) return T + ph - ph * axes[side].frac(v) end
  out[#out + 1] = '<g class="grid" stroke="#dddddd" stroke-width="1">'
  for _, m in ipairs(axes.left.marks) do
    local y = T + ph - ph * m.f
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>', L, y, L + pw, y)
  end
  out[#out + 1] = "</g>"
  out[#out + 1] = '<g class="axes" stroke="#333333" stroke-width="1">'
  out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>', L, T + ph, L + pw, T + ph)
  out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>', L, T, L, T + ph)
  if axes.right then
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>', L + pw, T, L + pw, T + ph)
  end
  out[#out + 1] = "</g>"
  out[#out + 1] = '<g class="x-axis">'
  local px, labels = {}, {}
  for i, m in ipairs(xs.marks) do px[i], labels[i] = L + pw * m.f, m.label end
  local k = thin(px, labels, 12)
  for i, x in ipairs(px) do
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>', x, T + ph, x, T + ph + 5)
    if (i - 1) % k == 0 then text(out, x, T + ph + 19, labels[i], { anchor = "middle" }) end
  end
  text(out, L + pw / 2, T + ph + 43, fit(axis_title(spec.x.label, xs), pw, 12),
    { anchor = "middle", class = "axis-label" })
  out[#out + 1] = "</g>"
  y_axis(out, L, T, ph, axes.left, titles.left, false, "left")
  if axes.right then y_axis(out, L + pw, T, ph, axes.right, titles.right, true, "right") end
  for i, s in ipairs(spec.series) do
    local side = s.axis or "left"
    local pts = {}
    for _, p in ipairs(s.points) do pts[#pts + 1] = fmt("%.1f,%.1f", X(p[1]), Y(side, p[2])) end
    out[#out + 1] = fmt('<polyline class="series" data-series="%s" data-axis="%s" fill="none" stroke="%s" '
      .. 'stroke-width="2"%s points="%s"><title>%s</title></polyline>', esc(s.name), side, entries[i].color,
      s.dash and fmt(' stroke-dasharray="%s"', s.dash) or "", concat(pts, " "), esc(s.name))
  end
  legend(out, 10, T + ph + 70, rows)
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

-- How category labels fit under slots `slot` pixels wide: a layout
-- {mode = "flat"|"wrap"|"rotate"|"key", lines = {{...}, ...} (flat, wrap),
--  texts = {...} (rotate, key), height = pixels below the axis}.
local LABEL = 12
local function label_layout(labels, slot, left_room)
  local room = slot - 6
  local flat = true
  for _, l in ipairs(labels) do if tw(l, LABEL) > room then flat = false break end end
  if flat then
    local lines = {}
    for i, l in ipairs(labels) do lines[i] = { l } end
    return { mode = "flat", lines = lines, height = 20 }
  end
  local lines, most = {}, 0
  for i, l in ipairs(labels) do
    lines[i] = wrap(l, room, LABEL, 3)
    if not lines[i] then lines = nil break end
    most = max(most, #lines[i])
  end
  if lines then return { mode = "wrap", lines = lines, height = 6 + 15 * most } end
  if slot >= 1.05 * LABEL / SQRT_HALF + 6 then
    -- turned 45 degrees: the text ends under its bar and runs down to the left
    local texts, longest = {}, 0
    for i, l in ipairs(labels) do
      local limit = min(170, ((left_room[i] or 170) - 4) / SQRT_HALF - LABEL)
      texts[i] = fit(l, limit, LABEL)
      longest = max(longest, tw(texts[i], LABEL))
    end
    return { mode = "rotate", texts = texts, height = 12 + (longest + LABEL) * SQRT_HALF }
  end
  -- numbered, with a key below; every k-th number when even the numbers do not fit
  local texts, k = {}, 1
  while tw(tostring(#labels), LABEL) + 4 > slot * k do k = k + 1 end
  for i = 1, #labels do texts[i] = ((i - 1) % k == 0) and tostring(i) or "" end
  return { mode = "key", texts = texts, height = 20 }
end

-- Draw category labels centred at xs under the axis at y0.
local function draw_labels(out, layout, xs, y0)
  if layout.mode == "rotate" then
    for i, x in ipairs(xs) do
      text(out, x + 0.35 * LABEL, y0 + 10, layout.texts[i], { anchor = "end", rotate = -45, class = "category" })
    end
    return
  end
  for i, x in ipairs(xs) do
    local lines = layout.lines and layout.lines[i] or { layout.texts[i] }
    for j, l in ipairs(lines) do
      if l ~= "" then text(out, x, y0 + 17 + (j - 1) * 15, l, { anchor = "middle", class = "category" }) end
    end
  end
end

-- The key under a chart whose labels became numbers: "1 = mmap", ... in rows.
local function key_rows(labels, width)
  local entries = {}
  for i, l in ipairs(labels) do entries[i] = { name = ("%d = %s"):format(i, l) } end
  local rows, row, used = {}, {}, 0
  for _, e in ipairs(entries) do
    e.name = fit(e.name, width, 12)
    local ew = tw(e.name, 12) + 20
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

local function draw_key(out, rows, x0, y)
  out[#out + 1] = '<g class="key">'
  for _, row in ipairs(rows) do
    local x = x0
    for _, e in ipairs(row) do
      text(out, x, y, e.name)
      x = x + tw(e.name, 12) + 20
    end
    y = y + 17
  end
  out[#out + 1] = "</g>"
end

-- A group's bars: { {name=, value=, color=} } (one bar for {label=, value=}).
local function bars_of(g)
  if g.bars then return g.bars end
  return { { name = g.label, value = g.value, color = g.color } }
end

local function default_axis(quantity)
  if quantity == "bytes" then return "memory" end
  if quantity == "seconds" then return "time" end
  if quantity == "percent" then return "%" end
  return quantity
end

--- Panels of bars side by side in one SVG, each with its own y axis.
-- A group is one bar ({label=, value=, color=}) or several ({label=,
-- bars = { {name=, value=}, ... }}: side by side, or stacked with
-- panel.stacked), the bars' names in the legend, one colour per name in
-- every panel.
-- @param title the chart's title
-- @param panels list of {title=, unit = "bytes"|"seconds"|"percent"|a label
--   of the numbers ("faults"), axis = the y axis' title, log = true (a log
--   axis), stacked = true, groups = {...}}
-- @param opts {width=, height=, legend = false, same_scale = true (one y scale for every panel)}
-- @return svg string
function M.bar_chart(title, panels, opts)
  opts = opts or {}
  -- colours: one per bar name, the same in every panel
  local entries, color_of, named, grouped = {}, {}, {}, false
  -- colours named by the specs first, then the others from the palette, none used twice while it lasts
  local taken, next_color = {}, 0
  for _, panel in ipairs(panels) do
    for _, g in ipairs(panel.groups) do
      for _, b in ipairs(bars_of(g)) do
        if b.color and not color_of[b.name] then color_of[b.name], taken[b.color] = b.color, true end
      end
    end
  end
  local function fresh()
    for _ = 1, #COLORS do
      next_color = next_color % #COLORS + 1
      if not taken[COLORS[next_color]] then
        taken[COLORS[next_color]] = true
        return COLORS[next_color]
      end
    end
    next_color = next_color % #COLORS + 1
    return COLORS[next_color]
  end
  for _, panel in ipairs(panels) do
    for _, g in ipairs(panel.groups) do
      if g.bars then grouped = true end
      for _, b in ipairs(bars_of(g)) do
        if not color_of[b.name] then color_of[b.name] = fresh() end
        if g.bars and not named[b.name] then -- a single bar is named under it, grouped ones in the legend
          named[b.name] = true
          entries[#entries + 1] = { name = b.name, color = color_of[b.name], bar = true }
        end
      end
    end
  end
  -- each panel: its scale, its axis room, its width
  local layout = {}
  local total = 0
  local all_max, all_min = 0, math.huge
  for pi, panel in ipairs(panels) do
    local quantity = panel.unit
    local vmax, vmin = 0, math.huge
    if opts.same_scale and pi > 1 then vmax, vmin = all_max, all_min end
    for _, g in ipairs(panel.groups) do
      local sum = 0
      for _, b in ipairs(bars_of(g)) do
        local v = b.value or 0
        if panel.stacked then sum = sum + max(v, 0) else vmax = max(vmax, v) end
        if v > 0 then vmin = min(vmin, v) end
      end
      vmax = max(vmax, sum)
    end
    if opts.same_scale and pi == 1 then
      for _, p in ipairs(panels) do
        for _, g in ipairs(p.groups) do
          local sum = 0
          for _, b in ipairs(bars_of(g)) do
            local v = b.value or 0
            if p.stacked then sum = sum + max(v, 0) else vmax = max(vmax, v) end
            if v > 0 then vmin = min(vmin, v) end
          end
          vmax = max(vmax, sum)
        end
      end
      all_max, all_min = vmax, vmin
    end
    local scale = scale_for(quantity, vmin, vmax, panel.log, 6)
    local ytitle = axis_title(panel.axis or default_axis(quantity), scale)
    local k = 0
    for _, g in ipairs(panel.groups) do k = max(k, panel.stacked and 1 or #bars_of(g)) end
    local per_group = (k <= 1) and 84 or (k * 20 + 18)
    local pw = max(170, #panel.groups * per_group)
    local room = 14 + y_axis_room(scale, ytitle)
    layout[pi] = { scale = scale, ytitle = ytitle, pw = pw, room = room, k = k }
    total = total + room + pw + 16
  end
  local w = opts.width or max(560, floor(total + 10))
  local stretch = (w - 10 - 16 * #panels) / max(1, total - 16 * #panels)
  if opts.width or stretch > 1 then
    for _, lay in ipairs(layout) do
      lay.pw = max(60, (lay.pw + lay.room) * stretch - lay.room)
    end
  end
  -- panel titles, category labels
  local x = 5
  local head, below = 0, 20
  for pi, panel in ipairs(panels) do
    local lay = layout[pi]
    lay.L = x + lay.room
    x = lay.L + lay.pw + 16
    lay.title = panel.title and wrap_or_fit(panel.title, lay.pw + lay.room - 20, 13, 2, true) or {}
    head = max(head, #lay.title)
    local n = #panel.groups
    lay.slot = lay.pw / max(n, 1)
    local labels, left_room = {}, {}
    for gi, g in ipairs(panel.groups) do
      labels[gi] = tostring(g.label)
      left_room[gi] = lay.room + lay.slot * (gi - 0.5) - 2 -- to the panel's left edge
    end
    lay.labels = label_layout(labels, lay.slot, left_room)
    lay.key = lay.labels.mode == "key" and key_rows(labels, lay.pw + lay.room - 10) or nil
    below = max(below, lay.labels.height + (lay.key and 17 * #lay.key + 6 or 0))
  end
  local tlines = title_lines(title, w)
  local show_legend = opts.legend ~= false and grouped
  local rows = show_legend and legend_rows(entries, w - 20) or {}
  local T = title_bottom(tlines) + 4 + head * 16 + 20
  local B = below + 10 + 18 * #rows + 4
  local h = max(opts.height or 460, T + B + 200)
  local ph = h - T - B
  local out = header(w, h, title, tlines)
  for pi, panel in ipairs(panels) do
    local lay, quantity = layout[pi], panel.unit
    local L, pw, scale = lay.L, lay.pw, lay.scale
    out[#out + 1] = fmt('<g class="panel" data-panel="%s">', esc(panel.title or title))
    for i, l in ipairs(lay.title) do
      text(out, L + pw / 2 - lay.room / 2 + 7, title_bottom(tlines) + 4 + i * 16 - 4, l,
        { anchor = "middle", bold = true, size = 13, class = "panel-title" })
    end
    for _, m in ipairs(scale.marks) do
      local y = T + ph - ph * m.f
      out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>', L, y, L + pw, y)
    end
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>', L, T + ph, L + pw, T + ph)
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>', L, T, L, T + ph)
    y_axis(out, L, T, ph, scale, lay.ytitle, false, "left")
    -- bars, and their values where every value fits over its bar
    local slot, k = lay.slot, lay.k
    local bw = min(70, slot * 0.8 / max(k, 1), k <= 1 and slot * 0.6 or math.huge)
    local fits = true
    if not panel.stacked then
      for _, g in ipairs(panel.groups) do
        for _, b in ipairs(bars_of(g)) do
          if tw(value_text(b.value or 0, quantity), 11) > (k <= 1 and slot - 6 or bw - 2) then fits = false end
        end
      end
    end
    local centres = {}
    for gi, g in ipairs(panel.groups) do
      local cx = L + slot * (gi - 0.5)
      centres[gi] = cx
      local list = bars_of(g)
      local base = 0
      for bi, b in ipairs(list) do
        local v = b.value or 0
        local x0, top, bottom
        if panel.stacked then
          x0 = cx - bw / 2
          bottom = T + ph - ph * min(1, scale.frac(base))
          base = base + max(v, 0)
          top = T + ph - ph * min(1, scale.frac(base))
        else
          x0 = cx - bw * #list / 2 + bw * (bi - 1)
          bottom, top = T + ph, T + ph - ph * min(1, max(0, scale.frac(max(v, 0))))
        end
        local label = g.bars and (g.label .. ", " .. b.name) or b.name
        out[#out + 1] = fmt('<rect class="series" data-series="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" '
          .. 'fill="%s"><title>%s: %s</title></rect>', esc(b.name), x0, top, bw, max(0, bottom - top),
          color_of[b.name], esc(label), esc(value_text(v, quantity)))
        if fits and not panel.stacked then
          text(out, x0 + bw / 2, top - 5, value_text(v, quantity), { anchor = "middle", size = 11, class = "value" })
        end
      end
      if panel.stacked and fits then
        local y = T + ph - ph * min(1, scale.frac(base))
        if tw(value_text(base, quantity), 11) <= slot - 6 then
          text(out, cx, y - 5, value_text(base, quantity), { anchor = "middle", size = 11, class = "value" })
        end
      end
    end
    draw_labels(out, lay.labels, centres, T + ph)
    if lay.key then draw_key(out, lay.key, L - lay.room + 12, T + ph + 20 + 14) end
    out[#out + 1] = "</g>"
  end
  if #rows > 0 then legend(out, 10, T + ph + below + 18, rows) end
  out[#out + 1] = "</svg>"
  return concat(out, "\n") .. "\n"
end

--- The former name of bar_chart (panels of single bars).
function M.bar_panels(title, panels, opts) return M.bar_chart(title, panels, opts) end

--- A bar chart: one bar per group.
-- @param title the chart's title
-- @param groups list of {label=, value=}
-- @param opts {unit = "bytes"|"seconds"|label of the numbers, e.g. "faults"; log=, width=, height=}
-- @return svg string
function M.bars(title, groups, opts)
  opts = opts or {}
  assert(type(groups) == "table", "bad argument #2 to 'bars' (list of {label=, value=} expected)")
  return M.bar_chart(title, { { groups = groups, unit = opts.unit, log = opts.log, axis = opts.axis } }, opts)
end

--- Horizontal bars: one row per bar, its label on the left, its value at
-- its end; bars with a `key` are coloured by it, the keys in a legend.
-- @param title the chart's title
-- @param rows list of {label=, value=, key=}
-- @param opts {unit=, log=, axis= (the x axis' title), width = 860}
-- @return svg string
function M.hbar_chart(title, rows, opts)
  opts = opts or {}
  local w = opts.width or 860
  local quantity = opts.unit
  local vmax, vmin = 0, math.huge
  local entries, color_of = {}, {}
  for _, r in ipairs(rows) do
    local v = r.value or 0
    vmax = max(vmax, v)
    if v > 0 then vmin = min(vmin, v) end
    local key = r.key or ""
    if not color_of[key] then
      color_of[key] = COLORS[#entries % #COLORS + 1]
      entries[#entries + 1] = { name = key, color = color_of[key], bar = true }
    end
  end
  local scale = scale_for(quantity, vmin, vmax, opts.log, 6)
  local labels, lw = {}, 0
  for i, r in ipairs(rows) do
    labels[i] = fit(r.label, w * 0.4, 12)
    lw = max(lw, tw(labels[i], 12))
  end
  local values, vw = {}, 0
  for i, r in ipairs(rows) do
    values[i] = value_text(r.value or 0, quantity)
    vw = max(vw, tw(values[i], 11))
  end
  local L = 10 + lw + 10
  local last = tw(scale.marks[#scale.marks].label, 12) / 2
  local R = max(vw + 14, last + 8)
  local pw = w - L - R
  local tlines = title_lines(title, w)
  local keyed = #entries > 1 or (entries[1] and entries[1].name ~= "")
  local lrows = keyed and legend_rows(entries, w - 20) or {}
  local T = title_bottom(tlines) + 10
  local ROW = 24
  local ph = ROW * #rows
  local B = 5 + 19 + 24 + 12 + 18 * #lrows
  local h = T + ph + B
  local out = header(w, h, title, tlines)
  out[#out + 1] = '<g class="panel" data-panel="' .. esc(title) .. '">'
  for _, m in ipairs(scale.marks) do
    local x = L + pw * m.f
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#dddddd"/>', x, T, x, T + ph)
  end
  out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>', L, T, L, T + ph)
  out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>', L, T + ph, L + pw, T + ph)
  local px, marks = {}, {}
  for i, m in ipairs(scale.marks) do px[i], marks[i] = L + pw * m.f, m.label end
  local k = thin(px, marks, 12)
  for i, x in ipairs(px) do
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>', x, T + ph, x, T + ph + 5)
    if (i - 1) % k == 0 then text(out, x, T + ph + 19, marks[i], { anchor = "middle" }) end
  end
  text(out, L + pw / 2, T + ph + 43, fit(axis_title(opts.axis or default_axis(quantity), scale), pw, 12),
    { anchor = "middle", class = "axis-label" })
  for i, r in ipairs(rows) do
    local y = T + ROW * (i - 1)
    local v = r.value or 0
    local bwid = pw * min(1, max(0, scale.frac(max(v, 0))))
    text(out, L - 8, y + ROW / 2 + 4, labels[i], { anchor = "end", class = "category" })
    out[#out + 1] = fmt('<rect class="series" data-series="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" '
      .. 'fill="%s"><title>%s: %s</title></rect>', esc(r.label), L, y + 4, bwid, ROW - 8,
      color_of[r.key or ""], esc(r.label), esc(values[i]))
    text(out, L + bwid + 5, y + ROW / 2 + 4, values[i], { size = 11, class = "value" })
  end
  out[#out + 1] = "</g>"
  if #lrows > 0 then legend(out, 10, T + ph + 66, lrows) end
  out[#out + 1] = "</svg>"
  return concat(out, "\n") .. "\n"
end

-- Charts of experiments ----------------------------------------------------

-- A spec's field that may be a function of the result.
local function get(v, result)
  if type(v) == "function" then return v(result) end
  return v
end

local function has_samples(t) return type(t) == "table" and type(t[1]) == "table" end

-- The drawers of chart kinds: spec, result, title -> svg or nil, why.
local kinds = {}

-- { kind = "timeline", timeline = function(r) -> samples, or a list of {name=, timeline=} (default
--   r.timeline), x = "bytes"|"t", virt = false }
function kinds.timeline(spec, r, title, opts)
  local tl = spec.timeline and spec.timeline(r) or r.timeline
  if not has_samples(tl) then return nil, "the result has no timeline" end
  local o = { title = title, x = opts.x or spec.x, virt = (opts.virt == false or spec.virt == false) and false or nil }
  if tl[1].timeline then
    local runs = {}
    for _, run in ipairs(tl) do if has_samples(run.timeline) then runs[#runs + 1] = run end end
    if #runs == 0 then return nil, "the result has no timeline" end
    return M.timelines(runs, o)
  end
  return M.timeline(tl, o)
end

-- { kind = "lines", x = {label=, quantity=}, left = {...}, right = {...},
--   series = function(r) -> { {name=, axis=, points=, dash=, color=} } }
function kinds.lines(spec, r, title)
  local series = spec.series(r)
  local any = false
  for _, s in ipairs(series or {}) do if #s.points > 0 then any = true end end
  if not any then return nil, "no points to draw" end
  return M.lines { title = title, x = get(spec.x, r), left = get(spec.left, r), right = get(spec.right, r),
    series = series, width = spec.width, height = spec.height }
end

-- { kind = "bars", same_scale = true, panels = function(r) -> { {title=, unit=, axis=, log=, stacked=, groups=} } }
function kinds.bars(spec, r, title)
  local panels = {}
  for _, p in ipairs(spec.panels(r) or {}) do
    local groups = {}
    for _, g in ipairs(p.groups or {}) do
      if g.bars then
        local bars = {}
        for _, b in ipairs(g.bars) do
          if type(b.value) == "number" and b.value == b.value then bars[#bars + 1] = b end
        end
        if #bars > 0 then groups[#groups + 1] = { label = g.label, bars = bars } end
      elseif type(g.value) == "number" and g.value == g.value then
        groups[#groups + 1] = g
      end
    end
    if #groups > 0 then
      local q = {}
      for k, v in pairs(p) do q[k] = v end
      q.groups = groups
      panels[#panels + 1] = q
    end
  end
  if #panels == 0 then return nil, "no numbers to draw" end
  return M.bar_chart(title, panels, { width = spec.width, height = spec.height, legend = spec.legend,
    same_scale = spec.same_scale })
end

-- { kind = "hbars", unit=, log=, axis=, rows = function(r) -> { {label=, value=, key=} } }
function kinds.hbars(spec, r, title)
  local rows = {}
  for _, row in ipairs(spec.rows(r) or {}) do
    if type(row.value) == "number" and row.value == row.value then rows[#rows + 1] = row end
  end
  if #rows == 0 then return nil, "no numbers to draw" end
  return M.hbar_chart(title, rows, { unit = get(spec.unit, r), log = get(spec.log, r), axis = get(spec.axis, r),
    width = spec.width })
end

--- The kinds of chart spec `chart` draws.
M.kinds = { "timeline", "lines", "bars", "hbars" }

-- "bars" or "timeline": what --chart calls a spec.
local function family(kind) return (kind == "timeline" or kind == "lines") and "timeline" or "bars" end
M.family = family

--- Draw one chart spec for an experiment's result.
-- @param spec { kind = "timeline"|"lines"|"bars"|"hbars", title = text or function(result), ... (per kind) }
-- @param result the experiment's result
-- @param name the experiment's name (for the title)
-- @param opts { x=, virt= } (timelines)
-- @return svg, or nil and why there is nothing to draw
function M.chart(spec, result, name, opts)
  opts = opts or {}
  local draw = kinds[spec.kind]
  if not draw then return nil, ("unknown chart kind '%s'"):format(tostring(spec.kind)) end
  if type(result) ~= "table" then return nil, "no result to draw" end
  if result.skipped then
    return nil, "nothing to draw: the experiment was skipped (" .. tostring(result.skipped) .. ")"
  end
  local ok, title = pcall(get, spec.title, result)
  if not ok or type(title) ~= "string" then title = nil end
  title = ("vmlab %s"):format(name or "") .. (title and ": " .. title or "")
  local dok, svg, why = pcall(draw, spec, result, title, opts)
  if not dok then return nil, "cannot draw it: " .. tostring(svg) end
  return svg, why
end

--- The chart specs of experiment `name` (its `charts` field): a list, and
-- the reason when it has none.
function M.specs(name)
  local ok, e = pcall(function() return require("vmlab.experiments").get(name) end)
  if not ok or not e then return {}, ("no experiment named '%s'"):format(tostring(name)) end
  local list = e.charts or {}
  if #list == 0 then
    return {}, ("experiment '%s' has no chart%s"):format(name, list.none and (": " .. list.none) or "")
  end
  return list
end

--- Does experiment `name` have a chart of this family ("bars", "timeline", or nil: any)?
-- @return true, or nil and the reason
function M.can_draw(name, which)
  local list, why = M.specs(name)
  if #list == 0 then return nil, why end
  if which == nil then return true end
  for _, spec in ipairs(list) do if family(spec.kind) == which then return true end end
  local other = which == "bars" and "timeline" or "bars"
  return nil, ("experiment '%s' has no %s chart (try --chart %s)"):format(name, which, other)
end

--- Every chart of an experiment's result, in the order of its specs.
-- @return list of svg strings (those that had something to draw), and the
--   reasons of the others
function M.charts(name, result, opts)
  local list, why = M.specs(name)
  local svgs, whys = {}, {}
  if #list == 0 then return svgs, { why } end
  for _, spec in ipairs(list) do
    local svg, w = M.chart(spec, result, name, opts)
    if svg then svgs[#svgs + 1] = svg else whys[#whys + 1] = w end
  end
  return svgs, whys
end

--- The chart for an experiment's result: the first of its charts that has
-- something to draw (of the family opts.chart = "bars"|"timeline" when given).
-- @param name experiment name
-- @param result the table run() returned (or the JSON's "result")
-- @param opts {chart = "bars"|"timeline", x = "bytes"|"t", virt = false}
-- @return svg string, or nil and the reason there is no chart
function M.for_result(name, result, opts)
  opts = opts or {}
  local which = opts.chart or (opts.prefer == "bars" and "bars" or nil)
  local list, why = M.specs(name)
  if #list == 0 then return nil, why end
  local first_why
  for pass = 1, 2 do
    for _, spec in ipairs(list) do
      if (pass == 1 and (which == nil or family(spec.kind) == which)) or (pass == 2 and opts.prefer) then
        local svg, w = M.chart(spec, result, name, opts)
        if svg then return svg end
        first_why = first_why or w
      end
    end
  end
  return nil, first_why or ("experiment '%s' has no %s chart"):format(name, tostring(which))
end

-- Files --------------------------------------------------------------------

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

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- The PNG renderer on PATH (rsvg-convert), or nil.
function M.png_renderer()
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local path = dir .. "/rsvg-convert"
    local f = io.open(path, "rb")
    if f then
      f:close()
      return path
    end
  end
  return nil
end

--- What a chart file name asks for: "svg" or "png", or nil and why it cannot be written.
function M.format_for(path)
  local ext = tostring(path):match("%.([%w]+)$")
  ext = ext and ext:lower()
  if ext == "png" then
    if M.png_renderer() then return "png" end
    return nil, ("cannot write %s: a PNG needs rsvg-convert (Debian: librsvg2-bin), which is not installed; "
      .. "name the file .svg instead"):format(path)
  end
  if ext == "svg" then return "svg" end
  return nil, ("cannot write %s: a chart file ends in .svg (or .png with rsvg-convert installed)"):format(path)
end

--- Write a chart: SVG, or PNG (through rsvg-convert) when path ends in .png.
-- @return true, or nil and a message
function M.save(path, svg)
  local format, why = M.format_for(path)
  if not format then return nil, why end
  if format == "svg" then
    local ok, err = M.write(path, svg)
    if not ok then return nil, tostring(err) end
    return true
  end
  local tmp = os.tmpname()
  local ok, err = M.write(tmp, svg)
  if not ok then
    os.remove(tmp)
    return nil, tostring(err)
  end
  local cmd = ("%s -f png -o %s %s 2>&1"):format(quote(M.png_renderer()), quote(path), quote(tmp))
  local p = io.popen(cmd)
  local msg = p and p:read("a") or ""
  local done = p and { p:close() } or { false }
  os.remove(tmp)
  if not done[1] then
    return nil, ("rsvg-convert failed: %s"):format(msg ~= "" and msg:gsub("%s+$", "") or "exit status " ..
      tostring(done[3]))
  end
  return true
end

return M
