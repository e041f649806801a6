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
local args = require "vmlab.args"

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

-- Arguments ----------------------------------------------------------------
-- Wrong arguments raise an error that names the function and the argument
-- ("bad argument #2 to 'plot.hbar_chart' (table expected, got number)", or
-- "plot.lines: spec.series[2].points must be a list"), never a raw "attempt
-- to index" from deep inside the drawing.

-- Raised at the first caller outside this file (where the wrong value came from).
local fail = args.fail
local function bad_arg(fn, i, expected, v) args.bad("plot." .. fn, i, expected, v) end
local function bad_field(fn, what, must) fail(("plot.%s: %s must be %s"):format(fn, what, must)) end
-- arg i of fn must be a table (or nil when optional); returns it or {}
local function table_arg(fn, i, v, optional)
  if v == nil and optional then return {} end
  if type(v) ~= "table" then bad_arg(fn, i, optional and "table or nil" or "table", v) end
  return v
end
-- t[key] must be a table (or nil when optional)
local function table_field(fn, t, key, what, optional)
  local v = t[key]
  if v == nil and optional then return nil end
  if type(v) ~= "table" then
    bad_field(fn, what, (optional and "a table or nil" or "a table") .. ", not " .. type(v))
  end
  return v
end
-- t[key] must be a string (or a number) or nil
local function text_field(fn, t, key, what)
  local v = t[key]
  if v ~= nil and type(v) ~= "string" and type(v) ~= "number" then
    bad_field(fn, what, "a string or nil, not " .. type(v))
  end
  return v
end
-- Pixel sizes: a number from 100 to 100000 (or nil: the default). A huge,
-- infinite or NaN width would draw nothing a person can see, or run long.
local MIN_PX, MAX_PX = 100, 100000
local function pixels(fn, t, key, what)
  local v = t[key]
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v < MIN_PX or v > MAX_PX then
    bad_field(fn, what, ("a number of pixels from %d to %d (got %s)"):format(MIN_PX, MAX_PX, tostring(v)))
  end
  return v
end
-- A number argument of the text helpers (sizes, widths, line counts).
local function number_arg(fn, i, v, optional)
  if v == nil and optional then return end
  if type(v) ~= "number" then bad_arg(fn, i, optional and "number or nil" or "number", v) end
end

-- Text metrics --------------------------------------------------------------

--- The width in pixels of s at font size `size` (default 12): an upper
-- estimate of DejaVu Sans (what rsvg-convert and most browsers use for
-- sans-serif) from its character classes, never less than 0.6 em a
-- character (0.74 for capitals). bold: 12 % wider.
local LONG_TEXT = 256 -- bytes: a longer text is measured by counting each class at once (gsub runs in C)
local function count(s, class) return select(2, s:gsub(class, "")) end

function M.text_width(s, size, bold)
  number_arg("text_width", 2, size, true)
  s = tostring(s)
  if #s > LONG_TEXT then
    -- the same classes as the loop below: a 1 MiB label costs milliseconds, not seconds
    local n = #s - count(s, "[\128-\191]")
    local wide = count(s, "[\192-\255mwMW%%@]")
    local upper = count(s, "%u") - count(s, "[MW]")
    local narrow = count(s, "[ijlft%.,:;'|!%(%)%[%] %-/]")
    local sum = wide + 0.78 * upper + 0.42 * narrow + 0.64 * (n - wide - upper - narrow)
    return (size or 12) * max(sum, 0.6 * n + 0.14 * upper) * (bold and 1.12 or 1)
  end
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
M.wrap = function(s, width, size, maxlines, bold)
  number_arg("wrap", 2, width)
  number_arg("wrap", 3, size, true)
  number_arg("wrap", 4, maxlines, true)
  return wrap(s, width, size, maxlines, bold)
