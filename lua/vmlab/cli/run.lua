--- `vmlab run NAME [--PARAM VALUE ...] [--json] [--force] [--plot FILE.svg|FILE.png [--chart bars|timeline]]`
-- Runs one experiment and prints its report, or with --json one JSON record.
-- Every parameter of the experiment's description (vmlab/experiments/init.lua)
-- is an option (`frame_size` is `--frame-size`), read in its unit: a size needs
-- its unit (4096B, 512KiB, 64MiB, 2GiB), a count is a whole number, seconds take
-- 0.5 or 500ms, choices one of their words, a list is comma-separated.
-- `vmlab run NAME --help` shows each with its unit, default, meaning and range.
-- Every value is checked once, before anything runs: a bad one is one line
-- naming the option on standard error and exit status 2. So are a --plot file
-- that cannot be written (not .svg, or .png without rsvg-convert) and an
-- experiment with no chart. A run that would write more than MemAvailable is
-- refused unless --force.
local experiments = require "vmlab.experiments"
local describe = require "vmlab.describe"
local report = require "vmlab.report"
local units = require "vmlab.units"

local M = { summary = "run one experiment: vmlab run NAME [--PARAM VALUE ...] [--json] [--force] "
  .. "[--plot FILE.svg]" }

local PROG = "vmlab run"

local function fail(msg)
  io.stderr:write(PROG, ": ", (tostring(msg):gsub("\n", " ")), "\n")
  return 2
end

local unit_words = {
  bytes = "a size: 4096B, 512KiB, 64MiB, 2GiB",
  pages = "a number of pages",
  count = "a whole number",
  seconds = "seconds: 0.5, 500ms, 20us",
  text = "text",
  choice = "one of",
  boolean = "yes or no; alone: yes",
}

