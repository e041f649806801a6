#!/usr/bin/env lua5.4
--- Generates doc/vmlab.1 (the man page) and doc/vmlab.bash-completion from the
-- same descriptions the command line uses: each command's argparse parser
-- (vmlab.cli.COMMAND.parser) and each experiment's parameter descriptions.
--
--   lua5.4 tools/gen-doc.lua            -- (re)write both files
--   lua5.4 tools/gen-doc.lua --check    -- exit 1 when a committed file differs from a fresh one
--   lua5.4 tools/gen-doc.lua --print man|bash
-- Run from the checkout (it finds lua/ next to tools/); needs a build for
-- the experiments (VMLAB_BUILD or build/).
local root = (arg and arg[0] and arg[0]:match("^(.*)/tools/[^/]*$")) or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("VMLAB_BUILD") or root .. "/build") .. "/?.so;" .. package.cpath

local cli = require "vmlab.cli"
local experiments = require "vmlab.experiments"

local gen = {}

-- Experiment name's module: through the registry (which checks its description), or, while an experiment
-- still has the older shape the registry refuses, the module itself.
function gen.experiment(name)
  local ok, e = pcall(experiments.get, name)
  if ok and e then return e end
  local rok, mod = pcall(require, "vmlab.experiments." .. name)
  return rok and type(mod) == "table" and mod or nil
end

