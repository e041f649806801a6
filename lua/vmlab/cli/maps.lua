--- `vmlab maps PID [--json]`: a pmap-like view of any process's memory, from
-- /proc/PID/smaps - like `pmap -x PID`: for each mapping its address,
-- size, resident (RSS), proportional (PSS), dirty and swapped kilobytes,
-- its mode and what it maps; then a totals line. --json: one JSON object,
-- sizes in bytes, keys always in the same order.
-- Exit status: 0 done, 2 bad usage or no such process (or smaps not
-- readable: another user's process needs privilege).
local proc = require "vmlab.proc"
local report = require "vmlab.report"

local M = { summary = "a pmap -x like view of a process: address, Kbytes, RSS, PSS, Dirty, Swap, mode, mapping" }

M.columns = { "address", "size", "rss", "pss", "dirty", "swap", "mode", "mapping" }

function M.parser()
  local p = require("vmlab.cli").new("vmlab maps", "Shows the mappings of a process as `pmap -x` does, from "
    .. "/proc/PID/smaps: address, size (Kbytes), resident (RSS), proportional share (PSS), dirty and swapped "
    .. "kilobytes, mode (r, w, x, s shared or p private) and the mapping (a file, [heap], [stack], [anon]), "
    .. "then the totals.")
  p:argument("pid", "The process (self: this one; see `pgrep -f vmlab-memtest`)."):argname("PID")
  p:flag("--json", "One JSON object: {pid, name, mappings = [...], total}, sizes in bytes, addresses in hex.")
  return p
end

local function mapping_name(m)
  if m.path == "" then return "[ anon ]" end
  return m.path .. (m.deleted and " (deleted)" or "")
end

--- The view of process pid: { pid=, name=, mappings = { {address=, size=,
-- rss=, pss=, dirty=, swap=, mode=, mapping=}, ... }, total = {size=, rss=,
-- pss=, dirty=, swap=} } (sizes in bytes), or nil and the reason.
function M.view(pid)
  local list, err = proc.smaps(pid)
  if not list then return nil, err end
  local st = proc.status(pid)
  local v = { pid = pid, name = st and st.Name or nil, mappings = {},
    total = { size = 0, rss = 0, pss = 0, dirty = 0, swap = 0 } }
  for _, m in ipairs(list) do
    local row = {
      address = m.start, size = m.size, rss = m.Rss or 0, pss = m.Pss or 0,
      dirty = (m.Shared_Dirty or 0) + (m.Private_Dirty or 0), swap = m.Swap or 0,
      mode = m.perms, mapping = mapping_name(m),
    }
    v.mappings[#v.mappings + 1] = row
    for k in pairs(v.total) do v.total[k] = v.total[k] + row[k] end
  end
  return v
end

local function kb(n) return tostring(n // 1024) end

--- The view as pmap -x lays it out (one string).
function M.text(v)
  local lines = { ("%d:   %s"):format(v.pid, v.name or "?"),
    ("%-16s %10s %10s %10s %10s %10s %-5s %s"):format("Address", "Kbytes", "RSS", "PSS", "Dirty", "Swap", "Mode",
      "Mapping") }
  for _, r in ipairs(v.mappings) do
    lines[#lines + 1] = ("%016x %10s %10s %10s %10s %10s %-5s %s"):format(r.address, kb(r.size), kb(r.rss),
      kb(r.pss), kb(r.dirty), kb(r.swap), r.mode, r.mapping)
  end
  local t = v.total
  lines[#lines + 1] = ("%s %s %s %s %s %s"):format(("-"):rep(16), ("-"):rep(10), ("-"):rep(10), ("-"):rep(10),
    ("-"):rep(10), ("-"):rep(10))
  lines[#lines + 1] = ("%-16s %10s %10s %10s %10s %10s"):format("total kB", kb(t.size), kb(t.rss), kb(t.pss),
    kb(t.dirty), kb(t.swap))
  return table.concat(lines, "\n") .. "\n"
end

-- An object with its keys in the order given.
local function object(t, keys)
  local parts = {}
  for _, k in ipairs(keys) do
    if t[k] ~= nil then parts[#parts + 1] = report.encode(k) .. ":" .. report.encode(t[k]) end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- The view as one JSON object (keys in a fixed order, sizes in bytes).
function M.json(v)
  local rows = {}
  for i, r in ipairs(v.mappings) do
    local row = table.move(r, 1, 0, 1, {})
    for k, x in pairs(r) do row[k] = x end
    row.address = ("%016x"):format(r.address) -- hex text, as in maps (the vsyscall page lies above 2^63)
    rows[i] = object(row, M.columns)
  end
  return ('{"pid":%d,"name":%s,"mappings":[%s],"total":%s}'):format(v.pid, report.encode(v.name or ""),
    table.concat(rows, ","), object(v.total, { "size", "rss", "pss", "dirty", "swap" }))
end

function M.main(argv, out, err)
  out, err = out or io.stdout, err or io.stderr
  local cli = require "vmlab.cli"
  local args, code = cli.parse(M.parser(), argv, nil, out, err)
  if not args then return code end
  local pid = args.pid == "self" and require("vmlab").getpid()
    or (args.pid:match("^%d+$") and math.tointeger(tonumber(args.pid)))
  if not pid or pid < 1 or pid > 0x3fffffff then
    return cli.usage_error("vmlab maps", ("bad pid '%s' (a process id: a whole number above 0)"):format(args.pid),
      err)
  end
  local v, why = M.view(pid)
  if not v then
    err:write(("vmlab maps: cannot read /proc/%d/smaps: %s\n"):format(pid, tostring(why)))
    return 2
  end
  out:write(args.json and (M.json(v) .. "\n") or M.text(v))
  return 0
end

return M
