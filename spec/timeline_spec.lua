-- Timelines in the experiments' JSON and in memtest, their text summary, and
-- `vmlab run regions --faults` (faults per region, sampled with perf).
local report = require "vmlab.report"

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil
local MiB = 1024 * 1024

-- Run bin/vmlab with this process's package.path/cpath (the build the specs
-- run with); stdout only (stderr is dropped unless stderr = true).
local function vmlab(args, stderr)
  local cmd = ("LUA_PATH=%s LUA_CPATH=%s lua5.4 -e 'arg[0]=\"vmlab\"' %s %s %s < /dev/null"):format(
    q(package.path), q(package.cpath), q(here .. "/bin/vmlab"), args, stderr and "2>&1" or "2>/dev/null")
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

local function json(args)
  local out, code = vmlab(args)
  assert.equal(0, code, out)
  assert.matches("^{.*}\n$", out)
  return report.decode(out), out
end

-- Samples in order of bytes touched, from 0 to `size`, one every MiB (give or
-- take the stops), with integer fields and faults that never go down.
local function check_timeline(tl, size, what)
  assert.is_table(tl, what .. ": no timeline")
  assert.is_true(#tl >= size // MiB + 1, ("%s: %d samples for %d MiB"):format(what, #tl, size // MiB))
  assert.is_true(#tl <= size // MiB + 2 + size // (128 * MiB), ("%s: %d samples"):format(what, #tl))
  assert.equal(0, tl[1].bytes)
  assert.equal(size, tl[#tl].bytes)
  for i, s in ipairs(tl) do
    for _, k in ipairs { "bytes", "rss", "virt", "minor_faults", "major_faults" } do
      assert.equal("integer", math.type(s[k]), ("%s: sample %d: %s = %s"):format(what, i, k, tostring(s[k])))
    end
    assert.is_number(s.t)
    if i > 1 then
      local p = tl[i - 1]
      assert.is_true(s.bytes > p.bytes, ("%s: bytes go back at sample %d"):format(what, i))
      assert.is_true(s.t >= p.t, ("%s: time goes back at sample %d"):format(what, i))
      assert.is_true(s.minor_faults >= p.minor_faults, ("%s: faults go back at sample %d"):format(what, i))
    end
  end
end

-- No timeline field in the raw JSON is written as a float.
local function integers_in_json(text)
  for k, v in text:gmatch('"(%a[%w_]*)":(%-?[%d.eE+%-]+)') do
    if k == "bytes" or k == "rss" or k == "virt" or k:find("faults$") then
      assert.matches("^%-?%d+$", v, ("%s written as %s"):format(k, v))
    end
  end
end

describe("vmlab memtest --json", function()
  it("prints one JSON object whose timeline has a sample at every 128 MiB stop", function()
    local doc, text = json("memtest w 384 --json")
    local per_mib = MiB // require("vmlab").page_size
    integers_in_json(text)
    assert.equal("memtest", doc.experiment)
    local r = doc.result
    assert.equal(384 * MiB, r.size)
    check_timeline(r.timeline, 384 * MiB, "memtest")
    local at = {}
    for _, s in ipairs(r.timeline) do at[s.bytes] = s end
    for _, stop in ipairs { 128, 256, 384 } do
      local s = at[stop * MiB]
      assert.is_table(s, ("no sample at the %d MiB stop"):format(stop))
      -- writing: one fault per page so far (a few more for the process itself; one
      -- less where malloc's own header already made the block's first page resident)
      assert.is_true(s.minor_faults >= stop * per_mib - 2 and s.minor_faults <= stop * per_mib + 512,
        ("%d faults at %d MiB"):format(s.minor_faults, stop))
    end
    -- the stops the person sees, with the same numbers
    local stops = {}
    for _, s in ipairs(r.stops) do if s.bytes then stops[#stops + 1] = s end end
    assert.equal(3, #stops)
    assert.equal(128 * MiB, stops[1].bytes)
    assert.equal(at[128 * MiB].minor_faults + at[128 * MiB].major_faults, stops[1].faults)
    if not sanitized then
      local grew = r.timeline[#r.timeline].rss - r.timeline[1].rss
      assert.is_true(grew >= 380 * MiB and grew <= 400 * MiB, "RSS grew by " .. grew)
    end
  end)

  it("reading: RSS stays flat where the kernel maps the zero page, and the JSON's claims say which", function()
    local doc = json("memtest r 256 --json")
    check_timeline(doc.result.timeline, 256 * MiB, "memtest r")
    local tl = doc.result.timeline
    local pages = 256 * MiB // require("vmlab").page_size
    assert.is_true(tl[#tl].minor_faults >= pages - 2, "faults: " .. tl[#tl].minor_faults)
    local grew = tl[#tl].rss - tl[1].rss
    local c
    for _, x in ipairs(doc.result.claims) do if x.id == "rss_follows_writes" then c = x end end
    assert.is_table(c, "no rss_follows_writes claim in memtest's JSON")
    if require("vmlab.kernel").has("zero_page") then
      assert.is_true(grew < 16 * MiB, "RSS grew by " .. grew)
      assert.equal(true, c.holds, c.evidence)
    else
      assert.is_true(grew > 240 * MiB, "RSS grew by " .. grew)
      assert.equal(false, c.holds, c.evidence)
      assert.matches("does not map the zero page", c.why)
    end
  end)

  it("shows no progress bar and no prompt when its output is not a terminal", function()
    local out, code = vmlab("memtest w 160", true)
    assert.equal(0, code, out)
    assert.matches("wrote 128%.0 MiB%s+VIRT%s+%S+ %a+%s+RES%s+%S+ MiB%s+faults [%d,]+\n", out)
    assert.matches("wrote 160%.0 MiB", out)
    assert.not_matches("\r", out, 1, true)
    assert.not_matches("\27[", out, 1, true)
    assert.not_matches("[Enter]", out, 1, true)
  end)
end)

describe("experiments' timelines", function()
  it("lazy's JSON has a timeline from 0 to the size, monotonic in bytes", function()
    local doc, text = json("run lazy --size 32MiB --json")
    integers_in_json(text)
    local tl = doc.result.timeline
    check_timeline(tl, 32 * MiB, "lazy")
    if not sanitized then
      local grew = tl[#tl].rss - tl[1].rss
      assert.is_true(grew >= 31 * MiB and grew <= 34 * MiB, "RSS grew by " .. grew)
    end
    local faults = tl[#tl].minor_faults
    local pages = 32 * MiB // require("vmlab").page_size
    assert.is_true(faults >= pages - 2 and faults <= pages + 64, "faults: " .. faults)
  end)

  it("read-write's JSON has a timeline for the read and one for the write", function()
    local doc, text = json("run read-write --size 16MiB --json")
    integers_in_json(text)
    check_timeline(doc.result.read.timeline, 16 * MiB, "read")
    check_timeline(doc.result.write.timeline, 16 * MiB, "write")
    local rd, wr = doc.result.read.timeline, doc.result.write.timeline
    local read_grew, write_grew = rd[#rd].rss - rd[1].rss, wr[#wr].rss - wr[1].rss
    -- same bytes touched (each in fresh memory of its own): the write grows RSS
    -- by the size; the read only where the kernel does not map the zero page
    local k = require("vmlab.kernel")()
    if k.zero_page == nil then return pending("the zero page could not be measured: " .. k.how.zero_page) end
    local msg = ("RSS grew by %d in the read, %d in the write (%s)"):format(read_grew, write_grew, k.how.zero_page)
    local most = sanitized and 1.25 or 1.1 -- ASan's shadow of the region grows too
    assert.is_true(write_grew >= 0.9 * 16 * MiB and write_grew <= most * 16 * MiB, msg)
    if k.zero_page then
      assert.is_true(write_grew > 8 * read_grew + MiB, msg)
    else
      assert.is_true(read_grew >= 0.9 * 16 * MiB and read_grew <= most * 16 * MiB, msg)
    end
  end)

  it("cow, thp and madvise include the timeline of their main touch", function()
    local cow = json("run cow --size 4MiB --json").result
    check_timeline(cow.timeline, 4 * MiB, "cow (the child's writes)")
    local thp = json("run thp --size 8MiB --json").result
    check_timeline(thp.timeline, 8 * MiB, "thp")
    local mad = json("run madvise --size 4MiB --file-size 1MiB --heap-size 1MiB --json").result
    check_timeline(mad.timeline, 4 * MiB, "madvise")
  end)

  it("the text report sums a timeline up in one line instead of a table of samples", function()
    local out, code = vmlab("run lazy --size 64MiB")
    assert.equal(0, code, out)
    assert.matches("timeline%s+65 samples %(use %-%-json or %-%-plot%)\n", out)
    local lines = select(2, out:gsub("\n", ""))
    assert.is_true(lines < 40, lines .. " lines")
  end)
end)

describe("vmlab run regions --faults", function()
  it("counts the faults per region: the 32 anonymous pages it writes fault at least 32 times", function()
    local doc = json("run regions --faults --json")
    local r = doc.result
    if r.faults_skipped then
      pending("the kernel refused perf page-fault sampling: " .. tostring(r.faults_skipped))
      return
    end
    local f = r.faults
    assert.is_table(f, "no result.faults")
    assert.equal(32, f.touched.anonymous)
    assert.is_true(f.by_kind.anonymous >= 32, "anonymous faults: " .. tostring(f.by_kind.anonymous))
    -- inside the anonymous region itself: one fault per page
    assert.is_true(f.regions.anonymous >= 32 and f.regions.anonymous <= 40, "in anonymous: " .. f.regions.anonymous)
    assert.is_true(f.regions.shared >= 32 and f.regions.shared <= 40, "in shared: " .. f.regions.shared)
    assert.is_true(f.total >= 64, "total: " .. f.total)
    assert.is_boolean(f.user_only)
  end)

  it("explains the faults per region in the text report", function()
    local out, code = vmlab("run regions --faults")
    assert.equal(0, code, out)
    if out:find("Faults per region were not counted", 1, true) then
      pending("the kernel refused perf page-fault sampling: " .. out:match("not counted: ([^\n]*)"))
      return
    end
    assert.matches("page faults sampled", out)
    local n = tonumber(out:match("\n%s+anonymous%s+(%d+)\n"))
    assert.is_true(n and n >= 32, "anonymous line: " .. tostring(n))
  end)

  it("without --faults counts nothing", function()
    local doc = json("run regions --json")
    assert.is_nil(doc.result.faults)
    assert.is_nil(doc.result.faults_skipped)
    assert.is_false(doc.params.faults)
  end)
end)
