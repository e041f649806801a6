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
local M = {}

--- The version of the record's shape (doc/record.schema.json's "schema").
M.SCHEMA = 1

--- Give an empty table this metatable to have it written as {} ...
M.object_mt = { __jsontype = "object" }
--- ... or this one to have a table written as a JSON array.
M.array_mt = { __jsontype = "array" }

M.record_keys = { "schema", "experiment", "summary", "params", "system", "result", "seconds" }
M.claim_keys = { "id", "text", "holds", "expected", "evidence", "why", "timing" }
M.timeline_keys = { "bytes", "t", "rss", "virt", "minor_faults", "major_faults" }

--- The record of one run of experiment e.
function M.new(e, params, result, system, seconds)
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

--- The record as one JSON object (a string, no newline), keys in the fixed order.
function M.json(rec)
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
