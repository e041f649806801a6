-- The experiments registry and the reports: how every experiment is found,
-- run with its parameters, and shown as text or JSON.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local report = require "vmlab.report"
local cjson = require "cjson"

local MINE = { "lazy", "read-write", "faults", "cow", "regions", "stack-guard", "segfault", "overcommit" }

local function read_line(path)
  local f = assert(io.open(path))
  local s = f:read("l")
  f:close()
  return s
end

describe("the experiments registry", function()
  it("finds every experiment file in its directory, in the lab's order", function()
    local names = experiments.names()
    local pos = {}
    for i, n in ipairs(names) do pos[n] = i end
    for i, n in ipairs(MINE) do
      assert.is_not_nil(pos[n], n .. " is not listed")
      if i > 1 then assert.is_true(pos[MINE[i - 1]] < pos[n], "lab order: " .. MINE[i - 1] .. " before " .. n) end
    end
    assert.is_nil(pos.init)
  end)

  it("gives each experiment as name, summary, default params and a run function", function()
    for _, n in ipairs(experiments.names()) do
      local e = assert(experiments.get(n))
      assert.equal(n, e.name)
      assert.equal("string", type(e.summary))
      assert.equal("table", type(e.params))
      assert.equal("function", type(e.run))
    end
  end)

  it("says there is no such experiment for an unknown or malformed name", function()
    local e, err = experiments.get("no-such-thing")
    assert.is_nil(e)
    assert.matches("no experiment named 'no%-such%-thing'", err)
    assert.is_nil((experiments.get("../init")))
    assert.is_nil((experiments.get("init")))
  end)

  it("runs an experiment with the given params laid over its defaults", function()
    local result, record = experiments.run("faults", { size = 16 * vm.page_size })
    assert.equal(16, result.pages)
    assert.equal("faults", record.experiment)
    assert.equal(16 * vm.page_size, record.params.size)
    assert.equal("/bin/true", record.params.program) -- the default stays
    assert.equal(result, record.result)
    assert.is_true(record.seconds >= 0)
    -- the defaults themselves are untouched
    assert.equal(1024 * 1024, experiments.defaults("faults").size)
  end)

  it("refuses a parameter the experiment does not have, naming the ones it has", function()
    assert.has_error(function() experiments.run("faults", { sise = 1 }) end,
      "experiment 'faults' has no parameter 'sise' (it has: size, program)")
  end)

  it("describes the system: page size, THP mode, overcommit policy and kernel", function()
    local s = experiments.system_info()
    assert.equal(vm.page_size, s.page_size)
    assert.equal(read_line("/proc/sys/kernel/osrelease"), s.kernel)
    assert.equal(tonumber(read_line("/proc/sys/vm/overcommit_memory")), s.overcommit)
    assert.equal("integer", math.type(s.overcommit))
    local thp = io.open("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp then
      local line = thp:read("l")
      thp:close()
      assert.equal(line:match("%[(%w+)%]"), s.thp)
    end
  end)

  it("lists a directory sorted, without . and .. (vm.listdir)", function()
    local list = assert(vm.listdir(experiments.dir()))
    local has = {}
    for i, f in ipairs(list) do
      has[f] = true
      if i > 1 then assert.is_true(list[i - 1] < f) end
    end
    assert.is_true(has["init.lua"] and has["lazy.lua"])
    assert.is_nil(has["."] or has[".."])
    local none, err, errno = vm.listdir("/no/such/dir")
    assert.is_nil(none)
    assert.matches("No such file", err)
    assert.equal("integer", math.type(errno))
  end)
end)

describe("a report", function()
  -- a made-up experiment's description: every unit comes from it
  local demo = { name = "demo", summary = "a made-up experiment",
    params = { { name = "size", default = 64 * 1024 * 1024, unit = "bytes", min = 1, max = 1 << 40, help = "h" } },
    fields = {
      { name = "size", unit = "bytes", help = "h" }, { name = "pages", unit = "count", help = "h" },
      { name = "seconds", unit = "seconds", help = "h" }, { name = "ns_per_page", unit = "ns", help = "h" },
      { name = "address", unit = "address", help = "h" }, { name = "limit", unit = "bytes", help = "h" },
      { name = "read", unit = "object", help = "h",
        fields = { { name = "minor_faults", unit = "count", help = "h" } } },
      { name = "write", unit = "object", help = "h",
        fields = { { name = "minor_faults", unit = "count", help = "h" } } },
      { name = "cases", unit = "table", help = "h", fields = {
        { name = "case", unit = "text", help = "h" }, { name = "signal", unit = "text", help = "h" } } },
      { name = "empty", unit = "list", of = "count", help = "h" },
    } }
  local record = {
    experiment = "demo", summary = "a made-up experiment",
    params = { size = 64 * 1024 * 1024 },
    system = { page_size = 16384, thp = "madvise", overcommit = 0, kernel = "6.1.0" }, -- a machine, not this one
    result = {
      size = 64 * 1024 * 1024, pages = 16384, seconds = 0.0125, ns_per_page = 762.9,
      address = 0x7ffd12345678, read = { minor_faults = 16384 }, write = { minor_faults = 16385 },
      cases = { { case = "unmapped", signal = "SIGSEGV" } }, empty = {}, limit = math.huge,
    },
  }

  it("reads as a title, the params, a table of numbers in human units", function()
    local text = report.text(record, demo)
    assert.matches("^demo %- a made%-up experiment\n", text)
    assert.matches("params: size=64MiB", text)
    assert.matches("system: 16384%-byte pages, THP madvise, overcommit 0", text)
    assert.matches("size%s+64%.0 MiB", text)
    assert.matches("pages%s+16,384", text)
    assert.matches("seconds%s+12%.5 ms", text)
    assert.matches("address%s+0x7ffd12345678", text)
    assert.matches("limit%s+unlimited", text)
    assert.matches("minor_faults%s+16,384%s+16,385", text) -- read and write side by side
    assert.matches("unmapped%s+SIGSEGV", text)
    assert.matches("ns_per_page%s+763 ns", text)
  end)

  it("ends with the measurements in words, from the experiment's explain", function()
    local e = { name = "demo", summary = "s", explain = function(r) return { ("%d pages"):format(r.pages) } end }
    assert.matches("\nIn numbers:\n  16384 pages\n$", report.text(record, e))
  end)

  it("says each claim's verdict with its evidence, why one did not hold, and explains one that held", function()
    local e = { name = "demo", summary = "s",
      claims = {
        { id = "faults", text = "a first read faults once per page",
          decide = function(r) return r.read.minor_faults == r.pages, ("%d faults"):format(r.read.minor_faults) end,
          explain = function() return "each page was mapped on its first touch" end },
        { id = "cheap", text = "a first read costs no memory",
          decide = function(r) return r.rss_growth == 0, ("RSS +%d"):format(r.rss_growth),
            "this made-up kernel gives a read a frame" end,
          explain = function() return "NOT SAID: the claim did not hold" end },
        { id = "unknowable", text = "something nothing measures", decide = function() return nil end },
      },
      explain = function(r) return { ("%d pages"):format(r.pages) } end }
    local result = {}
    for k, v in pairs(record.result) do result[k] = v end
    result.rss_growth = 64 << 20
    result.claims = experiments.decide(e, result)
    local text = report.text({ experiment = "demo", params = record.params, result = result }, e)
    assert.matches("\nWhat it shows %(each claim decided from this run's numbers%):\n", text)
    assert.matches("\n  held +a first read faults once per page\n +measured: 16384 faults\n"
      .. " +each page was mapped on its first touch\n", text)
    assert.matches("\n  DID NOT HOLD +a first read costs no memory\n +measured: RSS %+67108864\n"
      .. " +why: this made%-up kernel gives a read a frame\n", text)
    assert.matches("\n  skipped +something nothing measures\n +why: no evidence available on this machine decides it\n",
      text)
    assert.not_matches("NOT SAID", text, 1, true)
    -- the claims come before the measurements in words
    assert.is_true(text:find("What it shows", 1, true) < text:find("In numbers:", 1, true))
    -- and the verdicts travel in the JSON
    local doc = cjson.decode(report.json({ experiment = "demo", params = {}, result = result }))
    assert.equal(3, #doc.result.claims)
    assert.equal(false, doc.result.claims[2].holds)
    assert.equal("skipped", doc.result.claims[3].holds)
  end)

  it("shows a skipped experiment's reason", function()
    local text = report.text({ experiment = "x", params = {}, result = { skipped = "THP is off" } }, { summary = "" })
    assert.matches("SKIPPED: THP is off", text)
  end)

  it("formats numbers by the unit their description gives, never by their name", function()
    assert.equal("0x2000", report.format("start", 8192, { start = "address" }))
    assert.equal("8.0 KiB", report.format("rss", 8192, { rss = "bytes" }))
    assert.equal("8,192", report.format("rss", 8192)) -- no unit given: a plain number
    assert.equal("8,192", report.format("pages", 8192, { pages = "count" }))
    assert.equal("1.50 s", report.format("t", 1.5, { t = "seconds" }))
    assert.equal("8.00 ms", report.format("round_trip_ns", 7999343, { round_trip_ns = "ns" }))
    assert.equal("1.5 GiB/s", report.format("bw", 1.5 * 2 ^ 30, { bw = "bytes_per_second" }))
    assert.equal("yes", report.format("ok", true))
    assert.equal("n/a", report.format("x", nil))
  end)

  it("says \"1 line\", \"2 lines\"", function()
    local describe_ = require "vmlab.describe"
    assert.equal("1 line", describe_.plural(1, "line"))
    assert.equal("2 lines", describe_.plural(2, "line"))
    assert.equal("1,000 error lines", describe_.plural(1000, "error line"))
  end)

  it("is one JSON object with experiment, params, system and result", function()
    local text = report.json(record)
    assert.is_nil(text:find("\n"))
    assert.matches('^{"experiment":"demo","summary":"a made%-up experiment",'
      .. '"params":{"size":67108864},"system":{"page_size"',
      text)
    local doc = cjson.decode(text)
    assert.equal("demo", doc.experiment)
    assert.equal(64 * 1024 * 1024, doc.params.size)
    assert.equal(16384, doc.system.page_size)
    assert.equal(16384, doc.result.pages)
    assert.equal(0.0125, doc.result.seconds)
  end)

  it("writes integers as integers, exactly, even addresses past 10^14", function()
    local text = report.json(record)
    assert.matches('"pages":16384[,}]', text)
    assert.matches('"address":' .. math.tointeger(0x7ffd12345678) .. '[,}]', text) -- all 15 digits
    assert.equal(0x7ffd12345678, report.decode(text).result.address)
    assert.equal("integer", math.type(report.decode(text).result.address))
  end)

  it("writes an empty list as [], empty params as {}, and infinity as \"unlimited\"", function()
    local text = report.json(record)
    assert.matches('"empty":%[%]', text)
    assert.matches('"limit":"unlimited"', text)
    assert.matches('"params":{}', report.json({ experiment = "x", params = {}, result = {} }))
    assert.matches('"o":{}', report.json({ experiment = "x", result = { o = setmetatable({}, report.object_mt) } }))
  end)

  it("writes arrays with holes with nulls, mixed tables as objects, NaN as null, paths unescaped", function()
    local doc = report.json({ experiment = "x", result = {
      holes = { 1, nil, 3 }, mixed = { 1, x = 2 }, nan = 0 / 0, path = "/bin/true", sparse = { [1000] = 1 } } })
    assert.matches('"holes":%[1,null,3%]', doc)
    assert.matches('"nan":null', doc)
    assert.matches('"path":"/bin/true"', doc)
    local d = cjson.decode(doc)
    assert.equal(2, d.result.mixed.x)
    assert.equal(1, d.result.mixed["1"])
    assert.equal(1, d.result.sparse["1000"])
  end)

  it("encodes any one value the same way (vmlab watch --json uses it)", function()
    local text = report.encode({ a = 0x7ffd12345678, e = {}, p = "/x", t = 0.25 }, true)
    assert.matches('"a":140724908873336[,}]', text)
    assert.matches('"e":%[%]', text)
    assert.matches('"p":"/x"', text)
    assert.same({ a = 0x7ffd12345678, e = {}, p = "/x", t = 0.25 }, report.decode(text))
    assert.equal("{}", report.encode({}, true))
    assert.equal("[]", report.encode({}))
  end)
end)

describe("one description per experiment", function()
  local describe_ = require "vmlab.describe"

  it("describes every parameter with its default, unit, meaning and range or choices", function()
    for _, n in ipairs(experiments.names()) do
      local e = assert(experiments.get(n))
      for _, p in ipairs(e.params) do
        local where = n .. " " .. p.name
        assert.is_string(p.help, where)
        assert.is_truthy(describe_.is_param_unit[p.unit], where)
        assert.is_nil(describe_.check(p, p.default), where)
        if p.unit == "choice" then assert.is_true(#p.choices > 0, where) end
        if p.unit == "bytes" or p.unit == "count" or p.unit == "seconds" or p.unit == "pages" then
          assert.is_number(p.min, where)
          assert.is_number(p.max, where)
        end
      end
      assert.same(experiments.defaults(e), experiments.params(n))
    end
  end)

  it("names every result field by one rule: snake_case, a unit other than bytes, seconds or counts last", function()
    local suffix = { ns = "ns", percent = "percent", bytes_per_second = "bytes_per_second" }
    local function walk(n, fields, path)
      for _, f in ipairs(fields or {}) do
        local where = n .. ": " .. path .. f.name
        assert.matches("^[%l%d_]+$", f.name, 1, where)
        assert.is_string(f.help, where)
        local want = suffix[f.unit]
        if want then
          assert.is_true(f.name:sub(-#want) == want or f.name:match("^" .. want .. "_per_") ~= nil, where)
        end
        -- a unit word, where there is one, comes last: touch_seconds, never seconds_touch
        assert.is_false(f.name:match("^seconds_") ~= nil or (f.name:match("^ns_") ~= nil
          and f.name:match("^ns_per_") == nil), where)
        assert.is_nil(f.name:match("_pct$"), where)
        walk(n, f.fields, path .. f.name .. ".")
        if type(f.of) == "table" then walk(n, f.of.fields, path .. f.name .. ".*.") end
      end
    end
    for _, n in ipairs(experiments.names()) do walk(n, experiments.get(n).fields, "") end
  end)

  it("refuses a description without a unit, a help line or a range, naming the param", function()
    local function bad(params, fields)
      return function()
        experiments.check({ name = "x", summary = "s", run = function() end, params = params,
          fields = fields or { { name = "a", unit = "count", help = "h" } } }, "x")
      end
    end
    assert.error_matches(bad({ { name = "size", default = 1, help = "h" } }), "param 'size': unit 'nil'")
    assert.error_matches(bad({ { name = "size", default = 1, unit = "bytes", min = 1, max = 2 } }),
      "param 'size' needs a one%-line help")
    assert.error_matches(bad({ { name = "size", default = 1, unit = "bytes", help = "h" } }),
      "param 'size' needs min and max")
    assert.error_matches(bad({ { name = "size", default = 0, unit = "bytes", help = "h", min = 1, max = 2 } }),
      "param 'size': its default is invalid")
    assert.error_matches(bad({ size = 1 }), "params must be a list")
    -- and one that states no claims: every experiment says what it shows, decided from its numbers
    assert.error_matches(bad({}), "it states no claims")
    assert.error_matches(bad({}, { { name = "a", unit = "furlongs", help = "h" } }), "field 'a': unit 'furlongs'")
    assert.error_matches(bad({}, { { name = "a", unit = "table", help = "h" } }), "field 'a' %(table%) needs fields")
  end)

  it("reads a command-line word in the param's unit: a size needs its unit", function()
    local size = { name = "frame_size", unit = "bytes", min = 16, max = 1 << 20 }
    assert.equal(4096, describe_.parse(size, "4096B"))
    assert.equal(512 * 1024, describe_.parse(size, "512KiB"))
    assert.equal(0, describe_.parse(size, "0"))
    local v, err = describe_.parse(size, "8")
    assert.is_nil(v)
    assert.equal("--frame-size: '8' needs a unit (bytes: 8B; or 8KiB, 8MiB, 8GiB)", err)
    assert.matches("^%-%-frame%-size: '%-5' is negative", select(2, describe_.parse(size, "-5")))
    assert.matches("^%-%-frame%-size: 8B is below the minimum 16B", describe_.check(size, 8))
    local secs = { name = "budget", unit = "seconds" }
    assert.equal(0.5, describe_.parse(secs, "500ms"))
    assert.equal(2, describe_.parse(secs, "2"))
    local list = { name = "sizes", unit = "bytes", list = true, min = 1, max = 1 << 20 }
    assert.same({ 64, 4096 }, describe_.parse(list, "64B,4KiB"))
    assert.equal("64B,4KiB", describe_.word(list, { 64, 4096 }))
    local choice = { name = "mode", unit = "choice", choices = { "read", "write" } }
    assert.equal("--mode: 'rw' is not one of: read, write", select(2, describe_.parse(choice, "rw")))
  end)

  it("experiments.run checks every value before running, naming the parameter", function()
    assert.error_matches(function() experiments.run("lazy", { size = 0 }) end,
      "experiment 'lazy': parameter 'size': 0 is below the minimum")
    assert.error_matches(function() experiments.run("lazy", { mode = "rw" }) end,
      "experiment 'lazy': parameter 'mode': must be one of write, read, got rw")
    assert.error_matches(function() experiments.run("tlb", { stride = 4100 }) end,
      "experiment 'tlb': %-%-stride: must be a multiple of 8")
    -- a size with its unit is welcome from Lua too
    assert.equal(16 * vm.page_size, (experiments.run("faults", { size = (16 * vm.page_size) .. "B" })).size)
  end)

  it("finds a field's description by its path", function()
    assert.equal("count", experiments.field("read-write", "read.minor_faults").unit)
    assert.equal("ns", experiments.field("ipc", "methods.round_trip_ns").unit)
    assert.equal("bytes", experiments.field("cow", "smaps.child_after_fork.shared").unit)
    assert.is_nil(experiments.field("lazy", "no_such_field"))
  end)
end)
