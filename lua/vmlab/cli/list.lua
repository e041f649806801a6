--- `vmlab list`: every experiment with its one-line summary.
local experiments = require "vmlab.experiments"

local M = { summary = "list the experiments with a line on each" }

function M.parser()
  return require("vmlab.cli").new("vmlab list", "Lists every experiment with a line on each; run one with: "
    .. "vmlab run NAME (vmlab run NAME --help shows its parameters).")
end

function M.main(argv)
  local args, code = require("vmlab.cli").parse(M.parser(), argv)
  if not args then return code end
  local names = experiments.names()
  local width = 0
  for _, n in ipairs(names) do width = math.max(width, #n) end
  local status = 0
  for _, n in ipairs(names) do
    local ok, e, err = pcall(experiments.get, n)
    if ok and e then
      io.stdout:write(("%-" .. width .. "s  %s\n"):format(n, e.summary))
    else
      io.stdout:write(("%-" .. width .. "s  (cannot load: %s)\n"):format(n, tostring(ok and err or e)))
      status = 1
    end
  end
  io.stdout:write("\nrun one: vmlab run NAME [--size 64MiB] [--json]   (vmlab run NAME --help for its options)\n")
  return status
end

return M
