-- The vmlab command: list, run (report and --json), bad values, memtest, tour.
local cjson = require "cjson"
local PAGE = require("vmlab").page_size

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Run bin/vmlab with lua5.4 and this process's package.path/cpath (so the
-- specs test the module they were started with: plain or sanitized build).
-- arg[0] is blanked so bin/vmlab does not put the checkout's build/ first.
local function vmlab(args)
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s lua5.4 -e 'arg[0]=\"vmlab\"' %s %s 2>&1 < /dev/null"):format(
    q(package.path), q(package.cpath), q(here .. "/bin/vmlab"), args)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

describe("vmlab list", function()
  it("lists every experiment with its one-line summary", function()
    local out, code = vmlab("list")
    assert.equal(0, code)
    local mine = { "lazy", "read-write", "faults", "cow", "regions", "stack-guard", "segfault", "overcommit" }
    for _, name in ipairs(mine) do
      assert.matches("\n?" .. name:gsub("%-", "%%-") .. "%s+%S[^\n]+\n", out)
    end
  end)
end)

describe("vmlab run", function()
  it("prints a readable report with the numbers in human units", function()
    local out, code = vmlab("run faults --size 512KiB")
    assert.equal(0, code, out)
    assert.matches("^faults %- ", out)
    assert.matches("params: size=512KiB, program=/bin/true", out)
    assert.matches(("pages%%s+%d\n"):format(512 * 1024 // PAGE), out)
    assert.matches("\nWhat it shows", out) -- the claims, decided from the numbers
    assert.matches("\nIn numbers:\n", out)
  end)

  it("with --json prints one JSON record: schema, experiment, params, system, result", function()
    local out, code = vmlab("run faults --size 512KiB --json")
    assert.equal(0, code, out)
    assert.matches('^{"schema":1,"experiment":"faults","summary":"[^"]*",'
      .. '"params":{"size":524288,"program":"/bin/true"},'
      .. '"system":{"page_size":', out)
    local doc = cjson.decode(out)
    assert.equal(512 * 1024 // PAGE, doc.result.pages)
    assert.equal(PAGE, doc.system.page_size)
    assert.is_string(doc.system.thp)
    assert.is_string(doc.system.kernel)
    assert.matches('"pages":' .. 512 * 1024 // PAGE .. '[,}]', out) -- a count is written as an integer
  end)

  it("--help describes every parameter with its unit, default, meaning and range", function()
    for _, name in ipairs(require("vmlab.experiments").names()) do
      local out, code = vmlab("run " .. name .. " --help")
      assert.equal(0, code, out)
      local e = require("vmlab.experiments").get(name)
      for _, p in ipairs(e.params) do
        local opt = "%-%-" .. p.name:gsub("_", "%%-")
        assert.matches("\n%s+" .. opt .. " ", out, 1, name)
        assert.is_truthy(out:find(p.help:sub(1, 20), 1, true), name .. " " .. p.name)
      end
    end
    local out = vmlab("run cow --help")
    assert.matches("%-%-size SIZE%s+memory the parent writes", out)
    assert.matches("default 8MiB; from %d+KiB to 64GiB", out)
  end)

  it("a size needs its unit; every bad value is one line naming the option, exit 2, before any work", function()
    local cases = {
      { "lazy --size 0", "^vmlab run: %-%-size: 0 is below the minimum [^\n]+\n$" },
      { "lazy --size -5", "^vmlab run: %-%-size: '%-5' is negative[^\n]*\n$" },
      { "lazy --size 64", "^vmlab run: %-%-size: '64' needs a unit %(bytes: 64B; or 64KiB, 64MiB, 64GiB%)\n$" },
      { "lazy --size 12XB", "^vmlab run: %-%-size: '12XB': unknown unit 'XB'[^\n]*\n$" },
      { "tlb --stride 4096", "^vmlab run: %-%-stride: '4096' needs a unit[^\n]*\n$" },
      { "tlb --stride 4100B", "^vmlab run: %-%-stride: must be a multiple of 8[^\n]*\n$" },
      { "stack-guard --frame-size 8", "^vmlab run: %-%-frame%-size: '8' needs a unit[^\n]*\n$" },
      { "stack-guard --frame-size 8B", "^vmlab run: %-%-frame%-size: 8B is below the minimum 16B\n$" },
      { "lazy --mode sideways", "^vmlab run: %-%-mode: 'sideways' is not one of: write, read\n$" },
      { "ipc --sizes 64", "^vmlab run: %-%-sizes: '64' needs a unit[^\n]*\n$" },
      { "ipc --methods pipe,telepathy", "^vmlab run: %-%-methods: 'telepathy' is not one of: [^\n]+\n$" },
      { "ipc --budget soon", "^vmlab run: %-%-budget: 'soon' is not a time[^\n]*\n$" },
      { "race --increments 1.5", "^vmlab run: %-%-increments: '1%.5' is not a whole number\n$" },
      { "regions --faults maybe", "^vmlab run: %-%-faults: 'maybe' is not yes or no\n$" },
      { "mlock --small 2MiB", "^vmlab run: %-%-small: must be at most %-%-limit[^\n]*\n$" },
      { "lazy --colour blue", "^vmlab run lazy: unknown option '%-%-colour'[^\n]*\n$" },
    }
    for _, c in ipairs(cases) do
      local out, code = vmlab("run " .. c[1])
      assert.equal(2, code, c[1] .. ": " .. out)
      assert.matches(c[2], out, 1, c[1])
    end
  end)

  it("takes --size for memory everywhere: cow and shm-frames too", function()
    local out, code = vmlab("run cow --size 1MiB --json")
    assert.equal(0, code, out)
    assert.equal(1024 * 1024 // PAGE, cjson.decode(out).result.pages)
    out, code = vmlab("run shm-frames --size " .. 4 * PAGE .. "B --json")
    assert.equal(0, code, out)
    assert.equal(4, cjson.decode(out).result.pages)
  end)

  it("refuses an unknown experiment with exit status 2, suggesting the one meant", function()
    local out, code = vmlab("run lazzy")
    assert.equal(2, code)
    assert.matches("^vmlab run: unknown experiment 'lazzy'; did you mean 'lazy'%?[^\n]*\n$", out)
  end)

  it("refuses to write more than MemAvailable unless --force", function()
    local out, code = vmlab("run lazy --size 900GiB")
    assert.equal(2, code)
    assert.matches("MemAvailable", out)
    assert.matches("%-%-force", out)
    -- asking for 500 GiB is not writing it: overcommit runs at its default size
    out, code = vmlab("run overcommit --json")
    assert.equal(0, code, out)
    assert.equal(500 * 1024 ^ 3, cjson.decode(out).params.size)
    -- reading private memory writes nothing (where the kernel maps the zero page), so the check lets it
    -- through (not run here: on a kernel without the zero page every page read gets a frame)
    local run, experiments = require "vmlab.cli.run", require "vmlab.experiments"
    local e = experiments.get("lazy")
    assert.equal(0, run.writes(e, experiments.params("lazy", { size = 900 << 30, mode = "read", alloc = "mmap" })))
    assert.equal(900 << 30, run.writes(e, experiments.params("lazy", { size = 900 << 30 })))
  end)
end)

describe("vmlab memtest", function()
  it("not on a terminal, runs through without waiting and prints VIRT, RES and faults at each stop", function()
    local out, code = vmlab("memtest w 200")
    assert.equal(0, code, out)
    assert.not_matches("Enter", out) -- no prompt: stdin is not a terminal
    assert.matches("after malloc%(200%.0 MiB%)%s+VIRT%s+[%d.]+ [KMGT]iB%s+RES", out)
    local stops = {}
    for what, faults in out:gmatch("wrote ([%d.]+ MiB)[^\n]*faults ([%d,]+)") do
      stops[#stops + 1] = { what, tonumber((faults:gsub(",", ""))) }
    end
    assert.equal(2, #stops)
    assert.equal("128.0 MiB", stops[1][1])
    assert.equal("200.0 MiB", stops[2][1])
    local pages = 200 * 1024 * 1024 // PAGE
    assert.is_true(stops[2][2] >= 0.98 * pages and stops[2][2] <= 1.1 * pages, "faults " .. stops[2][2])
    -- its closing words are claims decided from its own numbers
    assert.matches("\n  held%s+RES grows by what was written", out)
    assert.matches("measured: wrote 200%.0 MiB: RES %+", out)
  end)

  it("reading says what RES did: still where the kernel maps the zero page, grown where it does not", function()
    local out, code = vmlab("memtest r 128 --pause 0")
    assert.equal(0, code, out)
    local before = out:match("after malloc[^\n]*RES%s+([%d.]+) MiB")
    local after = out:match("read 128%.0 MiB[^\n]*RES%s+([%d.]+) MiB")
    assert.is_not_nil(before, out)
    assert.is_not_nil(after, out)
    local grew = tonumber(after) - tonumber(before)
    assert.not_matches("reads mapped the zero page", out) -- no fixed story
    if require("vmlab.kernel").has("zero_page") then
      assert.is_true(grew < 12.8, out)
      assert.matches("\n  held%s+RES grows by what was written", out)
    else
      -- the reads got frames of their own: the words must say so, with the reason
      assert.is_true(grew > 0.9 * 128, out)
      assert.matches("DID NOT HOLD%s+RES grows by what was written", out)
      assert.matches("why: this kernel does not map the zero page", out)
    end
  end)

  it("refuses a bad mode, size or pause with exit status 2", function()
    assert.equal(2, select(2, vmlab("memtest x 10")))
    assert.equal(2, select(2, vmlab("memtest w lots")))
    assert.equal(2, select(2, vmlab("memtest w 10 --pause never")))
    assert.equal(2, select(2, vmlab("memtest w")))
  end)
end)

describe("vmlab tour", function()
  it("runs the named experiments, each with its report, and sums up", function()
    local out, code = vmlab("tour faults regions")
    assert.equal(0, code, out)
    assert.matches("^faults %- ", out)
    assert.matches("\nregions %- ", out)
    assert.matches("tour: 2 experiments ran %(0 skipped%), 0 failed, in [%d.]+ s", out)
  end)
end)

describe("one command-line style", function()
  it("vmlab --version prints the facade's version", function()
    local out, code = vmlab("--version")
    assert.equal(0, code)
    assert.equal(require("vmlab")._VERSION .. "\n", out)
  end)

  it("vmlab help CMD prints that command's help, vmlab CMD --help the same", function()
    for _, cmd in ipairs { "list", "tour", "report", "info", "memtest", "sum", "watch", "maps" } do
      local out, code = vmlab("help " .. cmd)
      assert.equal(0, code, out)
      assert.matches("^Usage: vmlab " .. cmd .. " ", out)
      assert.equal(out, (vmlab(cmd .. " --help")))
    end
    local out, code = vmlab("help")
    assert.equal(0, code)
    assert.matches("\nCommands:\n", out)
  end)

  it("suggests the command or experiment meant by a misspelled name, exit status 2", function()
    local out, code = vmlab("lsit")
    assert.equal(2, code)
    assert.equal("vmlab: unknown command 'lsit'; did you mean 'list'? (see vmlab --help)\n", out)
    out, code = vmlab("help memtets")
    assert.equal(2, code)
    assert.matches("did you mean 'memtest'%?", out)
    out, code = vmlab("tour lazzy")
    assert.equal(2, code)
    assert.matches("^vmlab tour: unknown experiment 'lazzy'; did you mean 'lazy'%?[^\n]*\n$", out)
  end)

  it("bad usage of any command: one line naming the problem and exit status 2", function()
    for _, args in ipairs { "--bogus", "list extra", "tour --bogus", "info --jsn", "report --bogus",
      "memtest x 10", "memtest w", "memtest w lots", "memtest w 10 --pause never", "sum --bogus",
      "sum --slots 0", "watch abc", "watch 1 --count 0", "maps", "maps abc", "maps 1 2" } do
      local out, code = vmlab(args)
      assert.equal(2, code, args .. ": " .. out)
      assert.matches("^vmlab[^\n]*\n$", out, args)
    end
    assert.matches("did you mean '%-%-json'", (vmlab("info --jsn")))
  end)
end)
