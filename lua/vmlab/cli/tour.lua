--- `vmlab tour [--json] [NAME ...]`: every experiment (or the ones named) at
-- its tour parameters (safe, quick sizes), each with its report; skipped
-- experiments are shown with their reasons. Ends with one line: how many ran,
-- were skipped and failed, and how long it took. Exit 1 if any failed.
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"

local M = { summary = "every experiment at safe sizes with its report (make demo runs this)" }

local now = require("vmlab").now

function M.parser()
  local p = require("vmlab.cli").new("vmlab tour", "Runs every experiment (or the named ones) at its tour sizes "
    .. "(safe and quick) and prints each report, then one line: how many ran, were skipped and failed, and the "
    .. "claims that did not hold.")
  p:argument("names", "Experiments to run (default: all, in the lab's order)."):args("*"):argname("NAME")
  p:flag("--json", "One JSON object per experiment and line instead of the reports.")
  p:option("--report", "Also write the lab report as one web page."):argname("FILE.html")
  return p
end

function M.main(argv)
  local cli = require "vmlab.cli"
  local args, code = cli.parse(M.parser(), argv)
  if not args then return code end
  local json, wanted, report_path = args.json, args.names, args.report
  local names = #wanted > 0 and wanted or experiments.names()
  for _, n in ipairs(wanted) do
    local ok, e = pcall(experiments.get, n)
    if ok and not e then
      return cli.usage_error("vmlab tour", require("vmlab.cli.suggest").unknown("experiment", n, experiments.names()))
    end
  end
  local t0 = now()
  local ran, skipped, failed = 0, {}, {}
  local records = {}
  local claims, held, not_held, claims_skipped = 0, 0, {}, 0
  for n, name in ipairs(names) do
    local t1 = now()
    local ok, result, record = pcall(experiments.run, name, nil, { tour = true })
    local took = now() - t1
    records[#records + 1] = ok and record or { experiment = name, result = { error = tostring(result) } }
    if not ok then
      failed[#failed + 1] = name
      if json then
        io.stdout:write(report.json({ experiment = name, result = { error = tostring(result) } }), "\n")
      else
        io.stdout:write(("%s: FAILED: %s\n\n"):format(name, tostring(result)))
      end
    else
      ran = ran + 1
      for _, c in ipairs(result.claims or {}) do
        claims = claims + 1
        if c.holds == true then held = held + 1
        elseif c.holds == false then
          not_held[#not_held + 1] = c
          c.experiment = name
        else claims_skipped = claims_skipped + 1 end
      end
      if result.skipped then skipped[#skipped + 1] = ("%s (%s)"):format(name, tostring(result.skipped)) end
      if json then
        io.stdout:write(report.json(record), "\n")
      else
        if n > 1 then io.stdout:write("\n") end
        io.stdout:write(report.text(record))
        io.stdout:write(("(%s took %.2f s)\n"):format(name, took))
      end
    end
    io.stdout:flush()
  end
  local total = now() - t0
  if not json then
    io.stdout:write("\n", ("="):rep(78), "\n")
    io.stdout:write(("tour: %d experiments ran (%d skipped), %d failed, in %.1f s\n"):format(
      ran, #skipped, #failed, total))
    local predicted = 0
    for _, c in ipairs(not_held) do if c.expected == false then predicted = predicted + 1 end end
    io.stdout:write(("tour: %d experiments, %d claims: %d held, %d did not hold%s, %d skipped\n"):format(
      ran, claims, held, #not_held,
      predicted > 0 and (" (%d as the kernel probes predicted)"):format(predicted) or "", claims_skipped))
    for _, c in ipairs(not_held) do
      io.stdout:write("  did not hold: ", c.experiment, ": ", c.text, "\n",
        "      measured: ", tostring(c.evidence), "\n", "      why: ", tostring(c.why), "\n")
    end
    for _, s in ipairs(skipped) do io.stdout:write("  skipped: ", s, "\n") end
    for _, f in ipairs(failed) do io.stdout:write("  FAILED: ", f, "\n") end
  end
  if report_path then
    local html = require "vmlab.html"
    local wok, werr = html.write(report_path, html.page(records))
    if not wok then
      io.stderr:write("vmlab tour: cannot write ", report_path, ": ", tostring(werr), "\n")
      return 1
    end
    io.stdout:write("tour: the lab report is in ", report_path, "\n")
  end
  return #failed > 0 and 1 or 0
end

return M
