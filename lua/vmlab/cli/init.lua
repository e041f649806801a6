--- The `vmlab` command: dispatches `vmlab COMMAND ...` to vmlab.cli.COMMAND.
-- A command module returns { summary = "one line", main = function(argv) return exit_code end }.
-- Exit codes: 0 success, 1 the experiment or protocol failed, 2 bad usage.
local cli = {}

cli.commands = { "list", "run", "tour", "report", "info", "memtest", "sum", "watch" }

local function load_command(name)
  local ok, mod = pcall(require, "vmlab.cli." .. name)
  if ok then return mod end
  if not tostring(mod):find("module 'vmlab.cli." .. name .. "' not found", 1, true) then error(mod, 0) end
  return nil
end

local function usage(out)
  out:write("usage: vmlab COMMAND [options]   (vmlab COMMAND --help for its options)\n\ncommands:\n")
  for _, name in ipairs(cli.commands) do
    local mod = load_command(name)
    if mod then out:write(("  %-9s %s\n"):format(name, mod.summary or "")) end
  end
end

--- Run the command line `argv` (arg-style table); returns the exit code.
function cli.main(argv)
  local name = argv[1]
  if name == nil or name == "help" or name == "-h" or name == "--help" then
    usage(name and io.stdout or io.stderr)
    return name and 0 or 2
  end
  local mod = name:match("^[%w%-]+$") and load_command(name)
  if not mod then
    io.stderr:write(("vmlab: unknown command '%s'\n"):format(name))
    usage(io.stderr)
    return 2
  end
  local rest = table.move(argv, 2, #argv, 1, {})
  local ok, code = xpcall(mod.main, debug.traceback, rest)
  if not ok then
    io.stderr:write("vmlab ", name, ": ", tostring(code), "\n")
    return 1
  end
  return code or 0
end

return cli
