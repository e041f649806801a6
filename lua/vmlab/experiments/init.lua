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
--     },
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
--   bytes (1.5 MiB)  count (1,234)  seconds and ns (best unit: 850 ns, 12.3 us, 4.56 ms, 1.23 s)
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

local function check(mod, name)
  local function bad(why) error(("experiment '%s': %s"):format(name, why), 0) end
  if type(mod) ~= "table" then bad("the module must return a table") end
  if mod.name ~= name then bad(("its name is '%s' but its file is %s.lua"):format(tostring(mod.name), name)) end
  if type(mod.run) ~= "function" then bad("it has no run function") end
  if type(mod.summary) ~= "string" then bad("it has no summary") end
  if mod.params == nil then mod.params = {} end
  if type(mod.params) ~= "table" then bad("params must be a table") end
  if mod.claims == nil then mod.claims = {} end -- TODO(issue 8): every experiment states claims
  if type(mod.claims) ~= "table" then bad("claims must be a list") end
  for i, c in ipairs(mod.claims) do
    if type(c.id) ~= "string" or type(c.text) ~= "string" or type(c.decide) ~= "function" then
      bad(("claim %d needs an id, a text and a decide function"):format(i))
    end
  end
  return mod
end

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

--- The experiment's defaults with `opts` laid over them (and, with
-- `tour = true`, its tour params in between). Unknown params raise.
function experiments.params(name, opts, tour)
  local e = assert(experiments.get(name))
  local p = copy(e.params)
  if tour and e.tour then for k, v in pairs(e.tour) do p[k] = v end end
  for k, v in pairs(opts or {}) do
    if e.params[k] == nil then
      local known = {}
      for key in pairs(e.params) do known[#known + 1] = key end
      table.sort(known)
      error(("experiment '%s' has no parameter '%s' (it has: %s)"):format(name, tostring(k),
        #known > 0 and table.concat(known, ", ") or "none"), 2)
    end
    p[k] = v
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
  for _, c in ipairs(result and result.claims or {}) do
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
  local held, failed, skipped = 0, 0, 0
  for _, c in ipairs(claims or {}) do
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
  local t0 = now()
  local result = e.run(copy(params))
  if type(result) ~= "table" then
    error(("experiment '%s' returned %s instead of a result table"):format(name, type(result)), 0)
  end
  result.claims = experiments.decide(e, result)
  local record = {
    experiment = name, summary = e.summary, params = params,
    system = experiments.system_record(), result = result, seconds = now() - t0,
  }
  return result, record
end

return experiments
