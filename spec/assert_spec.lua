-- vmlab.assert: memory assertions for busted that pass, fail, and say the numbers.
local vm = require "vmlab"
local va = require "vmlab.assert"
local kernel = require "vmlab.kernel"
local experiments = require "vmlab.experiments"

local PAGE = vm.page_size
local sanitized = os.getenv("VMLAB_SANITIZED") ~= nil

-- The error message of a failing call, or nil if it did not fail.
local function failure(fn)
  local ok, err = pcall(fn)
  if ok then return nil end
  return tostring(err)
end

local function fresh(pages)
  local r = assert(vm.mmap(pages * PAGE))
  r:advise("nohugepage")
  return r
end

describe("assert.faults_near", function()
  it("passes when writing 256 fresh pages costs about 256 faults", function()
    local r <close> = fresh(256)
    -- under ASan the interpreter's allocations fault in shadow memory too (seen: up to 27 more)
    assert.faults_near(256, function() r:touch("write") end, sanitized and 48 or nil)
  end)

  it("fails when the count is far off, and the message carries the measured count", function()
    local r <close> = fresh(256)
    local msg = failure(function() assert.faults_near(10, function() r:touch("write") end) end)
    assert.is_not_nil(msg, "faults_near(10) passed for 256 faults")
    assert.matches("expected 10 page faults %(± 9%) from the function, measured 2%d%d %(2%d%d minor, %d+ major%)", msg)
  end)

  it("touching memory that is already there faults (almost) nothing", function()
    local r <close> = fresh(64)
    r:touch("write")
    assert.faults_near(0, function() r:touch("write") end, sanitized and 48 or nil)
    assert.is_not.faults_near(64, function() r:touch("write") end)
  end)

  it("takes a tolerance as a count, a fraction or a percentage", function()
    local r <close> = fresh(1000)
    assert.faults_near(1100, function() r:touch("write", { length = 1000 * PAGE }) end, "15%")
    assert.equal(50, va.tolerance(0.05, 1000))
    assert.equal(50, va.tolerance("5%", 1000))
    assert.equal(7, va.tolerance(7, 1000))
    assert.equal(1 << 20, va.tolerance("1MiB", 0))
    assert.has_error(function() va.tolerance("lots", 1) end)
  end)

  it("the negated form fails with the numbers too", function()
    local r <close> = fresh(32)
    local msg = failure(function() assert.is_not.faults_near(32, function() r:touch("write") end) end)
    assert.is_not_nil(msg)
    assert.matches("expected the function not to cause 32 page faults", msg, 1, true)
    assert.matches("measured %d+", msg)
  end)
end)

