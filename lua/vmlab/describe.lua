--- Values of described parameters and result fields (see the top of
-- vmlab/experiments/init.lua for the description format): reading a
-- command-line word in a param's unit, checking a value against its
-- description, and showing a value in human units.
--
--   local d = require "vmlab.describe"
--   d.parse({ name = "size", unit = "bytes" }, "64MiB")   --> 67108864
--   d.parse({ name = "size", unit = "bytes" }, "64")      --> nil, "--size: '64' needs a unit: ..."
--   d.check(param, value)                                 --> nil | "--size: must be at least 4.0 KiB"
--   d.show("bytes", 1536) --> "1.5 KiB";  d.show("ns", 7999343) --> "8.00 ms"
-- @module vmlab.describe
local args = require "vmlab.args"
local units = require "vmlab.units"

local M = {}

--- The units a parameter may have.
M.param_units = { "bytes", "pages", "count", "seconds", "text", "choice", "boolean" }
--- The units a result field may have.
M.field_units = { "bytes", "count", "integer", "seconds", "ns", "bytes_per_second", "percent", "ratio", "address",
  "text",
  "boolean", "object", "table", "list", "map", "timeline" }

local is_param_unit, is_field_unit = {}, {}
for _, u in ipairs(M.param_units) do is_param_unit[u] = true end
for _, u in ipairs(M.field_units) do is_field_unit[u] = true end
M.is_param_unit, M.is_field_unit = is_param_unit, is_field_unit

--- "--frame-size" for param frame_size.
function M.option(name) return "--" .. tostring(name):gsub("_", "-") end

local size_factor = {
  B = 1, K = 1024, KB = 1024, KIB = 1024, M = 1024 ^ 2, MB = 1024 ^ 2, MIB = 1024 ^ 2,
  G = 1024 ^ 3, GB = 1024 ^ 3, GIB = 1024 ^ 3, T = 1024 ^ 4, TB = 1024 ^ 4, TIB = 1024 ^ 4,
}
local time_factor = { S = 1, MS = 1e-3, US = 1e-6, NS = 1e-9 }

