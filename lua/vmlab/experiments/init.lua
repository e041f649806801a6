--- The experiments registry: every `lua/vmlab/experiments/<name>.lua` next to
-- this file is an experiment, found by listing the directory (nobody edits a
-- shared list to add one). Adding an experiment is one file: its description
-- below drives `vmlab run NAME` (options, --help, validation), experiments.run's
-- validation, the report's tables, the JSON record (vmlab.record) and its schema.
--
-- An experiment module returns
--   { name = "read-write", summary = "one line",
--     params = {                                   -- its parameters, in the order --help shows them
--       { name = "size", default = 64 * MiB, unit = "bytes", min = vm.page_size, max = 1 << 40,
--         help = "memory to map and touch" },      -- one line: what it means (no unit, no default)
--       { name = "share", default = "private", unit = "choice", choices = { "private", "shared" },
--         help = "..." },
--       { name = "sizes", default = { 64, 4096 }, unit = "bytes", list = true, min = 1, max = 1 << 30,
--         help = "..." },                          -- list = true: a list of values of that unit
--     },                                           --   (on the command line: comma-separated)
--     validate = function(params) return nil | "message" end, -- optional: checks across params
--                                                  -- (the message names the options: "--small must be ...")
--     run = function(params) ... return result end,
--     explain = function(result, params) return { "line", ... } end,  -- optional
--     claims = {                                   -- what the lab says this run shows, each decided
--       { id = "read_faults", text = "a first read faults once per page",   -- from the result:
--         requires = "zero_page",                  -- optional: vmlab.kernel.has() names (a string or a
--                                                  -- list, or a function of the result returning them):
--                                                  -- where one is unmet the claim may fail, and its
--                                                  -- reason becomes the claim's `why`
--         decide = function(result, kernel) return holds, evidence, why end,
--                                                  -- holds: true | false | nil (nothing decides it)
--         explain = function(result) return "line" end },    -- optional: said when it held
--     },
--     fields = {                                   -- every field of the result, in the report's order
--       { name = "pages", unit = "count", help = "pages in the mapping" },
--       { name = "read", unit = "object", help = "the read pass", fields = { ...same shape... } },
--       { name = "methods", unit = "table", help = "one row per case", fields = { ... } },  -- a list of rows
--       { name = "steps", unit = "map", help = "per allocator", of = { unit = "object", fields = { ... } } },
--       { name = "level_names", unit = "list", of = "text", help = "..." },  -- a list of scalars
--       { name = "perf_reason", unit = "text", optional = true, help = "..." }, -- not in every result
--       { name = "indices", unit = "map", of = { unit = "integer" }, text = false, help = "..." },
--     },                                           -- text = false: in the JSON, not in the text report
--     tour = { size = ... },                       -- optional: params for `vmlab tour` (by name)
--     text_omit = { "field", ... },                -- optional: top-level fields the text report leaves out
--     writes = function(params) return bytes end, -- optional: memory the run writes; `vmlab run` refuses
--                                                  -- more than MemAvailable without --force (default: 0 in
--                                                  -- read mode, else params.size)
--   }
--
-- Parameter units (param.unit) and how a value is written on the command line:
--   bytes    an integer number of bytes: a size with its unit, 4096B 512KiB 64MiB 2GiB (B, KiB, MiB, GiB,
--            TiB; K/M/G/T and KB/MB/GB mean the same); a bare number is refused, except 0
--   pages    an integer number of pages of vm.page_size: a bare whole number
--   count    a whole number (0 or more): 100000
--   seconds  a number of seconds: 0.5, or with a unit: 500ms, 20us, 2s
--   text     any text (a path, a program)
--   choice   one of `choices`
--   boolean  true/false: `--flag` alone, or yes/no, true/false, 1/0
-- min/max (numbers, in the unit: bytes, pages, seconds...) bound every value (each item of a list);
-- choice and text take no range. Every param needs name, default, unit and help; a default must pass
-- its own checks. experiments.check_params(e, params) -> nil | "message" applies all of these (the
-- CLI and experiments.run both use it; a message names the option, e.g. "--size: ...").
--
-- Field units (field.unit) and how the report shows them:
--   bytes (1.5 MiB)  count (1,234)  integer (a number that counts nothing: a pid, an errno: 1234)
--   seconds and ns (best unit: 850 ns, 12.3 us, 4.56 ms, 1.23 s)
--   bytes_per_second (1.20 GiB/s)  percent (12.5 %)  ratio (0.125)  address (0x7f...)  text  boolean (yes/no)
--   object (fields = nested fields)  table (a list of rows, fields = the columns, the first identifies the row)
--   list (of = the unit of the items)  map (names -> `of`, a field description without name)
--   timeline (r:touch samples: bytes, rss, virt, minor_faults, major_faults, t)
-- JSON names follow one rule: snake_case; a field in bytes, seconds or a count carries no unit word, any
-- other unit is the last word of its name (`round_trip_ns`, `lost_percent`, `bytes_per_second`,
-- `ns_per_page`), and where a base unit is named it is last too (`touch_seconds`, never `seconds_touch`).
--
-- A result `{ skipped = "reason", ... }` means the machine cannot show it.
-- experiments.run adds `result.claims`: { {id=, text=, holds = true | false | "skipped",
-- evidence = "the measured numbers", why = "..." (when it did not hold or was skipped),
-- expected = false where the kernel probes say this machine cannot show it}, ... }.
--
--   local experiments = require "vmlab.experiments"
--   experiments.names()                     --> { "lazy", "read-write", ... }
--   local e = experiments.get("lazy")
--   experiments.defaults(e)                 --> { size = 268435456, alloc = "malloc", ... }
--   experiments.param(e, "size")            --> the description of param size
--   local result, record = experiments.run("lazy", { size = 64 << 20 })
--   -- record = { schema=, experiment=, summary=, params= (merged), system=, result=, seconds= }
-- @module vmlab.experiments
local vm = require "vmlab"

