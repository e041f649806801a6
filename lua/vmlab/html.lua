--- vmlab.html: a lab report as one self-contained web page.
--
--     local html = require "vmlab.html"
--     local page = html.page(records, { title = "vmlab lab report" })   -- records from experiments.run
--     html.write("report.html", page)
--
-- The page holds: the machine's probes (vmlab.kernel) with how each was found;
-- a summary of every claim (held / did not hold / skipped); then one section
-- per experiment with its parameters, its claims (verdict, evidence, why), its
-- numbers as the text report shows them, and its charts inline (vmlab.plot's
-- SVG: the experiment's own chart and its timelines). No script, no external
-- resource: it opens offline in any browser. Elements carry classes and data-
-- attributes (section.experiment[data-experiment], li.claim[data-claim][data-verdict],
-- figure.chart) so a program can check the page.
-- @module vmlab.html
local args = require "vmlab.args"
local report = require "vmlab.report"
local plot = require "vmlab.plot"

local M = {}

-- "bad argument #1 to 'html.page' (table expected, got number)", raised at
-- the first caller outside this file.
local fail = args.fail
local function bad_arg(fn, i, expected, v) args.bad("html." .. fn, i, expected, v) end
local function bad_field(fn, what, must, v) fail(("html.%s: %s must be %s, not %s"):format(fn, what, must, type(v))) end

-- The records html.page reads: each a table whose experiment is text, whose
-- params, system and result are tables, whose result's claims are tables.
local function check_records(records)
  if type(records) ~= "table" then bad_arg("page", 1, "table (a list of records)", records) end
  for i, r in ipairs(records) do
    local what = ("records[%d]"):format(i)
    if type(r) ~= "table" then bad_field("page", what, "a record table", r) end
    if r.experiment ~= nil and type(r.experiment) ~= "string" then
      bad_field("page", what .. ".experiment", "a string or nil", r.experiment)
    end
    for _, k in ipairs { "params", "system", "result" } do
      if r[k] ~= nil and type(r[k]) ~= "table" then bad_field("page", what .. "." .. k, "a table or nil", r[k]) end
    end
    if r.system and r.system.probes ~= nil and type(r.system.probes) ~= "table" then
      bad_field("page", what .. ".system.probes", "a table or nil", r.system.probes)
    end
    local claims = r.result and r.result.claims
    if claims ~= nil and type(claims) ~= "table" then
      bad_field("page", what .. ".result.claims", "a list or nil", claims)
    end
    for j, c in ipairs(claims or {}) do
      if type(c) ~= "table" then bad_field("page", ("%s.result.claims[%d]"):format(what, j), "a table", c) end
    end
  end
end

local function esc(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
    ["'"] = "&#39;" }))
end
M.escape = esc

