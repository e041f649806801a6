--- SVG checks shared by the plot specs: parse an SVG with lua-expat.
local assert = require "luassert"

local M = {}

-- Parse svg with expat: the elements as a flat list of {name=, attrs=, text=},
-- or raise with expat's message and position when it is not well-formed XML.
function M.parse(svg)
  local lxp = require "lxp"
  local elements, stack = {}, {}
  local p = lxp.new {
    StartElement = function(_, name, attrs)
      local e = { name = name, attrs = attrs, text = "" }
      elements[#elements + 1] = e
      stack[#stack + 1] = e
    end,
    EndElement = function() stack[#stack] = nil end,
    CharacterData = function(_, s) if stack[#stack] then stack[#stack].text = stack[#stack].text .. s end end,
  }
  local ok, msg, line, col = p:parse(svg)
  if ok then ok, msg, line, col = p:parse() end
  p:close()
  assert(ok, ("not well-formed XML: %s at line %s, column %s"):format(tostring(msg), tostring(line), tostring(col)))
  assert.equal("svg", elements[1].name)
  assert.equal("http://www.w3.org/2000/svg", elements[1].attrs.xmlns)
  return elements
end

-- Text boxes -----------------------------------------------------------------
-- A text's box from its x, y, font-size, text-anchor and transform="rotate(a cx cy)":
-- the width estimated from the length (0.6 em a character, 0.72 for capitals, 12 %
-- more in bold), 0.8 em above the baseline and 0.25 em below; rotated, as a polygon.
function M.text_width(s, size, bold)
  local n, upper = utf8.len(s) or #s, select(2, s:gsub("%u", ""))
  return size * (0.6 * n + 0.12 * upper) * (bold and 1.12 or 1)
end

function M.text_box(e)
  local size = tonumber(e.attrs["font-size"]) or 16
  local x, y = tonumber(e.attrs.x) or 0, tonumber(e.attrs.y) or 0
  local w = M.text_width(e.text, size, e.attrs["font-weight"] == "bold")
  local anchor = e.attrs["text-anchor"] or "start"
  local x0 = anchor == "middle" and x - w / 2 or anchor == "end" and x - w or x
  local corners = { { x0, y - 0.8 * size }, { x0 + w, y - 0.8 * size }, { x0 + w, y + 0.25 * size },
    { x0, y + 0.25 * size } }
  local tr = e.attrs.transform
  if tr then
    local a, cx, cy = tr:match("^rotate%(([%-%d.]+)%s+([%-%d.]+)%s+([%-%d.]+)%)$")
    assert(a, "a text transform other than rotate(a cx cy): " .. tr)
    a, cx, cy = math.rad(tonumber(a)), tonumber(cx), tonumber(cy)
    local c, s = math.cos(a), math.sin(a)
    for i, p in ipairs(corners) do
      local dx, dy = p[1] - cx, p[2] - cy
      corners[i] = { cx + dx * c - dy * s, cy + dx * s + dy * c }
    end
  end
  return corners
end

-- Do two convex polygons overlap by more than `slack` pixels? (separating axes)
local function overlap(p, q, slack)
  for _, poly in ipairs { p, q } do
    for i = 1, #poly do
      local a, b = poly[i], poly[i % #poly + 1]
      local nx, ny = b[2] - a[2], a[1] - b[1]
      local len = math.sqrt(nx * nx + ny * ny)
      nx, ny = nx / len, ny / len
      local pmin, pmax, qmin, qmax = math.huge, -math.huge, math.huge, -math.huge
      for _, v in ipairs(p) do
        local d = v[1] * nx + v[2] * ny
        pmin, pmax = math.min(pmin, d), math.max(pmax, d)
      end
      for _, v in ipairs(q) do
        local d = v[1] * nx + v[2] * ny
        qmin, qmax = math.min(qmin, d), math.max(qmax, d)
      end
      if pmax - slack <= qmin or qmax - slack <= pmin then return false end
    end
  end
  return true
end
M.overlap = overlap

-- The problems with the text of a parsed SVG: pairs of texts that overlap, and
-- texts that leave the canvas; an empty list when there are none.
function M.text_problems(elements)
  local W, H = tonumber(elements[1].attrs.width), tonumber(elements[1].attrs.height)
  local boxes, problems = {}, {}
  for _, e in ipairs(elements) do
    if e.name == "text" and e.text ~= "" then
      boxes[#boxes + 1] = { e = e, poly = M.text_box(e) }
    end
  end
  for i, b in ipairs(boxes) do
    for _, v in ipairs(b.poly) do
      if v[1] < -0.5 or v[2] < -0.5 or v[1] > W + 0.5 or v[2] > H + 0.5 then
        problems[#problems + 1] = ("%q leaves the %dx%d canvas at (%.0f, %.0f)"):format(b.e.text, W, H, v[1], v[2])
        break
      end
    end
    for j = i + 1, #boxes do
      if overlap(b.poly, boxes[j].poly, 0.5) then
        problems[#problems + 1] = ("%q overlaps %q"):format(b.e.text, boxes[j].e.text)
      end
    end
  end
  return problems
end

return M
