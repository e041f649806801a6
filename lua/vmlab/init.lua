--- vmlab: virtual-memory experiments from Lua.
-- The C module `vmlab.core` does the system calls; this facade adds what is
-- easier in Lua. Submodules (`proc`, `units`, ...) load on first use, so
-- `require "vmlab"` stays cheap.
-- @module vmlab
local core = require "vmlab.core"

local vm = { _VERSION = "vmlab scm" }
for k, v in pairs(core) do vm[k] = v end

-- name -> module, loaded on first access: vm.proc.status(), vm.units.parse_size() ...
local lazy = {
  proc = "vmlab.proc",
  units = "vmlab.units",
  child = "vmlab.child",
  faults = "vmlab.faults",
  plot = "vmlab.plot",
  progress = "vmlab.progress",
  self = "vmlab.self",
  experiments = "vmlab.experiments",
}

--- What this kernel and process can show, probed once (vmlab.kernel): page
-- size, THP, whether reads map the zero page, pagemap, perf, cgroup, ...
function vm.kernel(refresh)
  return require("vmlab.kernel").probes(refresh)
end

return setmetatable(vm, {
  __index = function(t, k)
    local name = lazy[k]
    if name == nil then return nil end
    local m = require(name)
    rawset(t, k, m)
    return m
  end,
})
