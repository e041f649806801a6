--- stack-guard: the stack grows on demand, one page fault at a time, up to
-- RLIMIT_STACK; below it the kernel keeps a guard gap. A recursion with a
-- page-sized array in each frame (vm.page_size bytes) touches a new stack page
-- per call until the stack cannot grow: SIGSEGV. Run in a child, at the
-- current limit and at half of it: the depth follows the limit; the child's
-- page faults count the stack pages. (003_*.txt: infinite_recurse)
local vm = require "vmlab"

local M = {
  name = "stack-guard",
  summary = "a recursion with a page-sized frame per call grows the stack page by page until the guard stops it: " ..
    "SIGSEGV",
  params = {
    { name = "frame_size", default = vm.page_size, unit = "bytes", min = 16, max = 1024 * 1024,
      help = "the array in each call's frame (a page: one new stack page per call)" },
    { name = "stack_limit", default = 0, unit = "bytes", min = 0, max = 1 << 30,
      help = "RLIMIT_STACK for the child; 0: the current soft limit (8 MiB if unlimited), else at least 256KiB" },
  },
  validate = function(p)
    if p.stack_limit ~= 0 and p.stack_limit < (256 << 10) then
      return "--stack-limit: must be 0 (the current limit) or at least 256KiB"
    end
  end,
  tour = {},
  writes = function() return 0 end, -- a stack of at most stack_limit, in a child
  fields = {
    { name = "signal", unit = "text", help = "how the child ended (SIGSEGV at the guard)" },
    { name = "depth", unit = "count", help = "calls deep the recursion got" },
    { name = "frame_size", unit = "bytes", help = "the array in each frame" },
    { name = "stack_limit", unit = "bytes", help = "RLIMIT_STACK of the child" },
    { name = "stack_used", unit = "bytes", help = "depth x frame size" },
    { name = "stack_pages", unit = "count", help = "stack pages that many frames fill" },
    { name = "child_minor_faults", unit = "count", help = "minor faults of the child" },
    { name = "half_limit", unit = "bytes", help = "half the limit, for the second child" },
    { name = "half_limit_depth", unit = "count", help = "depth the recursion got under half the limit" },
    { name = "half_limit_signal", unit = "text", help = "how that child ended" },
  },
}

local DEFAULT_LIMIT = 8 * 1024 * 1024

-- Recurse in a child under `limit`; returns depth, status, the child's minor faults.
local function recurse(frame, limit)
  local r <close> = assert(vm.mmap(vm.page_size, { share = "shared" }))
  local before = assert(vm.rusage("children")).minor_faults
  local _, status = vm.child.run(function()
    assert(vm.setrlimit("stack", limit))
    vm.lab.stack_recurse(frame, r, 0)
    return "returned" -- not reached: the stack has no end otherwise
  end, { timeout = 60 })
  local depth = string.unpack("=i8", r:read(0, 8))
  return depth, status, assert(vm.rusage("children")).minor_faults - before
end