end

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
  -- lo fits (the empty prefix), hi may not: no prefix of more characters than
  -- width / 0.6 em fits, nor (in UTF-8) of more than 4 bytes a character
  local lo, hi = 0, min(#s - 1, 4 * ceil(max(width, 0) / (0.6 * (size or 12))) + 4)
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    local n = prefix(mid)
    if n > lo and tw(s:sub(1, n) .. "…", size, bold) <= width then lo = n else hi = mid - 1 end
  end
  return lo > 0 and s:sub(1, lo) .. "…" or "…"
end
M.fit = function(s, width, size, bold)
  number_arg("fit", 2, width)
  number_arg("fit", 3, size, true)
  return fit(s, width, size, bold)
end

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
  if (quantity == "bytes" or quantity == "seconds") and type(vmax) ~= "number" then
    bad_arg("unit_for", 2, "number", vmax)
  end
  if quantity == "bytes" then return pick_unit(BYTE_UNITS, vmax) end
  if quantity == "seconds" then return pick_unit(TIME_UNITS, vmax) end
  return nil, 1
end

-- Round steps: 1, 2 or 5 times a power of ten, about n of them up to vmax.
local function nice_ticks(vmax, n)
  -- (below 1e-290 the step's decimals and vmax / n would underflow)
  if vmax ~= vmax or vmax < 1e-290 or vmax == math.huge then vmax = 1 end
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
  if (decimals or 0) > 12 then return fmt("%.3g", v) end -- a tiny step: "%.301f" is no format
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
M.value_text = function(v, quantity)
  if type(v) ~= "number" then bad_arg("value_text", 1, "number", v) end
  return value_text(v, quantity)
end

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

-- The most powers of the base a log axis labels; a wider range labels every k-th.
local LOG_MARKS = 16

local function log_scale(quantity, vmin, vmax)
  local base = quantity == "bytes" and 1024 or 10
  -- only finite positive values from 1e-300 to 1e300 make the range (no
  -- power of the base under- or overflows, so the marks below always end)
  local function usable(v) return v == v and v >= 1e-300 and v <= 1e300 end
  if not usable(vmax) then vmax = usable(vmin) and vmin * base or nil end
  if not usable(vmin) then vmin = vmax and vmax / base or 1 end
  vmax = vmax or vmin * base
  local lo = base ^ floor(log(vmin, base) + 1e-9)
  local hi = base ^ ceil(log(vmax, base) - 1e-9)
  if hi <= lo then hi = lo * base end
  local llo, lhi = log(lo), log(hi)
  local powers = floor((lhi - llo) / log(base) + 0.5)
  local step = base ^ max(1, ceil(powers / LOG_MARKS))
  local marks, v = {}, lo
  while v <= hi * 1.0001 do
    marks[#marks + 1] = { f = (log(v) - llo) / (lhi - llo), label = log_label(v, quantity) }
    v = v * step
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

-- Entries split into rows no wider than width, each entry item_width(e) wide
-- (a legend's items, a key's "1 = mmap" texts).
local function pack_rows(entries, width, item_width)
  local rows, row, used = {}, {}, 0
  for _, e in ipairs(entries) do
    local ew = item_width(e)
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

-- Legend entries {name=, color=, dash=, bar=} split into rows no wider than width.
local function legend_rows(entries, width)
  for _, e in ipairs(entries) do
    if legend_item_width(e) > width then e.name = fit(e.name, width - 48, 12) end
  end
  return pack_rows(entries, width, legend_item_width)
end

-- Rows of entries (pack_rows') in a <g class=...> from (x0, y): each entry
-- drawn by draw_item(out, e, x, y), item_width(e) apart, a row every dy pixels down.
local function draw_rows(out, class, rows, x0, y, dy, item_width, draw_item)
  out[#out + 1] = fmt('<g class="%s">', class)
  for _, row in ipairs(rows) do
    local x = x0
    for _, e in ipairs(row) do
      draw_item(out, e, x, y)
      x = x + item_width(e)
    end
    y = y + dy
  end
  out[#out + 1] = "</g>"
end

-- A legend entry at (x, y): its bar's colour or its line's, and its name.
local function legend_item(out, e, x, y)
  out[#out + 1] = fmt('<g class="legend-item" data-series="%s">', esc(e.name))
  if e.bar then
    out[#out + 1] = fmt('<rect x="%.1f" y="%.1f" width="14" height="10" fill="%s"/>', x + 5, y - 9, e.color)
  else
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"%s/>',
      x, y - 4, x + 24, y - 4, e.color, e.dash and fmt(' stroke-dasharray="%s"', e.dash) or "")
  end
  text(out, x + 30, y, e.name)
  out[#out + 1] = "</g>"
end

-- The legend's rows from (x0, y): one row every 18 pixels down.
local function legend(out, x0, y, rows)
  draw_rows(out, "legend", rows, x0, y, 18, legend_item_width, legend_item)
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

-- The ticks and labels of a horizontal axis from x = L, pw wide, at y = y0
-- (labels thinned so that none touches its neighbour), and its title below.
local function x_axis_marks(out, L, pw, y0, scale, label)
  local px, labels = {}, {}
  for i, m in ipairs(scale.marks) do px[i], labels[i] = L + pw * m.f, m.label end
  local k = thin(px, labels, 12)
  for i, x in ipairs(px) do
    out[#out + 1] = fmt('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333333"/>', x, y0, x, y0 + 5)
    if (i - 1) % k == 0 then text(out, x, y0 + 19, labels[i], { anchor = "middle" }) end
  end
  text(out, L + pw / 2, y0 + 43, fit(axis_title(label, scale), pw, 12), { anchor = "middle", class = "axis-label" })
end

--- A line chart of series sharing one x axis, on a left and (optionally) a
-- right y axis.
-- @param spec {title=, x = {label=, quantity="bytes"|"seconds"|nil},
--   left = {label=, quantity=, log=}, right = {label=, quantity=} or nil,
--   series = { {name=, axis="left"|"right", points = {{x, y}, ...}, color=, dash=}, ... },
--   width = 860, height = 500}
-- @return svg string
-- The checks of M.lines' spec (fn: the public name that called it).
local function check_lines_spec(fn, spec, i)
  table_arg(fn, i, spec)
  pixels(fn, spec, "width", "spec.width")
  pixels(fn, spec, "height", "spec.height")
  text_field(fn, spec, "title", "spec.title")
  local x = table_field(fn, spec, "x", "spec.x (the x axis: {label=, quantity=})")
  text_field(fn, x, "label", "spec.x.label")
  table_field(fn, spec, "left", "spec.left (the left axis: {label=, quantity=, log=})")
  table_field(fn, spec, "right", "spec.right", true)
  for _, side in ipairs { "left", "right" } do
    if spec[side] then text_field(fn, spec[side], "label", "spec." .. side .. ".label") end
  end
  local series = table_field(fn, spec, "series", "spec.series (a list of {name=, axis=, points=})")
  for i_s, sr in ipairs(series) do
    local what = ("spec.series[%d]"):format(i_s)
    if type(sr) ~= "table" then bad_field(fn, what, "a table {name=, axis=, points=}, not " .. type(sr)) end
    if sr.axis ~= nil and sr.axis ~= "left" and sr.axis ~= "right" then
      bad_field(fn, what .. ".axis", "\"left\", \"right\" or nil, not " .. tostring(sr.axis))
    end
    if sr.axis == "right" and not spec.right then
      bad_field(fn, what .. ".axis", "\"left\" (the spec has no right axis)")
    end
    text_field(fn, sr, "color", what .. ".color")
    text_field(fn, sr, "dash", what .. ".dash")
    local points = table_field(fn, sr, "points", what .. ".points (a list of {x, y})")
    for j, p in ipairs(points) do
      if type(p) ~= "table" or type(p[1]) ~= "number" or type(p[2]) ~= "number" then
        bad_field(fn, ("%s.points[%d]"):format(what, j), "a pair of numbers {x, y}")
      end
    end
  end
end

function M.lines(spec)
  check_lines_spec("lines", spec, 1)
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
  x_axis_marks(out, L, pw, T + ph, xs, spec.x.label)
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

local SAMPLE_KEYS = { "t", "bytes", "rss", "virt", "minor_faults", "major_faults" }
-- what: "timeline" (argument 1) or "timelines" (runs[i].timeline)
local function check_timeline(tl, fn, what)
  if type(tl) ~= "table" or #tl == 0 then
    if fn == "timeline" then
      fail("bad argument #1 to 'plot.timeline' (a non-empty timeline expected: "
        .. "r:touch(mode, {sample = bytes}).timeline)")
    end
    bad_field(fn, what, "a non-empty timeline (r:touch(mode, {sample = bytes}).timeline)")
  end
  for i, sample in ipairs(tl) do
    if type(sample) ~= "table" then bad_field(fn, ("%s[%d]"):format(what, i), "a sample table {bytes=, rss=, ...}") end
    for _, k in ipairs(SAMPLE_KEYS) do
      if sample[k] ~= nil and type(sample[k]) ~= "number" then
        bad_field(fn, ("%s[%d].%s"):format(what, i, k), "a number or nil, not " .. type(sample[k]))
      end
    end
  end
end
-- The options of timeline/timelines.
local function check_timeline_opts(fn, opts)
  opts = table_arg(fn, 2, opts, true)
  pixels(fn, opts, "width", "opts.width")
  pixels(fn, opts, "height", "opts.height")
  text_field(fn, opts, "title", "opts.title")
  return opts
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
  check_timeline(timeline, "timeline", "timeline")
  opts = check_timeline_opts("timeline", opts)
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
  table_arg("timelines", 1, runs)
  opts = check_timeline_opts("timelines", opts)
  for i, run in ipairs(runs) do
    if type(run) ~= "table" then bad_field("timelines", ("runs[%d]"):format(i), "a table {name=, timeline=}") end
    text_field("timelines", run, "name", ("runs[%d].name"):format(i))
    check_timeline(run.timeline, "timelines", ("runs[%d].timeline"):format(i))
  end
  local xkey = opts.x == "t" and "t" or "bytes"
  local series = {}
  for i, run in ipairs(runs) do
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
local function key_item_width(e) return tw(e.name, 12) + 20 end
local function key_rows(labels, width)
  local entries = {}
  for i, l in ipairs(labels) do entries[i] = { name = fit(("%d = %s"):format(i, l), width, 12) } end
  return pack_rows(entries, width, key_item_width)
end

local function key_item(out, e, x, y) text(out, x, y, e.name) end
local function draw_key(out, rows, x0, y)
  draw_rows(out, "key", rows, x0, y, 17, key_item_width, key_item)
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
-- A chart's title: text (a number is shown as it is).
local function title_arg(fn, title)
  if type(title) ~= "string" and type(title) ~= "number" then bad_arg(fn, 1, "string (the title)", title) end
end

-- A name that keys a colour (a bar's name, a group's label, a row's key): text.
local function name_field(fn, t, key, what, optional)
  local v = t[key]
  if v == nil and optional then return end
  if type(v) ~= "string" and (type(v) ~= "number" or v ~= v) then
    bad_field(fn, what, "a string" .. (optional and " or nil" or "") .. ", not " .. tostring(v))
  end
end

-- A bar's or a row's value: a number or nil (drawn as 0).
local function value_field(fn, t, what)
  if t.value ~= nil and type(t.value) ~= "number" then
    bad_field(fn, what .. ".value", "a number or nil, not " .. type(t.value))
  end
end

-- The checks of bar_chart's panels and opts (fn: the public name that called it).
local function check_panels(fn, title, panels, opts, panels_what)
  title_arg(fn, title)
  if fn ~= "bars" then table_arg(fn, 2, panels) end
  opts = table_arg(fn, 3, opts, true)
  pixels(fn, opts, "width", "opts.width")
  pixels(fn, opts, "height", "opts.height")
  for pi, panel in ipairs(panels) do
    local pw = panels_what(pi)
    if type(panel) ~= "table" then bad_field(fn, pw, "a table {title=, unit=, groups=}, not " .. type(panel)) end
    text_field(fn, panel, "title", pw .. ".title")
    text_field(fn, panel, "axis", pw .. ".axis")
    text_field(fn, panel, "unit", pw .. ".unit")
    local groups = table_field(fn, panel, "groups", pw .. ".groups (a list of {label=, value=} or {label=, bars=})")
    for gi, g in ipairs(groups) do
      local gw = ("%s.groups[%d]"):format(pw, gi)
      if fn == "bars" then gw = ("groups[%d]"):format(gi) end
      if type(g) ~= "table" then bad_field(fn, gw, "a table {label=, value=} or {label=, bars=}, not " .. type(g)) end
      text_field(fn, g, "color", gw .. ".color")
      name_field(fn, g, "label", gw .. ".label")
      local bars = table_field(fn, g, "bars", gw .. ".bars", true)
      if bars then
        for bi, b in ipairs(bars) do
          local bw = ("%s.bars[%d]"):format(gw, bi)
          if type(b) ~= "table" then bad_field(fn, bw, "a table {name=, value=}, not " .. type(b)) end
          name_field(fn, b, "name", bw .. ".name")
          value_field(fn, b, bw)
          text_field(fn, b, "color", bw .. ".color")
        end
      else
        value_field(fn, g, gw)
      end
    end
  end
  return opts
end

function M.bar_chart(title, panels, opts)
  opts = check_panels("bar_chart", title, panels, opts, function(i) return ("panels[%d]"):format(i) end)
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
function M.bar_panels(title, panels, opts)
  check_panels("bar_panels", title, panels, opts, function(i) return ("panels[%d]"):format(i) end)
  return M.bar_chart(title, panels, opts)
end

--- A bar chart: one bar per group.
-- @param title the chart's title
-- @param groups list of {label=, value=}
-- @param opts {unit = "bytes"|"seconds"|label of the numbers, e.g. "faults"; log=, width=, height=}
-- @return svg string
function M.bars(title, groups, opts)
  table_arg("bars", 2, groups)
  opts = table_arg("bars", 3, opts, true)
  text_field("bars", opts, "unit", "opts.unit")
  text_field("bars", opts, "axis", "opts.axis")
  local panels = { { groups = groups, unit = opts.unit, log = opts.log, axis = opts.axis } }
  check_panels("bars", title, panels, opts, function() return "groups" end)
  return M.bar_chart(title, panels, opts)
end

--- Horizontal bars: one row per bar, its label on the left, its value at
-- its end; bars with a `key` are coloured by it, the keys in a legend.
-- @param title the chart's title
-- @param rows list of {label=, value=, key=}
-- @param opts {unit=, log=, axis= (the x axis' title), width = 860}
-- @return svg string
function M.hbar_chart(title, rows, opts)
  title_arg("hbar_chart", title)
  table_arg("hbar_chart", 2, rows)
  opts = table_arg("hbar_chart", 3, opts, true)
  pixels("hbar_chart", opts, "width", "opts.width")
  text_field("hbar_chart", opts, "unit", "opts.unit")
  text_field("hbar_chart", opts, "axis", "opts.axis")
  for i, r in ipairs(rows) do
    local what = ("rows[%d]"):format(i)
    if type(r) ~= "table" then bad_field("hbar_chart", what, "a table {label=, value=, key=}, not " .. type(r)) end
    value_field("hbar_chart", r, what)
    name_field("hbar_chart", r, "key", what .. ".key", true)
  end
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
  x_axis_marks(out, L, pw, T + ph, scale, opts.axis or default_axis(quantity))
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
  table_arg("chart", 1, spec)
  opts = table_arg("chart", 4, opts, true)
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
  table_arg("charts", 3, opts, true)
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
  opts = table_arg("for_result", 3, opts, true)
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
  if type(path) ~= "string" then bad_arg("write", 1, "string (a file name)", path) end
  if type(svg) ~= "string" then bad_arg("write", 2, "string (the SVG text)", svg) end
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
  if type(path) ~= "string" then bad_arg("save", 1, "string (a file name)", path) end
  if type(svg) ~= "string" then bad_arg("save", 2, "string (the SVG text)", svg) end
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
