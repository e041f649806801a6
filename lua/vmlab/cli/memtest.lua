--- `vmlab memtest r|w SIZE_MiB [--pause SECONDS] [--force]` - the seed's memtest
-- (000_*.txt): malloc SIZE, then read or write it page by page, stopping every
-- 128 MiB to print VIRT, RES and the page faults so far, so that a person can
-- watch the process in htop (htop -p PID) or /proc/PID/status.
-- On a terminal it waits for Enter at each stop; otherwise it does not wait.
-- --pause S sleeps S seconds at each stop instead.
local vm = require "vmlab"
local units = vm.units

local M = { summary = "the seed's memtest: malloc SIZE MiB, read (r) or write (w) it, stop every 128 MiB" }

local STEP = 128 * 1024 * 1024

local function fail(msg)
  io.stderr:write("vmlab memtest: ", msg, "\n")
  return 2
end

local function usage(out)
  out:write("usage: vmlab memtest r|w SIZE_MiB [--pause SECONDS] [--force]\n",
    "  r: read every page (the zero page: RES stays), w: write every page (RES grows)\n",
    "  SIZE: 512 (MiB), or with a unit: 512MiB, 2GiB\n",
    "  --pause S: sleep S seconds at each 128 MiB stop instead of waiting for Enter\n",
    "  --force: allow a write bigger than MemAvailable\n")
end

local function parse(argv)
  local o = { pause = nil, force = false }
  local pos = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local key, val = a:match("^%-%-(%w+)=(.*)$")
    key = key or a:match("^%-%-(%w+)$")
    if a == "-h" or a == "--help" then return nil, "help"
    elseif key == "force" and not val then o.force = true
    elseif key == "pause" then
      if not val then i = i + 1; val = argv[i] end
      local s = tonumber(val or "")
      if not s or s < 0 or s ~= s or s > 86400 then
        return nil, ("bad value '%s' for --pause (seconds, 0 or more)"):format(tostring(val))
      end
      o.pause = s
    elseif a:sub(1, 1) == "-" and a ~= "-" then return nil, ("unknown option '%s'"):format(a)
    else pos[#pos + 1] = a end
    i = i + 1
  end
  if #pos ~= 2 then return nil, "expects a mode (r or w) and a size in MiB" end
  local mode = ({ r = "read", w = "write", read = "read", write = "write" })[pos[1]]
  if not mode then return nil, ("bad mode '%s' (r to read, w to write)"):format(pos[1]) end
  local size, err = units.parse_size(pos[2])
  if not size then return nil, err end
  o.mode, o.size = mode, size
  return o
end

local function statm()
  local s = vm.proc.statm()
  return s.size, s.resident
end

function M.main(argv)
  local o, err = parse(argv)
  if not o then
    if err == "help" then usage(io.stdout); return 0 end
    usage(io.stderr)
    return fail(err)
  end
  if o.mode == "write" and not o.force then
    local avail = vm.proc.meminfo().MemAvailable
    if avail and o.size > avail then
      return fail(("writing %s needs more than the %s available (MemAvailable); use a smaller size or --force")
        :format(units.bytes(o.size), units.bytes(avail)))
    end
  end
  local interactive = o.pause == nil and vm.isatty(0)
  local out = io.stdout
  local function show(what)
    local virt, res = statm()
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
  h:advise("nohugepage") -- 4 KiB pages: one fault per page, as in the lab
  local faults, done = 0, 0
  while done < o.size do
    local len = math.min(STEP, o.size - done)
    local t = h:touch(o.mode, { offset = done, length = len })
    faults = faults + t.minor_faults + t.major_faults
    done = done + len
    show(("%s %s"):format(o.mode == "read" and "read" or "wrote", units.bytes(done)))
    out:write(("   faults %s"):format(units.count(faults)))
    if done < o.size then stop() else out:write("\n") end
  end
  out:write(("done: %s page faults for %s pages; %s\n"):format(units.count(faults),
    units.count((o.size + vm.page_size - 1) // vm.page_size),
    o.mode == "read" and "reads mapped the zero page, so RES barely moved"
      or "each written page got its own frame, so RES grew by the size"))
  h:close()
  return 0
end

return M
