-- The JSON record: every experiment's `vmlab run NAME --json` at its tour params
-- validates against doc/record.schema.json (generated from the descriptions),
-- keys come in the same order on two runs, and the text report's lines fit in
-- 110 columns.
local experiments = require "vmlab.experiments"
local record = require "vmlab.record"
local report = require "vmlab.report"
local describe_ = require "vmlab.describe"

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local function vmlab(args)
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s lua5.4 -e 'arg[0]=\"vmlab\"' %s %s 2>&1 < /dev/null"):format(
    q(package.path), q(package.cpath), q(here .. "/bin/vmlab"), args)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

-- ---------------------------------------------------------------------------
-- JSON text -> Lua, keeping each object's key order (obj[KEYS] = { "a", "b", ... })

local KEYS = setmetatable({}, { __tostring = function() return "KEYS" end })
local NULL = setmetatable({}, { __tostring = function() return "null" end })

local function parse_json(text)
  local pos = 1
  local function ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local function err(what) error(("JSON: %s at byte %d"):format(what, pos), 0) end
  local value
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == "" then err("unterminated string") end
      if c == '"' then pos = pos + 1; break end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local map = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
        if e == "u" then
          out[#out + 1] = utf8.char(tonumber(text:sub(pos + 2, pos + 5), 16))
          pos = pos + 6
        else
          out[#out + 1] = map[e] or err("bad escape")
          pos = pos + 2
        end
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
    return table.concat(out)
  end
  value = function()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      local obj = { [KEYS] = {} }
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "}" then pos = pos + 1; return obj end
      while true do
        ws()
        if text:sub(pos, pos) ~= '"' then err("expected a key") end
        local k = str()
        ws()
        if text:sub(pos, pos) ~= ":" then err("expected :") end
        pos = pos + 1
        if obj[k] ~= nil then err("duplicate key " .. k) end
        obj[k] = value()
        obj[KEYS][#obj[KEYS] + 1] = k
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return obj end
        if d ~= "," then err("expected , or }") end
      end
    elseif c == "[" then
      local arr = {}
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "]" then pos = pos + 1; return arr end
      while true do
        arr[#arr + 1] = value()
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return arr end
        if d ~= "," then err("expected , or ]") end
      end
    elseif c == '"' then
      return str()
    elseif text:find("^true", pos) then pos = pos + 4; return true
    elseif text:find("^false", pos) then pos = pos + 5; return false
    elseif text:find("^null", pos) then pos = pos + 4; return NULL
    else
      local num = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" then err("unexpected " .. c) end
      pos = pos + #num
      return math.tointeger(tonumber(num)) or tonumber(num)
    end
  end
  local v = value()
  ws()
  if pos <= #text then err("trailing text") end
  return v
end

local function is_object(v) return type(v) == "table" and v[KEYS] ~= nil end
local function is_array(v) return type(v) == "table" and v[KEYS] == nil end

-- ---------------------------------------------------------------------------
-- A validator for the subset of JSON Schema the record's schema uses: type,
-- enum, const, minimum, maximum, properties, required, additionalProperties,
-- items, $ref (to #/$defs/...), allOf, anyOf, if/then. Returns a list of errors.

local function json_type(v)
  if v == NULL then return "null" end
  local t = type(v)
  if t == "boolean" or t == "string" then return t end
  if t == "number" then return math.type(v) == "integer" and "integer" or "number" end
  if is_object(v) then return "object" end
  return "array"
end

local function type_ok(v, want)
  local got = json_type(v)
  if got == want then return true end
  if want == "number" and got == "integer" then return true end
  if want == "integer" and got == "number" and v == math.floor(v) then return true end
  return false
end

local function equal(a, b)
  if a == b then return true end
  return json_type(a) == "integer" and json_type(b) == "integer" and a == b
end

local validate
validate = function(root, schema, v, path, errs)
  if schema["$ref"] then
    local name = schema["$ref"]:match("^#/%$defs/(.+)$")
    local target = name and root["$defs"][name]
    if not target then errs[#errs + 1] = path .. ": unresolved $ref " .. schema["$ref"]; return end
    validate(root, target, v, path, errs)
  end
  if schema.type then
    local types = type(schema.type) == "table" and schema.type or { schema.type }
    local ok = false
    for _, t in ipairs(types) do if type_ok(v, t) then ok = true end end
    if not ok then
      errs[#errs + 1] = ("%s: %s is not %s"):format(path, json_type(v), table.concat(types, "|"))
      return
    end
  end
  if schema.enum then
    local ok = false
    for _, x in ipairs(schema.enum) do if equal(x, v) then ok = true end end
    if not ok then errs[#errs + 1] = ("%s: %s is not one of the enum"):format(path, tostring(v)) end
  end
  if schema.const ~= nil and not equal(schema.const, v) then
    errs[#errs + 1] = ("%s: %s is not %s"):format(path, tostring(v), tostring(schema.const))
  end
  if type(v) == "number" then
    if schema.minimum and v < schema.minimum then errs[#errs + 1] = path .. ": below its minimum" end
    if schema.maximum and v > schema.maximum then errs[#errs + 1] = path .. ": above its maximum" end
  end
  if is_object(v) then
    for _, k in ipairs(schema.required or {}) do
      if v[k] == nil then errs[#errs + 1] = ("%s: %s is required"):format(path, k) end
    end
    for _, k in ipairs(v[KEYS]) do
      local sub = schema.properties and schema.properties[k]
      if sub then
        validate(root, sub, v[k], path .. "." .. k, errs)
      elseif schema.additionalProperties == false then
        errs[#errs + 1] = ("%s: %s is not described"):format(path, k)
      elseif type(schema.additionalProperties) == "table" then
        validate(root, schema.additionalProperties, v[k], path .. "." .. k, errs)
      end
    end
  end
  if is_array(v) and schema.items then
    for i, x in ipairs(v) do validate(root, schema.items, x, ("%s[%d]"):format(path, i), errs) end
  end
  for _, sub in ipairs(schema.allOf or {}) do validate(root, sub, v, path, errs) end
  if schema.anyOf then
    local ok = false
    for _, sub in ipairs(schema.anyOf) do
      local e = {}
      validate(root, sub, v, path, e)
      if #e == 0 then ok = true end
    end
    if not ok then errs[#errs + 1] = path .. ": matches none of anyOf" end
  end
  if schema["if"] then
    local e = {}
    validate(root, schema["if"], v, path, e)
    if #e == 0 and schema["then"] then validate(root, schema["then"], v, path, errs) end
  end
end

local function check(schema, doc)
  local errs = {}
  validate(schema, schema, doc, "record", errs)
  return errs
end

-- The key sequence of every object, by path (array items share their path).
local function key_orders(v, path, out)
  out = out or {}
  if is_object(v) then
    out[path] = out[path] or {}
    local list = out[path]
    list[#list + 1] = v[KEYS]
    for _, k in ipairs(v[KEYS]) do key_orders(v[k], path .. "." .. k, out) end
  elseif type(v) == "table" then
    for _, x in ipairs(v) do key_orders(x, path .. "[]", out) end
  end
  return out
end

-- Where two runs disagree on the order of the keys both have: nil, or the path.
local function order_differs(a, b)
  local oa, ob = key_orders(a, "record"), key_orders(b, "record")
  for path, la in pairs(oa) do
    local lb = ob[path]
    if lb then
      for i = 1, math.min(#la, #lb) do
        local ka, kb = la[i], lb[i]
        local in_b, in_a = {}, {}
        for _, k in ipairs(kb) do in_b[k] = true end
        for _, k in ipairs(ka) do in_a[k] = true end
        local fa, fb = {}, {}
        for _, k in ipairs(ka) do if in_b[k] then fa[#fa + 1] = k end end
        for _, k in ipairs(kb) do if in_a[k] then fb[#fb + 1] = k end end
        if table.concat(fa, ",") ~= table.concat(fb, ",") then
          return ("%s: %s vs %s"):format(path, table.concat(fa, ","), table.concat(fb, ","))
        end
      end
    end
  end
  return nil
end

-- The command-line options of experiment e's tour params.
local function tour_args(e)
  local out = {}
  for _, p in ipairs(e.params) do
    local v = e.tour and e.tour[p.name]
    if v ~= nil then out[#out + 1] = describe_.option(p.name) .. " " .. q(describe_.word(p, v)) end
  end
  return table.concat(out, " ")
end

describe("the JSON record's schema", function()
  local schema

  setup(function()
    schema = parse_json(slurp(here .. "/doc/record.schema.json"))
  end)

  it("doc/record.schema.json is what the descriptions give (vmlab.record.schema_json())", function()
    assert.equal(record.schema_json(), slurp(here .. "/doc/record.schema.json"),
      "regenerate it: lua5.4 -e 'io.write(require\"vmlab.record\".schema_json())' > doc/record.schema.json")
  end)

  it("the validator catches what the schema forbids", function()
    local good = parse_json(report.json({ schema = 1, experiment = "faults", summary = "s", seconds = 1,
      params = experiments.defaults("faults"), system = experiments.system_record(),
      result = { skipped = "x", claims = {} } }))
    assert.same({}, check(schema, good))
    local function bad(text) return #check(schema, parse_json(text)) > 0 end
    local base = report.json({ schema = 1, experiment = "faults", summary = "s", seconds = 1,
      params = experiments.defaults("faults"), system = experiments.system_record(), result = { size = 1,
        pages = 1, rusage_faults = 1, perf_source = "perf", second_write_faults = 0, startup_program = "x",
        claims = {} } })
    assert.same({}, check(schema, parse_json(base)))
    assert.is_true(bad((base:gsub('"pages":1', '"pages":"one"'))))                 -- a count as text
    assert.is_true(bad((base:gsub('"pages":1,', '"pagez":1,'))))                   -- an undescribed field
    assert.is_true(bad((base:gsub('"rusage_faults":1,', ""))))                     -- a required field missing
    assert.is_true(bad((base:gsub('"schema":1', '"schema":2'))))                   -- another version
    assert.is_true(bad((base:gsub('"size":1048576', '"size":"1MiB"'))))            -- a param in words
  end)

  it("every experiment's --json record validates, keys in the same order on two runs; text within 110 columns",
    function()
      local failures = {}
      for _, name in ipairs(experiments.names()) do
        local e = experiments.get(name)
        -- run 1: in this process, as `vmlab tour` runs it
        local ok, _, rec = pcall(experiments.run, name, nil, { tour = true })
        if not ok then
          failures[#failures + 1] = name .. ": run failed: " .. tostring(_)
        else
          local first = parse_json(report.json(rec))
          for _, err in ipairs(check(schema, first)) do failures[#failures + 1] = name .. " (run 1): " .. err end
          for line in report.text(rec, e):gmatch("[^\n]+") do
            if utf8.len(line) > 110 and line:find(" ", (line:find("%S") or 1) + 1) then
              failures[#failures + 1] = ("%s: a text line of %d columns: %s"):format(name, utf8.len(line), line)
            end
          end
          -- run 2: the command line, at the same (tour) params
          local out, code = vmlab("run " .. name .. " " .. tour_args(e) .. " --json --force")
          if code ~= 0 then
            failures[#failures + 1] = ("%s: vmlab run --json exited %s: %s"):format(name, tostring(code), out)
          else
            local second = parse_json(out)
            for _, err in ipairs(check(schema, second)) do failures[#failures + 1] = name .. " (run 2): " .. err end
            local differs = order_differs(first, second)
            if differs then failures[#failures + 1] = name .. ": key order differs: " .. differs end
            assert.same(first[KEYS], second[KEYS])
            assert.same(first.params[KEYS], second.params[KEYS])
          end
        end
      end
      assert.same({}, failures)
    end)
end)
