--- `vmlab memtest r|w SIZE_MiB [--pause SECONDS] [--force] [--json] [--plot FILE.svg]`
-- - the seed's memtest (000_*.txt): malloc SIZE, then read or write it page by
-- page, stopping every 128 MiB to print VIRT, RES and the page faults so far,
-- so that a person can watch the process in htop (htop -p PID) or
-- /proc/PID/status. On a terminal it waits for Enter at each stop and shows a
-- progress bar between stops; otherwise it does neither.
-- --pause S sleeps S seconds at each stop instead.
-- The touch is sampled (a timeline: every 1 MiB and at every stop):
-- --plot writes it as an SVG chart, --json prints one JSON object with it
-- (and nothing else: no bar, no waiting).
-- Its closing words are the lazy experiment's claims, decided from memtest's
-- own stops (VIRT and RES before and after malloc and at the end), its fault
-- count and PAGEMAP_SCAN: whether a read left RES alone is measured, not told.
local vm = require "vmlab"
local units = vm.units

local M = { summary = "the seed's memtest: malloc SIZE MiB, read (r) or write (w) it, stop every 128 MiB" }

local STEP = 128 * 1024 * 1024 -- a stop every 128 MiB
local CHUNK = 16 * 1024 * 1024 -- the progress bar moves every 16 MiB (STEP is a multiple)
local SAMPLE = 1024 * 1024 -- a timeline sample every 1 MiB

local function fail(msg)
  io.stderr:write("vmlab memtest: ", msg, "\n")
  return 2
end

function M.parser()
  local p = require("vmlab.cli").new("vmlab memtest", "The seed's memtest: malloc SIZE, then read (r) or write "
    .. "(w) it page by page, stopping every 128 MiB to print VIRT, RES and the page faults so far, so that you "
    .. "can watch the process (htop -p PID, pgrep -f vmlab-memtest, vmlab watch PID, vmlab maps PID). On a "
    .. "terminal it waits for Enter at each stop; its closing words are the lazy experiment's claims, decided "
    .. "from its own numbers.")
  p:argument("mode", "r: read every page, w: write every page."):choices({ "r", "w", "read", "write" })
    :argname("r|w")
  p:argument("size", "How much to malloc: a bare number is MiB, as the lab wrote it (512), or a size with "
    .. "its unit (512MiB, 2GiB)."):argname("SIZE_MiB")
  p:option("--pause", "Sleep SECONDS at each 128 MiB stop instead of waiting for Enter (0 or more)."):argname(
    "SECONDS")
  p:flag("--force", "Allow a write bigger than MemAvailable.")
  p:flag("--json", "Print one JSON object (the stops and the timeline) instead, without waiting.")
  p:option("--plot", "Draw RSS, VIRT and faults against the bytes touched into this SVG file."):argname("FILE.svg")
  return p
end

-- The parsed options {mode=, size=, pause=, force=, json=, plot=}, or nil and the exit code.
local function parse(argv)
  local cli = require "vmlab.cli"
  local args, code = cli.parse(M.parser(), argv)
  if not args then return nil, code end
  local o = { force = args.force, json = args.json, plot = args.plot }
  if o.plot == "" then return nil, cli.usage_error("vmlab memtest", "--plot needs a file name (FILE.svg)") end
  if args.pause then
    local s = tonumber(args.pause)
    if not s or s < 0 or s ~= s or s > 86400 then
      return nil, cli.usage_error("vmlab memtest", ("bad value '%s' for --pause (seconds, 0 or more)"):format(
        args.pause))
    end
    o.pause = s
  end
  o.mode = ({ r = "read", w = "write", read = "read", write = "write" })[args.mode]
  local size, err = units.parse_size(args.size, "MiB")
  if not size then return nil, cli.usage_error("vmlab memtest", err) end
  o.size = size
  return o
end

local function statm()
  local s = vm.proc.statm()
  return s.size, s.resident
end

