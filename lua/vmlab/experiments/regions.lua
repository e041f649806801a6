--- regions: this process's address space, from /proc/self/smaps: the
-- program's text (code), read-only data, data and bss; the heap; the stack;
-- anonymous mappings; the vdso. Each with its size and resident set. And
-- where a C global, a constant, a bss array, a function, a malloc'd block and
-- a stack variable of the vmlab module really live. (004_*.txt)
-- With `faults = true` (`vmlab run regions --faults`) it also touches 32 pages
-- of each kind of region (heap, stack, anonymous, file, shared) under a
-- perf_event_open fault sampler (vmlab.faults) and counts the faults per
-- region: result.faults, or result.faults_skipped when the kernel refuses.
local vm = require "vmlab"

local M = {
  name = "regions",
  summary = "the process's map: text, data, bss, heap, stack, anonymous, vdso; where a global, a malloc'd block, " ..
    "a local live",
  params = {
    { name = "faults", default = false, unit = "boolean",
      help = "also touch pages of each kind of region and count their faults with perf" },
  },
  text_omit = { "faults" }, -- explain() prints the faults per region (`vmlab run` leaves the table out)
  fields = {
    { name = "regions", unit = "table", help = "the mappings that hold the program's pieces, heap, stack, vdso",
      fields = {
      { name = "name", unit = "text", help = "what the mapping holds" },
      { name = "start", unit = "address", optional = true, help = "its first address" },
      { name = "size", unit = "bytes", help = "its size" },
      { name = "rss", unit = "bytes", help = "its resident bytes (smaps Rss)" },
      { name = "perms", unit = "text", optional = true, help = "its permissions (rwxp)" },
      { name = "holds", unit = "text", optional = true, help = "the objects that live in it" },
    } },
    { name = "addresses", unit = "map", of = { unit = "address" },
      help = "where each object lives: text (a function), static_data (a constant), global, bss, heap, stack" },
    { name = "placed", unit = "map", of = { unit = "text" }, help = "the mapping each object lives in" },
    { name = "mappings", unit = "count", help = "mappings in /proc/self/maps" },
    { name = "program", unit = "text", optional = true, help = "the program's file" },
    { name = "module", unit = "text", optional = true, help = "the file of the vmlab C module" },
    { name = "layout", unit = "object", help = "where the program, heap and stack start", fields = {
      { name = "program", unit = "address", optional = true, help = "the program's first mapping" },
      { name = "heap", unit = "address", optional = true, help = "the heap's start" },
      { name = "stack", unit = "address", optional = true, help = "the stack's start" },
      { name = "above_stack", unit = "count", help = "mappings above the stack (vdso and vvar aside)" },
    } },
    { name = "faults", unit = "object", optional = true, help = "faults per region kind (with faults = true)",
      fields = {
        { name = "by_kind", unit = "map", of = { unit = "count" }, help = "sampled faults per kind of mapping" },
        { name = "regions", unit = "map", of = { unit = "count" }, help = "sampled faults in each touched region" },
        { name = "touched", unit = "map", of = { unit = "count" }, help = "pages touched in each region" },
        { name = "total", unit = "count", help = "faults sampled" },
        { name = "lost", unit = "count", optional = true, help = "samples the kernel dropped" },
        { name = "user_only", unit = "boolean", optional = true, help = "the sampler counted user-space faults only" },
      } },
    { name = "faults_skipped", unit = "text", optional = true, help = "why faults could not be counted" },
  },
}

local OBJECTS = { "text", "static_data", "global", "bss", "heap", "stack" }
local DESCRIBE = {
  text = "a C function", static_data = "a constant string", global = "an initialised C global",
  bss = "a zero-filled static array", heap = "a malloc(64) block", stack = "a local variable",
}

local function basename(path) return path:match("([^/]+)$") or path end

local function segment(m, prev)
  if m.kind ~= "anon" then
    if m.perms:sub(3, 3) == "x" then return "text" end
    if m.perms:sub(2, 2) == "w" then return "data" end
    return "read-only data"
  end
  if prev and prev.kind == "file" and prev.finish == m.start and prev.perms:sub(2, 2) == "w" then return "bss" end
  return nil
end

-- Faults per region kind of vmlab.faults.demo, or nil and the reason.
local function faults_by_region(pages)
  local report, why = require("vmlab.faults").demo { pages = pages }
  if not report then return nil, tostring(why) end
  return { by_kind = report.by_kind, regions = report.regions, touched = report.touched, total = report.total,
           lost = report.lost, user_only = report.user_only }