-- The parameters of experiment e as a list of {name=, unit=, default=, help=, choices=, min=, max=, list=}:
-- the description list of experiments/init.lua, or (older modules) the params table of defaults.
function gen.params(e)
  local list = {}
  if type(e.params) == "table" and type(e.params[1]) == "table" then
    for i, p in ipairs(e.params) do list[i] = p end
    return list
  end
  local keys = {}
  for k in pairs(e.params or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = e.params[k]
    local unit = (e.units and e.units[k]) or (e.choices and e.choices[k] and "choice")
      or (type(v) == "boolean" and "boolean") or (math.type(v) == "integer" and "count") or "text"
    list[#list + 1] = { name = k, default = v, unit = unit, choices = e.choices and e.choices[k], help = k }
  end
  return list
end

local function option(name) return "--" .. tostring(name):gsub("_", "-") end

local function word(p, v)
  local ok, describe = pcall(require, "vmlab.describe")
  if ok and type(describe) == "table" and describe.word then return describe.word(p, v) end
  if type(v) == "table" then
    local out = {}
    for i, x in ipairs(v) do out[i] = tostring(x) end
    return table.concat(out, ",")
  end
  return tostring(v)
end

-- "unit; default X; A..B" for a param's man page entry.
local function param_facts(p)
  local facts = { p.list and ("a comma-separated list, unit: %s"):format(p.unit) or ("unit: " .. tostring(p.unit)) }
  if p.choices then facts[#facts + 1] = "one of " .. table.concat(p.choices, ", ") end
  if p.default ~= nil then facts[#facts + 1] = "default " .. word(p, p.default) end
  if p.min ~= nil or p.max ~= nil then
    facts[#facts + 1] = ("from %s to %s"):format(p.min ~= nil and word({ unit = p.unit }, p.min) or "-",
      p.max ~= nil and word({ unit = p.unit }, p.max) or "-")
  end
  return table.concat(facts, "; ")
end

-- The parser of each command (run: its own when it has one, else the generic one).
function gen.parsers()
  local list = {}
  for _, name in ipairs(cli.commands) do
    local mod = cli.command(name)
    local p
    if mod and type(mod.parser) == "function" then
      local ok, made = pcall(mod.parser)
      if ok and type(made) == "table" and made._options then p = made end
    end
    if not p and name == "run" then
      p = cli.new("vmlab run", "Runs one experiment and prints its report (or one JSON object); "
        .. "`vmlab run NAME --help` lists the experiment's parameters, each an option.")
      p:argument("name", "The experiment (vmlab list shows them)."):argname("NAME")
      p:flag("--json", "Print one JSON object instead of the report.")
      p:flag("--force", "Run even if it would write more than MemAvailable.")
      p:option("--plot", "Write a chart of the result to this file."):argname("FILE.svg")
      p:option("--chart", "With --plot: the experiment's own bars, or its timeline."):choices { "bars", "timeline" }
    end
    if p then list[#list + 1] = { name = name, summary = mod and mod.summary or "", parser = p } end
  end
  return list
end

---------------------------------------------------------------------- man page

local function esc(s)
  s = tostring(s):gsub("\\", "\\e")
  s = s:gsub("\n%.", "\n\\&."):gsub("\n'", "\n\\&'")
  if s:sub(1, 1) == "." or s:sub(1, 1) == "'" then s = "\\&" .. s end
  return s
end

local function opt_esc(s) return esc(s):gsub("%-", "\\-") end

local function usage_of(p)
  local u = p:get_usage():gsub("^Usage:%s*", ""):gsub("%s*\n%s*", " ")
  return u
end

local function option_label(o)
  local args = o:_get_argument_list()
  local label = table.concat(o._public_aliases or o._aliases, ", ")
  if #args > 0 then label = label .. " " .. table.concat(args, " ") end
  return label
end

function gen.man()
  local out = {}
  local function w(...) for _, x in ipairs { ... } do out[#out + 1] = x end end
  local top = cli.parser()
  w('.TH VMLAB 1 "" "' .. esc(cli.version()) .. '" "User Commands"',
    ".\\\" Generated by tools/gen-doc.lua from the commands' parsers and the experiments' descriptions: do not edit.",
    ".SH NAME", "vmlab \\- virtual\\-memory experiments on Linux, measured and explained",
    ".SH SYNOPSIS",
    ".B vmlab", "\\-\\-version", ".br", ".B vmlab", "help", ".RI [ COMMAND ]", ".br",
    ".B vmlab", ".I COMMAND", ".RI [ OPTIONS ]", ".SH DESCRIPTION", esc(cli.description),
    ".PP", "Each command below takes \\-h or \\-\\-help. Bad usage prints one line on standard error and "
    .. "exits with status 2; a misspelled command or experiment name gets a suggestion.",
    ".SH OPTIONS")
  for _, o in ipairs(top._options) do w(".TP", ".B " .. opt_esc(option_label(o)), esc(o._description or "")) end
  w(".SH COMMANDS")
  for _, c in ipairs(gen.parsers()) do
    local p = c.parser
    w(".SS " .. esc(c.name), ".B " .. opt_esc(usage_of(p)), ".PP", esc(p._description or c.summary))
    for _, a in ipairs(p._arguments) do
      w(".TP", ".I " .. esc(a:_get_argname(1) or a._name), esc(a._description or ""))
    end
    for _, o in ipairs(p._options) do
      w(".TP", ".B " .. opt_esc(option_label(o)), esc(o:_get_description() or ""))
    end
    if p._epilog then w(".PP", esc(p._epilog)) end
  end
  w(".SH EXPERIMENTS",
    "Each experiment's parameters are options of \\fBvmlab run\\fR \\fINAME\\fR "
    .. "(a parameter frame_size is \\fB\\-\\-frame\\-size\\fR). Sizes in bytes take a unit "
    .. "(4096B, 512KiB, 64MiB, 2GiB); times take 0.5, 500ms or 2s.")
  for _, name in ipairs(experiments.names()) do
    local e = gen.experiment(name)
    if e then
      w(".SS " .. esc(name), esc(e.summary or ""))
      for _, p in ipairs(gen.params(e)) do
        local arg = p.unit == "boolean" and "" or (" \\fI" .. esc((p.unit or "value"):upper()) .. "\\fR")
        w(".TP", "\\fB" .. opt_esc(option(p.name)) .. "\\fR" .. arg, esc(p.help or "") .. " (" .. esc(param_facts(p))
          .. ")")
      end
    end
  end
  w(".SH EXIT STATUS", esc(cli.exit_status),
    ".SH ENVIRONMENT",
    ".TP", ".B VMLAB_BUILD", "The build directory holding vmlab/core.so (a checkout's build/ by default).",
    ".TP", ".B VMLAB_NO_RENAME",
    "When set, the long\\-running commands (" .. esc(table.concat(gen.named(), ", "))
    .. ") keep the interpreter's name instead of running as a process called vmlab\\-COMMAND.",
    ".SH NOTES",
    "The commands that run for a while name themselves vmlab\\-COMMAND (argv[0] and the kernel's comm), "
    .. "so \\fBpgrep \\-f vmlab\\-memtest\\fR, \\fBpidof vmlab\\-memtest\\fR and \\fBhtop\\fR find them; "
    .. "vmlab sum's child is vmlab\\-sum\\-child.",
    ".SH SEE ALSO",
    "pmap(1), ps(1), htop(1), pgrep(1), proc(5), mmap(2), madvise(2), fork(2), shm_open(3), prctl(2)")
  return table.concat(out, "\n") .. "\n"
end

function gen.named()
  local list = {}
  for _, name in ipairs(cli.commands) do if cli.named[name] then list[#list + 1] = name end end
  return list
end

--------------------------------------------------------------- bash completion

local function words_of(list) return table.concat(list, " ") end

-- The options of experiment n's parameters (those keep(p) accepts, default all).
local function param_options(n, keep)
  local e, v = gen.experiment(n), {}
  for _, p in ipairs(e and gen.params(e) or {}) do
    if not keep or keep(p) then v[#v + 1] = option(p.name) end
  end
  return v
end

local function option_words(p)
  local all, valued = {}, {}
  for _, o in ipairs(p._options) do
    for _, a in ipairs(o._public_aliases or o._aliases) do
      all[#all + 1] = a
      if o._maxargs > 0 and o._minargs > 0 then valued[#valued + 1] = a end
    end
  end
  return all, valued
end

function gen.bash()
  local b = {}
  local function w(...) for _, x in ipairs { ... } do b[#b + 1] = x end end
  local parsers = gen.parsers()
  local commands = {}
  for _, c in ipairs(parsers) do commands[#commands + 1] = c.name end
  commands[#commands + 1] = "help"
  local names = experiments.names()
  local top_opts = option_words(cli.parser())
  w("# bash completion for vmlab: commands, their options and choices, experiment names and each",
    "# experiment's parameters. Generated by tools/gen-doc.lua from the commands' parsers and the",
    "# experiments' descriptions: do not edit. Source it, or install it as",
    "# /usr/share/bash-completion/completions/vmlab.",
    "",
    "# The options of COMMAND [EXPERIMENT] that take a value.",
    "_vmlab_valued() {",
    '    case "$1" in')
  for _, c in ipairs(parsers) do
    local _, valued = option_words(c.parser)
    if c.name == "run" then
      w("        run)", '            case "$2" in')
      for _, n in ipairs(names) do
        w(("                %s) echo \"%s\" ;;"):format(n, words_of(param_options(n, function(p)
          return p.unit ~= "boolean"
        end))))
      end
      w("            esac", ('            echo "%s" ;;'):format(words_of(valued)))
    elseif #valued > 0 then
      w(("        %s) echo \"%s\" ;;"):format(c.name, words_of(valued)))
    end
  end
  w("    esac", "}", "",
    "# The words that may follow WORD (an option) of COMMAND [EXPERIMENT]: its choices, or files.",
    "_vmlab_values() {",
    '    case "$1 $3" in')
  for _, c in ipairs(parsers) do
    for _, o in ipairs(c.parser._options) do
      if o._maxargs > 0 and o._minargs > 0 then
        local pat = {}
        for _, a in ipairs(o._public_aliases or o._aliases) do pat[#pat + 1] = ('"%s %s"'):format(c.name, a) end
        local argname = table.concat(o:_get_argument_list(), " ")
        if o._choices then
          w(("        %s) echo \"%s\" ;;"):format(table.concat(pat, "|"), words_of(o._choices)))
        elseif argname:match("FILE") then
          w(("        %s) echo \"@files\" ;;"):format(table.concat(pat, "|")))
        else
          w(("        %s) echo \"\" ;;"):format(table.concat(pat, "|")))
        end
      end
    end
  end
  w("    esac")
  w('    [[ $1 == run ]] || return 0', '    case "$2 $3" in')
  for _, n in ipairs(names) do
    local e = gen.experiment(n)
    for _, p in ipairs(e and gen.params(e) or {}) do
      if p.choices then
        w(("        \"%s %s\") echo \"%s\" ;;"):format(n, option(p.name), words_of(p.choices)))
      elseif p.unit == "boolean" then
        w(("        \"%s %s\") echo \"yes no\" ;;"):format(n, option(p.name)))
      end
    end
  end
  w("    esac", "}", "",
    "# All options of COMMAND [EXPERIMENT].",
    "_vmlab_options() {",
    '    case "$1" in')
  for _, c in ipairs(parsers) do
    local all = option_words(c.parser)
    if c.name == "run" then
      w("        run)", ('            echo "%s"'):format(words_of(all)), '            case "$2" in')
      for _, n in ipairs(names) do
        w(("                %s) echo \"%s\" ;;"):format(n, words_of(param_options(n))))
      end
      w("            esac ;;")
    else
      w(("        %s) echo \"%s\" ;;"):format(c.name, words_of(all)))
    end
  end
  w("    esac", "}", "",
    "# The words for positional argument N (1, 2, ...) of COMMAND.",
    "_vmlab_positional() {",
    '    case "$1 $2" in')
  for _, c in ipairs(parsers) do
    for i, a in ipairs(c.parser._arguments) do
      local pat = ('"%s %d"'):format(c.name, i)
      if a._maxargs > 1 then pat = ('"%s "*'):format(c.name) end
      if a._choices then
        w(("        %s) echo \"%s\" ;;"):format(pat, words_of(a._choices)))
      elseif a._name == "name" or a._name == "names" then
        w(("        %s) echo \"%s\" ;;"):format(pat, words_of(names)))
      elseif a._name == "pid" then
        w(("        %s) echo \"@pids\" ;;"):format(pat))
      end
    end
  end
  w('        "help 1") echo "' .. words_of(commands) .. '" ;;',
    "    esac", "}", "",
    "_vmlab() {",
    "    local cur prev i w skip=0 words=() list",
    '    cur="${COMP_WORDS[COMP_CWORD]}"',
    '    prev="${COMP_WORDS[COMP_CWORD-1]}"',
    "    COMPREPLY=()",
    "    # the command and the positional words before the cursor (option values skipped)",
    "    for ((i = 1; i < COMP_CWORD; i++)); do",
    '        w="${COMP_WORDS[i]}"',
    "        if ((skip)); then skip=0; continue; fi",
    '        case "$w" in',
    "            -*=*) ;;",
    '            -*) if ((${#words[@]})) && [[ " $(_vmlab_valued "${words[0]}" "${words[1]}") " == *" $w "* ]]; then',
    "                    skip=1",
    "                fi ;;",
    '            *) words+=("$w") ;;',
    "        esac",
    "    done",
    "    if ((${#words[@]} == 0)); then",
    ('        COMPREPLY=($(compgen -W "%s %s" -- "$cur"))'):format(words_of(top_opts), words_of(commands)),
    "        return 0",
    "    fi",
    '    if [[ $prev == -* && " $(_vmlab_valued "${words[0]}" "${words[1]}") " == *" $prev "* ]]; then',
    '        list="$(_vmlab_values "${words[0]}" "${words[1]}" "$prev")"',
    '        if [[ $list == @files ]]; then COMPREPLY=($(compgen -f -- "$cur")); else',
    '            COMPREPLY=($(compgen -W "$list" -- "$cur")); fi',
    "        return 0",
    "    fi",
    "    if [[ $cur == -* ]]; then",
    '        COMPREPLY=($(compgen -W "$(_vmlab_options "${words[0]}" "${words[1]}")" -- "$cur"))',
    "        return 0",
    "    fi",
    '    list="$(_vmlab_positional "${words[0]}" "${#words[@]}")"',
    '    if [[ $list == @pids ]]; then list="$(cd /proc 2>/dev/null && compgen -G "[0-9]*")"; fi',
    '    COMPREPLY=($(compgen -W "$list" -- "$cur"))',
    "}",
    "",
    "complete -F _vmlab -o bashdefault -o default vmlab")
  return table.concat(b, "\n") .. "\n"
end

------------------------------------------------------------------------ main

local files = { man = root .. "/doc/vmlab.1", bash = root .. "/doc/vmlab.bash-completion" }

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function main(argv)
  if argv[1] == "--print" then
    local text = argv[2] == "man" and gen.man() or argv[2] == "bash" and gen.bash()
    if not text then
      io.stderr:write("gen-doc: --print man|bash\n")
      return 2
    end
    io.stdout:write(text)
    return 0
  end
  local fresh = { man = gen.man(), bash = gen.bash() }
  if argv[1] == "--check" then
    local status = 0
    for _, k in ipairs { "man", "bash" } do
      if read(files[k]) ~= fresh[k] then
        io.stderr:write("gen-doc: ", files[k], " is not what tools/gen-doc.lua generates (run it and commit)\n")
        status = 1
      end
    end
    return status
  end
  if argv[1] ~= nil then
    io.stderr:write("gen-doc: usage: lua5.4 tools/gen-doc.lua [--check | --print man|bash]\n")
    return 2
  end
  os.execute("mkdir -p '" .. root .. "/doc'")
  for _, k in ipairs { "man", "bash" } do
    local f = assert(io.open(files[k], "wb"))
    f:write(fresh[k])
    f:close()
    io.stdout:write("gen-doc: wrote ", files[k], "\n")
  end
  return 0
end

if ... == nil then os.exit(main(arg)) end -- run as a script; required: the functions
return gen
