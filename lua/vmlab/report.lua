--- Reports: an experiment's record as text a person reads, or as one JSON object.
--
--   local experiments, report = require "vmlab.experiments", require "vmlab.report"
--   local _, record = experiments.run("lazy")
--   print(report.text(record))   -- title, params, tables of numbers in human units, what they show
--   print(report.json(record))   -- vmlab.record.json: {"schema":1,"experiment":...,"params":{...},...}
--
-- Every number is shown in the unit its experiment's description gives it
-- (params and fields, see vmlab/experiments/init.lua): nothing is guessed from
-- names. Tables put the identifying column (a table field's first column)
-- first; rates carry "/s"; times use the best unit (ns, us, ms, s); text too
-- wide for a column is written below the table; prose lines wrap at 110
-- columns. JSON is written by vmlab.record (one module, fixed key order).
-- @module vmlab.report

local report = {}

local args = require "vmlab.args"
local describe = require "vmlab.describe"
local record_mod = require "vmlab.record"

--- Give an empty table this metatable to have it written as {} in JSON.
report.object_mt = record_mod.object_mt
--- ... or this one to have a table written as a JSON array.
report.array_mt = record_mod.array_mt

--- The widest a table or a prose line of the text report gets (columns).
report.WIDTH = 110

-- ---------------------------------------------------------------------------
-- Arguments: a wrong one raises an error naming the function and the
-- argument ("bad argument #1 to 'report.text' (table expected, got number)",
-- "report.text: record.params must be a table or nil, not number"), never a
-- raw "attempt to index" from inside the rendering.

local fail = args.fail
local function check_arg(fn, i, v, expected, optional) return args.check("report." .. fn, i, v, expected, optional) end
-- t[key] (named what) must be a table or nil; with rows, a list of tables.
local function check_field(fn, t, key, what, rows)
  local v = t[key]
  if v == nil then return nil end
  if type(v) ~= "table" then fail(("report.%s: %s must be a table or nil, not %s"):format(fn, what, type(v))) end
  if rows then
    for i, x in ipairs(v) do
      if type(x) ~= "table" then fail(("report.%s: %s[%d] must be a table, not %s"):format(fn, what, i, type(x))) end
    end
  end
  return v
end
-- The fields of an experiment module that the report reads.
local function check_experiment(fn, e, i)
  check_arg(fn, i, e, "table", true)
  if e == nil then return end
  for _, k in ipairs { "params", "fields", "claims" } do check_field(fn, e, k, "e." .. k, true) end
  check_field(fn, e, "text_omit", "e.text_omit")
end

--- The unit of a field in a unit map (name -> unit, e.g. experiments' e.units), or nil.
function report.kind(key, unit_map)
  check_arg("kind", 2, unit_map, "table", true)
  return unit_map and unit_map[key] or nil
end

--- A value in human units: the unit comes from unit_map[key] (a map of
-- name -> unit such as an experiment's e.units), never from the name.
function report.format(key, v, unit_map)
  check_arg("format", 3, unit_map, "table", true)
  return describe.show(unit_map and unit_map[key], v)
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

local function width_of(s) return utf8.len(s) or #s end

local function pad(s, w, right)
  local len = width_of(s)
  if len >= w then return s end
  return right and (s .. (" "):rep(w - len)) or ((" "):rep(w - len) .. s)
end

--- Words of text wrapped to lines of at most `width` columns (a word longer
-- than that stays whole); the first line starts with `first`, the others with `rest`.
function report.wrap(text, first, rest, width)
  check_arg("wrap", 2, first, "string")
  check_arg("wrap", 3, rest, "string")
  check_arg("wrap", 4, width, "number", true)
  width = width or report.WIDTH
  local lines, line = {}, first
  local empty = true
  for word in tostring(text):gmatch("%S+") do
    if not empty and width_of(line) + 1 + width_of(word) > width then
      lines[#lines + 1] = line
      line, empty = rest .. word, false
    else
      line = line .. (empty and "" or " ") .. word
      empty = false
    end
  end
  lines[#lines + 1] = line
  return lines
end

local function add_wrapped(out, text, first, rest)
  for _, l in ipairs(report.wrap(text, first, rest or first)) do out[#out + 1] = l end
end

-- The keys of t: those described (fields, in order) first, then the others by
-- name; fields described with text = false are left out.
local function ordered(t, fields)
  local keys, seen = {}, {}
  for _, f in ipairs(fields or {}) do
    if t[f.name] ~= nil and f.text ~= false then keys[#keys + 1] = f.name end
    seen[f.name] = true
  end
  local rest = {}
  for k in pairs(t) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  return keys
end

local function find(fields, name)
  for _, f in ipairs(fields or {}) do if f.name == name then return f end end
  return nil
end

local function show(desc, v)
  return describe.show(desc and desc.unit, v)
end

local function is_text_unit(desc, v)
  if desc then return desc.unit == "text" end
  return type(v) == "string"
end

-- rows: list of lists of strings; header: list of strings or nil; left[i]: left-align column i
local function grid(out, indent, header, rows, left)
  local widths = {}
  local all = {}
  if header then all[1] = header end
  for _, r in ipairs(rows) do all[#all + 1] = r end
  for _, r in ipairs(all) do
    for i, c in ipairs(r) do widths[i] = math.max(widths[i] or 0, width_of(c)) end
  end
  local function line(r)
    local cells = {}
    for i = 1, #widths do cells[i] = pad(r[i] or "", widths[i], i == 1 or (left and left[i])) end
    out[#out + 1] = (indent .. table.concat(cells, "  ")):gsub("%s+$", "")
  end
  if header then
    line(header)
    local dashes = {}
    for i = 1, #widths do dashes[i] = ("-"):rep(widths[i]) end
    out[#out + 1] = indent .. table.concat(dashes, "  ")
  end
  for _, r in ipairs(rows) do line(r) end
end

-- The width grid() would give these columns (cells: list of columns, each a list of strings).
local function grid_width(indent, cols)
  local w = #indent
  for i, col in ipairs(cols) do
    local cw = 0
    for _, c in ipairs(col) do cw = math.max(cw, width_of(c)) end
    w = w + cw + (i > 1 and 2 or 0)
  end
  return w
end

-- Text wider than this in a table cell goes below the table.
local WIDE_CELL = 28
local NOTES_WIDTH = 60

-- A list of rows as a table: columns in the description's order (the first
-- identifies the row); wide text and nested values go below it, one line each;
-- a table still wider than report.WIDTH is split, repeating the first column.
local function render_rows(out, indent, name, list, desc)
  local fields = desc and desc.fields
  local seen, cols = {}, {}
  for _, f in ipairs(fields or {}) do
    seen[f.name] = f.text == false or nil
    for _, rec in ipairs(f.text ~= false and list or {}) do
      if type(rec) == "table" and rec[f.name] ~= nil then seen[f.name] = true; cols[#cols + 1] = f.name; break end
    end
  end
  local rest = {}
  for _, rec in ipairs(list) do
    for k in pairs(type(rec) == "table" and rec or {}) do
      if not seen[k] then seen[k] = true; rest[#rest + 1] = k end
    end
  end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(rest) do cols[#cols + 1] = k end
  local id = cols[1]
  -- which columns go below: nested values, wide text
  local below, inline = {}, {}
  for i, k in ipairs(cols) do
    local d = find(fields, k)
    local wide = false
    for _, rec in ipairs(list) do
      local v = rec[k]
      if type(v) == "table" then wide = true
      elseif v ~= nil and i > 1 and is_text_unit(d, v) and width_of(show(d, v)) > WIDE_CELL then wide = true end
    end
    if wide then below[#below + 1] = k else inline[#inline + 1] = k end
  end
  out[#out + 1] = indent .. name .. ":"
  local sub = indent .. "  "
  -- split the inline columns into groups that fit
  local cells = {}
  for i, k in ipairs(inline) do
    local d = find(fields, k)
    local col = { tostring(k) }
    for _, rec in ipairs(list) do col[#col + 1] = rec[k] == nil and "" or show(d, rec[k]) end
    cells[i] = col
  end
  local groups, cur = {}, { 1 }
  for i = 2, #inline do
    local try = { cells[1] }
    for _, j in ipairs(cur) do if j ~= 1 then try[#try + 1] = cells[j] end end
    try[#try + 1] = cells[i]
    if #cur > 1 and grid_width(sub, try) > report.WIDTH then
      groups[#groups + 1] = cur
      cur = { 1, i }
    else
      cur[#cur + 1] = i
    end
  end
  groups[#groups + 1] = cur
  for g, group in ipairs(groups) do
    if g > 1 then out[#out + 1] = "" end
    local header, rows, left = {}, {}, {}
    for c, j in ipairs(group) do
      header[c] = cells[j][1]
      local d = find(fields, inline[j])
      left[c] = is_text_unit(d, list[1] and list[1][inline[j]])
    end
    for r = 1, #list do
      local row = {}
      for c, j in ipairs(group) do row[c] = cells[j][r + 1] end
      rows[r] = row
    end
    grid(out, sub, header, rows, left)
  end
  for _, rec in ipairs(list) do
    for _, k in ipairs(below) do
      local v = rec[k]
      if v ~= nil then
        local text
        if type(v) == "table" then
          local parts = {}
          local d = find(fields, k)
          for _, kk in ipairs(ordered(v, d and d.fields)) do
            local x = v[kk]
            parts[#parts + 1] = ("%s=%s"):format(kk, type(x) == "table" and "..." or show(find(d and d.fields, kk), x))
          end
          text = table.concat(parts, ", ")
        else
          text = show(find(fields, k), v)
        end
        local who = id and rec[id] ~= nil and show(find(fields, id), rec[id]) or "?"
        add_wrapped(out, ("%s: %s: %s"):format(who, k, text), sub, sub .. "    ")
      end
    end
  end
end

local render_object

-- A value that is not a scalar, under its name.
local function render_member(out, indent, name, v, desc)
  if is_list(v) and #v == 0 then
    out[#out + 1] = indent .. name .. ": (none)"
  elseif is_list(v) and type(v[1]) ~= "table" then
    local cells = {}
    local of = desc and desc.of
    for i, x in ipairs(v) do
      if i > 16 then cells[#cells + 1] = ("... (%d in all)"):format(#v); break end
      cells[#cells + 1] = describe.show(type(of) == "string" and of or nil, x)
    end
    add_wrapped(out, name .. ": " .. table.concat(cells, ", "), indent, indent .. "  ")
  elseif is_list(v) then
    render_rows(out, indent, name, v, desc)
  else
    out[#out + 1] = indent .. name .. ":"
    local fields = desc and desc.fields
    if desc and desc.unit == "map" then
      -- each member is described by `of`
      local list = {}
      for k in pairs(v) do list[#list + 1] = { name = k, unit = desc.of.unit, fields = desc.of.fields,
        of = desc.of.of, help = desc.of.help } end
      fields = list
      table.sort(fields, function(a, b) return tostring(a.name) < tostring(b.name) end)
    end
    render_object(out, indent .. "  ", v, fields)
  end
end

-- A table of named values: scalars as "name  value" rows; objects of scalars
-- side by side (one column each, e.g. read | write); then lists and nested
-- objects under their names.
render_object = function(out, indent, t, fields)
  local keys = ordered(t, fields)
  local scalars, records, others = {}, {}, {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) ~= "table" then scalars[#scalars + 1] = k
    elseif is_record(v) then records[#records + 1] = k
    else others[#others + 1] = k end
  end
  local notes = {}
  if #scalars > 0 then
    local rows = {}
    for _, k in ipairs(scalars) do
      local d = find(fields, k)
      local text = show(d, t[k])
      if width_of(text) > NOTES_WIDTH then notes[#notes + 1] = { k, text }
      else rows[#rows + 1] = { tostring(k), text } end
    end
    local left = { true, false }
    grid(out, indent, nil, rows, left)
  end
  if #records > 0 then
    -- one row per member (in the first record's description order), one column per record
    local mseen, metrics = {}, {}
    for _, rk in ipairs(records) do
      local d = find(fields, rk)
      for _, m in ipairs(ordered(t[rk], d and d.fields)) do
        if not mseen[m] then mseen[m] = true; metrics[#metrics + 1] = m end
      end
    end
    local header = { "" }
    for _, rk in ipairs(records) do header[#header + 1] = tostring(rk) end
    local rows, left = {}, { true }
    for _, m in ipairs(metrics) do
      local r = { tostring(m) }
      for _, rk in ipairs(records) do
        local d = find(fields, rk)
        local md = find(d and d.fields, m)
        local v = t[rk][m]
        local text = v == nil and "" or show(md, v)
        if width_of(text) > WIDE_CELL then
          notes[#notes + 1] = { rk .. "." .. m, text }
          text = "(below)"
        end
        r[#r + 1] = text
      end
      rows[#rows + 1] = r
    end
    if #scalars > 0 then out[#out + 1] = "" end
    grid(out, indent, header, rows, left)
  end
  if #notes > 0 and (#scalars > 0 or #records > 0) then out[#out + 1] = "" end
  for _, n in ipairs(notes) do add_wrapped(out, n[1] .. ": " .. n[2], indent, indent .. "    ") end
  for _, k in ipairs(others) do
    out[#out + 1] = ""
    render_member(out, indent, tostring(k), t[k], find(fields, k))
  end
end

local function experiment_of(record)
  local ok, experiments = pcall(require, "vmlab.experiments")
  if not ok then return nil end
  local e = experiments.get(record.experiment)
  return e
end

local function params_line(params, e)
  local parts, seen = {}, {}
  for _, p in ipairs(e and e.params or {}) do
    local v = (params or {})[p.name]
    if v ~= nil then
      seen[p.name] = true
      parts[#parts + 1] = ("%s=%s"):format(p.name, describe.word(p, v))
    end
  end
  local rest = {}
  for k in pairs(params or {}) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest)
  for _, k in ipairs(rest) do parts[#parts + 1] = ("%s=%s"):format(k, describe.show(nil, params[k])) end
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
  check_arg("text_view", 1, result, "table")
  check_experiment("text_view", e, 2)
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
  check_arg("text", 1, record, "table")
  check_experiment("text", e, 2)
  for _, k in ipairs { "experiment", "summary" } do
    local v = record[k]
    if v ~= nil and type(v) ~= "string" then
      fail(("report.text: record.%s must be a string or nil, not %s"):format(k, type(v)))
    end
  end
  check_field("text", record, "params", "record.params")
  check_field("text", record, "result", "record.result")
  local system = check_field("text", record, "system", "record.system")
  if system then check_field("text", system, "probes", "record.system.probes") end
  e = e or experiment_of(record) or {}
  local result = record.result or {}
  local out = {}
  local title = ("%s - %s"):format(record.experiment or e.name or "?", record.summary or e.summary or "")
  local width = 0
  for _, l in ipairs(report.wrap(title, "", "  ")) do
    out[#out + 1] = l
    width = math.max(width, utf8.len(l) or #l)
  end
  out[#out + 1] = ("="):rep(math.min(width, 78))
  add_wrapped(out, "params: " .. params_line(record.params, e), "", "        ")
  local s = record.system
  if s then
    local p = s.probes or {}
    local zero = p.zero_page == true and "reads map the zero page"
      or p.zero_page == false and "reads do not map the zero page" or "zero page unknown"
    local malloc = (p.allocator and p.allocator ~= "glibc") and (", malloc from %s, not glibc"):format(p.allocator)
      or ""
    add_wrapped(out, ("system: %s-byte pages, THP %s, overcommit %s (%s), %s%s, kernel %s"):format(
      tostring(s.page_size or "?"), tostring(s.thp), tostring(s.overcommit),
      overcommit_names[s.overcommit] or "?", zero, malloc, tostring(s.kernel)), "", "        ")
  end
  out[#out + 1] = ""
  if result.skipped then out[#out + 1] = "SKIPPED: " .. tostring(result.skipped) end
  local view = report.text_view(result, e)
  view.claims = nil
  render_object(out, "  ", view, e.fields)
  report.claims_lines(out, result, e)
  if type(e.explain) == "function" then
    local ok, lines = pcall(e.explain, result, record.params or {})
    if ok and type(lines) == "table" and #lines > 0 then
      out[#out + 1] = ""
      out[#out + 1] = "In numbers:"
      for _, l in ipairs(lines) do add_wrapped(out, l, "  ", "    ") end
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
  check_arg("verdict", 1, claim, "table")
  return verdict[claim.holds] or tostring(claim.holds)
end

--- Append "What it shows:" to out: every decided claim of the result with
-- its verdict, its evidence, and why where it did not hold (or was skipped);
-- a claim that held adds the experiment's explanation of it.
function report.claims_lines(out, result, e)
  check_arg("claims_lines", 1, out, "table")
  check_arg("claims_lines", 2, result, "table")
  check_experiment("claims_lines", e, 3)
  local claims = check_field("claims_lines", result, "claims", "result.claims", true)
  if claims == nil or #claims == 0 then return out end
  local by_id = {}
  for _, c in ipairs(e and e.claims or {}) do by_id[c.id] = c end
  out[#out + 1] = ""
  out[#out + 1] = "What it shows (each claim decided from this run's numbers):"
  local pad_to = 14
  for _, c in ipairs(claims) do
    local word = report.verdict(c)
    local indent = "  " .. (" "):rep(pad_to)
    add_wrapped(out, c.text, "  " .. word .. (" "):rep(math.max(1, pad_to - #word)), indent)
    if c.evidence and c.evidence ~= "" then
      add_wrapped(out, "measured: " .. tostring(c.evidence), indent, indent .. "  ")
    end
    if c.holds ~= true and c.why then add_wrapped(out, "why: " .. tostring(c.why), indent, indent .. "  ") end
    local spec = by_id[c.id]
    if c.holds == true and spec and type(spec.explain) == "function" then
      local ok, line = pcall(spec.explain, result)
      if ok and type(line) == "string" and line ~= "" then add_wrapped(out, line, indent) end
    end
  end
  return out
end

-- ---------------------------------------------------------------------------
-- JSON

--- One value as JSON text (vmlab.record.encode: object keys by name); an
-- empty table is {} when `object_if_empty`, else [].
function report.encode(v, object_if_empty)
  return record_mod.encode(v, object_if_empty and { empty_object = true } or nil)
end

--- The record as one JSON object (a string, no newline): vmlab.record.json.
function report.json(rec)
  check_arg("json", 1, rec, "table")
  return record_mod.json(rec)
end

local json_codec
local function codec()
  if not json_codec then
    json_codec = require("cjson").new()
  end
  return json_codec
end

--- Parse JSON text (the inverse, for specs and tools); numbers come back as
-- integers where they are whole.
function report.decode(text)
  check_arg("decode", 1, text, "string")
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
