--- `vmlab report [--out report.html] [--from FILE.json ...] [NAME ...]`: the lab
-- report as one self-contained web page (vmlab.html): the tour's experiments
-- (or the ones named) run at their tour sizes, or records saved earlier with
-- `vmlab run NAME --json` / `vmlab tour --json` (one JSON object per line).
local experiments = require "vmlab.experiments"
local html = require "vmlab.html"

local M = { summary = "the lab report as one web page: system, claims, numbers and charts (--out FILE.html)" }

function M.parser()
  local p = require("vmlab.cli").new("vmlab report",
    "Runs the experiments (or reads saved JSON records) and writes one HTML page.")
  p:argument("names", "Experiments to run (default: all, at their tour sizes)."):args("*"):argname("NAME")
  p:option("-o --out", "The page to write.", "report.html"):argname("FILE.html")
  p:option("--from", "Read records from this file of JSON lines (vmlab run --json, vmlab tour --json) instead "
    .. "of running."):count("*"):argname("FILE")
  p:option("--title", "The page's title.", "vmlab lab report")
  return p
end

-- The records of a file of JSON lines (vmlab run --json, vmlab tour --json).
local function read_records(path, into)
  local f, err = io.open(path, "r")
  if not f then return nil, err end
  local report = require "vmlab.report"
  local n = 0
  for line in f:lines() do
    if line:match("%S") then
      local ok, rec = pcall(report.decode, line)
      if not ok or type(rec) ~= "table" or type(rec.experiment) ~= "string" then
        f:close()
        return nil, ("%s:%d: not a vmlab JSON record"):format(path, n + 1)
      end
      into[#into + 1] = rec
    end
    n = n + 1
  end
  f:close()
  return true
end

function M.main(argv)
  local cli = require "vmlab.cli"
  local args, code = cli.parse(M.parser(), argv)
  if not args then return code end
  local records = {}
  if #args.from > 0 then
    if #args.names > 0 then
      return cli.usage_error("vmlab report", "give experiment names or --from files, not both")
    end
    for _, path in ipairs(args.from) do
      local rok, err = read_records(path, records)
      if not rok then
        io.stderr:write("vmlab report: ", err, "\n")
        return 2
      end
    end
  else
    local names = #args.names > 0 and args.names or experiments.names()
    for _, n in ipairs(names) do
      if not experiments.get(n) then
        return cli.usage_error("vmlab report", require("vmlab.cli.suggest").unknown("experiment", n,
          experiments.names()))
      end
    end
    for _, n in ipairs(names) do
      io.stderr:write("vmlab report: running ", n, " ...\n")
      local rok, _, record = pcall(experiments.run, n, nil, { tour = true })
      records[#records + 1] = rok and record or { experiment = n, result = { error = tostring(_) } }
    end
  end
  local wok, werr = html.write(args.out, html.page(records, { title = args.title }))
  if not wok then
    io.stderr:write("vmlab report: cannot write ", args.out, ": ", tostring(werr), "\n")
    return 1
  end
  io.stdout:write(("vmlab report: %d experiments written to %s\n"):format(#records, args.out))
  return 0
end

return M
