--- vmlab.self: a one-screen summary of this process's memory, for the REPL.
--
--     $ lua5.4 -i -l vmlab          (or: vm = require "vmlab")
--     > vm.self()
--     process 4242 (lua5.4): VIRT 14.2 MiB, RES 5.1 MiB (anonymous 1.2 MiB, file 3.9 MiB, shared 0 B), peak RES 5.1 MiB
--     page faults: 1,310 minor, 0 major
--     kind        mappings        size         RSS
--     heap               1     264.0 KiB    180.0 KiB
--     ...
--
-- `vm.self()` returns the text (the REPL prints it); `vm.self.data()` returns
-- the numbers it is made of.
-- @module vmlab.self
local core = require "vmlab.core"
local units = require "vmlab.units"
local proc = require "vmlab.proc"
local faults = require "vmlab.faults"

local M = {}

local bytes, count = units.bytes, units.count

--- The numbers: {pid=, name=, virt=, rss=, rss_anon=, rss_file=, rss_shmem=,
-- peak_rss=, minor_faults=, major_faults=, kinds = {kind = {mappings=,
-- size=, rss=}}, largest = { smaps entries with kind= (lab kind) }, sorted
-- by RSS}. Sizes in bytes.
-- @return table, or nil, msg, errno
function M.data()
  local st, err, code = proc.status()
  if not st then return nil, err, code end
  -- Reading our own smaps while the read itself grows the heap can list a
  -- mapping twice (the kernel's read restarts): keep the last entry per start.
  local maps, seen = {}, {}
  for _, m in ipairs(proc.smaps() or proc.maps() or {}) do
    if seen[m.start] then maps[seen[m.start]] = m
    else
      maps[#maps + 1] = m
      seen[m.start] = #maps
    end
  end
  local ru = core.rusage("self")
  local d = {
    pid = tonumber(st.Pid), name = st.Name, virt = st.VmSize, rss = st.VmRSS, rss_anon = st.RssAnon,
    rss_file = st.RssFile, rss_shmem = st.RssShmem, peak_rss = st.VmHWM, minor_faults = ru.minor_faults,
    major_faults = ru.major_faults, kinds = {}, largest = {},
  }
  for _, m in ipairs(maps) do
    local kind = faults.kind_of(m)
    local k = d.kinds[kind]
    if not k then
      k = { mappings = 0, size = 0, rss = 0 }
      d.kinds[kind] = k
    end
    k.mappings, k.size, k.rss = k.mappings + 1, k.size + m.size, k.rss + (m.Rss or 0)
    if m.Rss then d.largest[#d.largest + 1] = m end
  end
  table.sort(d.largest, function(a, b) return a.Rss > b.Rss end)
  return d
end

--- The summary as text (about 20 lines).
-- @param opts {top = 5}: how many of the mappings with the most RSS to list
-- @return string
function M.summary(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'summary' (table of options expected, got " .. type(opts) .. ")", 2)
  end
  local top = opts and opts.top or 5
  if math.type(top) ~= "integer" or top < 0 then
    local got = math.type(top) and tostring(top) or type(top)
    error("bad option 'top' (non-negative integer expected, got " .. got .. ")", 2)
  end
  local d, err = M.data()
  if not d then return "vm.self: " .. tostring(err) end
  local lines = {
    ("process %s (%s): VIRT %s, RES %s (anonymous %s, file %s, shared %s), peak RES %s"):format(
      d.pid, d.name, bytes(d.virt), bytes(d.rss), bytes(d.rss_anon), bytes(d.rss_file), bytes(d.rss_shmem),
      bytes(d.peak_rss)),
    ("page faults: %s minor, %s major"):format(count(d.minor_faults), count(d.major_faults)),
    ("%-10s %9s %12s %12s"):format("kind", "mappings", "size", "RSS"),
  }
  for _, kind in ipairs(faults.kinds) do
    local k = d.kinds[kind]
    if k then
      lines[#lines + 1] = ("%-10s %9d %12s %12s"):format(kind, k.mappings, bytes(k.size), bytes(k.rss))
    end
  end
  if #d.largest > 0 and top > 0 then
    lines[#lines + 1] = "most resident mappings:"
    for i = 1, math.min(top, #d.largest) do
      local m = d.largest[i]
      local path = m.path ~= "" and m.path or "[anonymous]"
      if #path > 44 then path = "..." .. path:sub(-41) end
      lines[#lines + 1] = ("  %012x-%012x %s %10s RSS %10s  %s"):format(m.start, m.finish, m.perms, bytes(m.size),
        bytes(m.Rss), path)
    end
  end
  return table.concat(lines, "\n")
end

return setmetatable(M, {
  --- vm.self(opts) -> the summary text (the REPL prints what it returns).
  __call = function(_, opts) return M.summary(opts) end,
})