--- memtest's numbers as a result of the lazy experiment (malloc, then a read
-- or a write of every page), with lazy's claims decided from them.
-- @param o the options (mode, size); stops: before malloc, after malloc, ..., the last
-- @return { alloc=, mode=, size=, ..., claims = { decided claims } }
function M.claims(o, stops, t, pages, scan)
  local experiments = require "vmlab.experiments"
  local before, alloc, last = stops[1], stops[2], stops[#stops]
  local result = {
    alloc = "malloc", mode = o.mode, size = o.size, pages = pages, written = o.mode == "write" and o.size or 0,
    virt_growth = alloc.virt - before.virt, rss_growth_alloc = alloc.rss - before.rss,
    rss_growth_touch = last.rss - alloc.rss, minor_faults_touch = t.minor_faults,
    pfnzero = scan and scan.pfnzero,
  }
  result.claims = experiments.decide(experiments.get("lazy"), result)
  return result
end

function M.main(argv)
  local o, code = parse(argv)
  if not o then return code end
  if o.mode == "write" and not o.force then
    local avail = vm.proc.meminfo().MemAvailable
    if avail and o.size > avail then
      return fail(("writing %s needs more than the %s available (MemAvailable); use a smaller size or --force")
        :format(units.bytes(o.size), units.bytes(avail)))
    end
  end
  local interactive = o.pause == nil and not o.json and vm.isatty(0)
  -- with --json the lines a person reads go nowhere: stdout holds the JSON alone
  local out = o.json and { write = function() end, flush = function() end } or io.stdout
  local stops = {}
  local function show(what)
    local virt, res = statm()
    stops[#stops + 1] = { what = what, virt = virt, rss = res }
    out:write(("%-28s VIRT %10s   RES %10s"):format(what, units.bytes(virt), units.bytes(res)))
  end
  -- End a stop's line: wait for Enter (its echo ends the line), or sleep, or go on.
  local function stop()
    if interactive then
      out:write("   [Enter] ")
      out:flush()
      if io.stdin:read("l") ~= nil then return end
      interactive = false -- stdin closed: stop asking
    elseif o.pause then
      out:flush()
      vm.sleep(o.pause)
    end
    out:write("\n")
  end

  out:write(("memtest: pid %d - watch it with: htop -p %d   or   grep -E 'VmRSS|VmSize' /proc/%d/status\n")
    :format(vm.getpid(), vm.getpid(), vm.getpid()))
  show("before malloc")
  stop()
  local h, merr = vm.malloc(o.size)
  if not h then
    io.stderr:write(("vmlab memtest: malloc(%s) failed: %s\n"):format(units.bytes(o.size), merr))
    return 1
  end
  show(("after malloc(%s)"):format(units.bytes(o.size)))
  stop()
  h:advise("nohugepage") -- base pages: one fault per page, as in the lab
  -- Chunks of 16 MiB with a bar between them (on a terminal, not with --json);
  -- every 128 MiB (a chunk boundary, so the timeline has a sample there) a stop.
  local t = require("vmlab.progress").touch(h, o.mode, {
    length = o.size, chunk = CHUNK, sample = SAMPLE,
    progress = { enabled = (not o.json) and nil },
    on_chunk = function(s, bar)
      if s.bytes % STEP ~= 0 and s.bytes < o.size then return end
      bar:clear()
      show(("%s %s"):format(o.mode == "read" and "read" or "wrote", units.bytes(s.bytes)))
      local faults = s.minor_faults + s.major_faults
      stops[#stops].bytes, stops[#stops].faults = s.bytes, faults
      out:write(("   faults %s"):format(units.count(faults)))
      if s.bytes < o.size then stop() else out:write("\n") end
    end,
  })
  local faults = t.minor_faults + t.major_faults
  local pages = (o.size + vm.page_size - 1) // vm.page_size
  local scan = h:scan() -- PAGEMAP_SCAN (Linux 6.7+): pages on the zero page, no privilege needed
  h:close()
  local claims = M.claims(o, stops, t, pages, scan)
  out:write(("done: %s page faults for %s pages; RES %s%s\n"):format(units.count(faults), units.count(pages),
    stops[#stops].rss >= stops[2].rss and "+" or "", units.bytes(stops[#stops].rss - stops[2].rss)))
  for _, line in ipairs(require("vmlab.report").claims_lines({}, claims, require("vmlab.experiments").get("lazy"))) do
    out:write(line, "\n")
  end
  if o.json then
    local report = require "vmlab.report"
    io.stdout:write(report.json {
      experiment = "memtest",
      params = { mode = o.mode, size = o.size },
      system = require("vmlab.experiments").system_record(),
      result = { mode = o.mode, size = o.size, pages = pages, bytes = t.bytes, seconds = t.seconds,
                 minor_faults = t.minor_faults, major_faults = t.major_faults, stops = stops,
                 pfnzero = claims.pfnzero, claims = claims.claims, timeline = t.timeline },
    }, "\n")
  end
  if o.plot then
    local plot = require "vmlab.plot"
    local ok, werr = plot.write(o.plot, plot.timeline(t.timeline, {
      title = ("vmlab memtest: %s %s with malloc"):format(o.mode, units.bytes(o.size)) }))
    if not ok then
      io.stderr:write(("vmlab memtest: cannot write the chart: %s\n"):format(tostring(werr)))
      return 1
    end
    out:write(("chart written to %s\n"):format(o.plot))
  end
  return 0
end

return M
