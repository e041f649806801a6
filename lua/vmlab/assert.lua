--- vmlab.assert: luassert assertions about memory, for busted specs.
--
--     require "vmlab.assert"
--     local r = vm.mmap(1 << 20)
--     assert.faults_near(256, function() r:touch("write") end)
--     assert.rss_grows_by(1 << 20, "5%", function() r:touch("write") end)
--     assert.rss_unchanged(function() r:touch("read") end)
--     assert.resident(r, 256)
--     assert.within(t.minor_faults, 250, 270, "minor faults of the touch")
--
-- A failure says what was expected and what was measured:
--
--     expected 10 page faults (± 8) from the function, measured 256 (256 minor, 0 major)
--
-- Tolerances: a count or byte number (>= 1), a fraction of the expected value
-- (0.05), or a string: "5%", "1MiB". The negated forms (`assert.is_not.faults_near`)
-- work too. Faults are this process's, from getrusage(2) (vm.rusage): the few
-- faults the interpreter takes around the call count as well, which the
-- default tolerances allow for.
--
-- Probes for spec authors (vmlab.kernel): a spec of something not every
-- machine shows asks first, and is pending, with the reason, where it cannot:
--
--     local need = require("vmlab.assert").requires
--     it("reading fresh memory maps the zero page", function()
--       if not need("zero_page") then return end   -- pending: "needs zero_page: this kernel does not ..."
--       ...
--     end)
--     assert.claim_holds(result, "read_zero_page")  -- an experiment's claim: must hold where the
--                                                   -- probes say it can; pending where they say not
-- @module vmlab.assert
local luassert = require "luassert"
local say = require "say"
local args = require "vmlab.args"
local core = require "vmlab.core"
local proc = require "vmlab.proc"

local M = {}

local KEY = "assertion.vmlab.measured"
say.en[KEY] = "%s" -- the whole message is built by the assertion

local floor, abs = math.floor, math.abs

-- "bad argument #1 to 'vmlab.assert.measure' (function expected, got nil)", at the caller's caller.
local function check_arg(fn, i, v, expected) args.check("vmlab.assert." .. fn, i, v, expected) end

local function bytes(n)
  check_arg("bytes", 1, n, "number")
  local sign = n < 0 and "-" or ""
  n = abs(n)
  local u = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #u do n, i = n / 1024, i + 1 end
  return sign .. (i == 1 and ("%.0f B"):format(n) or ("%.1f %s"):format(n, u[i]))
end
M.bytes = bytes

local UNITS = { B = 1, KIB = 1024, KB = 1024, K = 1024, MIB = 1 << 20, MB = 1 << 20, M = 1 << 20,
  GIB = 1 << 30, GB = 1 << 30, G = 1 << 30 }

--- A tolerance as an absolute amount, given the expected value.
-- nil -> default; n >= 1 -> n; 0 <= n < 1 -> n * expected; "5%" -> 5% of
-- expected; "1MiB" -> 1048576.
function M.tolerance(tol, expected, default)
  if tol == nil then return default end
  check_arg("tolerance", 2, expected, "number")
  if type(tol) == "number" then
    if tol < 0 then error("a tolerance must not be negative", 3) end
    if tol < 1 then return abs(expected) * tol end
    return tol
  end
  if type(tol) == "string" then
    local pct = tol:match("^%s*(%d*%.?%d+)%s*%%%s*$")
    if pct then return abs(expected) * tonumber(pct) / 100 end
    local n, unit = tol:match("^%s*(%d*%.?%d+)%s*(%a*)%s*$")
    local f = n and UNITS[unit == "" and "B" or unit:upper()]
    if f then return tonumber(n) * f end
  end
  error(("bad tolerance %q (a number, a fraction such as 0.05, \"5%%\" or \"1MiB\")"):format(tostring(tol)), 3)
end

-- busted's pending() of the running test: busted puts it in the test
-- function's environment (_ENV), not in the globals this module sees; a test
-- function that names no global has no _ENV, so busted's own frames (which
-- hold the `busted` instance) are searched too.
local function busted_pending()
  local g = rawget(_G, "pending")
  if type(g) == "function" then return g end
  for level = 3, 30 do
    local info = debug.getinfo(level, "f")
    if not info then break end
    for i = 1, 255 do
      local name, value = debug.getupvalue(info.func, i)
      if not name then break end
      if name == "_ENV" and type(value) == "table" and type(value.pending) == "function" then
        return value.pending
      end
      -- a test function without globals has no _ENV: busted's own runner functions hold `busted`
      if name == "busted" and type(value) == "table" and type(rawget(value, "pending")) == "function" then
        return rawget(value, "pending")
      end
    end
  end
  return nil
