-- vmlab.assert: memory assertions for busted that pass, fail, and say the numbers.
local vm = require "vmlab"
local va = require "vmlab.assert"

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
  it("passes when writing 16 MiB grows RSS by 16 MiB", function()
    local r <close> = fresh(4096)
    assert.rss_grows_by(16 << 20, "5%", function() r:touch("write") end)
  end)

  it("fails for a read of fresh memory (the zero page), printing how much RSS grew", function()
    local r <close> = fresh(4096)
    local msg = failure(function() assert.rss_grows_by(16 << 20, "5%", function() r:touch("read") end) end)
    assert.is_not_nil(msg, "reading fresh memory grew RSS by 16 MiB?")
    assert.matches("expected RSS to grow by 16.0 MiB %(± 819.2 KiB%), it grew by .* %(VmRSS .* %-> .*%)", msg)
  end)

  it("may leave out the tolerance", function()
    local r <close> = fresh(1024)
    assert.rss_grows_by(4 << 20, function() r:touch("write") end)
  end)
end)

describe("assert.rss_unchanged", function()
  it("passes for reading fresh memory, fails for writing it, with the change in the message", function()
    if sanitized then pending("ASan's shadow memory grows RSS on its own") return end
    local r <close> = fresh(4096)
    assert.rss_unchanged(function() r:touch("read") end)
    local msg = failure(function() assert.rss_unchanged(function() r:touch("write") end) end)
    assert.is_not_nil(msg)
    assert.matches("expected RSS to stay the same %(± 512.0 KiB%), it changed by 1[56]%.%d MiB", msg)
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

describe("bad use", function()
  it("names a missing function", function()
    assert.has_error(function() assert.faults_near(1, nil) end,
      "bad argument #2 to 'faults_near' (function expected, got nil)")
  end)
end)
