--- `vmlab run NAME [--size 256MiB] [--mode read|write] [--PARAM VALUE ...] [--json] [--force]
--  [--plot FILE.svg [--chart bars|timeline]]`
-- Runs one experiment and prints its report, or with --json one JSON object.
-- --plot writes a chart of the result (vmlab.plot): the experiment's own bars
-- where it has them (read-write, thp, madvise, ipc, regions --faults), else its
-- timeline (RSS, VIRT and faults against bytes touched); --chart picks one.
-- An experiment with nothing to draw: a message and exit status 1.
-- Every parameter of the experiment is an option (`frame_size` is
-- `--frame-size`), read by the type of its default: sizes take 512, 512KiB,
-- 64MiB, 2GiB (a bare number is MiB); counts take integers; words take the
-- experiment's choices. Bad values: a clear message and exit status 2. A run
-- that would write more than MemAvailable is refused unless --force.
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"
local units = require "vmlab.units"

local M = { summary = "run one experiment: vmlab run NAME [--size 64MiB] [--mode read|write] [--json] [--force] " ..
  "[--plot FILE.svg]" }

local function option_name(key) return "--" .. key:gsub("_", "-") end

local function fail(msg)
  io.stderr:write("vmlab run: ", msg, "\n")
  return 2
end

--- Is param `key` of experiment e a size in bytes?
function M.is_size(e, key)
  return report.kind(key, e.units) == "bytes"
end

--- Convert the text of option `key` to the type of the experiment's default.
-- @return value, or nil and a message
function M.convert(e, key, text)
  local default = e.params[key]
  local opt = option_name(key)
  if type(default) == "boolean" then
    if text == nil or text == "yes" or text == "true" or text == "1" then return true end
    if text == "no" or text == "false" or text == "0" then return false end
    return nil, ("bad value '%s' for %s (yes or no)"):format(text, opt)
  end
  if text == nil then return nil, opt .. " needs a value" end
  if math.type(default) == "integer" then
    if M.is_size(e, key) then
      local bytes, err = units.parse_size(text)
      if bytes == nil and text:match("^%s*0+%s*$") then bytes = 0 end
      if bytes == nil then return nil, ("%s: %s"):format(opt, err) end
      return bytes
    end
    local n = math.tointeger(tonumber(text))
    if n == nil or n < 0 then
      return nil, ("bad value '%s' for %s (a whole number, 0 or more)"):format(text, opt)
    end
    return n
  end
  if type(default) == "number" then
    local n = tonumber(text)
    if n == nil or n ~= n then return nil, ("bad value '%s' for %s (a number)"):format(text, opt) end
    return n
  end
  local choices = e.choices and e.choices[key]
  if choices then
    for _, c in ipairs(choices) do if c == text then return text end end
    return nil, ("bad value '%s' for %s (one of: %s)"):format(text, opt, table.concat(choices, ", "))
  end
  return text
end

local function is_timeline(v)
  return type(v) == "table" and type(v[1]) == "table" and v[1].bytes ~= nil and v[1].rss ~= nil
end

--- Write the chart of an experiment's result to path.
-- @param chart nil (the experiment's bars where it has them, else its
--   timeline), "bars" or "timeline"
-- @return true, or nil and the reason
function M.plot(name, result, path, chart)
  local plot = require "vmlab.plot"
  if chart == "timeline" then
    local any = type(result) == "table" and is_timeline(result.timeline)
    for _, v in pairs(type(result) == "table" and result or {}) do
      if type(v) == "table" and is_timeline(v.timeline) then any = true end
    end
    if not any then return nil, ("experiment '%s' has no timeline to draw (try --chart bars)"):format(name) end
  end
  local svg, why = plot.for_result(name, result, { prefer = chart ~= "timeline" and "bars" or nil })
  if not svg then return nil, why end
  local ok, err = plot.write(path, svg)
  if not ok then return nil, ("cannot write the chart: %s"):format(tostring(err)) end
  return true
end

--- Bytes the run will write with these params: e.writes(params) when the
-- experiment says, else 0 in read mode, else its size (or pages).
function M.writes(e, params)
  if type(e.writes) == "function" then return e.writes(params) or 0 end
  if params.mode == "read" then return 0 end
  if math.type(params.size) == "integer" then return params.size end
  if math.type(params.pages) == "integer" then return params.pages * require("vmlab").page_size end
  return 0
end