local experiments = {}

-- The order of the lab (issue 3); experiments not listed here follow, by name.
local lab_order = {
  "lazy", "read-write", "faults", "cow", "regions", "stack-guard", "segfault", "overcommit",
  "madvise", "mlock", "thp", "file-mmap", "page-table", "tlb", "calloc-realloc", "allocators", "shm-frames",
  "race", "ipc", "oom", "swap", "ksm",
}
local rank = {}
for i, n in ipairs(lab_order) do rank[n] = i end

local loaded = {}

--- The directory holding the experiment files (this file's directory).
function experiments.dir()
  local path = package.searchpath("vmlab.experiments", package.path)
  if not path then
    local src = debug.getinfo(1, "S").source
    path = src:sub(1, 1) == "@" and src:sub(2) or nil
  end
  return path and (path:match("^(.*)/[^/]*$") or ".") or nil
end

-- The file names in a directory (none when it cannot be read).
local function listdir(dir)
  return vm.listdir(dir) or {}
end

local function by_lab_order(a, b)
  local ra, rb = rank[a] or math.huge, rank[b] or math.huge
  if ra ~= rb then return ra < rb end
  return a < b
end

--- Every experiment's name, in the order of the lab.
function experiments.names()
  local names = {}
  local dir = experiments.dir()
  if dir then
    for _, file in ipairs(listdir(dir)) do
      local name = file:match("^([%w][%w%-_]*)%.lua$")
      if name and name ~= "init" then names[#names + 1] = name end
    end
  end
  table.sort(names, by_lab_order)
  return names
end

local describe = require "vmlab.describe"
local args = require "vmlab.args"

-- Check one field description (and its nested ones); bad(why) raises.
local function check_field(f, where, bad, named)
  if type(f) ~= "table" then bad(where .. " must be a table") end
  if named and (type(f.name) ~= "string" or not f.name:match("^[%l%d_]+$")) then
    bad(where .. " needs a snake_case name")
  end
  where = named and ("field '%s'"):format(f.name) or where
  if not describe.is_field_unit[f.unit] then
    bad(("%s: unit '%s' is not one of %s"):format(where, tostring(f.unit), table.concat(describe.field_units, ", ")))
  end
  if named and (type(f.help) ~= "string" or f.help == "") then bad(where .. " needs a one-line help") end
  if f.unit == "object" or f.unit == "table" then
    if type(f.fields) ~= "table" or #f.fields == 0 then bad(where .. " (" .. f.unit .. ") needs fields") end
    local seen = {}
    for i, sub in ipairs(f.fields) do
      check_field(sub, ("%s: field %d"):format(where, i), bad, true)
      if seen[sub.name] then bad(("%s: field '%s' twice"):format(where, sub.name)) end
      seen[sub.name] = true
    end
  elseif f.unit == "list" then
    if not describe.is_field_unit[f.of] then bad(where .. " (list) needs `of`, the unit of its items") end
  elseif f.unit == "map" then
    if type(f.of) ~= "table" then bad(where .. " (map) needs `of`, the description of its values") end
    check_field(f.of, where .. ": of", bad, false)
  end
end

local function check_param(p, i, bad)
  if type(p) ~= "table" then bad(("param %d must be a table {name=, default=, unit=, help=}"):format(i)) end
  if type(p.name) ~= "string" or not p.name:match("^[%l][%l%d_]*$") then
    bad(("param %d needs a snake_case name"):format(i))
  end
  local where = ("param '%s'"):format(p.name)
  if not describe.is_param_unit[p.unit] then
    bad(("%s: unit '%s' is not one of %s"):format(where, tostring(p.unit), table.concat(describe.param_units, ", ")))
  end
  if type(p.help) ~= "string" or p.help == "" then bad(where .. " needs a one-line help") end
  if p.unit == "choice" and (type(p.choices) ~= "table" or #p.choices == 0) then bad(where .. " needs choices") end
  if p.unit ~= "choice" and p.choices ~= nil then bad(where .. ": choices go with unit 'choice'") end
  local numeric = p.unit == "bytes" or p.unit == "pages" or p.unit == "count" or p.unit == "seconds"
  if not numeric and (p.min ~= nil or p.max ~= nil) then bad(where .. ": min/max go with a numeric unit") end
  if numeric and (type(p.min) ~= "number" or type(p.max) ~= "number") then
    bad(where .. " needs min and max (its allowed range)")
  end
  if p.default == nil then bad(where .. " needs a default") end
  local why = describe.check(p, p.default)
  if why then bad(("%s: its default is invalid (%s)"):format(where, why)) end
end

-- Check an experiment module's shape (the description at the top of this file);
-- builds e.param_index (name -> param description).
local function check(mod, name)
  local function bad(why) error(("experiment '%s': %s"):format(name, why), 0) end
  if type(mod) ~= "table" then bad("the module must return a table") end
  if mod.name ~= name then bad(("its name is '%s' but its file is %s.lua"):format(tostring(mod.name), name)) end
  if type(mod.run) ~= "function" then bad("it has no run function") end
  if type(mod.summary) ~= "string" then bad("it has no summary") end
  if mod.params == nil then mod.params = {} end
  if type(mod.params) ~= "table" then bad("params must be a list of param descriptions") end
  local index = {}
  for k, p in pairs(mod.params) do
    if math.type(k) ~= "integer" then bad("params must be a list of param descriptions (found key '" ..
      tostring(k) .. "')") end
    check_param(p, k, bad)
    if index[p.name] then bad(("param '%s' twice"):format(p.name)) end
    index[p.name] = p
  end
  mod.param_index = index
  -- derived: name -> unit of every param and top-level field (report.format, vmlab.html)
  local unit_map = {}
  for _, f in ipairs(type(mod.fields) == "table" and mod.fields or {}) do
    if type(f) == "table" and f.name then unit_map[f.name] = f.unit end
  end
  for _, p in ipairs(mod.params) do unit_map[p.name] = p.unit end
  mod.units = unit_map
  for k, v in pairs(mod.tour or {}) do
    if not index[k] then bad(("tour sets '%s', which is not a param"):format(tostring(k))) end
    local why = describe.check(index[k], v)
    if why then bad(("its tour value is invalid (%s)"):format(why)) end
  end
  if mod.validate ~= nil and type(mod.validate) ~= "function" then bad("validate must be a function") end
  if type(mod.fields) ~= "table" or #mod.fields == 0 then bad("it describes no result fields") end
  check_field({ unit = "object", fields = mod.fields }, "result", bad, false)
  if type(mod.claims) ~= "table" or #mod.claims == 0 then
    bad("it states no claims (every experiment says what the lab claims it shows; see the top of this file)")
  end
  for i, c in ipairs(mod.claims) do
    if type(c.id) ~= "string" or type(c.text) ~= "string" or type(c.decide) ~= "function" then
      bad(("claim %d needs an id, a text and a decide function"):format(i))
    end
  end
  return mod
end
experiments.check = check

--- The experiment module `name`, or nil and a message (unknown name).
function experiments.get(name)
  if type(name) ~= "string" or not name:match("^[%w][%w%-_]*$") then
    return nil, ("no experiment named '%s'"):format(tostring(name))
  end
  if loaded[name] then return loaded[name] end
  local modname = "vmlab.experiments." .. name
  local path = package.searchpath(modname, package.path)
  if not path or name == "init" then
    return nil, ("no experiment named '%s' (vmlab list shows them)"):format(name)
  end
  local mod = check(require(modname), name)
  loaded[name] = mod
  return mod
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = type(v) == "table" and copy(v) or v end
  return c
end

-- Argument 1 of experiments.<fn>: an experiment's module (as experiments.get
-- returns it) or its name; anything else raises an error naming the argument.
local function experiment_arg(fn, e)
  if type(e) == "string" then return assert(experiments.get(e)) end
  if type(e) ~= "table" or type(e.params) ~= "table" then
    args.bad("experiments." .. fn, 1, "an experiment (its module or its name)", e)
  end
  return e
end

--- The description of param `pname` of experiment e (a module or a name), or nil.
function experiments.param(e, pname)
  e = experiment_arg("param", e)
  if e.param_index then return e.param_index[pname] end
  for _, p in ipairs(e.params) do if p.name == pname then return p end end
  return nil
end

--- The defaults of experiment e (a module or a name): { name = default, ... } (a fresh copy).
function experiments.defaults(e)
  e = experiment_arg("defaults", e)
  local d = {}
  for _, p in ipairs(e.params) do d[p.name] = type(p.default) == "table" and copy(p.default) or p.default end
  return d
end

--- The description of result field `path` ("read.minor_faults", "methods.round_trip_ns",
-- "steps.large.rss": object, table row and map value levels) of experiment e, or nil.
function experiments.field(e, path)
  e = experiment_arg("field", e)
  args.check("experiments.field", 2, path, "string")
  local parts = {}
  for part in path:gmatch("[^.]+") do parts[#parts + 1] = part end
  local f = { unit = "object", fields = e.fields }
  local i = 1
  while i <= #parts do
    if f.unit == "map" then
      f = f.of -- parts[i] is a key of the map
    else
      local found
      for _, x in ipairs(f.fields or {}) do if x.name == parts[i] then found = x; break end end
      if not found then return nil end
      f = found
    end
    i = i + 1
  end
  return f
end

--- Check params (a full set, as experiments.params returns) against experiment
-- e's description: nil when valid, else one line naming the option ("--size: ..."),
-- or with `lua` true the parameter ("parameter 'size': ...").
function experiments.check_params(e, params, lua)
  e = experiment_arg("check_params", e)
  args.check("experiments.check_params", 2, params, "table")
  for _, p in ipairs(e.params) do
    local why = describe.check(p, params[p.name], lua and ("parameter '%s'"):format(p.name) or nil)
    if why then return why end
  end
  if e.validate then
    local why = e.validate(params)
    if why then return why end
  end
  return nil
end

--- The experiment's defaults with `opts` laid over them (and, with
-- `tour = true`, its tour params in between). Unknown params raise; values
-- are coerced to the param's type (a list param takes "a,b" too) but not
-- checked (experiments.check_params does that).
function experiments.params(name, opts, tour)
  local e = assert(experiments.get(name))
  local p = experiments.defaults(e)
  if tour and e.tour then for k, v in pairs(e.tour) do p[k] = type(v) == "table" and copy(v) or v end end
  for k, v in pairs(opts or {}) do
    local d = e.param_index[k]
    if d == nil then
      local known = {}
      for _, x in ipairs(e.params) do known[#known + 1] = x.name end
      error(("experiment '%s' has no parameter '%s' (it has: %s)"):format(name, tostring(k),
        #known > 0 and table.concat(known, ", ") or "none"), 2)
    end
    p[k] = describe.coerce(d, v)
  end
  return p
end

--- What the JSON's "system" says: page size, THP mode, overcommit policy, kernel.
-- @return { page_size = 4096, thp = "madvise", overcommit = 0, kernel = "6.1.0-..." }
function experiments.system_info()
  local s = vm.proc.vm_settings()
  return {
    page_size = vm.page_size,
    thp = s.thp_enabled or "unavailable",
    overcommit = math.tointeger(s.overcommit_memory),
    kernel = s.kernel and tostring(s.kernel) or "unknown",
  }
end

--- What the JSON's "system" says, with every kernel probe (vmlab.kernel).
function experiments.system_record()
  local s = experiments.system_info()
  s.probes = require("vmlab.kernel").record()
  return s
end

-- The first unmet requirement of a claim (for this result: `requires` may be
-- a function of it): nil, or its reason.
local function unmet(claim, result)
  args.check("experiments.unmet", 1, claim, "table")
  local req = claim.requires
  if type(req) == "function" then req = req(result or {}) end
  if req == nil then return nil end
  local kernel = require "vmlab.kernel"
  for _, name in ipairs(type(req) == "table" and req or { req }) do
    local ok, why = kernel.has(name)
    if not ok then return why end
  end
  return nil
end
experiments.unmet = unmet

--- Decide an experiment's claims from one result: a list of
-- { id=, text=, holds = true | false | "skipped", evidence=, why= }.
-- A claim that did not hold names the probe that explains it (its unmet
-- requirement) or says the cause is unknown; a whole skipped result skips
-- every claim with its reason.
function experiments.decide(e, result)
  if type(e) ~= "table" or type(e.claims) ~= "table" then
    error("bad argument #1 to 'decide' (an experiment module with claims expected, got " .. type(e) .. ")", 2)
  end
  if type(result) ~= "table" then
    error("bad argument #2 to 'decide' (a result table expected, got " .. type(result) .. ")", 2)
  end
  local out = {}
  local k = require("vmlab.kernel")()
  for _, c in ipairs(e.claims or {}) do
    local rec = { id = c.id, text = c.text, timing = c.timing or nil }
    local cannot = unmet(c, result)
    rec.expected = cannot == nil -- the probes say this machine can show it
    if result.skipped then
      rec.holds, rec.why = "skipped", tostring(result.skipped)
    else
      local ok, holds, evidence, why = pcall(c.decide, result, k)
      if not ok then
        rec.holds, rec.why = "skipped", "could not be decided: " .. tostring(holds)
      elseif holds == nil then
        rec.holds, rec.evidence = "skipped", evidence
        rec.why = why or cannot or "no evidence available on this machine decides it"
      else
        rec.holds, rec.evidence = holds and true or false, evidence
        if not holds then rec.why = why or cannot or "the cause is unknown" end
      end
    end
    out[#out + 1] = rec
  end
  return out
end

--- The claim `id` of a result (after experiments.run), or nil.
function experiments.claim(result, id)
  if result ~= nil and type(result) ~= "table" then
    error("bad argument #1 to 'claim' (a result table expected, got " .. type(result) .. ")", 2)
  end
  if type(id) ~= "string" then error("bad argument #2 to 'claim' (a claim id expected, got " .. type(id) .. ")", 2) end
  local claims = result and rawget(result, "claims")
  if claims ~= nil and type(claims) ~= "table" then
    error("bad argument #1 to 'claim' (its claims must be a list)", 2)
  end
  for _, c in ipairs(claims or {}) do
    if c.id == id then return c end
  end
  return nil
end

--- Did claim `id` of this result hold? (false when it did not or was skipped)
function experiments.held(result, id)
  local c = experiments.claim(result, id)
  return c ~= nil and c.holds == true
end

--- Counts of a list of decided claims: held, did not hold, skipped.
function experiments.tally(claims)
  if claims ~= nil and type(claims) ~= "table" then
    args.bad("experiments.tally", 1, "a list of decided claims", claims)
  end
  local held, failed, skipped = 0, 0, 0
  for i, c in ipairs(claims or {}) do
    if type(c) ~= "table" then args.bad("experiments.tally", 1, ("a list of claims (item %d a table)"):format(i), c) end
    if c.holds == true then held = held + 1
    elseif c.holds == false then failed = failed + 1
    else skipped = skipped + 1 end
  end
  return held, failed, skipped
end

local now = vm.now

--- Run experiment `name` with `opts` over its defaults.
-- @param opts params to change (a table; unknown names raise)
-- @param how optional { tour = true } to start from the experiment's tour params
-- @return result, record where record = { experiment=, summary=, params=, system=, result=, seconds= }
function experiments.run(name, opts, how)
  local e, err = experiments.get(name)
  if not e then error(err, 2) end
  local params = experiments.params(name, opts, how and how.tour)
  local bad = experiments.check_params(e, params, true)
  if bad then error(("experiment '%s': %s"):format(name, bad), 2) end
  local t0 = now()
  local result = e.run(copy(params))
  if type(result) ~= "table" then
    error(("experiment '%s' returned %s instead of a result table"):format(name, type(result)), 0)
  end
  result.claims = experiments.decide(e, result)
  local record = require("vmlab.record").new(e, params, result, experiments.system_record(), now() - t0)
  return result, record
end

return experiments