end

--- params: faults (boolean: also count page faults per region, with perf)
function M.run(p)
  p = p or {}
  local addrs = vm.addresses()
  local maps = assert(vm.proc.smaps())
  -- the program: the file mapped where /proc/self/stat says its code starts
  local stat = vm.proc.stat() or {}
  local code = math.tointeger(stat.startcode) or -1
  local exe, module
  for _, m in ipairs(maps) do
    if m.start <= addrs.text and addrs.text < m.finish then module = m.path end
    if m.start <= code and code < m.finish then exe = m.path end
  end
  local rows, anon, libs = {}, { n = 0, size = 0, rss = 0 }, { n = 0, size = 0, rss = 0 }
  local placed = {}
  for i, m in ipairs(maps) do
    local prev = maps[i - 1]
    local holds = {}
    for _, o in ipairs(OBJECTS) do
      local a = addrs[o]
      if a and m.start <= a and a < m.finish then holds[#holds + 1] = o end
    end
    local name
    local seg = segment(m, prev)
    if m.kind == "file" and (m.path == exe or m.path == module) then
      name = basename(m.path) .. " " .. seg
    elseif m.kind == "anon" and seg == "bss" and (prev.path == exe or prev.path == module) then
      name = basename(prev.path) .. " bss"
    elseif m.kind == "heap" or m.kind == "stack" or m.kind == "vdso" or m.kind == "vvar" then
      name = m.path
    end
    if #holds > 0 and not name then
      name = m.kind == "anon" and "anonymous" or (basename(m.path) .. (seg and (" " .. seg) or ""))
    end
    if name then
      rows[#rows + 1] = { name = name, start = m.start, size = m.size, rss = m.Rss, perms = m.perms,
                          holds = #holds > 0 and table.concat(holds, ", ") or nil }
      for _, o in ipairs(holds) do placed[o] = name end
    elseif m.kind == "anon" then
      anon.n, anon.size, anon.rss = anon.n + 1, anon.size + m.size, anon.rss + (m.Rss or 0)
    else
      libs.n, libs.size, libs.rss = libs.n + 1, libs.size + m.size, libs.rss + (m.Rss or 0)
    end
  end
  if anon.n > 0 then
    rows[#rows + 1] = { name = ("other anonymous (%d mappings)"):format(anon.n), size = anon.size, rss = anon.rss }
  end
  if libs.n > 0 then
    rows[#rows + 1] = { name = ("other files: libraries... (%d mappings)"):format(libs.n), size = libs.size,
                        rss = libs.rss }
  end
  for _, o in ipairs(OBJECTS) do placed[o] = placed[o] or "(not found)" end
  -- the layout: where the program, the heap and the stack start, and how many
  -- mappings lie above the stack (the kernel's vdso/vvar pages aside)
  local layout = {}
  for _, m in ipairs(maps) do
    if m.path == exe and not layout.program then layout.program = m.start end
    if m.kind == "heap" then layout.heap = m.start end
    if m.kind == "stack" then layout.stack = m.start end
  end
  layout.above_stack = 0
  for _, m in ipairs(maps) do
    if layout.stack and m.start > layout.stack and m.kind ~= "vdso" and m.kind ~= "vvar"
      and not (m.path or ""):match("^%[v") then
      layout.above_stack = layout.above_stack + 1
    end
  end
  local result = { regions = rows, addresses = addrs, placed = placed, mappings = #maps, program = exe,
                   module = module, layout = layout }
  if p.faults then
    result.faults, result.faults_skipped = faults_by_region(32)
  end
  return result
end

local function where(r, o)
  return ("%s at 0x%x in %s"):format(DESCRIBE[o], r.addresses[o] or 0, r.placed[o])
end

-- "core.so text": the vmlab module's part named `part`
local function module_part(r, part)
  return basename(r.module or "?") .. " " .. part
end

M.claims = {
  { id = "code_and_data_placed",
    text = "a C function lies in the module's code (r-x), a constant in its read-only data, a global in its data",
    decide = function(r)
      local p = r.placed
      return p.text == module_part(r, "text") and p.static_data == module_part(r, "read-only data")
          and p.global == module_part(r, "data"),
        ("%s; %s; %s"):format(where(r, "text"), where(r, "static_data"), where(r, "global"))
    end,
    explain = function()
      return "A program (or library) is mapped in pieces from its file, each with the protection its contents need."
    end },
  { id = "bss_after_data",
    text = "a zero-filled static array lies in the bss, an anonymous mapping right after the module's data",
    decide = function(r)
      return r.placed.bss == module_part(r, "bss") and r.addresses.bss > r.addresses.global,
        ("%s; the global at 0x%x"):format(where(r, "bss"), r.addresses.global)
    end,
    explain = function()
      return "The bss takes no room in the file: the kernel maps zero-filled memory after the data."
    end },
  { id = "stack_on_top",
    text = "a local variable lies on the stack, the highest mapping of the process",
    decide = function(r)
      local l = r.layout or {}
      return r.placed.stack == "[stack]" and l.above_stack == 0,
        ("%s; %d mapping(s) above the stack (the kernel's vdso/vvar aside)"):format(where(r, "stack"),
          l.above_stack or -1)
    end,
    explain = function()
      return "The stack sits near the top of user space and grows down; mmap'd memory and libraries lie below it."
    end },
  { id = "malloc_in_heap",
    text = "a small malloc'd block lies in the heap, above the program and below the stack",
    requires = "glibc_malloc",
    decide = function(r)
      local l = r.layout or {}
      local holds = r.placed.heap == "[heap]" and l.heap and l.program and l.stack
        and l.heap > l.program and l.heap < l.stack or false
      local why = not l.heap and "this process has no [heap]: its malloc never called brk(2)" or nil
      return holds, ("%s; [heap] at %s, the program at %s, the stack at %s"):format(where(r, "heap"),
        l.heap and ("0x%x"):format(l.heap) or "none", l.program and ("0x%x"):format(l.program) or "?",
        l.stack and ("0x%x"):format(l.stack) or "?"), why
    end,
    explain = function()
      return "glibc's malloc serves small blocks from the heap, which brk(2) grows up from just above the program."
    end },
}

function M.explain(r)
  local lines = {
    ("%d mappings in all; the program is %s, the vmlab module %s.")
      :format(r.mappings, basename(r.program or "?"), basename(r.module or "?")),
  }
  for _, o in ipairs(OBJECTS) do
    if r.addresses[o] then
      lines[#lines + 1] = ("%-26s at 0x%x lies in %s"):format(DESCRIBE[o], r.addresses[o], r.placed[o])
    end
  end
  if r.faults then
    local f = r.faults
    lines[#lines + 1] = ("Touching %d pages of each kind of region under perf_event_open's page-fault sampler:")
      :format(f.touched and f.touched.anonymous or 0)
    local copy = { mappings = {} } -- faults.format also lists the busiest mappings: not kept in the result
    for k, v in pairs(f) do copy[k] = v end
    for _, l in ipairs(require("vmlab.faults").format(copy)) do lines[#lines + 1] = "  " .. l end
  elseif r.faults_skipped then
    lines[#lines + 1] = "Faults per region were not counted: " .. r.faults_skipped
  end
  return lines
end

-- Its charts (vmlab run regions --plot FILE.svg|png, vmlab report): the process's mappings by size, coloured by
-- what they allow; with --faults, the page faults per kind of region.
local function region_kind(perms)
  perms = tostring(perms or "")
  if perms:sub(3, 3) == "x" then return "code (r-x)" end
  if perms:sub(2, 2) == "w" then return "data (rw-)" end
  if perms:sub(1, 1) == "r" then return "read-only (r--)" end
  return "other"
end
M.charts = {
  { kind = "hbars", title = "the mappings of this process, by size (log scale)", unit = "bytes", log = true,
    axis = "size",
    rows = function(r)
      local rows = {}
      for _, g in ipairs(r.regions or {}) do
        rows[#rows + 1] = { label = g.name, value = g.size, key = region_kind(g.perms) }
      end
      return rows
    end },
  { kind = "bars", title = "page faults per kind of region",
    panels = function(r)
      local f = r.faults
      if type(f) ~= "table" or type(f.by_kind) ~= "table" then return {} end
      local groups = {}
      for _, k in ipairs { "heap", "stack", "anonymous", "file", "shared", "other", "unmapped" } do
        local n = f.by_kind[k]
        if type(n) == "number" and (n > 0 or k ~= "other" and k ~= "unmapped") then
          groups[#groups + 1] = { label = k, value = n }
        end
      end
      return { { unit = "faults", groups = groups } }
    end },
}

return M
