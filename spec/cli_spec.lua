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
    assert.matches("params: program=/bin/true, size=512%.0 KiB", out)
    assert.matches(("pages%%s+%d\n"):format(512 * 1024 // PAGE), out)
    assert.matches("\nWhat it shows", out) -- the claims, decided from the numbers
    assert.matches("\nIn numbers:\n", out)
  end)

  it("with --json prints one JSON object: experiment, params, system, result", function()
    local out, code = vmlab("run faults --size 512KiB --json")
    assert.equal(0, code, out)
    assert.matches("^{.*}\n$", out)
    local doc = cjson.decode(out)
    assert.equal("faults", doc.experiment)
    assert.equal(512 * 1024, doc.params.size)
    assert.equal(512 * 1024 // PAGE, doc.result.pages)
    assert.equal(PAGE, doc.system.page_size)
    assert.is_string(doc.system.thp)
    assert.is_string(doc.system.kernel)
    assert.matches('"pages":' .. 512 * 1024 // PAGE .. '[,}]', out) -- a count is written as an integer
  end)

  it("reads a bare number as MiB", function()
    local out, code = vmlab("run lazy --size 8 --alloc mmap --json")
    assert.equal(0, code, out)
    assert.equal(8 * 1024 * 1024, cjson.decode(out).result.size)
  end)

  it("refuses a bad size with a clear message and exit status 2", function()
    local out, code = vmlab("run lazy --size 12XB")
    assert.equal(2, code)
    assert.matches("bad size '12XB'", out)
    assert.equal(2, select(2, vmlab("run lazy --size -5")))
  end)

  it("refuses a value not among the experiment's choices, and unknown options", function()
    local out, code = vmlab("run lazy --mode sideways")
    assert.equal(2, code)
    assert.matches("bad value 'sideways' for %-%-mode %(one of: write, read%)", out)
    out, code = vmlab("run lazy --colour blue")
    assert.equal(2, code)
    assert.matches("unknown option '%-%-colour'", out)
  end)

  it("refuses an unknown experiment with exit status 2 and lists the real ones", function()
    local out, code = vmlab("run no-such-experiment")
    assert.equal(2, code)
    assert.matches("no experiment named 'no%-such%-experiment'", out)
    assert.matches("\n  lazy\n", out)
  end)

  it("refuses to write more than MemAvailable unless --force", function()
    local out, code = vmlab("run lazy --size 64TiB")
    assert.equal(2, code)
    assert.matches("MemAvailable", out)
    assert.matches("%-%-force", out)
    -- asking for 500 GiB is not writing it: overcommit runs at its default size
    out, code = vmlab("run overcommit --json")
    assert.equal(0, code, out)
    assert.equal(500 * 1024 ^ 3, cjson.decode(out).params.size)
    -- reading needs no memory, so it is allowed (and mmap of 64 TiB may then fail by itself)
    out, code = vmlab("run lazy --size 64TiB --mode read --alloc mmap --json")
    assert.is_true(code == 0 or code == 1, out)
    assert.not_matches("MemAvailable", out)
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
