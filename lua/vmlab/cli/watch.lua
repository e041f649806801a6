--- `vmlab watch PID [--interval 0.5] [--count N] [--json]` - the outside
-- observer the lab does with `watch ps` and /proc/PID/status: another
-- process's VmRSS and VmSize (/proc/PID/status), its minor and major page
-- faults (/proc/PID/stat) and its Rss, Pss and Anonymous memory
-- (/proc/PID/smaps_rollup), one line per sample, or one JSON object per line
-- with --json. Stops after N samples, or when the process exits.
-- Exit status: 0 done, 2 bad usage or no such process.
local core = require "vmlab.core"
local proc = require "vmlab.proc"
local report = require "vmlab.report"
local units = require "vmlab.units"

local M = { summary = "watch another process's memory: vmlab watch PID [--interval 0.5] [--count N] [--json]" }

local function bytes(n) return n and units.bytes(n) or "-" end

-- "0.5", "0.5s", "250ms" -> seconds, or nil
local function seconds(text)
  if text == nil then return nil end
  local n, unit = text:match("^%s*(%d*%.?%d+)%s*(%a*)%s*$")
  n = tonumber(n)
  if not n then return nil end
  if unit == "ms" then n = n / 1000 elseif unit ~= "" and unit ~= "s" then return nil end
  return n
end

function M.parser()
  local p = require("vmlab.cli").new("vmlab watch", "Watches another process's memory the way the lab does "
    .. "with `watch ps` and /proc/PID/status: VmRSS and VmSize (/proc/PID/status), its minor and major page "
    .. "faults (/proc/PID/stat) and its Rss, Pss and Anonymous memory (/proc/PID/smaps_rollup), one line per "
    .. "sample, until it exits or Ctrl-C.")
  p:argument("pid", "The process to watch (see `pgrep -f vmlab-memtest`, or the pid `vmlab memtest` prints).")
    :argname("PID")
  p:option("--interval", "Seconds between samples: 0.5, 2s or 250ms.", "0.5"):argname("SECONDS")
  p:option("--count", "Stop after N samples (default: until the process exits)."):argname("N")
  p:flag("--json", "One JSON object per sample and line, sizes in bytes, times in seconds.")
  return p
end

--- Parse the arguments: {pid=, interval=, count=, json=} or nil and the
-- message (bad usage) or nil, "help" (-h/--help was given).
function M.parse(argv)
  for _, a in ipairs(argv) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then return nil, "help" end
  end
  local ok, args = M.parser():pparse(argv)
  if not ok then return nil, args end
  local o = { json = args.json }
  local s = seconds(args.interval)
  if not s or s <= 0 or s > 86400 then
    return nil, ("bad value '%s' for --interval (seconds above 0, such as 0.5 or 250ms)"):format(args.interval)
  end
  o.interval = s
  if args.count then
    local n = math.tointeger(tonumber(args.count))
    if not n or n < 1 then
      return nil, ("bad value '%s' for --count (a whole number, 1 or more)"):format(args.count)
    end
    o.count = n
  end
  local pid = args.pid:match("^%d+$") and math.tointeger(tonumber(args.pid))
  if not pid or pid < 1 or pid > 0x3fffffff then
    return nil, ("bad pid '%s' (a process id: a whole number above 0)"):format(args.pid)
  end
  o.pid = pid
  return o
end

--- One sample of process pid: {pid=, name=, state=, rss=, virt=,
-- minor_faults=, major_faults=, smaps_rollup = {rss=, pss=, anonymous=} or
-- nil (not readable)}, or nil and why (the process is gone or a zombie).
function M.sample(pid)
  local st, err = proc.status(pid)
  if not st then return nil, err end
  if tostring(st.State or ""):match("^[ZX]") then return nil, "exited" end
  local stat = proc.stat(pid)
  if not stat then return nil, "exited" end
  local s = { pid = pid, name = st.Name, state = st.State, rss = st.VmRSS or 0, virt = st.VmSize or 0,
    minor_faults = stat.minflt, major_faults = stat.majflt }
  local roll = proc.smaps_rollup(pid)
  if roll then s.smaps_rollup = { rss = roll.Rss, pss = roll.Pss, anonymous = roll.Anonymous } end
  return s
end

local HEADER = ("%8s %11s %11s %11s %8s %11s %11s %11s")
  :format("time", "VmRSS", "VmSize", "minflt", "majflt", "Rss", "Pss", "Anonymous")

local function line(s, prev)
  local roll = s.smaps_rollup or {}
  local df = prev and (" (+%d)"):format(s.minor_faults - prev.minor_faults) or ""
  return ("%7.2fs %11s %11s %11s %8d %11s %11s %11s"):format(s.t, bytes(s.rss), bytes(s.virt),
    tostring(s.minor_faults) .. df, s.major_faults, bytes(roll.rss), bytes(roll.pss), bytes(roll.anonymous))
end

--- Watch with parsed options o, writing to out (default io.stdout).
-- @return exit code
function M.watch(o, out, err)
  out, err = out or io.stdout, err or io.stderr
  local first, why = M.sample(o.pid)
  if not first then
    err:write(("vmlab watch: no process with pid %d (%s)\n"):format(o.pid, why == "exited" and "it has exited"
      or "nothing in /proc/" .. o.pid))
    return 2
  end
  if not o.json then
    out:write(("watching pid %d (%s) every %gs%s\n"):format(o.pid, first.name or "?", o.interval,
      o.count and (", %d sample%s"):format(o.count, o.count == 1 and "" or "s") or ", until it exits (Ctrl-C stops)"))
    if not first.smaps_rollup then
      out:write("(smaps_rollup is not readable for this process: Rss/Pss/Anonymous show -)\n")
    end
    out:write(HEADER, "\n")
  end
  local t0 = core.now()
  local s, prev, n = first, nil, 0
  while true do
    s.t = core.now() - t0
    n = n + 1
    out:write(o.json and report.encode(s, true) or line(s, prev), "\n")
    if out.flush then out:flush() end
    if o.count and n >= o.count then return 0 end
    prev = s
    core.sleep(o.interval)
    s = M.sample(o.pid)
    if not s then
      if o.json then
        out:write(report.encode { pid = o.pid, t = core.now() - t0, exited = true }, "\n")
      else
        out:write(("process %d exited after %d samples\n"):format(o.pid, n))
      end
      if out.flush then out:flush() end
      return 0
    end
  end
end

--- The command: argv without "watch"; out/err default to io.stdout/io.stderr.
function M.main(argv, out, err)
  out, err = out or io.stdout, err or io.stderr
  local o, msg = M.parse(argv)
  if not o then
    if msg == "help" then
      out:write(M.parser():get_help(), "\n")
      return 0
    end
    return require("vmlab.cli").usage_error("vmlab watch", msg, err)
  end
  return M.watch(o, out, err)
end

return M