--- The help line of param p: meaning; unit; default; range or choices.
function M.param_help(p)
  local parts = { p.help }
  local unit = unit_words[p.unit] or p.unit
  if p.unit == "choice" then unit = (p.list and "comma-separated, each one of: " or "one of: ")
    .. table.concat(p.choices, ", ")
  elseif p.list then unit = "comma-separated, each " .. unit end
  parts[#parts + 1] = unit
  local default = describe.word(p, p.default)
  if p.unit == "text" and default == "" then default = '""' end
  parts[#parts + 1] = "default " .. default
  if p.min ~= nil then
    parts[#parts + 1] = ("from %s to %s"):format(describe.word({ unit = p.unit }, p.min),
      describe.word({ unit = p.unit }, p.max))
  end
  return table.concat(parts, "; ")
end

local metavar = { bytes = "SIZE", pages = "PAGES", count = "N", seconds = "SECONDS", text = "TEXT",
  choice = "WORD", boolean = "yes|no" }

--- The parser of `vmlab run NAME` (its options from the experiment's params),
-- or with no name the parser of `vmlab run` itself.
function M.parser(name)
  local cli = require "vmlab.cli"
  local e = name and experiments.get(name)
  if not e then
    local lines = {}
    for _, n in ipairs(experiments.names()) do
      local ok, x = pcall(experiments.get, n)
      lines[#lines + 1] = ("  %-15s %s"):format(n, ok and x and x.summary or "")
    end
    local p = cli.new(PROG, "Runs one experiment and prints its report (or its JSON record). "
      .. "`vmlab run NAME --help` shows NAME's parameters.")
    p:argument("name", "The experiment."):args("?")
    p:epilog("Experiments:\n" .. table.concat(lines, "\n"))
    return p
  end
  local p = cli.new(PROG .. " " .. name, e.summary)
  p:argument("name", "The experiment.")
  for _, d in ipairs(e.params) do
    local o = p:option(describe.option(d.name), M.param_help(d)):target("param_" .. d.name)
      :argname(metavar[d.unit] or "VALUE")
    if d.unit == "boolean" then o:args("?") end
  end
  p:flag("--json", "Print one JSON record (doc/record.schema.json) instead of the report.")
  p:flag("--force", "Run even if it would write more than MemAvailable.")
  p:option("--plot", "Also write a chart of the result: SVG, or PNG when the name ends in .png "
    .. "(needs rsvg-convert)."):argname("FILE")
  p:option("--chart", "With --plot: which family of the experiment's charts (default: its first).")
    :choices { "bars", "timeline" }
  p:epilog("Sizes need their unit (B, KiB, MiB, GiB, TiB); lists are comma-separated. "
    .. "Every value is checked before the run starts.")
  return p
end

-- "--size -5": argparse would take "-5" for an option; "--size=-5" it reads as the value.
local function join_negative(argv, e)
  local out, i = {}, 1
  while i <= #argv do
    local a, nxt = argv[i], argv[i + 1]
    local key = a:match("^%-%-([%w-]+)$")
    local d = key and experiments.param(e, (key:gsub("-", "_")))
    if d and d.unit ~= "boolean" and nxt and nxt:match("^%-[%d.]") then
      out[#out + 1] = a .. "=" .. nxt
      i = i + 2
    else
      out[#out + 1] = a
      i = i + 1
    end
  end
  return out
end

--- Parse the options of experiment e into params (only those given).
-- @return params, or nil and one line naming the option
function M.params_from(e, args)
  local params = {}
  for _, d in ipairs(e.params) do
    local v = args["param_" .. d.name]
    if v ~= nil then
      if type(v) == "table" then v = v[1] end -- a boolean option given bare
      local value, err = describe.parse(d, v)
      if value == nil then return nil, err end
      params[d.name] = value
    end
  end
  return params
end

--- Bytes the run will write with these params: e.writes(params) when the
-- experiment says, else 0 in read mode, else its size.
function M.writes(e, params)
  if type(e.writes) == "function" then return e.writes(params) or 0 end
  if params.mode == "read" then return 0 end
  if math.type(params.size) == "integer" then return params.size end
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

--- Can a chart of experiment `name` be written to path? nil, or why not (before running).
function M.check_plot(name, path, chart)
  local plot = require "vmlab.plot"
  local format, why = plot.format_for(path)
  if not format then return why end
  local ok, cwhy = plot.can_draw(name, chart)
  if not ok then return cwhy end
  return nil
end

--- Write the chart of an experiment's result to path (SVG, or PNG for .png).
-- @param chart nil (its first chart that draws), "bars" or "timeline"
-- @return true, or nil and the reason
function M.plot(name, result, path, chart)
  local plot = require "vmlab.plot"
  local svg, why = plot.for_result(name, result, { chart = chart })
  if not svg then return nil, why end
  local ok, err = plot.save(path, svg)
  if not ok then return nil, ("cannot write the chart: %s"):format(tostring(err)) end
  return true
end

function M.main(argv)
  local cli = require "vmlab.cli"
  local name = argv[1]
  if name == nil or name:sub(1, 1) == "-" then
    local p = M.parser()
    if name == "-h" or name == "--help" then
      io.stdout:write(p:get_help(), "\n")
      return 0
    end
    if name == nil then
      io.stderr:write(p:get_usage(), "\n", PROG, ": which experiment? (vmlab list shows them)\n")
      return 2
    end
    return fail("the experiment's name comes first: vmlab run NAME [options]")
  end
  local ok, e = pcall(experiments.get, name)
  if not ok then
    io.stderr:write(PROG, ": ", tostring(e), "\n")
    return 1
  end
  if not e then
    return fail(require("vmlab.cli.suggest").unknown("experiment", name, experiments.names())
      .. " (vmlab list shows them)")
  end
  local args, code = cli.parse(M.parser(name), join_negative(argv, e), PROG .. " " .. name)
  if not args then return code end
  if args.chart and not args.plot then return fail("--chart goes with --plot FILE.svg") end
  local params, perr = M.params_from(e, args)
  if not params then return fail(perr) end
  local merged = experiments.params(name, params)
  local bad = experiments.check_params(e, merged)
  if bad then return fail(bad) end
  if args.plot then
    local why = M.check_plot(name, args.plot, args.chart)
    if why then return fail("--plot: " .. why) end
  end
  if not args.force then
    local refusal = M.check_memory(name, e, merged)
    if refusal then return fail(refusal) end
  end
  -- on a terminal (and not --json), a progress bar for the experiment's touches
  local stop_progress = require("vmlab.progress").during_touches { label = name, enabled = (not args.json) and nil }
  local rok, result, record = pcall(experiments.run, name, params)
  stop_progress()
  if not rok then
    io.stderr:write(PROG, " ", name, ": ", tostring(result), "\n")
    return 1
  end
  if args.json then
    io.stdout:write(report.json(record), "\n")
  else
    io.stdout:write(report.text(record, e))
  end
  if args.plot then
    local written, why = M.plot(name, result, args.plot, args.chart)
    if not written then
      io.stderr:write(PROG, " ", name, ": no chart written: ", tostring(why), "\n")
      return 1
    end
    if not args.json then io.stdout:write("chart written to ", args.plot, "\n") end
  end
  return 0
end

return M
