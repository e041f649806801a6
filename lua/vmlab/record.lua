--- The JSON record of a run, built in one place (doc/record.schema.json documents it).
--
--   local record = require "vmlab.record"
--   local rec = record.new(e, params, result, system, seconds)
--   --> { schema = 1, experiment=, summary=, params=, system=, result=, seconds= }
--   record.json(rec)            --> one JSON object (a string, no newline), keys in a fixed order
--   record.encode(value, opts)  --> any value as JSON (object keys sorted, or in opts.order)
--
-- Key order is the same on every run: the record's members in the order above;
-- params in the experiment's description order; system as vmlab.kernel lists it;
-- the result in the order of its field descriptions (nested ones too), then any
-- undescribed key by name; each claim as id, text, holds, expected, evidence, why,
-- timing; every other object by name.
--
-- Values: integers exactly (addresses too), other numbers with 14 significant
-- digits; an infinite value (an unlimited rlimit) as the string "unlimited", NaN
-- as null; an empty table is [] unless its metatable is record.object_mt (or it is
-- described as an object or map); arrays with holes get nulls; a table with
-- non-sequence keys is an object (its keys as strings).
-- @module vmlab.record
local args = require "vmlab.args"

local M = {}

--- The version of the record's shape (doc/record.schema.json's "schema").
M.SCHEMA = 1

--- Give an empty table this metatable to have it written as {} ...
M.object_mt = { __jsontype = "object" }
--- ... or this one to have a table written as a JSON array.
M.array_mt = { __jsontype = "array" }

-- A wrong argument raises "bad argument #1 to 'record.json' (table expected, got number)".
local function check_arg(fn, i, v, expected, optional) return args.check("record." .. fn, i, v, expected, optional) end

M.record_keys = { "schema", "experiment", "summary", "params", "system", "result", "seconds" }
M.claim_keys = { "id", "text", "holds", "expected", "evidence", "why", "timing" }
M.timeline_keys = { "bytes", "t", "rss", "virt", "minor_faults", "major_faults" }

--- The record of one run of experiment e.
function M.new(e, params, result, system, seconds)
  check_arg("new", 1, e, "table")
  return {
    schema = M.SCHEMA, experiment = e.name, summary = e.summary, params = params,
    system = system, result = result, seconds = seconds,
  }
end

