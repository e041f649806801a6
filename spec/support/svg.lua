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

return M
