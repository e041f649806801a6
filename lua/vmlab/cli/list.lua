--- `vmlab list`: every experiment with its one-line summary.
local experiments = require "vmlab.experiments"

local M = { summary = "list the experiments with a line on each" }

function M.main(argv)
  if argv[1] == "-h" or argv[1] == "--help" then
    io.stdout:write("usage: vmlab list\nLists every experiment; run one with: vmlab run NAME\n")
    return 0
  end
  if argv[1] ~= nil then
    io.stderr:write("vmlab list: takes no arguments\n")
    return 2
  end
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
