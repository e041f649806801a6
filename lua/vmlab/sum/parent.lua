--- vmlab.sum.parent: the parent of `vmlab sum` (lab section 8, done right).
--
-- The steps of the lab, in order:
--   0. open /dev/null on any closed standard descriptor (0, 1, 2), so that
--      neither the object nor the output can take its number; open the
--      output (a FIFO without a reader is waited for, signals still heard);
--   1. shm_open(name, O_CREAT|O_EXCL, 0600) with an unpredictable name that
--      carries our pid; ftruncate; mmap (vm.shm_open does the three); and
--      unlink the name at once (unless opts.keep): the object lives on in
--      our mapping and descriptor, and no name can outlive us, whoever dies;
--   2. fill the header (vmlab.sum.ring);
--   3. fork + exec the child: `lua5.4 child_main.lua NAME OUT PPID`, the
--      object's descriptor as its standard input, the output as its standard
--      output, and PR_SET_PDEATHSIG = SIGKILL (checked against a parent that
--      died before it was set), so it dies with us whatever it is blocked on;
--   4. hand the input over: batches of bytes through a ring of slots
--      (futex or sem), or line by line through one slot and a polled flag
--      (poll, the lab's protocol); from a terminal each line as it is typed;
--   5. say "end of input" (or "abort"), wait for the child, munmap.
-- Every wait has a short timeout, so the death of the child, SIGINT, SIGTERM
-- and SIGHUP are noticed within a fraction of a second.
-- @module vmlab.sum.parent
local vm = require "vmlab"
local ring = require "vmlab.sum.ring"
local names = require "vmlab.sum.names"
local describe_plural = require("vmlab.describe").plural

-- "1 line", "6774 lines", "1 error line": describe.plural's word, the count in
-- plain digits as `vmlab sum` has always printed it (scripts and specs read it).
local function plural(n, word)
  return ("%d %s"):format(n, (describe_plural(n, word):gsub("^%S+ ", "")))
end

local parent = {}

parent.defaults = {
  out = "-", sync = "futex", slots = ring.SLOTS, slot_size = ring.SLOT_SIZE,
  fd = 0,            -- the input
  interactive = nil, -- a terminal: hand each line over at once, an empty line ends (default: isatty(fd))
  lua = nil,         -- interpreter for the child (default: $VMLAB_LUA or lua5.4)
  log = nil,         -- function(message) for what a person should see (default: stderr)
  keep = false,      -- leave the object's name in /dev/shm until the run ends (default: unlinked at once)
}

local TICK = 0.2 -- seconds: the longest a wait goes without checking the child and signals
local EFAULT = 14 -- read(2) into a mapping whose object was truncated

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
  if not ctx.child:running() then return "child" end
  return nil
end

-- An error raised while the shared object was in use, as a protocol error
-- (a fault on a truncated object, a bad word).
local function protocol_error(err)
  err = tostring(err)
  return err:match("^protocol: ") and err or "protocol: " .. err
end

-- The output file, opened here and handed to the child as its standard
-- output. A FIFO with no reader yet is waited for, a signal still stops us.
-- Returns a Lua file, or nil, message, or false, signal name.
local function open_output(path, log)
  local told = false
  while true do
    local f, err = vm.open_output(path)
    if f then return f end
    if f == nil then return nil, err end
    local sig = vm.signal_caught()
    if sig then return false, sig end
    if not told then
      log(("waiting for a reader of %s"):format(path))
      told = true
    end
    vm.sleep(0.02)
  end
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
      local n, why, errno = s:read_from(ctx.fd, off, prod.slot_size, TICK)
      if n == 0 then return "eof" end
      if n == nil and errno == EFAULT then error("protocol: the shared object is gone under its mapping (" .. why
        .. ")", 0) end
      if n == nil then return "input", why end
      if n then
        if ctx.interactive then
          local text = s:read(off, n)
          if at_line_start and (text == "\n" or text == "\r\n") then return "eof" end
          at_line_start = text:sub(-1) == "\n"
        end
        prod:publish(n)
        ctx.bytes = ctx.bytes + n
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
        ctx.bytes = ctx.bytes + #piece
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
-- { code = exit code (0 ok, 1 failed, 2 bad usage: closed standard stream,
--   output that cannot be opened; 128+n stopped by signal n), message =
--   what went wrong or nil, lines=, numbers=, errors=, written=, seconds=,
--   lines_per_second=, sync=, out=, child_pid=, child_status= }.
function parent.run(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #1 to 'sum.parent.run' (table or nil expected, got %s)"):format(type(opts)), 2)
  end
  local o = {}
  for k, v in pairs(parent.defaults) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  if not ring.SYNC[o.sync] then error(("unknown sync '%s' (futex, poll or sem)"):format(tostring(o.sync)), 2) end
  local slots = o.sync == "poll" and 1 or o.slots
  local geometry_ok, geometry_err = ring.check_geometry(slots, o.slot_size)
  if not geometry_ok then error(geometry_err, 2) end
  -- first of all: a closed 0, 1 or 2 must not become the object or the output
  local filled = {}
  for _, fd in ipairs(vm.fill_std_fds() or {}) do filled[fd] = true end
  local log = o.log or function(msg) io.stderr:write("vmlab sum: ", msg, "\n") end
  local res = { sync = o.sync, out = o.out, lines = 0, numbers = 0, errors = 0, written = 0, code = 1 }
  if filled[o.fd] then
    res.code, res.message = 2, "standard input is closed: nothing to read"
    return res
  end
  if o.out == "-" and filled[1] then
    res.code, res.message = 2, "standard output is closed: name a file with --out"
    return res
  end
  local interactive = o.interactive
  if interactive == nil then interactive = vm.isatty(o.fd) end
  -- from here on SIGINT/SIGTERM/SIGHUP only set a flag: we stop, and clean up
  vm.signal_catch({ "INT", "TERM", "HUP" })
  vm.signal_caught(true)
  local ok, err = pcall(session, o, slots, res, log, interactive)
  vm.signal_restore()
  if not ok then error(err, 0) end
  return res
end

local function describe_out(o) return o.out == "-" and "standard output" or o.out end

-- parent.run after its checks: everything between signal_catch and signal_restore.
function session(o, slots, res, log, interactive)
  local t0 = vm.now()
  pcall(names.sweep, "sum") -- a sweep that fails must not stop the run
  local prog = child_program()
  if not prog then
    res.message = "cannot find vmlab/sum/child_main.lua on package.path"
    return res
  end
  local out_file
  if o.out ~= "-" then -- before any process or object exists
    local f, why = open_output(o.out, log)
    if f == false then
      res.code = 128 + (vm.signals[why] or 0)
      res.message = ("stopped by %s while waiting for a reader of %s"):format(why, o.out)
      return res
    end
    if not f then
      res.code, res.message = 2, why
      return res
    end
    out_file = f
  end
  local name = names.unique("sum")
  local s, err = vm.shm_open(name, { create = true, exclusive = true, mode = tonumber("600", 8),
    size = ring.size(slots, o.slot_size) })
  if not s then
    if out_file then out_file:close() end
    res.message = err
    return res
  end
  if not o.keep then s:unlink() end -- the child gets the object by descriptor: no name needed
  ring.init(s, o.sync, slots, o.slot_size, vm.getpid())
  local prompting = interactive and vm.isatty(2) and not (o.out == "-" and vm.isatty(1))
  local ctx = {
    s = s, fd = o.fd, interactive = interactive, log = log, bytes = 0,
    prod = ring.producer(s, o.sync, slots, o.slot_size),
    prompt = prompting and function() io.stderr:write("> ") end or function() end,
  }
  local ok, how, detail = pcall(function()
    local shm_file = assert(s:as_file())
    local child, spawn_err = vm.spawn({ o.lua or os.getenv("VMLAB_LUA") or "lua5.4", prog, name, o.out,
      tostring(vm.getpid()) }, { env = { LUA_PATH = package.path, LUA_CPATH = package.cpath },
      stdin = shm_file, stdout = out_file, death_signal = "KILL", argv0 = "vmlab-sum-child" })
    shm_file:close()
    if out_file then out_file:close() end
    if not child then error("cannot start the child: " .. tostring(spawn_err), 0) end
    ctx.child, res.child_pid = child, child.pid
    if interactive then
      log(("type numbers separated by spaces; an empty line ends. Results go to %s."):format(describe_out(o)))
      ctx.prompt()
    end
    if o.sync == "poll" then
      ctx.staging = assert(vm.mmap(o.slot_size))
      return transfer_lines(ctx)
    end
    return transfer_slots(ctx)
  end)
  if out_file and io.type(out_file) == "file" then out_file:close() end
  if not ok then how, detail = "error", protocol_error(how) end
  local status, late_sig
  if ctx.child then
    local fin_ok, st, sig = pcall(finish, ctx, how)
    if fin_ok then
      status, late_sig = st, sig
    else
      if ctx.child:running() then ctx.child:kill("KILL") end
      status = ctx.child:wait()
      how, detail = how == "eof" and "error" or how, detail or protocol_error(st)
    end
  end
  local read_ok, stats, state = pcall(function()
    local st, why = ring.stats(s, ctx.bytes)
    return st or why, ring.child_state(s)
  end)
  if not read_ok then stats, state = protocol_error(stats), "unknown" end
  if ctx.staging then ctx.staging:close() end
  s:close() -- munmap; unlinks the name if it was kept
  if type(stats) == "table" then
    res.lines, res.numbers, res.errors, res.written = stats.lines, stats.numbers, stats.errors, stats.written
  elseif how == "eof" or how == "child" then
    how, detail = "error", stats
  end
  res.seconds = vm.now() - t0
  res.lines_per_second = res.seconds > 0 and res.lines / res.seconds or 0
  res.child_status = status
  if how == "signal" or late_sig then
    local sig = how == "signal" and detail or late_sig
    res.code = 128 + (vm.signals[sig] or 0)
    res.message = ("stopped by %s; the child %s; the results of %s are in %s"):format(sig, describe(status),
      plural(res.written, "line"), describe_out(o))
  elseif how == "eof" and status and status.exited and status.code == 0 and state == "done" then
    res.code = 0
  elseif how == "eof" or how == "child" then
    res.message = ("the child (pid %s) %s after %s%s; the results it wrote are in %s"):format(
      tostring(res.child_pid), describe(status), plural(res.written, "line"),
      state == "failed" and " (it reported a failure)" or "", describe_out(o))
  else
    res.message = ("%s; the child %s"):format(tostring(detail), describe(status))
  end
  return res
end

--- The end-of-run line for stderr.
-- "6 lines, 7 numbers, 2 error lines, 0.003 s, 2015 lines/s (sync futex, out sums.txt)"; "1 line, 1 number, ...".
function parent.summary(res)
  if type(res) ~= "table" then
    error(("bad argument #1 to 'sum.parent.summary' (a result table expected, got %s)"):format(type(res)), 2)
  end
  for _, k in ipairs { "lines", "numbers", "errors" } do
    if math.type(res[k]) ~= "integer" then
      error(("sum.parent.summary: res.%s must be an integer, not %s"):format(k, type(res[k])), 2)
    end
  end
  for _, k in ipairs { "seconds", "lines_per_second" } do
    if res[k] ~= nil and type(res[k]) ~= "number" then
      error(("sum.parent.summary: res.%s must be a number or nil, not %s"):format(k, type(res[k])), 2)
    end
  end
  return ("%s, %s, %s, %.3f s, %.0f lines/s (sync %s, out %s)"):format(plural(res.lines, "line"),
    plural(res.numbers, "number"), plural(res.errors, "error line"), res.seconds or 0, res.lines_per_second or 0,
    tostring(res.sync), res.out == "-" and "standard output" or tostring(res.out))
end

return parent