end

--- Mark the running busted test pending with `why` (outside busted: nothing).
function M.pending(why)
  local p = busted_pending()
  if p then p(why) end
end

--- Does this machine have every capability named (vmlab.kernel.has names:
-- "zero_page", "pfns_visible", "perf_faults", "thp", "hugetlb", "swap", "root", ...)?
-- Where one is missing, the running busted test is marked pending with the
-- reason and false is returned: `if not need("zero_page") then return end`.
-- (Inside busted, pending() ends the test at once by throwing a pending
-- marker; the `return` is for code run outside busted, where nothing is
-- marked.) Names unknown to vmlab.kernel.has raise an error.
-- To test the other kind of machine too, branch on the probe itself
-- (`require("vmlab.kernel")().zero_page`: true, false, or nil when it could
-- not be measured) and assert what that kernel does.
function M.requires(...)
  local kernel = require "vmlab.kernel"
  for i = 1, select("#", ...) do
    local name = select(i, ...)
    local ok, why = kernel.has(name)
    if not ok then
      M.pending(("needs %s: %s"):format(name, why))
      return false
    end
  end
  return true
end

--- Assert that claim `id` of an experiment's result (experiments.run) held,
-- where the kernel probes say this machine can show it; where they say it
-- cannot, the running test is pending with their reason. A claim skipped on a
-- machine that supports it fails: a spec must not skip what it can check.
-- @return the decided claim
function M.claim_holds(result, id)
  local claims = type(result) == "table" and result.claims
  if type(claims) ~= "table" then
    error("bad argument #1 to 'claim_holds' (an experiment's result with claims expected)", 2)
  end
  local c
  for _, x in ipairs(claims) do if x.id == id then c = x end end
  if not c then
    local ids = {}
    for _, x in ipairs(claims) do ids[#ids + 1] = x.id end
    error(("bad argument #2 to 'claim_holds' (no claim '%s'; there are: %s)"):format(tostring(id),
      table.concat(ids, ", ")), 2)
  end
  if c.expected == false then
    M.pending(("this machine cannot show it: %s"):format(tostring(c.why)))
    return c
  end
  -- a claim about a time ratio: a noisy machine can turn it either way, so
  -- here it must only have been decided (its decide function is specced with fed results)
  if c.timing and (c.holds == true or c.holds == false) then return c end
  if c.holds ~= true then
    error(("claim '%s' (%s) %s: measured: %s; why: %s"):format(c.id, c.text,
      c.holds == false and "did not hold" or "was skipped although the probes say this machine can show it",
      tostring(c.evidence), tostring(c.why)), 2)
  end
  return c
end

--- Page faults (minor, major) of this process so far.
function M.faults_now()
  local ru = core.rusage("self")
  return ru.minor_faults, ru.major_faults
end

--- VmRSS of this process in bytes (/proc/self/statm, through vmlab.proc).
function M.rss_now()
  return assert(proc.rss("self"))
end

--- Run fn and measure: faults = minor + major, minor, major, rss before, rss after.
function M.measure(fn)
  check_arg("measure", 1, fn, "function")
  local rss0 = M.rss_now()
  local mi0, ma0 = M.faults_now()
  fn()
  local mi1, ma1 = M.faults_now()
  local rss1 = M.rss_now()
  return (mi1 - mi0) + (ma1 - ma0), mi1 - mi0, ma1 - ma0, rss0, rss1
end

-- Make luassert print msg (positive or negated form) on failure.
local function say_this(state, arguments, ok_msg, not_msg)
  local msg = state.mod and ok_msg or not_msg
  for i = 1, (arguments.n or #arguments) do arguments[i] = nil end
  arguments[1], arguments.n, arguments.nofmt = msg, 1, { true }
end

local function check_fn(fn, name, pos)
  if type(fn) ~= "function" then
    error(("bad argument #%d to '%s' (function expected, got %s)"):format(pos, name, type(fn)), 4)
  end
end

-- assert.faults_near(expected, fn, tolerance = 2% + 8)
local function faults_near(state, arguments)
  local expected, fn, tol = arguments[1], arguments[2], arguments[3]
  if type(expected) ~= "number" then
    error(("bad argument #1 to 'faults_near' (number expected, got %s)"):format(type(expected)), 3)
  end
  check_fn(fn, "faults_near", 2)
  local t = M.tolerance(tol, expected, math.ceil(abs(expected) * 0.02) + 8)
  local n, minor, major = M.measure(fn)
  local ok = abs(n - expected) <= t
  local measured = ("measured %d (%d minor, %d major)"):format(n, minor, major)
  say_this(state, arguments,
    ("expected %d page faults (± %g) from the function, %s"):format(expected, t, measured),
    ("expected the function not to cause %d page faults (± %g), %s"):format(expected, t, measured))
  return ok
end

-- assert.rss_grows_by(bytes, tolerance = 5% + 256 KiB, fn)  (tolerance may be left out)
local function rss_grows_by(state, arguments)
  local expected, tol, fn = arguments[1], arguments[2], arguments[3]
  if type(tol) == "function" and fn == nil then tol, fn = nil, tol end
  if type(expected) ~= "number" then
    error(("bad argument #1 to 'rss_grows_by' (bytes expected, got %s)"):format(type(expected)), 3)
  end
  check_fn(fn, "rss_grows_by", 3)
  local t = M.tolerance(tol, expected, abs(expected) * 0.05 + 256 * 1024)
  local _, _, _, rss0, rss1 = M.measure(fn)
  local growth = rss1 - rss0
  local ok = abs(growth - expected) <= t
  local measured = ("it grew by %s (VmRSS %s -> %s)"):format(bytes(growth), bytes(rss0), bytes(rss1))
  say_this(state, arguments,
    ("expected RSS to grow by %s (± %s), %s"):format(bytes(expected), bytes(floor(t)), measured),
    ("expected RSS not to grow by %s (± %s), %s"):format(bytes(expected), bytes(floor(t)), measured))
  return ok
end

-- assert.rss_unchanged(fn, tolerance = 512 KiB)
local function rss_unchanged(state, arguments)
  local fn, tol = arguments[1], arguments[2]
  check_fn(fn, "rss_unchanged", 1)
  local t = M.tolerance(tol, 0, 512 * 1024)
  local _, _, _, rss0, rss1 = M.measure(fn)
  local growth = rss1 - rss0
  local ok = abs(growth) <= t
  local measured = ("it changed by %s (VmRSS %s -> %s)"):format(bytes(growth), bytes(rss0), bytes(rss1))
  say_this(state, arguments,
    ("expected RSS to stay the same (± %s), %s"):format(bytes(floor(t)), measured),
    ("expected RSS to change by more than %s, %s"):format(bytes(floor(t)), measured))
  return ok
end

-- assert.resident(region, pages, tolerance = 0)
local function resident(state, arguments)
  local r, pages, tol = arguments[1], arguments[2], arguments[3]
  if type(pages) ~= "number" then
    error(("bad argument #2 to 'resident' (page count expected, got %s)"):format(type(pages)), 3)
  end
  if not args.is_a(r, "vmlab.Region") then
    error(("bad argument #1 to 'resident' (a region expected, got %s)"):format(type(r)), 3)
  end
  local t = M.tolerance(tol, pages, 0)
  local n, total = r:resident()
  local ok = abs(n - pages) <= t
  local measured = ("mincore says %d of its %d pages are resident"):format(n, total)
  local what = tostring(r):match("^(vmlab%.Region %S+ %S+)") or "the region"
  say_this(state, arguments,
    ("expected %d resident pages (± %g) in %s, %s"):format(pages, t, what, measured),
    ("expected %s not to have %d resident pages (± %g), %s"):format(what, pages, t, measured))
  return ok
end

-- assert.within(value, low, high, what = "the value"): a measured number in [low, high]
local function within(state, arguments)
  for i = 1, 3 do
    if type(arguments[i]) ~= "number" then
      error(("bad argument #%d to 'within' (number expected, got %s)"):format(i, type(arguments[i])), 3)
    end
  end
  local x, lo, hi = arguments[1], arguments[2], arguments[3]
  local what = arguments[4] ~= nil and tostring(arguments[4]) or "the value"
  local ok = x >= lo and x <= hi
  say_this(state, arguments,
    ("expected %s between %s and %s, measured %s"):format(what, lo, hi, x),
    ("expected %s outside %s .. %s, measured %s"):format(what, lo, hi, x))
  return ok
end

luassert:register("assertion", "faults_near", faults_near, KEY, KEY)
luassert:register("assertion", "rss_grows_by", rss_grows_by, KEY, KEY)
luassert:register("assertion", "rss_unchanged", rss_unchanged, KEY, KEY)
luassert:register("assertion", "resident", resident, KEY, KEY)
luassert:register("assertion", "within", within, KEY, KEY)

return M