local CSS = [[
body { font-family: sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 0.15em 0.6em; text-align: left;
  border-bottom: 1px solid #eee; vertical-align: top; }
table.probes { width: 100%; table-layout: fixed; } table.probes td { overflow-wrap: anywhere; }
td.how { color: #666; font-size: 0.85em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
ul.claims { list-style: none; padding-left: 0; }
li.claim { margin: 0.4em 0; padding: 0.3em 0.6em; border-left: 5px solid #999; }
li.claim[data-verdict="held"] { border-color: #2ca02c; }
li.claim[data-verdict="not-held"] { border-color: #d62728; background: #fff4f4; }
li.claim[data-verdict="skipped"] { border-color: #bbb; color: #555; }
.verdict { font-weight: bold; display: inline-block; min-width: 8em; }
.evidence, .why { display: block; font-size: 0.9em; margin-left: 8.3em; }
figure.chart { margin: 1em 0; } figure.chart svg { max-width: 100%; height: auto; }
.summary td.n { text-align: right; }
]]

local VERDICT = { [true] = "held", [false] = "not-held", skipped = "skipped" }
local VERDICT_WORDS = { held = "held", ["not-held"] = "did not hold", skipped = "skipped" }

local BYTES = { page_size = true, huge_page_size = true, hugetlb_sizes = true, swap_total = true, swap_free = true,
  memory_limit = true, memlock_limit = true }

local function probe_value(v, field)
  if v == nil then return "unknown" end
  if BYTES[field] and v ~= math.huge then
    local units = require "vmlab.units"
    if type(v) == "table" then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = units.bytes(x) end
      return #parts > 0 and table.concat(parts, ", ") or "none"
    end
    if math.type(v) == "integer" then return units.bytes(v) end
  end
  if type(v) == "boolean" then return v and "yes" or "no" end
  if v == math.huge then return "unlimited" end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return #parts > 0 and table.concat(parts, ", ") or "none"
  end
  return tostring(v)
end

local function probes_section(out, probes)
  local kernel = require "vmlab.kernel"
  out[#out + 1] = '<section id="system"><h2>The machine</h2>'
  out[#out + 1] = "<p>What this kernel and this process could show, measured or read when the report was made.</p>"
  out[#out + 1] = '<table class="probes"><tr><th>probe</th><th>value</th><th>meaning</th><th>how it was found</th></tr>'
  local how = probes.how or {}
  for _, f in ipairs(kernel.fields) do
    out[#out + 1] = ('<tr data-probe="%s"><td>%s</td><td>%s</td><td>%s</td><td class="how">%s</td></tr>'):format(
      esc(f), esc(f), esc(probe_value(probes[f], f)), esc(kernel.meaning[f] or ""), esc(how[f] or ""))
  end
  out[#out + 1] = "</table></section>"
end

local function claims_list(out, claims)
  out[#out + 1] = '<ul class="claims">'
  for _, c in ipairs(claims or {}) do
    local v = VERDICT[c.holds] or "skipped"
    out[#out + 1] = ('<li class="claim" data-claim="%s" data-verdict="%s"><span class="verdict">%s</span>%s')
      :format(esc(c.id), v, esc(VERDICT_WORDS[v]), esc(c.text))
    if c.evidence then out[#out + 1] = ('<span class="evidence">measured: %s</span>'):format(esc(c.evidence)) end
    if c.holds ~= true and c.why then out[#out + 1] = ('<span class="why">why: %s</span>'):format(esc(c.why)) end
    out[#out + 1] = "</li>"
  end
  out[#out + 1] = "</ul>"
end

-- The charts of one result: every chart its experiment describes that has something to draw.
local function charts(name, result)
  local list = {}
  local ok, svgs = pcall(plot.charts, name, result)
  for _, svg in ipairs(ok and svgs or {}) do list[#list + 1] = (svg:gsub("^<%?xml[^>]*>%s*", "")) end
  return list
end

local function experiment_section(out, record)
  local name = record.experiment or "?"
  local result = record.result or {}
  out[#out + 1] = ('<section class="experiment" id="exp-%s" data-experiment="%s">'):format(esc(name), esc(name))
  out[#out + 1] = ("<h2>%s</h2><p class=\"summary\">%s</p>"):format(esc(name), esc(record.summary or ""))
  if result.error then
    out[#out + 1] = ('<p class="error">The experiment failed: %s</p></section>'):format(esc(result.error))
    return
  end
  local keys = {}
  for k in pairs(record.params or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  local e = require("vmlab.experiments").get(name)
  local units = e and e.units
  out[#out + 1] = '<table class="params"><tr><th>parameter</th><th>value</th></tr>'
  for _, k in ipairs(keys) do
    out[#out + 1] = ("<tr><td>%s</td><td>%s</td></tr>"):format(esc(k), esc(report.format(k, record.params[k], units)))
  end
  out[#out + 1] = "</table>"
  if result.skipped then out[#out + 1] = ('<p class="skipped">Skipped: %s</p>'):format(esc(result.skipped)) end
  out[#out + 1] = "<h3>What it shows</h3>"
  claims_list(out, result.claims)
  for _, svg in ipairs(charts(name, result)) do
    out[#out + 1] = ('<figure class="chart" data-experiment="%s">%s</figure>'):format(esc(name), svg)
  end
  -- the numbers, as the text report prints them (without its title and claims)
  local ok, text = pcall(report.text, record, e)
  if ok then
    local body = text:gsub("^.-\n\n", "", 1):gsub("\nWhat it shows.*$", "\n")
    out[#out + 1] = ('<details open><summary>The numbers</summary><pre class="numbers">%s</pre></details>')
      :format(esc(body))
  end
  out[#out + 1] = "</section>"
end

--- The page for a list of records (experiments.run's second value, or the
-- objects of `vmlab run --json`; a failed run is { experiment=, result = { error = } }).
-- @param opts { title = "...", probes = (default: vmlab.kernel.record()) }
-- @return the HTML text
function M.page(records, opts)
  check_records(records)
  if opts ~= nil and type(opts) ~= "table" then bad_arg("page", 2, "table or nil", opts) end
  opts = opts or {}
  if opts.probes ~= nil and type(opts.probes) ~= "table" then
    bad_field("page", "opts.probes", "a table or nil", opts.probes)
  end
  local title = opts.title or "vmlab lab report"
  local probes = opts.probes
  if not probes then
    for _, r in ipairs(records) do
      if r.system and r.system.probes then probes = r.system.probes; break end
    end
  end
  probes = probes or require("vmlab.kernel").record()
  local out = {
    "<!DOCTYPE html>",
    '<html lang="en"><head><meta charset="utf-8">',
    ("<title>%s</title>"):format(esc(title)),
    "<style>" .. CSS .. "</style></head><body>",
    ("<h1>%s</h1>"):format(esc(title)),
    ("<p>Made %s on %s (kernel %s). Every sentence under \"What it shows\" was decided from that run's own " ..
      "numbers.</p>")
      :format(esc(os.date("!%Y-%m-%d %H:%M UTC")), esc(probes.kernel and "this machine" or "a machine"),
        esc(probe_value(probes.kernel))),
  }
  -- the summary of all claims
  local held, failed, skipped, total = 0, {}, 0, 0
  for _, r in ipairs(records) do
    for _, c in ipairs(r.result and r.result.claims or {}) do
      total = total + 1
      if c.holds == true then held = held + 1
      elseif c.holds == false then failed[#failed + 1] = { r.experiment, c }
      else skipped = skipped + 1 end
    end
  end
  out[#out + 1] = '<section id="summary" class="summary"><h2>Summary</h2>'
  out[#out + 1] = ('<p data-claims="%d" data-held="%d" data-not-held="%d" data-skipped="%d">%d experiment%s, ' ..
    "%d claim%s: %d held, %d did not hold, %d skipped.</p>"):format(total, held, #failed, skipped, #records,
    #records == 1 and "" or "s", total, total == 1 and "" or "s", held, #failed, skipped)
  if #failed > 0 then
    out[#out + 1] = "<p>Did not hold:</p><ul>"
    for _, f in ipairs(failed) do
      out[#out + 1] = ('<li><a href="#exp-%s">%s</a>: %s (measured: %s; why: %s)</li>'):format(esc(f[1]), esc(f[1]),
        esc(f[2].text), esc(f[2].evidence or "?"), esc(f[2].why or "?"))
    end
    out[#out + 1] = "</ul>"
  end
  out[#out + 1] = "<p>Experiments: "
  for i, r in ipairs(records) do
    out[#out + 1] = ('%s<a href="#exp-%s">%s</a>'):format(i > 1 and ", " or "", esc(r.experiment), esc(r.experiment))
  end
  out[#out + 1] = "</p></section>"
  probes_section(out, probes)
  for _, r in ipairs(records) do experiment_section(out, r) end
  out[#out + 1] = "</body></html>"
  return table.concat(out, "\n") .. "\n"
end

--- Write the page to path.
-- @return true, or nil, msg
function M.write(path, text)
  if type(path) ~= "string" then bad_arg("write", 1, "string (a file name)", path) end
  if type(text) ~= "string" then bad_arg("write", 2, "string (the page)", text) end
  return plot.write(path, text)
end

return M
