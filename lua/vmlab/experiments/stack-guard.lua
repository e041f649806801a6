--- stack-guard: the stack grows on demand, one page fault at a time, up to
-- RLIMIT_STACK; below it the kernel keeps a guard gap. A recursion with a
-- 4 KiB array in each frame touches a new stack page per call until the
-- stack cannot grow: SIGSEGV. Run in a child, at the current limit and at
-- half of it: the depth follows the limit. (003_*.txt: infinite_recurse)
local vm = require "vmlab"

local M = {
  name = "stack-guard",
  summary = "a recursion with a 4 KiB frame per call grows the stack page by page until the guard stops it: SIGSEGV",
  params = { frame_size = 4096, stack_limit = 0 }, -- stack_limit 0: the current soft limit (8 MiB if unlimited)
  tour = {},
  writes = function() return 0 end, -- a stack of at most stack_limit, in a child
  fields = { "signal", "depth", "frame_size", "stack_limit", "stack_used", "half_limit_depth" },
  units = { stack_used = "bytes" },
}

local DEFAULT_LIMIT = 8 * 1024 * 1024

-- Recurse in a child under `limit`; returns depth, status.
local function recurse(frame, limit)
  local r <close> = assert(vm.mmap(vm.page_size, { share = "shared" }))
  local _, status = vm.child.run(function()
    assert(vm.setrlimit("stack", limit))
    vm.stack_recurse(frame, r, 0)
    return "returned" -- not reached: the stack has no end otherwise
  end, { timeout = 60 })
  local depth = string.unpack("=i8", r:read(0, 8))
  return depth, status
end

--- params: frame_size (bytes per call), stack_limit (bytes; 0 = the current one)
function M.run(p)
  if os.getenv("VMLAB_SANITIZED") then
    return { skipped = "under AddressSanitizer the stack overflow is caught by ASan's own SIGSEGV handler " ..
      "on its alternate stack (it reports stack-overflow and aborts), so the kernel's guard cannot be shown",
      frame_size = p.frame_size }
  end
  local soft = vm.getrlimit("stack")
  local limit = p.stack_limit
  if limit == 0 then limit = (soft == math.huge or soft > (1 << 30)) and DEFAULT_LIMIT or soft end
  if limit < (256 << 10) then error("stack-guard: stack_limit must be at least 256 KiB", 0) end
  local depth, status = recurse(p.frame_size, limit)
  local half_depth, half_status = recurse(p.frame_size, limit // 2)
  return {
    signal = status.signal_name or (status.exited and ("exit " .. tostring(status.code))) or "?",
    depth = depth,
    frame_size = p.frame_size,
    stack_limit = limit,
    stack_used = depth * p.frame_size,
    half_limit = limit // 2,
    half_limit_depth = half_depth,
    half_limit_signal = half_status.signal_name,
  }
end

function M.explain(r)
  if r.skipped then return {} end
  local u = vm.units
  return {
    ("The child recursed %s times with a %s array per call (%s of stack) and then died by %s:"):format(
      u.count(r.depth), u.bytes(r.frame_size), u.bytes(r.stack_used), r.signal),
    ("its stack limit is %s; each call touched a new stack page, faulted, and the kernel grew the stack,")
      :format(u.bytes(r.stack_limit)),
    "until growing it would pass RLIMIT_STACK (or come within the guard gap of another mapping).",
    ("With the limit halved to %s the recursion stopped at depth %s: the limit, not the memory, decides.")
      :format(u.bytes(r.half_limit), u.count(r.half_limit_depth)),
  }
end

return M
