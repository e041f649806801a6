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
    assert.equal(1024 * 1024, experiments.get("faults").params.size)
  end)

  it("refuses a parameter the experiment does not have, naming the ones it has", function()
    assert.has_error(function() experiments.run("faults", { sise = 1 }) end,
      "experiment 'faults' has no parameter 'sise' (it has: program, size)")
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
    local text = report.text(record, { name = "demo", summary = "a made-up experiment" })
    assert.matches("^demo %- a made%-up experiment\n", text)
    assert.matches("params: size=64%.0 MiB", text)
    assert.matches("system: 16384%-byte pages, THP madvise, overcommit 0", text)
    assert.matches("size%s+64%.0 MiB", text)
    assert.matches("pages%s+16,384", text)
    assert.matches("seconds%s+12%.50 ms", text)
    assert.matches("address%s+0x7ffd12345678", text)
    assert.matches("limit%s+unlimited", text)
    assert.matches("minor_faults%s+16,384%s+16,385", text) -- read and write side by side
    assert.matches("unmapped%s+SIGSEGV", text)
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

  it("formats numbers by the experiment's units table before guessing from names", function()
    assert.equal("0x2000", report.format("start", 8192))
    assert.equal("8.0 KiB", report.format("rss", 8192))
    assert.equal("8,192", report.format("pages", 8192))
    assert.equal("8.0 KiB", report.format("pages", 8192, { pages = "bytes" }))
    assert.equal("1.50 s", report.format("seconds", 1.5))
    assert.equal("yes", report.format("ok", true))
    assert.equal("n/a", report.format("x", nil))
  end)

  it("is one JSON object with experiment, params, system and result", function()
    local text = report.json(record)
    assert.is_nil(text:find("\n"))
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
