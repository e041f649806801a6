-- vmlab report: the lab report as one web page, loaded in a real browser
-- (headless Chromium): every experiment's section, chart and claim is there,
-- and the page reported no console error.
local vm = require "vmlab"
local vassert = require "vmlab.assert"

local function chromium()
  for _, c in ipairs { "chromium", "chromium-browser", "google-chrome" } do
    if os.execute("command -v " .. c .. " >/dev/null 2>&1") then return c end
  end
  return nil
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function count(s, pattern)
  local n = 0
  for _ in s:gmatch(pattern) do n = n + 1 end
  return n
end

describe("vmlab report", function()
  local dir, page, records
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    -- two saved records (as `vmlab run --json` writes them) and one experiment run by the command itself
    local report = require "vmlab.report"
    local f = assert(io.open(dir .. "/saved.jsonl", "w"))
    records = {}
    for _, spec in ipairs { { "read-write", { size = 4 << 20 } }, { "faults", nil } } do
      local _, rec = vm.experiments.run(spec[1], spec[2], { tour = true })
      records[#records + 1] = rec
      f:write(report.json(rec), "\n")
    end
    f:close()
    local p = assert(io.popen(("lua5.4 bin/vmlab report --from %s/saved.jsonl --out %s/report.html 2>&1"):format(dir,
      dir)))
    local out = p:read("a")
    assert(p:close(), out)
    page = read(dir .. "/report.html")
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("writes one self-contained page: no script, nothing fetched from anywhere", function()
    assert.matches("^<!DOCTYPE html>", page)
    assert.is_nil(page:find("<script", 1, true))
    assert.is_nil(page:find('src="http', 1, true))
    assert.is_nil(page:find('href="http', 1, true))
    assert.is_nil(page:find("<link", 1, true))
  end)

  it("has the machine's probes, and a section, the claims and a chart for every experiment", function()
    assert.matches('<section id="system">', page)
    assert.matches('data%-probe="zero_page"', page)
    for _, rec in ipairs(records) do
      local name = rec.experiment
      assert.matches(('data%%-experiment="%s"'):format(name:gsub("%-", "%%-")), page)
      for _, c in ipairs(rec.result.claims) do
        assert.matches(('data%%-claim="%s"'):format(c.id:gsub("%-", "%%-")), page)
      end
    end
    assert.is_true(count(page, '<figure class="chart"') >= #records)
  end)

  it("renders in headless Chromium with every section, chart and claim, and no console error", function()
    local browser = chromium()
    if not browser then return vassert.pending("Chromium is not installed (make test installs it through .ci/deps)") end
    local flags = "--headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 --window-size=1200,3000"
    -- the browser is not ours to sanitize: under make asan the suite's LD_PRELOAD would load ASan into it
    browser = "env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS " .. browser
    local url = "file://" .. dir .. "/report.html"
    local cmd = ("cd %s && HOME=%s timeout 120 %s %s --dump-dom %s 2>%s/console.log"):format(dir, dir, browser, flags,
      url, dir)
    local p = assert(io.popen(cmd))
    local dom = p:read("a")
    p:close()
    assert.matches("</html>", dom)
    -- the DOM the browser built: the summary counts and every experiment, claim and chart
    local total = 0
    for _, rec in ipairs(records) do total = total + #rec.result.claims end
    assert.equal(total, count(dom, '<li class="claim"'))
    assert.equal(#records, count(dom, '<section class="experiment"'))
    assert.is_true(count(dom, "<svg") >= #records)
    assert.matches(('data%%-claims="%d"'):format(total), dom)
    local console = read(dir .. "/console.log")
    assert.is_nil(console:match("CONSOLE[^\n]*[Ee]rror"), console)
    assert.is_nil(console:match("Uncaught"), console)
    -- and a picture of it
    assert(os.execute(("cd %s && HOME=%s timeout 120 %s %s --screenshot=%s/report.png %s >/dev/null 2>&1"):format(
      dir, dir, browser, flags, dir, url)))
    local png = read(dir .. "/report.png")
    assert.equal("\137PNG", png:sub(1, 4))
    assert.is_true(#png > 20000, "the screenshot is nearly empty: " .. #png .. " bytes")
  end)

  it("runs the named experiments itself, and refuses an unknown one with exit status 2", function()
    local ok = os.execute(("lua5.4 bin/vmlab report --out %s/r2.html page-table >/dev/null 2>&1"):format(dir))
    assert.is_true(ok)
    assert.matches('data%-experiment="page%-table"', read(dir .. "/r2.html"))
    local _, _, code = os.execute(("lua5.4 bin/vmlab report --out %s/r3.html no-such >/dev/null 2>&1"):format(dir))
    assert.equal(2, code)
  end)
end)
