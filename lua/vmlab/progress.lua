--- vmlab.progress: a progress bar for long touches, redrawn in place.
--
--     local progress = require "vmlab.progress"
--     local t = progress.touch(r, "write", { sample = 1 << 20 })   -- bar on a terminal
--
-- The bar shows the bytes touched, RSS and page faults so far:
--
--     [##########..........]  50%  512.0 MiB of 1.0 GiB  RSS 530.2 MiB  faults 131,072
--
-- It draws only when its output is a terminal (and not when `enabled =
-- false`, as the CLI passes for --json); otherwise it writes nothing at all.
-- `progress.touch` walks the region in chunks (64 MiB by default) in C and
-- updates the bar between them, so the cost is one Lua call per chunk.
-- @module vmlab.progress
local core = require "vmlab.core"
local args = require "vmlab.args"
local units = require "vmlab.units"

local M = {}

local floor, min, max = math.floor, math.min, math.max

local bytes, count = units.bytes, units.count

--- Is `f` (default io.stdout) a terminal? `f` is a Lua file or a descriptor
-- number; anything else (a table with :write) is not a terminal.
function M.is_terminal(f)
  f = f or io.stdout
  if math.type(f) ~= "integer" and io.type(f) ~= "file" then return false end
  return core.isatty(f)
end

-- This process's RSS in bytes (vmlab.proc.rss; nil if unreadable).
local function rss_now()
  return (require("vmlab.proc").rss())
end
M.rss_now = rss_now

local Bar = {}
Bar.__index = Bar

--- A new bar.
-- @param opts {total = bytes, label = "write", enabled = nil|true|false (nil:
--   only on a terminal), out = io.stdout (anything with :write), width = 24,
--   interval = 0.1 (seconds between redraws)}
-- @return bar with :update(done, {rss=, faults=}), :finish(), .enabled
function M.new(opts)
  opts = args.check("progress.new", 1, opts, "table", true) or {}
  args.option("progress.new", "total", opts.total, "number")
  args.option("progress.new", "label", opts.label, "string")
  args.option("progress.new", "enabled", opts.enabled, "boolean")
  args.option("progress.new", "width", opts.width, "integer")
  args.option("progress.new", "interval", opts.interval, "number")
  if opts.width and (opts.width < 1 or opts.width > 1000) then
    args.fail(("bad option 'width' to 'progress.new' (1..1000 expected, got %d)"):format(opts.width))
  end
  local out = opts.out or io.stdout
  local ot = type(out)
  if (ot ~= "table" and ot ~= "userdata") or type(out.write) ~= "function" then
    args.fail(("bad option 'out' to 'progress.new' (a file or anything with :write expected, got %s)"):format(ot))
  end
  local enabled = opts.enabled
  if enabled == nil then enabled = M.is_terminal(out) end
  return setmetatable({
    total = opts.total or 0, label = opts.label, enabled = enabled and true or false, out = out,
    width = opts.width or 24, interval = opts.interval or 0.1, last = -math.huge, drawn = false,
  }, Bar)
end

--- The bar's line for `done` bytes (no "\r"): for tests and custom output.
function Bar:line(done, info)
  info = info or {}
  local frac = self.total > 0 and min(1, max(0, done / self.total)) or 0
  local fill = floor(frac * self.width + 0.5)
  local parts = {
    ("[%s%s] %3d%%"):format(("#"):rep(fill), ("."):rep(self.width - fill), floor(frac * 100 + 0.5)),
    ("%s of %s"):format(bytes(done), bytes(self.total)),
  }
  if self.label then table.insert(parts, 1, self.label) end
  if info.rss then parts[#parts + 1] = "RSS " .. bytes(info.rss) end
  if info.faults then parts[#parts + 1] = "faults " .. count(info.faults) end
  return table.concat(parts, "  ")
end

--- Redraw in place (at most every `interval` seconds, and always at 100%).
-- @param done bytes done so far
-- @param info {rss = bytes, faults = count}
function Bar:update(done, info)
  if not self.enabled then return end
  local now = core.now()
  if now - self.last < self.interval and done < self.total then return end
  self.last = now
  self.out:write("\r", self:line(done, info), "\27[K")
  if self.out.flush then self.out:flush() end
  self.drawn = true
end

--- End the bar's line (a newline after the last redraw); clear = true wipes
-- it instead, leaving the cursor at the start of an empty line.
function Bar:finish(clear)
  if not (self.enabled and self.drawn) then return end
  self.out:write(clear and "\r\27[K" or "\n")
  if self.out.flush then self.out:flush() end
  self.drawn = false
end

--- Wipe the bar off its line so other output can be printed there; the
-- next update draws it again (immediately).
function Bar:clear()
  if not (self.enabled and self.drawn) then return end
  self.out:write("\r\27[K")
  if self.out.flush then self.out:flush() end
  self.drawn, self.last = false, -math.huge
end

-- Bar methods called on something that is not a bar, or with a wrong
-- argument, raise an error naming it.
local function check_bar(fn, self)
  if getmetatable(self) ~= Bar then args.bad("progress.Bar:" .. fn, 1, "a progress bar (self)", self) end
end
for _, fn in ipairs { "line", "update" } do
  local raw = Bar[fn]
  Bar[fn] = function(self, done, info)
    check_bar(fn, self)
    args.check("progress.Bar:" .. fn, 2, done, "number")
    args.check("progress.Bar:" .. fn, 3, info, "table", true)
    return raw(self, done, info)
  end
end
for _, fn in ipairs { "finish", "clear" } do
  local raw = Bar[fn]
  Bar[fn] = function(self, ...)
    check_bar(fn, self)
    return raw(self, ...)
  end
end

M.Bar = Bar

--- A bar for every r:touch of this process until the returned function is
-- called (it wipes the bar and puts back the previous touch hook). Through
-- vm.set_touch_hook: each touch walks in pieces of about 64 MiB and the bar
-- shows bytes walked, RSS and faults between them. Nothing happens when the
-- bar is not enabled (output not a terminal, or enabled = false).
-- @param opts {label = "lazy", enabled = nil|true|false, out = io.stdout}
-- @return stop function
function M.during_touches(opts)
  opts = args.check("progress.during_touches", 1, opts, "table", true) or {}
  local bar = M.new { total = 0, label = opts.label, enabled = opts.enabled, out = opts.out }
  if not bar.enabled then return function() end end
  local previous = core.set_touch_hook(function(done, total, faults)
    if total ~= bar.total then bar.total, bar.last = total, -math.huge end -- a new touch: draw at once
    -- called after every piece (every access when the stride is over 64 MiB):
    -- read /proc only when the bar is redrawn
    if done < total and core.now() - bar.last < bar.interval then return end
    bar:update(done, { rss = rss_now(), faults = faults })
  end)
  return function()
    core.set_touch_hook(previous)
    bar:finish(true)
  end
end

--- r:touch(mode, opts) in chunks, with a progress bar between them.
-- The result is the one a single r:touch would give: pages, bytes, seconds
-- (the sum of the chunks' walks), minor_faults, major_faults and, with
-- opts.sample, one timeline whose t, bytes and faults run on across chunks.
-- @param r an open Region
-- @param mode "read"|"write"
-- @param opts r:touch's options (offset, length, stride, sample, value) plus
--   chunk = bytes per chunk (default 64 MiB, rounded up to whole strides),
--   progress = a bar's options ({enabled = false} for none), on_chunk =
--   function(sofar, bar) called after each chunk with the result so far
--   and the bar (call bar:clear() before printing; return false to stop early)
-- @return the merged touch result
function M.touch(r, mode, opts)
  if not args.is_a(r, "vmlab.Region") then
    args.bad("progress.touch", 1, "a vmlab.Region", r)
  end
  if mode ~= "read" and mode ~= "write" then args.bad("progress.touch", 2, "\"read\" or \"write\"", mode) end
  opts = args.check("progress.touch", 3, opts, "table", true) or {}
  for _, k in ipairs { "offset", "length", "stride", "chunk" } do
    args.option("progress.touch", k, opts[k], "integer")
  end
  args.option("progress.touch", "progress", opts.progress, "table")
  args.option("progress.touch", "on_chunk", opts.on_chunk, "function")
  local ps = core.page_size
  local off = opts.offset or 0
  local len = opts.length or (r.size - off)
  local stride = opts.stride or ps
  local chunk = opts.chunk or (64 << 20)
  chunk = max(stride, (chunk + stride - 1) // stride * stride)
  local popts = opts.progress or {}
  local bar = M.new { total = len, label = popts.label or mode, enabled = popts.enabled, out = popts.out,
    width = popts.width, interval = popts.interval }
  local result = { pages = 0, bytes = 0, seconds = 0, minor_faults = 0, major_faults = 0, mode = mode }
  if opts.sample then result.timeline = {} end
  local done = 0
  while done < len do
    local n = min(chunk, len - done)
    local t = r:touch(mode, { offset = off + done, length = n, stride = stride, sample = opts.sample,
      value = opts.value })
    if t.timeline then
      local tl = result.timeline
      for i, s in ipairs(t.timeline) do
        if i > 1 or #tl == 0 then
          tl[#tl + 1] = { t = result.seconds + s.t, bytes = done + s.bytes, rss = s.rss, virt = s.virt,
            minor_faults = result.minor_faults + s.minor_faults, major_faults = result.major_faults + s.major_faults }
        end
      end
    end
    result.pages = result.pages + t.pages
    result.seconds = result.seconds + t.seconds
    result.minor_faults = result.minor_faults + t.minor_faults
    result.major_faults = result.major_faults + t.major_faults
    done = done + n
    result.bytes = done
    bar:update(done, { rss = rss_now(), faults = result.minor_faults + result.major_faults })
    if opts.on_chunk and opts.on_chunk(result, bar) == false then break end
  end
  bar:finish()
  return result
end

return M
