--- vmlab.args: how vmlab's Lua modules name a wrong argument.
--
-- A wrong argument raises an error that names the function and the argument,
-- as Lua's own library does ("bad argument #1 to 'progress.new' (table of
-- options expected, got number)"), reported at the first caller outside the
-- module that checks: never a raw "attempt to index a number value" from deep
-- inside it.
--
--     local args = require "vmlab.args"
--     args.check("report.text", 1, record, "table")
--     args.check("progress.new", 1, opts, "table", true)      -- nil allowed
--     args.bad("plot.lines", 2, "a list of series", v)
--     args.fail("html.page: records[3] must be a table")
local M = {}

local HERE = debug.getinfo(1, "S").source

-- Raise msg at the first stack level whose code is neither this file nor the
-- checking module's (the first file on the stack below this one).
function M.fail(msg)
  if type(msg) ~= "string" then
    error(("bad argument #1 to 'args.fail' (string expected, got %s)"):format(type(msg)), 2)
  end
  local level, module = 2, nil
  while true do
    local info = debug.getinfo(level, "S")
    if not info then break end
    if info.source ~= HERE then
      if module == nil then module = info.source elseif info.source ~= module then break end
    end
    level = level + 1
  end
  error(msg, level)
end

-- The checks' own arguments (a wrong one is a bug in the caller, named too).
local function own(fn, where, i, expected)
  if type(where) ~= "string" then
    error(("bad argument #1 to 'args.%s' (function name expected, got %s)"):format(fn, type(where)), 3)
  end
  if math.type(i) ~= "integer" and not (fn == "option" and type(i) == "string") then
    error(("bad argument #2 to 'args.%s' (%s expected, got %s)"):format(fn,
      fn == "option" and "option name" or "argument number", math.type(i) or type(i)), 3)
  end
  if type(expected) ~= "string" then
    error(("bad argument #%d to 'args.%s' (expected type or description expected, got %s)"):format(
      fn == "bad" and 3 or 4, fn, type(expected)), 3)
  end
end

--- The class of a vmlab object ("vmlab.Region", ...: its metatable's
-- __name), or nil for anything else.
function M.class_of(v)
  if type(v) ~= "userdata" then return nil end
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  return type(name) == "string" and name or nil
end

--- Is v an object of class `class` ("vmlab.Region", ...)?
function M.is_a(v, class) return M.class_of(v) == class end

-- Does v have type `expected` ("table", "string", ..., or "integer")?
local function has_type(v, expected)
  if expected == "integer" then return math.type(v) == "integer" end
  return type(v) == expected
end

-- The name of v's type for a message: "integer" and "float" for numbers
-- when an integer was asked for, the class of a vmlab object otherwise.
local function type_name(v, expected)
  if expected == "integer" and math.type(v) then return math.type(v) end
  return M.class_of(v) or type(v)
end

--- Raise "bad argument #i to 'where' (expected expected, got <type of v>)".
function M.bad(where, i, expected, v)
  own("bad", where, i, expected)
  M.fail(("bad argument #%d to '%s' (%s expected, got %s)"):format(i, where, expected, type_name(v, expected)))
end

--- v must have Lua type `expected` ("table", "string", ..., or "integer");
-- with optional, nil passes too. Returns v.
function M.check(where, i, v, expected, optional)
  own("check", where, i, expected)
  if v == nil and optional then return v end
  if not has_type(v, expected) then M.bad(where, i, expected .. (optional and " or nil" or ""), v) end
  return v
end

--- opts[key] must have type `expected` or be nil. Returns it.
function M.option(where, key, v, expected)
  own("option", where, key, expected)
  if v ~= nil and not has_type(v, expected) then
    M.fail(("bad option '%s' to '%s' (%s expected, got %s)"):format(key, where, expected, type_name(v, expected)))
  end
  return v
end

return M
