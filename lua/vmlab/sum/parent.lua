--- vmlab.sum.parent: the parent of `vmlab sum` (lab section 8, done right).
--
-- The steps of the lab, in order:
--   1. shm_open(name, O_CREAT|O_EXCL, 0600) with an unpredictable name that
--      carries our pid; ftruncate; mmap (vm.shm_open does the three);
--   2. fill the header (vmlab.sum.ring);
--   3. fork + exec the child: `lua5.4 child_main.lua NAME OUT PPID`, with
--      PR_SET_PDEATHSIG = SIGTERM so it learns of our death;
--   4. once the child has attached (opened and mapped the object), unlink
--      the name: from then on nothing can be left in /dev/shm, whoever dies;
--   5. hand the input over: batches of bytes through a ring of slots
--      (futex or sem), or line by line through one slot and a polled flag
--      (poll, the lab's protocol); from a terminal each line as it is typed;
--   6. say "end of input" (or "abort"), wait for the child, munmap.
-- Every wait has a short timeout, so the death of the child, SIGINT, SIGTERM
-- and SIGHUP are noticed within a fraction of a second.
-- @module vmlab.sum.parent
local vm = require "vmlab"
local ring = require "vmlab.sum.ring"
local names = require "vmlab.sum.names"

local parent = {}

parent.defaults = {
  out = "sums.txt", sync = "futex", slots = ring.SLOTS, slot_size = ring.SLOT_SIZE,
  fd = 0,            -- the input
  interactive = nil, -- a terminal: hand each line over at once, an empty line ends (default: isatty(fd))
  lua = nil,         -- interpreter for the child (default: $VMLAB_LUA or lua5.4)
  log = nil,         -- function(message) for what a person should see (default: stderr)
}

local TICK = 0.2 -- seconds: the longest a wait goes without checking the child and signals

local function child_program() return package.searchpath("vmlab.sum.child_main", package.path) end

local function describe(st)
  if not st then return "is gone" end
  if st.signaled then return "was killed by " .. tostring(st.signal_name or st.signal) end
  return "exited with code " .. tostring(st.code)
end

-- Stop reasons: nil (go on), or "signal", name | "child" | "input", message.
local function check(ctx)
  local sig = vm.signal_caught()
  if sig then return "signal", sig end
  if not ctx.unlinked then
    local state = ring.child_state(ctx.s)
    if state == "attached" or state == "done" then
      ctx.unlinked = true
      local ok, err = ctx.s:unlink() -- the child has it mapped: the name is no longer needed
      if not ok then ctx.log("warning: " .. tostring(err)) end
    end
  end
  if not ctx.child:running() then return "child" end
  return nil
end

-- futex / sem: read input straight into free slots, one read(2) per slot.
local function transfer_slots(ctx)
  local s, prod = ctx.s, ctx.prod
  local at_line_start = true
  while true do
    local stop, detail = check(ctx)
    if stop then return stop, detail end
    local off = prod:acquire(TICK)
    if off then
      local n, why = s:read_from(ctx.fd, off, prod.slot_size, TICK)
      if n == 0 then return "eof" end
      if n == nil then return "input", why end
      if n then
        if ctx.interactive then
          local text = s:read(off, n)
          if at_line_start and (text == "\n" or text == "\r\n") then return "eof" end
          at_line_start = text:sub(-1) == "\n"
        end
        prod:publish(n)
        ctx.prompt()
      end
    end
  end
end

-- poll: the lab's protocol, one line (or one slot-sized piece of a long
-- line) per handoff through the single slot.
local function transfer_lines(ctx)
  local s, prod, staging = ctx.s, ctx.prod, ctx.staging
  local size = prod.slot_size
  local pending = ""
  local function handoff(piece)
    while true do
      local stop, detail = check(ctx)
      if stop then return stop, detail end
      local off = prod:acquire(TICK)
      if off then
        s:write(off, piece)
        prod:publish(#piece)
        return nil
      end
    end
  end
  local function handoff_all(text)
    for i = 1, #text, size do
      local stop, detail = handoff(text:sub(i, i + size - 1))
      if stop then return stop, detail end
    end
  end
  while true do
    local stop, detail = check(ctx)
    if stop then return stop, detail end
    local n, why = staging:read_from(ctx.fd, 0, staging.size, TICK)
    if n == 0 then
      stop, detail = handoff_all(pending)
      return stop or "eof", detail
    end
    if n == nil then return "input", why end
    if n then
      local text = staging:read(0, n)
      if ctx.interactive and pending == "" and (text == "\n" or text == "\r\n") then return "eof" end
      local pos = 1
      while true do
        local nl = text:find("\n", pos, true)
        if not nl then
          pending = pending .. text:sub(pos)
          break
        end
        stop, detail = handoff_all(pending .. text:sub(pos, nl))
        if stop then return stop, detail end
        pending, pos = "", nl + 1
      end
      if #pending >= size then -- a long line goes ahead in pieces
        local whole = #pending - #pending % size
        stop, detail = handoff_all(pending:sub(1, whole))
        if stop then return stop, detail end
        pending = pending:sub(whole + 1)
      end
      if text:sub(-1) == "\n" then ctx.prompt() end
    end
  end
end

-- After the input: "eof" -> wait for the child to finish; anything else ->
-- ask it to abort. Returns the child's wait status (nil if it had to be
-- killed) and a signal that arrived meanwhile.
local function finish(ctx, how)
  local child, prod = ctx.child, ctx.prod
  local sig
  if how == "eof" then
    while true do -- poll: waits for the last line to be taken, then sets the flag to 2
      local done = prod:finish("eof", TICK)
      if done then break end
      sig = vm.signal_caught()
      if sig or not child:running() then how = "abort" break end
    end
  end
  if how ~= "eof" then prod:finish("abort") end
  local deadline = how == "eof" and math.huge or vm.now() + 2
  while true do
    local st = child:wait({ timeout = TICK })
    if st then return st, sig end
    sig = sig or vm.signal_caught()
    if sig and deadline == math.huge then
      prod:finish("abort")
      deadline = vm.now() + 2
    end
    if vm.now() > deadline then
      child:kill("KILL")
      return child:wait(), sig
    end
  end
