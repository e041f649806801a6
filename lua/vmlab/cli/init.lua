--- The `vmlab` command: dispatches `vmlab COMMAND ...` to vmlab.cli.COMMAND.
-- A command module returns { summary = "one line", parser = function() return an argparse parser end,
-- main = function(argv) return exit_code end }; it parses its arguments with cli.parse (argparse), so
-- every command reads the same way: -h/--help, one line and exit status 2 for bad usage.
-- Exit codes: 0 success, 1 the experiment or protocol failed, 2 bad usage.
--
--   vmlab --version | vmlab help [COMMAND [ARGS]] | vmlab COMMAND [ARGS]
local suggest = require "vmlab.cli.suggest"

local cli = {}

cli.commands = { "list", "run", "tour", "report", "info", "memtest", "sum", "watch", "maps" }

--- The commands that run for a while: bin/vmlab runs them as a process named
-- vmlab-COMMAND (argv[0] and the kernel's comm), so `pgrep -f vmlab-memtest`,
-- `pidof vmlab-memtest` and htop find them.
cli.named = { run = true, tour = true, report = true, memtest = true, sum = true, watch = true }

cli.description = "Virtual-memory experiments on Linux: lazy allocation, page faults, the zero page, "
  .. "copy-on-write, shared memory, the TLB, swap, KSM, ... each measured by the kernel's own numbers "
  .. "(getrusage, perf, /proc, pagemap) and decided claim by claim."

cli.exit_status = "0 success; 1 the experiment or the protocol failed; 2 bad usage (one line on standard error); "
  .. "128+n stopped by signal n (vmlab sum)."

--- The version: the facade's _VERSION ("vmlab scm").
function cli.version()
  local ok, vm = pcall(require, "vmlab")
  return ok and type(vm) == "table" and vm._VERSION or "vmlab (version unknown: vmlab.core does not load)"
end

local function load_command(name)
  local ok, mod = pcall(require, "vmlab.cli." .. name)
  if ok then return mod end
  if not tostring(mod):find("module 'vmlab.cli." .. name .. "' not found", 1, true) then error(mod, 0) end
  return nil
end

--- The command module called name, or nil.
function cli.command(name)
  for _, n in ipairs(cli.commands) do
    if n == name then return load_command(name) end
  end
  return nil
end

--- The top-level parser: options, and each command with its summary (the
-- command's own arguments are its parser's business).
function cli.parser()
  local p = cli.new("vmlab", cli.description)
  p:epilog("Run `vmlab help COMMAND` (or `vmlab COMMAND --help`) for a command's options, "
    .. "`vmlab run NAME --help` for an experiment's parameters.\nExit status: " .. cli.exit_status)
  p:flag("--version", "Print the version and exit.")
  p:command_target("command")
  p:require_command(false)
  for _, name in ipairs(cli.commands) do
    local mod = load_command(name)
    if mod then
      local c = p:command(name, mod.summary or ""):add_help(false):handle_options(false)
      c:argument("args", "the command's arguments"):args("*")
    end
  end
  local h = p:command("help", "Show the help of a command: vmlab help COMMAND [ARGS]."):add_help(false)
    :handle_options(false)
  h:argument("args", "the command (and its arguments)"):args("*")
  return p
end

--- A command's parser: argparse(prog, description) with -h/--help listed
-- (cli.parse answers it without leaving the process).
function cli.new(prog, description)
  local p = require("argparse")(prog, description)
  p:add_help(false)
  p:help_max_width(100)
  p:flag("-h --help", "Show this help and exit."):target("show_help")
  return p
end

-- argparse's messages end with "\nDid you mean '--json'?": one line.
local function one_line(msg)
  msg = tostring(msg):gsub("\n[Dd]id you mean", "; did you mean"):gsub("\n", " ")
  return msg
end

--- Parse argv (a command's arguments) with parser p.
-- -h/--help anywhere before "--": the help on out, and nil, 0.
-- Bad usage: one line "PROG: message (see PROG --help)" on err, and nil, 2.
-- @param prog "vmlab list", ... (the parser's name by default)
-- @return the parsed arguments, or nil and the exit code
function cli.parse(p, argv, prog, out, err)
  out, err = out or io.stdout, err or io.stderr
  prog = prog or p._name
  for _, a in ipairs(argv) do
    if a == "--" then break end
    if a == "-h" or a == "--help" then
      out:write(p:get_help(), "\n")
      return nil, 0
    end
  end
  local ok, args = p:pparse(argv)
  if not ok then
    return nil, cli.usage_error(prog, args, err)
  end
  return args
end

--- Write "PROG: message (see PROG --help)" as one line on err; returns 2.
function cli.usage_error(prog, msg, err)
  (err or io.stderr):write(prog, ": ", one_line(msg), " (see ", prog, " --help)\n")
  return 2
end

local function unknown_command(name)
  local known = { "help" }
  for _, n in ipairs(cli.commands) do known[#known + 1] = n end
  io.stderr:write("vmlab: ", suggest.unknown("command", name, known), " (see vmlab --help)\n")
  return 2
end

--- Run the command line `argv` (arg-style table); returns the exit code.
function cli.main(argv)
  -- the top level parses up to the command; what follows is the command's
  local first = #argv + 1
  for i, a in ipairs(argv) do
    if a:sub(1, 1) ~= "-" then first = i; break end
  end
  local name = argv[first]
  if name and name ~= "help" and not cli.command(name) then return unknown_command(name) end
  local p = cli.parser()
  local head = table.move(argv, 1, math.min(first, #argv), 1, {})
  local ok, args = p:pparse(head)
  if not ok then return cli.usage_error("vmlab", args) end
  if args.version then
    io.stdout:write(cli.version(), "\n")
    return 0
  end
  if args.show_help or name == nil then
    local out = args.show_help and io.stdout or io.stderr
    out:write(p:get_help(), "\n")
    return args.show_help and 0 or 2
  end
  local rest = table.move(argv, first + 1, #argv, 1, {})
  if name == "help" then
    if #rest == 0 then
      io.stdout:write(p:get_help(), "\n")
      return 0
    end
    name = table.remove(rest, 1)
    if not cli.command(name) then return unknown_command(name) end
    rest[#rest + 1] = "--help"
  end
  local mod = cli.command(name)
  if cli.named[name] then
    local vm_ok, vm = pcall(require, "vmlab")
    if vm_ok and vm.set_process_name then pcall(vm.set_process_name, "vmlab-" .. name) end
  end
  local run_ok, code = xpcall(mod.main, debug.traceback, rest)
  if not run_ok then
    io.stderr:write("vmlab ", name, ": ", tostring(code), "\n")
    return 1
  end
  return code or 0
end

--- The argv (from /proc/self/cmdline) to re-execute this very command line
-- as a process called argv0, or nil when it already is called that (or
-- /proc cannot tell). bin/vmlab uses it for the commands in cli.named.
function cli.renamed_argv(argv0)
  local ok, proc = pcall(require, "vmlab.proc") -- needs the C module; without it, nothing to do
  local words = ok and proc.cmdline()
  if not words or #words == 0 or words[1] == argv0 then return nil end
  return words
end

--- Become a process called vmlab-NAME when argv (bin/vmlab's arg) runs a
-- command of cli.named: the same command line executed again (same pid,
-- environment and descriptors) with argv[0] = "vmlab-NAME". Returns only
-- when nothing was to be done or the exec failed (the command then runs
-- under its old name).
function cli.become(argv)
  local name
  for _, a in ipairs(argv) do
    if a:sub(1, 1) ~= "-" then name = a; break end
  end
  if not (name and cli.named[name]) or os.getenv("VMLAB_NO_RENAME") then return end
  local words = cli.renamed_argv("vmlab-" .. name)
  if not words then return end
  local ok, vm = pcall(require, "vmlab")
  if not ok or not vm.exec then return end
  words[1] = vm.proc.path("self", "exe") -- the same interpreter, whatever PATH says
  pcall(vm.exec, words, { argv0 = "vmlab-" .. name })
end

return cli