--- nil when the run fits in MemAvailable, else the refusal message.
function M.check_memory(name, e, params)
  local need = M.writes(e, params)
  if need <= 0 then return nil end
  local mi = require("vmlab").proc.meminfo()
  local avail = mi and mi.MemAvailable
  if avail and need > avail then
    return ("%s would write %s but only %s is available (MemAvailable): the lab does not OOM the machine; " ..
      "use a smaller --size, or --force to run it anyway"):format(name, units.bytes(need), units.bytes(avail))
  end
  return nil
end

local function default_text(e, key)
  local v = e.params[key]
  if M.is_size(e, key) and math.type(v) == "integer" then return units.bytes(v) end
  return tostring(v)
end

local function list_text()
  local lines = {}
  for _, n in ipairs(experiments.names()) do lines[#lines + 1] = "  " .. n end
  return table.concat(lines, "\n")
end

local function parser_for(name, e)
  local argparse = require "argparse"
  local p = argparse("vmlab run " .. name, e.summary)
  p:argument("name", "the experiment")
  p:flag("--json", "print one JSON object instead of the report")
  p:flag("--force", "run even if it would write more than MemAvailable")
  p:option("--plot", "write a chart of the result to this SVG file (a browser opens it)"):argname("FILE.svg")
  p:option("--chart", "with --plot: the experiment's own bars, or its timeline (default: bars where it has them)")
    :choices { "bars", "timeline" }
  local keys = {}
  for k in pairs(e.params) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local desc = ("%s (default %s)"):format(k, default_text(e, k))
    if e.choices and e.choices[k] then desc = desc .. ": " .. table.concat(e.choices[k], " | ") end
    if M.is_size(e, k) then desc = desc .. "; a size such as 512KiB, 64MiB, 2GiB (a bare number is MiB)" end
    local o = p:option(option_name(k), desc):target("param_" .. k)
    if type(e.params[k]) == "boolean" then o:args("?") end
  end
  return p, keys
end

function M.main(argv)
  local name = argv[1]
  if name == nil or name == "-h" or name == "--help" then
    local out = name and io.stdout or io.stderr
    out:write("usage: vmlab run NAME [--PARAM VALUE ...] [--json] [--force]\n",
      "                 [--plot FILE.svg [--chart bars|timeline]]\n",
      "       vmlab run NAME --help   shows NAME's parameters\n\nexperiments:\n", list_text(), "\n")
    return name and 0 or 2
  end
  if name:sub(1, 1) == "-" then return fail("the experiment's name comes first: vmlab run NAME [options]") end
  local ok, e, err = pcall(experiments.get, name)
  if not ok then
    io.stderr:write("vmlab run: ", tostring(e), "\n")
    return 1
  end
  if not e then return fail(err .. "\nexperiments:\n" .. list_text()) end
  local parser, keys = parser_for(name, e)
  local pok, args = parser:pparse(argv)
  if not pok then return fail(args .. "\n" .. parser:get_usage()) end
  if args.chart and not args.plot then return fail("--chart goes with --plot FILE.svg") end
  local params = {}
  for _, k in ipairs(keys) do
    local v = args["param_" .. k]
    if v ~= nil then
      if type(v) == "table" then v = v[1] end -- a boolean option given bare
      local value, cerr = M.convert(e, k, v)
      if value == nil then return fail(cerr) end
      params[k] = value
    end
  end
  local merged = experiments.params(name, params)
  if not args.force then
    local refusal = M.check_memory(name, e, merged)
    if refusal then return fail(refusal) end
  end
  -- on a terminal (and not --json), a progress bar for the experiment's touches
  local stop_progress = require("vmlab.progress").during_touches { label = name, enabled = (not args.json) and nil }
  local rok, result, record = pcall(experiments.run, name, params)
  stop_progress()
  if not rok then
    io.stderr:write("vmlab run ", name, ": ", tostring(result), "\n")
    return 1
  end
  if args.json then
    io.stdout:write(report.json(record), "\n")
  else
    io.stdout:write(report.text(record, e)) -- timelines shown as one line; explain() sees the whole result
  end
  if args.plot then
    local written, why = M.plot(name, result, args.plot, args.chart)
    if not written then
      io.stderr:write("vmlab run ", name, ": no chart written: ", tostring(why), "\n")
      return 1
    end
    if not args.json then io.stdout:write("chart written to ", args.plot, "\n") end
  end
  return 0
end

return M