describe("assert.rss_grows_by", function()
  local pages16 = (16 << 20) // PAGE -- 16 MiB of pages

  it("passes when writing 16 MiB grows RSS by 16 MiB", function()
    local r <close> = fresh(pages16)
    assert.rss_grows_by(16 << 20, "5%", function() r:touch("write") end)
  end)

  it("fails when RSS did not grow (writing memory already there), printing how much it grew", function()
    local r <close> = fresh(pages16)
    r:touch("write")
    local msg = failure(function() assert.rss_grows_by(16 << 20, "5%", function() r:touch("write") end) end)
    assert.is_not_nil(msg, "writing resident memory again grew RSS by 16 MiB?")
    assert.matches("expected RSS to grow by 16.0 MiB %(± 819.2 KiB%), it grew by .* %(VmRSS .* %-> .*%)", msg)
  end)

  it("may leave out the tolerance", function()
    local r <close> = fresh((4 << 20) // PAGE)
    assert.rss_grows_by(4 << 20, function() r:touch("write") end)
  end)
end)

describe("assert.rss_unchanged", function()
  it("passes for writing memory already there, fails for fresh memory, with the change in the message", function()
    if sanitized then pending("ASan's shadow memory grows RSS on its own") return end
    local r <close> = fresh((16 << 20) // PAGE)
    local s <close> = fresh((16 << 20) // PAGE)
    s:touch("write")
    assert.rss_unchanged(function() s:touch("write") end)
    local msg = failure(function() assert.rss_unchanged(function() r:touch("write") end) end)
    assert.is_not_nil(msg)
    assert.matches("expected RSS to stay the same %(± 512.0 KiB%), it changed by 1[56]%.%d MiB", msg)
  end)

  it("passes for reading fresh memory where the kernel maps the zero page", function()
    if sanitized then pending("ASan's shadow memory grows RSS on its own") return end
    if not va.requires("zero_page") then return end
    local r <close> = fresh((16 << 20) // PAGE)
    assert.rss_unchanged(function() r:touch("read") end)
  end)

  it("fails for reading fresh memory where the kernel gives a read fault a frame of its own", function()
    if sanitized then pending("ASan's shadow memory grows RSS on its own") return end
    local k = kernel()
    if k.zero_page ~= false then
      return pending("needs a kernel without the zero page for read faults: " .. tostring(k.how.zero_page))
    end
    local r <close> = fresh((16 << 20) // PAGE)
    local msg = failure(function() assert.rss_unchanged(function() r:touch("read") end) end)
    assert.is_not_nil(msg, "reading fresh memory left RSS unchanged on a kernel without the zero page")
    assert.matches("it changed by 1[56]%.%d MiB", msg)
  end)
end)

describe("assert.resident", function()
  it("counts resident pages with mincore, and names the count when it is wrong", function()
    local r <close> = fresh(16)
    r:touch("write", { length = 4 * PAGE })
    assert.resident(r, 4)
    local msg = failure(function() assert.resident(r, 16) end)
    assert.is_not_nil(msg)
    assert.matches("expected 16 resident pages %(± 0%) in vmlab.Region mmap .*, mincore says 4 of its 16 pages", msg)
  end)
end)

describe("assert.within", function()
  it("passes inside the bounds, bounds included, and fails outside with the measured number", function()
    assert.within(256, 250, 270, "faults")
    assert.within(250, 250, 270)
    assert.within(0.5, 0, 1)
    assert.matches("expected faults between 250 and 270, measured 512", failure(function()
      assert.within(512, 250, 270, "faults") end))
    assert.matches("expected the value between 1 and 2, measured 3", failure(function() assert.within(3, 1, 2) end))
    assert.is_not.within(3, 1, 2)
    assert.matches("expected x outside 1 .. 2, measured 1.5", failure(function()
      assert.is_not.within(1.5, 1, 2, "x") end))
  end)

  it("names a bound that is not a number", function()
    assert.matches("bad argument #3 to 'within' %(number expected, got nil%)", failure(function()
      assert.within(1, 0) end))
    assert.matches("bad argument #1 to 'within' %(number expected, got string%)", failure(function()
      assert.within("1", 0, 2) end))
  end)
end)

-- Probes of the machine, fed: the cached probe table is changed for the
-- test and put back after it.
local function with_probes(changes, fn)
  local k = kernel()
  local saved = {}
  for f, v in pairs(changes) do saved[f] = { k[f] } ; k[f] = v end
  local ok, err = pcall(fn, k)
  for f, v in pairs(saved) do k[f] = v[1] end
  if not ok then error(err, 0) end
end

-- What busted's pending() throws, as "pending: message"; a failure as its message.
local function outcome(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return "ok", err end
  local mt = getmetatable(err)
  if type(err) == "table" and mt and mt.__type == "pending" then return "pending", tostring(err.message) end
  return "failed", tostring(type(err) == "table" and err.message or err)
end

describe("vmlab.assert.requires", function()
  it("is true where the probes say the machine has each capability", function()
    with_probes({ zero_page = true, pfns_visible = true }, function()
      assert.is_true(va.requires("zero_page"))
      assert.is_true(va.requires("zero_page", "pfns_visible"))
    end)
  end)

  it("marks the test pending with the missing capability and the probe's reason, and is false", function()
    with_probes({ zero_page = false }, function(k)
      local what, msg = outcome(va.requires, "zero_page")
      assert.equal("pending", what)
      assert.matches("^needs zero_page: this kernel does not map the zero page for read faults", msg)
      assert.matches(k.how.zero_page, msg, 1, true)
    end)
    with_probes({ zero_page = true, pfns_visible = false }, function()
      local what, msg = outcome(va.requires, "zero_page", "pfns_visible")
      assert.equal("pending", what)
      assert.matches("^needs pfns_visible: ", msg) -- the first one missing is named
    end)
    with_probes({ thp_enabled = "never" }, function()
      assert.same({ "pending", "needs thp: transparent huge pages are 'never'" }, { outcome(va.requires, "thp") })
    end)
  end)

  it("agrees with the live probe of this machine", function()
    local has, why = kernel.has("zero_page")
    local what, msg = outcome(va.requires, "zero_page")
    if has then assert.same({ "ok", true }, { what, msg })
    else assert.same({ "pending", "needs zero_page: " .. why }, { what, msg }) end
  end)

  it("raises for a capability it does not know", function()
    assert.has_error(function() va.requires("telepathy") end)
  end)
end)

-- A made-up experiment: a read of fresh memory measured through its smaps
-- Rss, with one claim any kernel shows and one that needs the zero page.
local demo = {
  name = "demo",
  claims = {
    { id = "read_faults", text = "a first read faults once per page",
      decide = function(r)
        return r.faults >= r.pages * 0.9 and r.faults <= r.pages * 1.1 + 8,
          ("%d faults for %d pages"):format(r.faults, r.pages)
      end },
    { id = "read_zero_page", text = "a first read maps the shared zero page", requires = "zero_page",
      decide = function(r)
        return r.rss * 2 < r.size, ("RSS +%s for %s read"):format(va.bytes(r.rss), va.bytes(r.size))
      end },
    { id = "undecided", text = "something nothing here measures",
      decide = function() return nil, nil end },
  },
}

-- Read `pages` fresh pages, private or shared: shared anonymous memory gets a
-- page of its own on every kernel, so both kinds of result exist on any machine.
local function measure_read(share)
  local pages = 64
  local r <close> = assert(vm.mmap(pages * PAGE, { share = share }))
  r:advise("nohugepage")
  local t = r:touch("read")
  local m = assert(vm.proc.mapping_at(r.address))
  return { pages = pages, size = pages * PAGE, faults = t.minor_faults, rss = m.Rss }
end

local function decided(result)
  result.claims = experiments.decide(demo, result)
  return result
end

describe("vmlab.assert.claim_holds", function()
  it("returns a claim that held", function()
    local r = decided({ pages = 64, size = 64 * PAGE, faults = 64, rss = 0 })
    local c = va.claim_holds(r, "read_faults")
    assert.equal("read_faults", c.id)
    assert.is_true(c.holds)
    assert.equal("64 faults for 64 pages", c.evidence)
  end)

  it("fails, with the evidence, where the probes say the machine can show a claim that did not hold", function()
    with_probes({ zero_page = true }, function()
      local r = decided({ pages = 64, size = 64 * PAGE, faults = 64, rss = 64 * PAGE })
      local what, msg = outcome(va.claim_holds, r, "read_zero_page")
      assert.equal("failed", what)
      assert.matches("claim 'read_zero_page' (a first read maps the shared zero page) did not hold: measured: RSS +",
        msg, 1, true)
      assert.matches("why: the cause is unknown", msg, 1, true)
    end)
  end)

  it("is pending, with the probe's reason, where the probes say the machine cannot show it", function()
    with_probes({ zero_page = false }, function()
      local r = decided({ pages = 64, size = 64 * PAGE, faults = 64, rss = 64 * PAGE })
      local what, msg = outcome(va.claim_holds, r, "read_zero_page")
      assert.equal("pending", what)
      assert.matches("^this machine cannot show it: this kernel does not map the zero page", msg)
      -- the claim any kernel shows still holds
      assert.equal("ok", (outcome(va.claim_holds, r, "read_faults")))
    end)
  end)

  it("fails for a claim skipped where the probes say the machine can show it", function()
    local r = decided({ pages = 64, size = 64 * PAGE, faults = 64, rss = 0 })
    local what, msg = outcome(va.claim_holds, r, "undecided")
    assert.equal("failed", what)
    assert.matches("was skipped although the probes say this machine can show it", msg, 1, true)
  end)

  it("decides measured results of both kinds: shared memory's read never maps the zero page", function()
    -- shared anonymous memory: a page of its own per read, on any kernel
    local shared = decided(measure_read("shared"))
    assert.equal("ok", (outcome(va.claim_holds, shared, "read_faults")))
    assert.is_false(experiments.claim(shared, "read_zero_page").holds)
    with_probes({ zero_page = true }, function()
      assert.equal("failed", (outcome(va.claim_holds, decided(measure_read("shared")), "read_zero_page")))
    end)
    with_probes({ zero_page = false }, function()
      assert.equal("pending", (outcome(va.claim_holds, decided(measure_read("shared")), "read_zero_page")))
    end)
    -- private memory: the zero page exactly where the live probe says so
    local private = decided(measure_read("private"))
    assert.equal("ok", (outcome(va.claim_holds, private, "read_faults")))
    local k = kernel()
    if k.zero_page == nil then return pending("the zero page could not be measured: " .. k.how.zero_page) end
    assert.equal(k.zero_page, experiments.claim(private, "read_zero_page").holds, k.how.zero_page)
    assert.equal(k.zero_page and "ok" or "pending", (outcome(va.claim_holds, private, "read_zero_page")))
  end)

  it("names a result without claims and a claim that is not there", function()
    assert.has_error(function() va.claim_holds({}, "x") end,
      "bad argument #1 to 'claim_holds' (an experiment's result with claims expected)")
    local r = decided({ pages = 64, size = 64 * PAGE, faults = 64, rss = 0 })
    assert.has_error(function() va.claim_holds(r, "nope") end,
      "bad argument #2 to 'claim_holds' (no claim 'nope'; there are: read_faults, read_zero_page, undecided)")
  end)
end)

describe("bad use", function()
  it("names a missing function", function()
    assert.has_error(function() assert.faults_near(1, nil) end,
      "bad argument #2 to 'faults_near' (function expected, got nil)")
  end)
end)
