--- `vmlab info [--json]`: what this kernel and this process can show (vmlab.kernel):
-- page sizes, THP, whether reads map the zero page, pagemap, perf, overcommit,
-- swap, KSM, cgroup, limits and privileges, each with how it was found.
local kernel = require "vmlab.kernel"
local units = require "vmlab.units"

local M = { summary = "what this machine can show: page size, THP, zero page, pagemap, perf, cgroup, ... (--json)" }

local BYTES = { page_size = true, huge_page_size = true, swap_total = true, swap_free = true, memory_limit = true,
  memlock_limit = true }

local function show(field, v)
  if v == nil then return "unknown" end
  if type(v) == "boolean" then return v and "yes" or "no" end
  if v == math.huge then return "unlimited" end
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = field == "hugetlb_sizes" and units.bytes(x) or tostring(x) end
    return #parts > 0 and table.concat(parts, ", ") or "none"
  end
  if BYTES[field] and math.type(v) == "integer" then return units.bytes(v) end
  return tostring(v)
end

function M.parser()
  local p = require("vmlab.cli").new("vmlab info", "Probes this kernel and process (measured or read once) and "
    .. "says how each was found: page sizes, THP, whether reads map the zero page, pagemap, perf, overcommit, "
    .. "swap, KSM, cgroup, limits and privileges.")
  p:flag("--json", "One JSON object instead of the table.")
  return p
end

function M.main(argv)
  local args, code = require("vmlab.cli").parse(M.parser(), argv)
  if not args then return code end
  local json = args.json
  if json then
    io.stdout:write(require("vmlab.report").encode(kernel.record(), true), "\n")
    return 0
  end
  local k = kernel()
  local width = 0
  for _, f in ipairs(kernel.fields) do width = math.max(width, #f) end
  local vwidth = 0
  for _, f in ipairs(kernel.fields) do vwidth = math.max(vwidth, #show(f, k[f])) end
  vwidth = math.min(vwidth, 24)
  for _, f in ipairs(kernel.fields) do
    io.stdout:write(("%-" .. width .. "s  %-" .. vwidth .. "s  %s\n"):format(f, show(f, k[f]), kernel.meaning[f]))
    io.stdout:write((" "):rep(width + vwidth + 4), "(", tostring(k.how[f] or "?"), ")\n")
  end
  return 0
end

return M