-- ---------------------------------------------------------------------------
-- JSON text

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}
local function string_json(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

local function number_json(v)
  if v ~= v then return "null" end
  if v == math.huge then return '"unlimited"' end
  if v == -math.huge then return '"-unlimited"' end
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  local s = ("%.14g"):format(v)
  return s
end

local function shape(v)
  local n, int_keys, max = 0, 0, 0
  for k in pairs(v) do
    n = n + 1
    if math.type(k) == "integer" and k >= 1 then
      int_keys = int_keys + 1
      if k > max then max = k end
    end
  end
  return n, int_keys, max
end

-- The order of an object's keys: those of `order` (field descriptions or
-- names) present in t first, in that order, then the others by name.
local function keys_of(t, order)
  local keys, seen = {}, {}
  for _, o in ipairs(order or {}) do
    local k = type(o) == "table" and o.name or o
    if t[k] ~= nil and not seen[k] then keys[#keys + 1] = k; seen[k] = true end
  end
  local rest = {}
  for k in pairs(t) do
    local key = type(k) == "string" and k or tostring(math.tointeger(k) or k)
    if not seen[key] then rest[#rest + 1] = k end
  end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

-- desc: the field description of v (or nil); hint: "claims" or "record" ...
local encode

-- How the members of a described object are described: name -> description.
local function member_desc(desc, key)
  if not desc then return nil end
  if desc.unit == "map" then return desc.of end
  for _, f in ipairs(desc.fields or {}) do if f.name == key then return f end end
  return nil
end

local function object_order(desc)
  if not desc then return nil end
  if desc.order then return desc.order end
  if desc.unit == "object" or desc.unit == "table" then return desc.fields end
  return nil
end

encode = function(v, desc, out, depth)
  if depth > 64 then error("record.json: the value nests too deep (a cycle?)", 0) end
  local t = type(v)
  if t == "nil" then out[#out + 1] = "null"; return end
  if t == "boolean" then out[#out + 1] = tostring(v); return end
  if t == "number" then out[#out + 1] = number_json(v); return end
  if t == "string" then out[#out + 1] = string_json(v); return end
  if t ~= "table" then out[#out + 1] = string_json(tostring(v)); return end
  local mt = getmetatable(v)
  local jt = type(mt) == "table" and rawget(mt, "__jsontype") or nil
  local n, int_keys, max = shape(v)
  local as_object = jt == "object" or (desc and (desc.unit == "object" or desc.unit == "map"))
  if n == 0 then
    out[#out + 1] = (as_object or (jt == nil and desc and desc.empty_object)) and "{}" or "[]"
    return
  end
  if jt ~= "object" and int_keys == n and max <= 2 * n + 10 and not (desc and desc.unit == "map") then
    -- an array: its items are rows of a table, or described by `of`
    local item = nil
    if desc and desc.unit == "table" then item = { unit = "object", fields = desc.fields, order = desc.order }
    elseif desc and desc.unit == "timeline" then item = { unit = "object", order = M.timeline_keys }
    elseif desc and desc.item then item = desc.item
    elseif desc and type(desc.of) == "table" then item = desc.of end
    out[#out + 1] = "["
    for i = 1, max do
      if i > 1 then out[#out + 1] = "," end
      encode(v[i], item, out, depth + 1)
    end
    out[#out + 1] = "]"
    return
  end
  out[#out + 1] = "{"
  local order = object_order(desc)
  for i, k in ipairs(keys_of(v, order)) do
    if i > 1 then out[#out + 1] = "," end
    local key = type(k) == "string" and k or tostring(math.tointeger(k) or k)
    out[#out + 1] = string_json(key)
    out[#out + 1] = ":"
    local sub = member_desc(desc, key)
    if desc and desc.members then sub = desc.members[key] or desc.members["*"] end
    encode(v[k], sub, out, depth + 1)
  end
  out[#out + 1] = "}"
end

--- Any value as JSON text (see the top of this file).
-- @param opts optional: a field description (unit = "object" with fields, ...)
--   or { order = {keys...}, empty_object = true } for the top level
function M.encode(v, opts)
  check_arg("encode", 2, opts, "table", true)
  for _, k in ipairs { "order", "fields", "members", "of", "item" } do
    if opts and opts[k] ~= nil and type(opts[k]) ~= "table" then
      error(("record.encode: opts.%s must be a table or nil, not %s"):format(k, type(opts[k])), 2)
    end
  end
  local out = {}
  encode(v, opts, out, 0)
  return table.concat(out)
end

-- The description the result of experiment e is written by.
local function result_desc(e)
  local claim_row = { unit = "object", order = M.claim_keys }
  local fields = {}
  for i, f in ipairs(e and e.fields or {}) do fields[i] = f end
  fields[#fields + 1] = { name = "skipped", unit = "text" }
  fields[#fields + 1] = { name = "claims", unit = "list", of = claim_row, item = claim_row }
  return { unit = "object", fields = fields }
end

local function system_desc()
  local ok, kernel = pcall(require, "vmlab.kernel")
  local probe_order = ok and kernel.fields or {}
  local probes = { unit = "object", order = probe_order,
    members = { how = { unit = "object", order = probe_order } } }
  return { unit = "object", order = { "page_size", "thp", "overcommit", "kernel", "probes" },
    members = { probes = probes } }
end

-- ---------------------------------------------------------------------------
-- The record's JSON Schema (doc/record.schema.json is this, written out)

local number_units = { bytes = true, count = true, seconds = true, ns = true, bytes_per_second = true,
  percent = true, ratio = true }

local function with_help(t, help, unit)
  if help then t.description = unit and ("%s (%s)"):format(help, unit) or help end
  return t
end

local field_schema

local function object_schema(fields, closed)
  local props, required = {}, {}
  for _, f in ipairs(fields) do
    props[f.name] = field_schema(f)
    if not f.optional then required[#required + 1] = f.name end
  end
  local o = { type = "object", properties = props, additionalProperties = closed ~= false and false or nil }
  if #required > 0 then o.required = required end
  return o
end

-- The schema of a value described by f (a field description, or a unit name).
field_schema = function(f)
  if type(f) == "string" then f = { unit = f } end
  local u = f.unit
  local t
  if number_units[u] then t = { type = "number" }
  elseif u == "integer" or u == "address" then t = { type = "integer" }
  elseif u == "text" then t = { type = "string" }
  elseif u == "boolean" then t = { type = "boolean" }
  elseif u == "object" then t = object_schema(f.fields)
  elseif u == "table" then t = { type = "array", items = object_schema(f.fields) }
  elseif u == "list" then t = { type = "array", items = field_schema(f.of) }
  elseif u == "map" then t = { type = "object", additionalProperties = field_schema(f.of) }
  elseif u == "timeline" then t = { type = "array", items = { ["$ref"] = "#/$defs/timeline_sample" } }
  else t = {} end
  local unit = (number_units[u] or u == "integer" or u == "address") and u or nil
  return with_help(t, f.help, unit)
end

local function param_schema(p)
  local item
  if p.unit == "bytes" or p.unit == "pages" or p.unit == "count" then
    item = { type = "integer", minimum = p.min, maximum = p.max }
  elseif p.unit == "seconds" then item = { type = "number", minimum = p.min, maximum = p.max }
  elseif p.unit == "boolean" then item = { type = "boolean" }
  elseif p.unit == "choice" then item = { type = "string", enum = p.choices }
  else item = { type = "string" } end
  local t = p.list and { type = "array", items = item } or item
  return with_help(t, p.help, p.unit)
end

--- The JSON Schema (draft 2020-12) of a `vmlab run` record, from every
-- experiment's description: a Lua table (record.schema_json() writes it).
function M.schema()
  local experiments = require "vmlab.experiments"
  local kernel = require "vmlab.kernel"
  local names = experiments.names()
  local defs = {
    timeline_sample = { type = "object", description = "a sample of r:touch: after `bytes` touched, at `t` seconds",
      required = M.timeline_keys, properties = {
        bytes = { type = "number", description = "bytes touched so far" },
        t = { type = "number", description = "seconds since the touch began" },
        rss = { type = "number", description = "VmRSS (bytes)" },
        virt = { type = "number", description = "VmSize (bytes)" },
        minor_faults = { type = "number", description = "minor faults so far" },
        major_faults = { type = "number", description = "major faults so far" },
      }, additionalProperties = { type = "number" } },
    claims = { type = "array", description = "the experiment's claims, each decided from this result",
      items = { type = "object", required = { "id", "text", "holds", "expected" }, additionalProperties = false,
        properties = {
          id = { type = "string", description = "the claim's id (snake_case)" },
          text = { type = "string", description = "the claim, a sentence" },
          holds = { enum = { true, false, "skipped" }, description = "held, did not hold, or nothing decided it" },
          expected = { type = "boolean", description = "the kernel probes say this machine can show it" },
          evidence = { type = "string", description = "the measured numbers that decided it" },
          why = { type = "string", description = "why it did not hold, or was skipped" },
          timing = { type = "boolean", description = "it compares times (a busy machine can turn it)" },
        } } },
  }
  local probes = { type = "object", description = "vmlab.kernel's probes of this machine (vmlab info)",
    properties = { how = { type = "object", description = "how each probe was found",
      additionalProperties = { type = "string" } } }, additionalProperties = false }
  for _, f in ipairs(kernel.fields) do probes.properties[f] = { description = kernel.meaning[f] } end
  defs.system = { type = "object", description = "the machine the run was on",
    required = { "page_size", "thp", "kernel" }, additionalProperties = false, properties = {
      page_size = { type = "integer", description = "bytes in a base page" },
      thp = { type = "string", description = "transparent huge pages: always, madvise, never or unavailable" },
      overcommit = { type = "integer", description = "vm.overcommit_memory: 0 heuristic, 1 always, 2 strict" },
      kernel = { type = "string", description = "the kernel release" },
      probes = probes,
    } }
  local cases = {}
  for _, n in ipairs(names) do
    local e = experiments.get(n)
    local params = { type = "object", properties = {}, required = {}, additionalProperties = false }
    for _, p in ipairs(e.params) do
      params.properties[p.name] = param_schema(p)
      params.required[#params.required + 1] = p.name
    end
    if #params.required == 0 then params.required = nil end
    defs[n .. "_params"] = params
    local result = object_schema(e.fields)
    result.description = e.summary
    result.properties.claims = { ["$ref"] = "#/$defs/claims" }
    result.properties.skipped = { type = "string", description = "why this machine cannot show it" }
    local required = result.required or {}
    result.required = { "claims" }
    if #required > 0 then -- a skipped result need not carry the others
      result.anyOf = { { required = { "skipped" } }, { required = required } }
    end
    defs[n .. "_result"] = result
    cases[#cases + 1] = { ["if"] = { properties = { experiment = { const = n } } },
      ["then"] = { properties = { params = { ["$ref"] = "#/$defs/" .. n .. "_params" },
        result = { ["$ref"] = "#/$defs/" .. n .. "_result" } } } }
  end
  return {
    ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
    title = "vmlab run record",
    description = "What `vmlab run NAME --json` prints (one line), built by vmlab.record from the experiment's "
      .. "description. Sizes are bytes, times seconds unless a field's name ends in its unit (_ns, _percent, "
      .. "bytes_per_second); keys come in a fixed order. Generated by vmlab.record.schema_json().",
    type = "object",
    required = M.record_keys,
    additionalProperties = false,
    properties = {
      schema = { const = M.SCHEMA, description = "the version of this shape" },
      experiment = { type = "string", enum = names, description = "the experiment's name" },
      summary = { type = "string", description = "what it shows, one line" },
      params = { type = "object", description = "its parameters, defaults laid under those given" },
      system = { ["$ref"] = "#/$defs/system" },
      result = { type = "object", required = { "claims" }, description = "what it measured, and its claims" },
      seconds = { type = "number", description = "how long the run took" },
    },
    allOf = cases,
    ["$defs"] = defs,
  }
end

-- JSON text with two-space indentation and keys in a fixed order (schema files).
local schema_order = { "$schema", "title", "description", "type", "const", "enum", "minimum", "maximum",
  "required", "properties", "items", "additionalProperties", "anyOf", "allOf", "if", "then", "$ref", "$defs" }

local function pretty(v, indent, out)
  local t = type(v)
  if t ~= "table" then encode(v, nil, out, 0); return end
  local n = shape(v)
  local inner = indent .. "  "
  if n == 0 then out[#out + 1] = "{}"; return end
  if #v == n then
    local simple = true
    for _, x in ipairs(v) do if type(x) == "table" then simple = false end end
    if simple then encode(v, nil, out, 0); return end
    out[#out + 1] = "[\n"
    for i, x in ipairs(v) do
      out[#out + 1] = inner
      pretty(x, inner, out)
      out[#out + 1] = i < #v and ",\n" or "\n"
    end
    out[#out + 1] = indent .. "]"
    return
  end
  out[#out + 1] = "{\n"
  local keys = keys_of(v, schema_order)
  for i, k in ipairs(keys) do
    out[#out + 1] = inner .. string_json(tostring(k)) .. ": "
    pretty(v[k], inner, out)
    out[#out + 1] = i < #keys and ",\n" or "\n"
  end
  out[#out + 1] = indent .. "}"
end

--- doc/record.schema.json's text: record.schema() as indented JSON.
function M.schema_json()
  local out = {}
  pretty(M.schema(), "", out)
  out[#out + 1] = "\n"
  return table.concat(out)
end

--- The record as one JSON object (a string, no newline), keys in the fixed order.
function M.json(rec)
  check_arg("json", 1, rec, "table")
  local e
  if rec.experiment then
    local ok, experiments = pcall(require, "vmlab.experiments")
    if ok then
      local gok, mod = pcall(experiments.get, rec.experiment)
      if gok then e = mod end
    end
  end
  local params_desc = { unit = "object", order = {}, members = {} }
  for i, p in ipairs(e and e.params or {}) do
    params_desc.order[i] = p.name
    params_desc.members[p.name] = p.list and { unit = "list" } or nil
  end
  local members = {
    params = params_desc, system = system_desc(), result = result_desc(e),
  }
  local out = { "{" }
  local first = true
  for _, k in ipairs(M.record_keys) do
    local v = rec[k]
    if v ~= nil or k == "params" or k == "result" then
      if not first then out[#out + 1] = "," end
      first = false
      out[#out + 1] = string_json(k) .. ":"
      if v == nil then v = {} end
      local d = members[k]
      if type(v) == "table" and next(v) == nil and (k == "params" or k == "system" or k == "result") then
        out[#out + 1] = "{}"
      else
        encode(v, d, out, 1)
      end
    end
  end
  -- members this module does not know (a caller's extra) follow by name
  local extra = {}
  for k in pairs(rec) do
    local known = false
    for _, r in ipairs(M.record_keys) do if r == k then known = true end end
    if not known then extra[#extra + 1] = k end
  end
  table.sort(extra, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(extra) do
    if not first then out[#out + 1] = "," end
    first = false
    out[#out + 1] = string_json(tostring(k)) .. ":"
    encode(rec[k], nil, out, 1)
  end
  out[#out + 1] = "}"
  return table.concat(out)
end

return M
