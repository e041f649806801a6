--- Sizes and times in human units, both ways.
-- @module vmlab.units
local units = {}

-- A number argument (nil is allowed: it shows as "n/a").
local function check_number(n, fname)
  if n ~= nil and type(n) ~= "number" then
    error(("bad argument #1 to '%s' (number expected, got %s)"):format(fname, type(n)), 3)
  end
end

local factor = {
  B = 1, K = 1024, KB = 1024, KIB = 1024, M = 1024 ^ 2, MB = 1024 ^ 2, MIB = 1024 ^ 2,
  G = 1024 ^ 3, GB = 1024 ^ 3, GIB = 1024 ^ 3, T = 1024 ^ 4, TB = 1024 ^ 4, TIB = 1024 ^ 4,
}

--- Parse "512", "512KiB", "64MiB", "2GiB", "1.5G" into bytes (an integer).
-- A bare number counts in `default_unit` ("MiB" unless given), as memtest does.
-- @return bytes, or nil and a message
function units.parse_size(text, default_unit)
  if default_unit ~= nil and type(default_unit) ~= "string" then
    error("bad argument #2 to 'parse_size' (unit name expected, got " .. type(default_unit) .. ")", 2)
  end
  if math.type(text) == "integer" then text = tostring(text) end
  if type(text) ~= "string" then return nil, "size must be a string such as 64MiB" end
  local num, unit = text:match("^%s*(%d+%.?%d*)%s*(%a*)%s*$")
  if not num then
    return nil, ("bad size '%s' (expected a number with an optional unit: 512, 64MiB, 2GiB)"):format(text)
  end
  unit = unit == "" and (default_unit or "MiB") or unit
  local f = factor[unit:upper()]
  if not f then return nil, ("bad size '%s' (unknown unit '%s'; use B, KiB, MiB, GiB or TiB)"):format(text, unit) end
  local bytes = tonumber(num) * f
  if bytes ~= bytes or bytes >= 2 ^ 62 then return nil, ("bad size '%s' (too large)"):format(text) end
  bytes = math.floor(bytes)
  if bytes <= 0 then return nil, ("bad size '%s' (must be positive)"):format(text) end
  return math.tointeger(bytes)
end

--- 1536 -> "1.5 KiB", 3221225472 -> "3.0 GiB".
function units.bytes(n)
  check_number(n, "bytes")
  if n == nil then return "n/a" end
  local sign = n < 0 and "-" or ""
  n = math.abs(n)
  if n < 1024 then return ("%s%d B"):format(sign, math.floor(n)) end
  local names = { "KiB", "MiB", "GiB", "TiB", "PiB" }
  local i = 0
  repeat n = n / 1024; i = i + 1 until n < 1024 or i == #names
  return ("%s%.1f %s"):format(sign, n, names[i])
end

--- Seconds in the best unit, with 3 significant digits: "850 ns", "12.3 us",
-- "4.56 ms", "1.23 s" (nil and NaN: "n/a"). The one time formatter: reports,
-- tables and explanations all use it.
function units.seconds(s)
  check_number(s, "seconds")
  if s == nil or s ~= s then return "n/a" end
  local a = math.abs(s)
  local v, unit
  if a == 0 then return "0 s"
  elseif a < 1e-6 then v, unit = s * 1e9, "ns"
  elseif a < 1e-3 then v, unit = s * 1e6, "us"
  elseif a < 1 then v, unit = s * 1e3, "ms"
  else v, unit = s, "s" end
  local av = math.abs(v)
  local fmt = av >= 100 and "%.0f %s" or av >= 10 and "%.1f %s" or "%.2f %s"
  return fmt:format(v, unit)
end

--- 1234567 -> "1,234,567".
function units.count(n)
  check_number(n, "count")
  if n == nil then return "n/a" end
  local s = tostring(math.tointeger(n) or n)
  local sign, int, rest = s:match("^(-?)(%d+)(.*)$")
  if not int then return s end
  int = int:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return sign .. int .. rest
end

return units
