--- vmlab.child: run a function in a forked child and get back what it returned.
--
--     local result, status = vm.child.run(function(ctx)
--       -- ... an experiment that may crash ...
--       return { faults = 12, frames = { 1, 2, 3 } }
--     end, { timeout = 5 })
--
-- The child writes its result into a shared anonymous mapping (opts.buffer
-- bytes, default 1 MiB) made before the fork, then ends with _exit(0). The
-- values travel as a small tagged binary encoding (string.pack): nil,
-- booleans, integers, floats, strings and tables of those (nested, no
-- cycles). Functions, userdata and threads are refused.
-- @module vmlab.child
local core = require "vmlab.core"

local M = {}

local pack, unpack = string.pack, string.unpack
local concat, type, pairs = table.concat, type, pairs
local math_type = math.type

local HEADER = "<I4I4I8" -- state, reserved, payload length
local HEADER_SIZE = pack(HEADER, 0, 0, 0):len()
local EMPTY, RESULT, FAILED, REPORT = 0, 1, 2, 3
local MAX_DEPTH = 200

-- Encoding ---------------------------------------------------------------

local function encode(v, out, depth, seen)
  local t = type(v)
  if t == "nil" then
    out[#out + 1] = "n"
  elseif t == "boolean" then
    out[#out + 1] = v and "T" or "F"
  elseif t == "number" then
    out[#out + 1] = math_type(v) == "integer" and pack("<c1j", "i", v) or pack("<c1n", "f", v)
  elseif t == "string" then
    out[#out + 1] = pack("<c1s4", "s", v)
  elseif t == "table" then
    if seen[v] then error("vmlab.child: cannot send a table that contains itself", 0) end
    if depth >= MAX_DEPTH then error("vmlab.child: tables nested deeper than " .. MAX_DEPTH, 0) end
    seen[v] = true
    local n, at = 0, #out + 1
    out[at] = "" -- the count goes here
    for k, x in pairs(v) do
      encode(k, out, depth + 1, seen)
      encode(x, out, depth + 1, seen)
      n = n + 1
    end
    out[at] = pack("<c1I4", "t", n)
    seen[v] = nil
  else
    error("vmlab.child: cannot send a " .. t .. " value to the parent", 0)
  end
end

--- Encode a value (see the module comment) into a string.
-- @return string
function M.encode(v)
  local out = {}
  encode(v, out, 0, {})
  return concat(out)
end

local function decode(s, pos, depth)
  local tag = s:sub(pos, pos)
  if tag == "n" then return nil, pos + 1 end
  if tag == "T" then return true, pos + 1 end
  if tag == "F" then return false, pos + 1 end
  if tag == "i" then return unpack("<j", s, pos + 1) end
  if tag == "f" then return unpack("<n", s, pos + 1) end
  if tag == "s" then return unpack("<s4", s, pos + 1) end
  if tag == "t" then
    if depth >= MAX_DEPTH then error("vmlab.child: encoded tables nest too deep", 0) end
    local n, p = unpack("<I4", s, pos + 1)
    local t = {}
    for _ = 1, n do
      local k, x
      k, p = decode(s, p, depth + 1)
      x, p = decode(s, p, depth + 1)
      if k == nil then error("vmlab.child: encoded table has a nil key", 0) end
      t[k] = x
    end
    return t, p
  end
  error(("vmlab.child: bad encoding at byte %d"):format(pos), 0)
end

--- Decode a string made by encode.
-- @return the value
function M.decode(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'decode' (string expected, got " .. (math_type(s) or type(s)) .. ")", 2)
  end
  local ok, v, pos = pcall(decode, s, 1, 0)
  if not ok then -- string.unpack's own complaint ("data string too short") says little here
    error(("vmlab.child: bad encoding (%s)"):format(tostring(v):gsub("^vmlab%.child: ", "")), 0)
  end
  if pos ~= #s + 1 then error("vmlab.child: trailing bytes after the encoded value", 0) end
  return v
end

-- The shared buffer --------------------------------------------------------

-- Child side: store state + payload (payload first, header last).
local function put(buf, state, payload)
  local room = buf.size - HEADER_SIZE
  if #payload > room then
    local msg = ("vmlab.child: the result needs %d bytes but opts.buffer leaves room for %d"):format(#payload, room)
    put(buf, FAILED, msg:sub(1, room))
    return false, msg
  end
  buf:write(0, pack(HEADER, EMPTY, 0, 0))
  buf:write(HEADER_SIZE, payload)
  buf:write(0, pack(HEADER, state, 0, #payload))
  return true
end

-- Parent side: state, payload.
local function get(buf)
  local state, _, len = unpack(HEADER, buf:read(0, HEADER_SIZE))
  if state == EMPTY or len > buf.size - HEADER_SIZE then return EMPTY, nil end
  return state, buf:read(HEADER_SIZE, len)
end

local function traceback(e)
  return debug.traceback(type(e) == "string" and e or tostring(e), 2)
end

--- Run fn(ctx) in a forked child and return what it returned.
-- ctx.report(value) stores a value at once, so that it survives a crash
-- later in the child (it comes back as status.report); ctx.parent is the
-- parent's pid. The child gets SIGKILL if the parent dies.
-- @param fn function(ctx) returning one value
-- @param opts {buffer = bytes (default 1 MiB), timeout = seconds}
-- @return result, status: status is the child's wait status ({exited=,
--   code=, signaled=, signal=, signal_name=, core_dumped=, ...}) plus
--   `error` (the child's error message and traceback), `timed_out`, `report`.
--   result is nil unless the child returned normally. A failed mmap or fork
--   gives nil, msg, errno.
function M.run(fn, opts)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'run' (function expected, got " .. type(fn) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'run' (table of options expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "buffer" and k ~= "timeout" then error("bad option '" .. tostring(k) .. "' (unknown option)", 2) end
  end
  local size = opts.buffer or 1024 * 1024
  if math_type(size) ~= "integer" or size < HEADER_SIZE + 1 or size > 1 << 40 then
    error("bad option 'buffer' (integer number of bytes " .. (HEADER_SIZE + 1) .. " .. 2^40 expected)", 2)
  end
  local timeout = opts.timeout
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout or timeout < 0) then
    error("bad option 'timeout' (number of seconds >= 0 expected)", 2)
  end

  local buf <close>, err, code = core.mmap(size, { share = "shared" })
  if not buf then return nil, err, code end
  local parent = core.getpid()

  local child, ferr, fcode = core.fork(function()
    core.set_parent_death_signal("KILL")
    if core.getppid() ~= parent then return 1 end -- the parent is already gone
    local ctx = {
      parent = parent,
      report = function(v)
        local ok, e = put(buf, REPORT, M.encode(v))
        if not ok then error(e, 2) end
      end,
    }
    local ok, value = xpcall(fn, traceback, ctx)
    if ok then
      local eok, payload = pcall(M.encode, value)
      if eok and put(buf, RESULT, payload) then return 0 end
      if not eok then put(buf, FAILED, payload) end
      return 1
    end
    put(buf, FAILED, value)
    return 1
  end)
  if not child then return nil, ferr, fcode end

  local status, why
  if timeout then
    status, why = child:wait({ timeout = timeout })
    if not status and why == "timeout" then
      child:kill("KILL")
      status = child:wait()
      status.timed_out = true
    end
  else
    status, why = child:wait()
  end
  if not status then return nil, why end

  local state, payload = get(buf)
  local result, ok, value
  if state == RESULT or state == REPORT then
    ok, value = pcall(M.decode, payload)
    if not ok then
      status.error = "vmlab.child: the child's result was damaged: " .. value
    elseif state == REPORT then
      status.report = value
    elseif status.exited and status.code == 0 then
      result = value
    end
  elseif state == FAILED then
    status.error = payload
  end
  return result, status
end

return M