end

local session

--- Run the protocol. opts: see parent.defaults. Returns a result table
-- { code = exit code (0 ok, 1 failed, 128+n stopped by signal n), message =
--   what went wrong or nil, lines=, numbers=, errors=, seconds=,
--   lines_per_second=, sync=, out=, child_pid=, child_status= }.
function parent.run(opts)
  local o = {}
  for k, v in pairs(parent.defaults) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  if not ring.SYNC[o.sync] then error(("unknown sync '%s' (futex, poll or sem)"):format(tostring(o.sync)), 2) end
  local slots = o.sync == "poll" and 1 or o.slots
  local geometry_ok, geometry_err = ring.check_geometry(slots, o.slot_size)
  if not geometry_ok then error(geometry_err, 2) end
  local log = o.log or function(msg) io.stderr:write("vmlab sum: ", msg, "\n") end
  local interactive = o.interactive
  if interactive == nil then interactive = vm.isatty(o.fd) end
  local res = { sync = o.sync, out = o.out, lines = 0, numbers = 0, errors = 0, code = 1 }
  -- from here on SIGINT/SIGTERM/SIGHUP only set a flag: we stop, and clean up
  vm.signal_catch({ "INT", "TERM", "HUP" })
  vm.signal_caught(true)
  local ok, err = pcall(session, o, slots, res, log, interactive)
  vm.signal_restore()
  if not ok then error(err, 0) end
  return res
end

-- parent.run after its checks: everything between signal_catch and signal_restore.
function session(o, slots, res, log, interactive)
  local t0 = vm.now()
  names.sweep()
  local prog = child_program()
  if not prog then
    res.message = "cannot find vmlab/sum/child_main.lua on package.path"
    return res
  end
  if o.out ~= "-" then -- fail early, before any process or object exists
    local f, err = io.open(o.out, "w")
    if not f then
      res.message = err
      return res
    end
    f:close()
  end
  local name = names.unique("sum")
  local s, err = vm.shm_open(name, { create = true, exclusive = true, mode = tonumber("600", 8),
    size = ring.size(slots, o.slot_size) })
  if not s then
    res.message = err
    return res
  end
  ring.init(s, o.sync, slots, o.slot_size, vm.getpid())
  local prompting = interactive and vm.isatty(2)
  local ctx = {
    s = s, fd = o.fd, interactive = interactive, log = log, unlinked = false,
    prod = ring.producer(s, o.sync, slots, o.slot_size),
    prompt = prompting and function() io.stderr:write("> ") end or function() end,
  }
  local ok, how, detail = pcall(function()
    local child, spawn_err = vm.spawn({ o.lua or os.getenv("VMLAB_LUA") or "lua5.4", prog, name, o.out,
      tostring(vm.getpid()) }, { env = { LUA_PATH = package.path, LUA_CPATH = package.cpath },
      stdin = "/dev/null", death_signal = "TERM" })
    if not child then error("cannot start the child: " .. tostring(spawn_err), 0) end
    ctx.child, res.child_pid = child, child.pid
    if interactive then
      log(("type numbers separated by spaces; an empty line ends. Results go to %s."):format(o.out))
      ctx.prompt()
    end
    if o.sync == "poll" then
      ctx.staging = assert(vm.mmap(o.slot_size))
      return transfer_lines(ctx)
    end
    return transfer_slots(ctx)
  end)
  if not ok then how, detail = "error", how end
  local status, late_sig
  if ctx.child then
    local fin_ok, st, sig = pcall(finish, ctx, how)
    if fin_ok then
      status, late_sig = st, sig
    else
      if ctx.child:running() then ctx.child:kill("KILL") end
      status = ctx.child:wait()
      how, detail = how == "eof" and "error" or how, detail or st
    end
  end
  local stats = ring.stats(s)
  local state = ring.child_state(s)
  if ctx.staging then ctx.staging:close() end
  s:close() -- munmap; unlinks the name if the child never attached
  res.lines, res.numbers, res.errors = stats.lines, stats.numbers, stats.errors
  res.seconds = vm.now() - t0
  res.lines_per_second = res.seconds > 0 and res.lines / res.seconds or 0
  res.child_status = status
  if how == "signal" or late_sig then
    local sig = how == "signal" and detail or late_sig
    res.code = 128 + (vm.signals[sig] or 0)
    res.message = ("stopped by %s; the child %s; the results of %d lines are in %s"):format(sig, describe(status),
      res.lines, o.out)
  elseif how == "eof" and status and status.exited and status.code == 0 and state == "done" then
    res.code = 0
  elseif how == "eof" or how == "child" then
    res.message = ("the child (pid %s) %s after %d lines%s; the results it wrote are in %s"):format(
      tostring(res.child_pid), describe(status), res.lines, state == "failed" and " (it reported a failure)" or "",
      o.out)
  else
    res.message = ("%s; the child %s"):format(tostring(detail), describe(status))
  end
  return res
end

--- The end-of-run line for stderr.
function parent.summary(res)
  return ("%d lines, %d numbers, %d error lines, %.3f s, %.0f lines/s (sync %s, out %s)"):format(res.lines,
    res.numbers, res.errors, res.seconds or 0, res.lines_per_second or 0, res.sync, res.out)
end

return parent