--- params: frame_size (bytes per call), stack_limit (bytes; 0 = the current one)
function M.run(p)
  local soft = vm.getrlimit("stack")
  local limit = p.stack_limit
  if limit == 0 then limit = (soft == math.huge or soft > (1 << 30)) and DEFAULT_LIMIT or soft end
  if limit < (256 << 10) then error("stack-guard: stack_limit must be at least 256 KiB", 0) end
  local depth, status, faults = recurse(p.frame_size, limit)
  local half_depth, half_status = recurse(p.frame_size, limit // 2)
  return {
    signal = status.signal_name or (status.exited and ("exit " .. tostring(status.code))) or "?",
    depth = depth,
    frame_size = p.frame_size,
    stack_limit = limit,
    stack_used = depth * p.frame_size,
    stack_pages = depth * p.frame_size // vm.page_size,
    child_minor_faults = faults,
    half_limit = limit // 2,
    half_limit_depth = half_depth,
    half_limit_signal = half_status.signal_name or "?",
  }
end

local u = vm.units

-- Why a child did not die by SIGSEGV, when the result or the process says.
local function not_segv_why(signal)
  if signal == "SIGABRT" then
    local ok, why = require("vmlab.kernel").has("no_sanitizer")
    if not ok then return why .. " (ASAN_OPTIONS=allow_user_segv_handler=1 lets the lab's handler see it)" end
  end
  return nil
end

M.claims = {
  { id = "overflow_segv",
    text = "a recursion that never ends dies by SIGSEGV when the stack cannot grow any more",
    decide = function(r)
      return r.signal == "SIGSEGV" and r.half_limit_signal == "SIGSEGV",
        ("the child died by %s after %s calls (%s by %s at half the limit)"):format(r.signal, u.count(r.depth),
          r.half_limit_signal, u.count(r.half_limit_depth)),
        not_segv_why(r.signal ~= "SIGSEGV" and r.signal or r.half_limit_signal)
    end,
    explain = function()
      return "The next page would pass RLIMIT_STACK (or come within the guard gap of another mapping): " ..
        "the kernel refused to grow the stack."
    end },
  { id = "stack_grows_by_faults",
    text = "the stack grows on demand: each new stack page costs the child a page fault",
    decide = function(r)
      return r.stack_pages > 0 and r.child_minor_faults >= r.stack_pages * 0.9,
        ("%s minor faults in the child for %s pages (%s) of stack"):format(u.count(r.child_minor_faults),
          u.count(r.stack_pages), u.bytes(r.stack_used))
    end,
    explain = function()
      return "Each new page below the stack's end faulted, and the kernel grew the stack mapping over it."
    end },
  { id = "depth_fills_limit",
    text = "the stack grows up to RLIMIT_STACK: the recursion used most of the limit",
    decide = function(r)
      return r.stack_used >= r.stack_limit * 0.75 and r.stack_used <= r.stack_limit,
        ("%s calls of %s: %s of stack under a limit of %s"):format(u.count(r.depth), u.bytes(r.frame_size),
          u.bytes(r.stack_used), u.bytes(r.stack_limit))
    end },
  { id = "limit_decides_depth",
    text = "halving the stack limit halves the depth: the limit, not the memory, decides",
    decide = function(r)
      return r.depth > 0 and r.half_limit_depth >= r.depth * 0.4 and r.half_limit_depth <= r.depth * 0.6,
        ("depth %s under %s, %s under %s"):format(u.count(r.depth), u.bytes(r.stack_limit),
          u.count(r.half_limit_depth), u.bytes(r.half_limit))
    end },
}

--- Measurements only; what they mean is decided by the claims.
function M.explain(r)
  if r.skipped then return {} end
  return {
    ("The child recursed %s times with a %s array per call (%s of stack) and then died by %s;")
      :format(u.count(r.depth), u.bytes(r.frame_size), u.bytes(r.stack_used), r.signal),
    ("its stack limit was %s, and it took %s minor faults. With the limit halved to %s: depth %s, %s.")
      :format(u.bytes(r.stack_limit), u.count(r.child_minor_faults), u.bytes(r.half_limit),
        u.count(r.half_limit_depth), r.half_limit_signal),
  }
end

-- Its chart (vmlab run stack-guard --plot FILE.svg|png, vmlab report): the stack the recursion reached before
-- SIGSEGV against RLIMIT_STACK, at the limit and at half of it.
M.charts = {
  { kind = "bars", title = "the stack grows up to RLIMIT_STACK, then SIGSEGV",
    panels = function(r)
      local units_of = require "vmlab.units"
      local groups = {}
      if r.stack_limit then
        groups[#groups + 1] = { label = "limit " .. units_of.bytes(r.stack_limit), bars = {
          { name = "RLIMIT_STACK", value = r.stack_limit, color = "#7f7f7f" },
          { name = "stack used before the signal", value = r.stack_used, color = "#d62728" } } }
      end
      if r.half_limit and r.half_limit_depth and r.frame_size then
        groups[#groups + 1] = { label = "limit " .. units_of.bytes(r.half_limit), bars = {
          { name = "RLIMIT_STACK", value = r.half_limit, color = "#7f7f7f" },
          { name = "stack used before the signal", value = r.half_limit_depth * r.frame_size, color = "#d62728" } } }
      end
      return { { unit = "bytes", axis = "stack", groups = groups } }
    end },
}

return M