local function words(text)
  local out = {}
  for w in tostring(text):gmatch("[^,]+") do out[#out + 1] = w:match("^%s*(.-)%s*$") end
  return out
end

-- One word (not a list) in the unit of p: value, or nil and why (without the option name).
local function parse_one(p, text)
  local u = p.unit
  if u == "bytes" then
    if text:match("^%s*0+%s*$") then return 0 end
    local num, unit = text:match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
    if not num then
      if text:match("^%s*%-") then return nil, ("'%s' is negative (a size such as 64MiB)"):format(text) end
      return nil, ("'%s' is not a size (write it with a unit: 4096B, 512KiB, 64MiB, 2GiB)"):format(text)
    end
    if unit == "" then
      return nil, ("'%s' needs a unit (bytes: %sB; or %sKiB, %sMiB, %sGiB)"):format(text, num, num, num, num)
    end
    local f = size_factor[unit:upper()]
    if not f then return nil, ("'%s': unknown unit '%s' (use B, KiB, MiB, GiB or TiB)"):format(text, unit) end
    local bytes = tonumber(num) * f
    if bytes >= 2 ^ 62 then return nil, ("'%s' is too large"):format(text) end
    if bytes ~= math.floor(bytes) then return nil, ("'%s' is not a whole number of bytes"):format(text) end
    return math.tointeger(bytes)
  elseif u == "pages" or u == "count" then
    local n = text:match("^%s*(%-?%d+)%s*$")
    n = n and math.tointeger(tonumber(n))
    if n == nil then return nil, ("'%s' is not a whole number"):format(text) end
    return n
  elseif u == "seconds" then
    local num, unit = text:match("^%s*(%-?%d*%.?%d+[eE]?[-+]?%d*)%s*(%a*)%s*$")
    local f = num and time_factor[(unit == "" and "S" or unit):upper()]
    local n = num and tonumber(num)
    if not n or not f then return nil, ("'%s' is not a time (seconds: 0.5, 500ms, 20us, 2s)"):format(text) end
    return n * f
  elseif u == "boolean" then
    local t = text:lower()
    if t == "yes" or t == "true" or t == "1" or t == "on" then return true end
    if t == "no" or t == "false" or t == "0" or t == "off" then return false end
    return nil, ("'%s' is not yes or no"):format(text)
  elseif u == "choice" then
    for _, c in ipairs(p.choices or {}) do if c == text then return text end end
    return nil, ("'%s' is not one of: %s"):format(text, table.concat(p.choices or {}, ", "))
  end
  return text
end

-- A wrong param description (not a table, an unknown unit, a min, max or
-- choices of the wrong type) raises an error naming describe.<fn>'s argument.
local KNOWN_UNIT = {}
for _, u in ipairs(M.param_units) do KNOWN_UNIT[u] = true end
for _, u in ipairs(M.field_units) do KNOWN_UNIT[u] = true end
local function check_p(fn, p)
  local where = "describe." .. fn
  args.check(where, 1, p, "table")
  if p.unit ~= nil and not KNOWN_UNIT[p.unit] then
    args.bad(where, 1, "a param description with a known unit", p.unit)
  end
  for _, k in ipairs { "min", "max" } do
    if p[k] ~= nil and type(p[k]) ~= "number" then
      args.bad(where, 1, "a param description with a numeric " .. k, p[k])
    end
  end
  if p.choices ~= nil and type(p.choices) ~= "table" then
    args.bad(where, 1, "a param description whose choices are a list", p.choices)
  end
end

--- Read a command-line word in the unit of param p (a list param: comma-separated words).
-- @return the value, or nil and one line naming the option
function M.parse(p, text)
  check_p("parse", p)
  args.check("describe.parse", 2, text, "string", true)
  local opt = M.option(p.name)
  if text == nil then
    if p.unit == "boolean" then return true end
    return nil, opt .. ": needs a value"
  end
  if p.list then
    local out = {}
    for _, w in ipairs(words(text)) do
      local v, why = parse_one(p, w)
      if v == nil then return nil, opt .. ": " .. why end
      out[#out + 1] = v
    end
    if #out == 0 then return nil, opt .. ": needs at least one value" end
    return out
  end
  local v, why = parse_one(p, text)
  if v == nil then return nil, opt .. ": " .. why end
  return v
end

--- A value of param p as the command line writes it (512KiB, 0.5, yes, a,b).
function M.word(p, v)
  check_p("word", p)
  if p.list and type(v) == "table" then
    local out = {}
    for i, x in ipairs(v) do out[i] = M.word({ unit = p.unit }, x) end
    return table.concat(out, ",")
  end
  if p.unit == "bytes" and math.type(v) == "integer" then
    if v == 0 then return "0" end
    for _, s in ipairs { { "TiB", 1 << 40 }, { "GiB", 1 << 30 }, { "MiB", 1 << 20 }, { "KiB", 1 << 10 } } do
      if v % s[2] == 0 then return ("%d%s"):format(v // s[2], s[1]) end
    end
    return ("%dB"):format(v)
  end
  if p.unit == "boolean" then return v and "yes" or "no" end
  if p.unit == "seconds" and type(v) == "number" then return ("%.14g"):format(v) end
  return tostring(v)
end

-- Is v a valid single value of param p? nil, or why not.
local function check_one(p, v)
  local u = p.unit
  if u == "bytes" or u == "pages" or u == "count" then
    if math.type(v) ~= "integer" then
      if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2 ^ 62 then v = math.tointeger(v)
      else return ("must be a whole number%s, got %s"):format(u == "bytes" and " of bytes" or "", tostring(v)) end
    end
  elseif u == "seconds" then
    if type(v) ~= "number" or v ~= v then return ("must be a number of seconds, got %s"):format(tostring(v)) end
  elseif u == "boolean" then
    if type(v) ~= "boolean" then return ("must be true or false, got %s"):format(tostring(v)) end
    return nil
  elseif u == "choice" then
    for _, c in ipairs(p.choices or {}) do if c == v then return nil end end
    return ("must be one of %s, got %s"):format(table.concat(p.choices or {}, ", "), tostring(v))
  elseif u == "text" then
    if type(v) ~= "string" then return ("must be text, got %s"):format(type(v)) end
    return nil
  end
  -- a bound compares numbers only (a param with no unit may carry any value)
  if (p.min or p.max) and type(v) ~= "number" then return ("must be a number, got %s"):format(type(v)) end
  -- exact, as the command line writes them (4095B, 4KiB), except times
  local function say(x) return u == "seconds" and M.show(u, x) or M.word({ unit = u }, x) end
  if p.min and v < p.min then
    return ("%s is below the minimum %s"):format(say(v), say(p.min))
  end
  if p.max and v > p.max then
    return ("%s is above the maximum %s"):format(say(v), say(p.max))
  end
  return nil
end

--- Check value v of param p: nil when it is valid, else one line naming the
-- option ("--size: ..."), or `label` when given (the Lua API says "size").
function M.check(p, v, label)
  check_p("check", p)
  args.check("describe.check", 3, label, "string", true)
  local opt = label or M.option(p.name)
  if p.list then
    if type(v) ~= "table" then return opt .. ": must be a list" end
    if #v == 0 then return opt .. ": needs at least one value" end
    for _, x in ipairs(v) do
      local why = check_one(p, x)
      if why then return opt .. ": " .. why end
    end
    return nil
  end
  local why = check_one(p, v)
  return why and (opt .. ": " .. why) or nil
end

--- A value as the Lua API may pass it, in the param's type: a list param
-- also takes "a,b,c"; a number param takes a whole float (4.0). Words are
-- left alone (check reports them).
function M.coerce(p, v)
  check_p("coerce", p)
  if p.list and type(v) == "string" then
    local out = {}
    for _, w in ipairs(words(v)) do out[#out + 1] = parse_one(p, w) or w end
    return out
  end
  if p.unit ~= "text" and p.unit ~= "choice" and type(v) == "string" then -- "64MiB", "0.5", "yes"
    local x = parse_one(p, v)
    if x ~= nil then return x end
    return v
  end
  if (p.unit == "bytes" or p.unit == "pages" or p.unit == "count") and math.type(v) == "float"
    and v == math.floor(v) and math.abs(v) < 2 ^ 62 then
    return math.tointeger(v)
  end
  return v
end

--- A number in the field or param unit u, in human units.
function M.show(u, v)
  if v == nil then return "n/a" end
  local t = type(v)
  if t == "boolean" then return v and "yes" or "no" end
  if t == "table" then
    local out = {}
    for i, x in ipairs(v) do out[i] = M.show(u, x) end
    return table.concat(out, ", ")
  end
  if t ~= "number" then return tostring(v) end
  if v ~= v then return "n/a" end
  if v == math.huge then return "unlimited" end
  if u == "address" and math.type(v) == "integer" then return ("0x%x"):format(v) end
  if u == "bytes" then return units.bytes(v) end
  if u == "seconds" then return M.time(v) end
  if u == "ns" then return M.time(v / 1e9) end
  if u == "bytes_per_second" then return units.bytes(v) .. "/s" end
  if u == "percent" then return ("%.1f %%"):format(v) end
  if u == "ratio" then return ("%.3g"):format(v) end
  if u == "pages" then return units.count(v) .. (v == 1 and " page" or " pages") end
  if u == "integer" and math.type(v) == "integer" then return tostring(v) end
  if math.type(v) == "integer" then return units.count(v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return units.count(math.tointeger(v)) end
  return ("%.4g"):format(v)
end

--- Seconds in the best unit, with 3 significant digits (units.seconds).
function M.time(s)
  if s ~= nil and type(s) ~= "number" then args.bad("describe.time", 1, "number", s) end
  return units.seconds(s)
end

--- "1 line", "2 lines" (plural by count; `plural` defaults to word .. "s").
function M.plural(n, word, plural)
  args.check("describe.plural", 1, n, "number")
  args.check("describe.plural", 2, word, "string")
  args.check("describe.plural", 3, plural, "string", true)
  return ("%s %s"):format(units.count(n), n == 1 and word or (plural or word .. "s"))
end

return M
