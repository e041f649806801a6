--- `vmlab report [--out report.html] [--from FILE.json ...] [NAME ...]`: the lab
-- report as one self-contained web page (vmlab.html): the tour's experiments
-- (or the ones named) run at their tour sizes, or records saved earlier with
-- `vmlab run NAME --json` / `vmlab tour --json` (one JSON object per line).
local experiments = require "vmlab.experiments"
local html = require "vmlab.html"

local M = { summary = "the lab report as one web page: system, claims, numbers and charts (--out FILE.html)" }

local function parser()
  local argparse = require "argparse"
  local p = argparse("vmlab report", "Runs the experiments (or reads saved JSON records) and writes one HTML page.")
  p:argument("names", "experiments to run (default: all, at their tour sizes)"):args("*")
  p:option("-o --out", "the page to write", "report.html"):argname("FILE.html")
  p:option("--from", "read records from this file of JSON lines instead of running"):count("*"):argname("FILE")
  p:option("--title", "the page's title", "vmlab lab report")
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
  local p = parser()
  local ok, args = p:pparse(argv)
  if not ok then
    io.stderr:write("vmlab report: ", args, "\n", p:get_usage(), "\n")
    return 2
  end
  local records = {}
  if #args.from > 0 then
    if #args.names > 0 then
      io.stderr:write("vmlab report: give experiment names or --from files, not both\n")
      return 2
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
      local e, err = experiments.get(n)
      if not e then
        io.stderr:write("vmlab report: ", err, "\n")
        return 2
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
