--- Reports: an experiment's record as text a person reads, or as one JSON object.
--
--   local experiments, report = require "vmlab.experiments", require "vmlab.report"
--   local _, record = experiments.run("lazy")
--   print(report.text(record))   -- title, params, a table of numbers in human units, what they show
--   print(report.json(record))   -- {"experiment":..., "params":{...}, "system":{...}, "result":{...}}
--
-- Units of a number are chosen by the experiment's `units` table (field name ->
-- "bytes", "seconds", "count", "address", "ns", "rate", "percent", "ratio", "text"), else by its name:
-- *address* -> hex, *seconds*/*_time -> time, ns_per_* -> ns, *per_s -> GiB/s,
-- size/bytes/rss/virt/growth/limit/... -> bytes, other integers -> counts.
--
-- JSON: sizes in bytes, times in seconds, counts as integers. Integers are written
-- exactly (addresses too), other numbers with 14 significant digits;
-- an infinite value (an unlimited rlimit) is written as the string "unlimited",
-- NaN as null; an empty table inside the result is [] unless its metatable is
-- report.object_mt; arrays with holes get nulls; tables mixing keys become objects.
-- @module vmlab.report
local units = require "vmlab.units"

local report = {}

--- Give an empty table this metatable to have it written as {} in JSON.
report.object_mt = { __jsontype = "object" }
--- ... or this one to have a table written as a JSON array.
report.array_mt = { __jsontype = "array" }

-- ---------------------------------------------------------------------------
-- Numbers in human units

local function kind_by_name(key)
  key = tostring(key):lower()
  if key:find("address") or key:find("_addr$") or key == "addr" or key == "start" or key == "end" then
    return "address"
  end
  if key:find("^ns_") or key:find("_ns$") or key:find("ns_per") then return "ns" end
  if key:find("gib_per_s") or key:find("per_s$") or key:find("per_second") then return "rate" end
  if key:find("percent") or key:find("pct") then return "percent" end
  if key:find("ratio") then return "ratio" end
  for _, w in ipairs { "frames", "faults", "pages", "count", "depth", "number" } do
    if key:find(w, 1, true) then return "count" end
  end
  if key:find("seconds") or key:find("_time$") or key == "time" or key == "elapsed" then return "seconds" end
  for _, w in ipairs { "size", "bytes", "rss", "virt", "growth", "limit", "committed", "memory",
                       "available", "anon", "private", "shared", "swap", "pss", "uss", "heap", "huge" } do
    if key:find(w, 1, true) then return "bytes" end
  end
  return nil
end

--- The unit of a field: the experiment's units table, else guessed from its name
-- ("bytes", "seconds", "count", "address", "ns", "rate", "percent", "ratio" or nil).
function report.kind(key, unit_map)
  return unit_map and unit_map[key] or kind_by_name(key)
end

--- A value in human units, by its field name (and the experiment's units table).
function report.format(key, v, unit_map)
  if v == nil then return "n/a" end
  local t = type(v)
  if t == "boolean" then return v and "yes" or "no" end
  if t == "string" then return v end
  if t ~= "number" then return tostring(v) end
  if v ~= v then return "n/a" end
  if v == math.huge then return "unlimited" end
  local kind = unit_map and unit_map[key] or kind_by_name(key)
  if kind == "address" and math.type(v) == "integer" then return ("0x%x"):format(v) end
  if kind == "bytes" then
    if math.abs(v) < 1024 then return ("%s B"):format(units.count(v)) end
    return units.bytes(v)
  end
  if kind == "seconds" then return units.seconds(v) end
  if kind == "ns" then return v >= 100 and ("%.0f ns"):format(v) or ("%.1f ns"):format(v) end
  if kind == "rate" then return ("%.2f GiB/s"):format(v) end
  if kind == "percent" then return ("%.1f %%"):format(v) end
  if kind == "ratio" then return ("%.3f"):format(v) end
  if kind == "text" then return tostring(v) end
  if math.type(v) == "integer" then return units.count(v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return units.count(math.tointeger(v)) end
  return ("%.4g"):format(v)
end

-- ---------------------------------------------------------------------------
-- Text

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = #t
  if n == 0 then return next(t) == nil end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function is_record(t) -- a table of scalars with string keys
  if type(t) ~= "table" or next(t) == nil then return false end
  for k, v in pairs(t) do
    if type(k) ~= "string" or type(v) == "table" then return false end
  end
  return true
end

local preferred = {
  "name", "label", "step", "case", "call", "mode", "what", "kind", "region", "path", "access", "signal", "code",
  "code_name", "address", "start", "end", "size", "bytes", "pages", "rss", "ok",
}
local prank = {}
for i, k in ipairs(preferred) do prank[k] = i end

local function ordered_keys(keys, order)
  local pos = {}
  for i, k in ipairs(order or {}) do pos[k] = i end
  table.sort(keys, function(a, b)
    local pa, pb = pos[a] or (1000 + (prank[a] or 1000)), pos[b] or (1000 + (prank[b] or 1000))
    if pa ~= pb then return pa < pb end
    return tostring(a) < tostring(b)
  end)
  return keys
end

local function pad(s, w, right)
  local len = utf8.len(s) or #s
  if len >= w then return s end
  return right and (s .. (" "):rep(w - len)) or ((" "):rep(w - len) .. s)
end

-- rows: list of lists of strings; first row is the header (or nil)
local function grid(out, indent, header, rows)
  local widths = {}
  local all = {}
  if header then all[1] = header end
  for _, r in ipairs(rows) do all[#all + 1] = r end
  for _, r in ipairs(all) do
    for i, c in ipairs(r) do widths[i] = math.max(widths[i] or 0, utf8.len(c) or #c) end
  end
  local function line(r)
    local cells = {}
    for i = 1, #widths do cells[i] = pad(r[i] or "", widths[i], i == 1) end
    out[#out + 1] = indent .. table.concat(cells, "  "):gsub("%s+$", "")
  end
  if header then
    line(header)
    local dashes = {}
    for i = 1, #widths do dashes[i] = ("-"):rep(widths[i]) end
    out[#out + 1] = indent .. table.concat(dashes, "  ")
  end
  for _, r in ipairs(rows) do line(r) end
end

local function render_list(out, indent, name, list, unit_map, order)
  if #list == 0 then
    out[#out + 1] = indent .. name .. ": (none)"
    return
  end
  if type(list[1]) ~= "table" then
    local cells = {}
    for i, v in ipairs(list) do
      if i > 16 then cells[#cells + 1] = ("... (%d in all)"):format(#list); break end
      cells[#cells + 1] = report.format(name, v, unit_map)
    end
    out[#out + 1] = indent .. name .. ": " .. table.concat(cells, ", ")
    return
  end
  local seen, cols = {}, {}
  for _, rec in ipairs(list) do
    for k, v in pairs(rec) do
      if not seen[k] and type(v) ~= "table" then seen[k] = true; cols[#cols + 1] = k end
    end
  end
  ordered_keys(cols, order)
  local rows = {}
  for _, rec in ipairs(list) do
    local r = {}
    for i, k in ipairs(cols) do r[i] = rec[k] == nil and "" or report.format(k, rec[k], unit_map) end
    rows[#rows + 1] = r
  end
  out[#out + 1] = indent .. name .. ":"
  local header = {}
  for i, k in ipairs(cols) do header[i] = tostring(k) end
  grid(out, indent .. "  ", header, rows)
end

local function render_table(out, indent, t, unit_map, order)
  local scalars, records, lists, others = {}, {}, {}, {}
  for k, v in pairs(t) do
    if k ~= "skipped" then
      if type(v) ~= "table" then scalars[#scalars + 1] = k
      elseif is_list(v) then lists[#lists + 1] = k
      elseif is_record(v) then records[#records + 1] = k
      else others[#others + 1] = k end
    end
  end
  ordered_keys(scalars, order)
  if #scalars > 0 then
    local rows = {}
    for _, k in ipairs(scalars) do rows[#rows + 1] = { tostring(k), report.format(k, t[k], unit_map) } end
    grid(out, indent, nil, rows)
  end
  -- records side by side: one column per record (e.g. read | write)
  ordered_keys(records, order)
  if #records > 0 then
    local seen, metrics = {}, {}
    for _, rk in ipairs(records) do
      for k in pairs(t[rk]) do
        if not seen[k] then seen[k] = true; metrics[#metrics + 1] = k end
      end
    end
    ordered_keys(metrics, order)
    local header = { "" }
    for _, rk in ipairs(records) do header[#header + 1] = tostring(rk) end
    local rows = {}
    for _, m in ipairs(metrics) do
      local r = { tostring(m) }
      for _, rk in ipairs(records) do r[#r + 1] = report.format(m, t[rk][m], unit_map) end
      rows[#rows + 1] = r
    end
    if #scalars > 0 then out[#out + 1] = "" end
    grid(out, indent, header, rows)
  end
  ordered_keys(lists, order)
  for _, k in ipairs(lists) do
    out[#out + 1] = ""
    render_list(out, indent, tostring(k), t[k], unit_map, order)
  end
  ordered_keys(others, order)
  for _, k in ipairs(others) do
    out[#out + 1] = ""
    out[#out + 1] = indent .. tostring(k) .. ":"
    render_table(out, indent .. "  ", t[k], unit_map, order)
  end
end

local function experiment_of(record)
  local ok, experiments = pcall(require, "vmlab.experiments")
  if not ok then return nil end
  local e = experiments.get(record.experiment)
  return e
end

local function params_line(params, unit_map)
  local keys = {}
  for k in pairs(params or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = ("%s=%s"):format(k, report.format(k, params[k], unit_map)) end
  return #parts > 0 and table.concat(parts, ", ") or "(none)"
end

local overcommit_names = { [0] = "heuristic", [1] = "always", [2] = "never (strict accounting)" }

local function is_timeline(v)
  return type(v) == "table" and type(v[1]) == "table" and v[1].bytes ~= nil and v[1].rss ~= nil
end

--- The result as the text report shows it: a copy in which every timeline
-- (r:touch's samples, hundreds of rows) is a one-line summary, without the
-- top-level fields listed in the experiment's `text_omit` (those its
-- explain() prints in its own words). The JSON keeps everything.
function report.text_view(result, e, nested)
  if type(result) ~= "table" then return result end
  local omit = {}
  for _, k in ipairs(e and e.text_omit or {}) do omit[k] = true end
  local copy = {}
  for k, v in pairs(result) do
    if omit[k] then -- luacheck: ignore 542
    elseif k == "timeline" and is_timeline(v) then
      copy[k] = ("%d samples"):format(#v) .. (nested and "" or " (use --json or --plot)")
    elseif type(v) == "table" then
      copy[k] = report.text_view(v, nil, true)
    else
      copy[k] = v
    end
  end
  return copy
end

--- The record (from experiments.run) as the lines of a readable report.
-- @param record { experiment=, summary=, params=, system=, result= }
-- @param e the experiment module (looked up by name when nil)
-- @return a string ending in a newline
function report.text(record, e)
  e = e or experiment_of(record) or {}
  local unit_map, result = e.units, record.result or {}
  local out = {}
  local title = ("%s - %s"):format(record.experiment or e.name or "?", record.summary or e.summary or "")
  out[#out + 1] = title
  out[#out + 1] = ("="):rep(math.min(utf8.len(title) or #title, 78))
  out[#out + 1] = "params: " .. params_line(record.params, unit_map)
  local s = record.system
  if s then
    local p = s.probes or {}
    local zero = p.zero_page == true and "reads map the zero page"
      or p.zero_page == false and "reads do not map the zero page" or "zero page unknown"
    local malloc = (p.allocator and p.allocator ~= "glibc") and (", malloc from %s, not glibc"):format(p.allocator)
      or ""
    out[#out + 1] = ("system: %s-byte pages, THP %s, overcommit %s (%s), %s%s, kernel %s"):format(
      tostring(s.page_size or "?"), tostring(s.thp), tostring(s.overcommit),
      overcommit_names[s.overcommit] or "?", zero, malloc, tostring(s.kernel))
  end
  out[#out + 1] = ""
  if result.skipped then out[#out + 1] = "SKIPPED: " .. tostring(result.skipped) end
  local view = report.text_view(result, e)
  view.claims = nil
  render_table(out, "  ", view, unit_map, e.fields)
  report.claims_lines(out, result, e)
  if type(e.explain) == "function" then
    local ok, lines = pcall(e.explain, result, record.params or {})
    if ok and type(lines) == "table" and #lines > 0 then
      out[#out + 1] = ""
      out[#out + 1] = "In numbers:"
      for _, l in ipairs(lines) do out[#out + 1] = "  " .. l end
    elseif not ok then
      out[#out + 1] = ""
      out[#out + 1] = "(explain failed: " .. tostring(lines) .. ")"
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local verdict = { [true] = "held", [false] = "DID NOT HOLD", skipped = "skipped" }

--- The word for a claim's outcome: "held", "DID NOT HOLD" or "skipped".
function report.verdict(claim)
  return verdict[claim.holds] or tostring(claim.holds)
end

--- Append "What it shows:" to out: every decided claim of the result with
-- its verdict, its evidence, and why where it did not hold (or was skipped);
-- a claim that held adds the experiment's explanation of it.
function report.claims_lines(out, result, e)
  local claims = result.claims
  if type(claims) ~= "table" or #claims == 0 then return out end
  local by_id = {}
  for _, c in ipairs(e and e.claims or {}) do by_id[c.id] = c end
  out[#out + 1] = ""
  out[#out + 1] = "What it shows (each claim decided from this run's numbers):"
  local pad_to = 14
  for _, c in ipairs(claims) do
    local word = report.verdict(c)
    out[#out + 1] = "  " .. word .. (" "):rep(math.max(1, pad_to - #word)) .. c.text
    local indent = "  " .. (" "):rep(pad_to)
    if c.evidence and c.evidence ~= "" then out[#out + 1] = indent .. "measured: " .. c.evidence end
    if c.holds ~= true and c.why then out[#out + 1] = indent .. "why: " .. c.why end
    local spec = by_id[c.id]
    if c.holds == true and spec and type(spec.explain) == "function" then
      local ok, line = pcall(spec.explain, result)
      if ok and type(line) == "string" and line ~= "" then out[#out + 1] = indent .. line end
    end
  end
  return out
end

-- ---------------------------------------------------------------------------
-- JSON

local EMPTY_ARRAY = "@@vmlab_empty_array@@"
local EMPTY_OBJECT = "@@vmlab_empty_object@@"
local BIG_INT = "@@vmlab_int_"

local json_codec
local function codec()
  if not json_codec then
    local cjson = require "cjson"
    json_codec = cjson.new()
    json_codec.encode_number_precision(14)
    json_codec.encode_sparse_array(false, 2, 10)
  end
  return json_codec
end

local function count_keys(t)
  local n, int_keys, max = 0, 0, 0
  for k in pairs(t) do
    n = n + 1
    if math.type(k) == "integer" and k >= 1 then
      int_keys = int_keys + 1
      if k > max then max = k end
    end
  end
  return n, int_keys, max
end

-- A copy of v that cjson writes the way the report promises.
local function plain(v, object_if_empty, depth)
  depth = depth or 0
  if depth > 64 then error("report.json: the value nests too deep (a cycle?)", 0) end
  local t = type(v)
  if t == "number" then
    if v ~= v then return codec().null end
    if v == math.huge then return "unlimited" end
    if v == -math.huge then return "-unlimited" end
    -- cjson writes 14 significant digits: a larger integer (an address) goes
    -- through a placeholder that report.json replaces by its exact digits
    if math.type(v) == "integer" and (v >= 10 ^ 14 or v <= -10 ^ 14) then return BIG_INT .. v .. "@@" end
    return v
  elseif t == "string" or t == "boolean" then
    return v
  elseif t == "nil" then
    return codec().null
  elseif t ~= "table" then
    return tostring(v)
  end
  local mt = getmetatable(v)
  local jt = type(mt) == "table" and rawget(mt, "__jsontype") or nil
  local n, int_keys, max = count_keys(v)
  if n == 0 then
    if jt == "object" or (jt == nil and object_if_empty) then return EMPTY_OBJECT end
    return EMPTY_ARRAY
  end
  local out = {}
  if jt ~= "object" and int_keys == n and max <= 2 * n + 10 then
    for i = 1, max do
      if v[i] == nil then out[i] = codec().null else out[i] = plain(v[i], false, depth + 1) end
    end
    return out
  end
  for k, x in pairs(v) do
    local key = type(k) == "string" and k or tostring(math.tointeger(k) or k)
    out[key] = plain(x, false, depth + 1)
  end
  return out
end

--- One value as JSON text, as the report writes it (see the top of this
-- file); an empty table is {} when `object_if_empty`, else [].
function report.encode(v, object_if_empty)
  local s = codec().encode(plain(v, object_if_empty))
  s = s:gsub('"' .. EMPTY_ARRAY .. '"', "[]"):gsub('"' .. EMPTY_OBJECT .. '"', "{}")
  s = s:gsub('"' .. BIG_INT .. '(%-?%d+)@@"', "%1")
  -- cjson writes "/" as "\/" (valid, but noisy in paths); an escaped "/" is
  -- the only way a backslash can be followed by "/" in its output
  s = s:gsub("\\/", "/")
  return s
end

--- The record as one JSON object (a string, no newline):
-- {"experiment":..., "params":{...}, "system":{...}, "result":{...}}
function report.json(record)
  local encode = report.encode
  -- the four members in this order (cjson orders an object's keys by hash)
  return table.concat {
    '{"experiment":', encode(record.experiment),
    ',"params":', encode(record.params or {}, true),
    ',"system":', encode(record.system or {}, true),
    ',"result":', encode(record.result or {}, true), "}",
  }
end

--- Parse JSON text (the inverse, for specs and tools); numbers come back as
-- integers where they are whole.
function report.decode(text)
  local function ints(v)
    if type(v) == "number" then return math.tointeger(v) or v end
    if type(v) == "table" then
      for k, x in pairs(v) do v[k] = ints(x) end
    end
    return v
  end
  return ints(codec().decode(text))
end

return report
