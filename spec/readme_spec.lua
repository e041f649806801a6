-- Every example in README.md is run: each command line of its ```sh blocks,
-- each `$ ...` command of its transcripts (with the `> ...` lines typed into
-- the REPL it starts), each ```lua block. Their outputs may vary from machine
-- to machine; their commands may not fail. A command the README gains is run
-- from then on unless it is added to EXCLUDED below with the reason.
-- Files the examples write (report.html, lazy.svg, sums.txt, runs.jsonl ...)
-- go to a temporary directory that stands in for the checkout (bin/ and lua/
-- linked to it, build/ a directory of its own), so the checkout is left alone.
local vassert = require "vmlab.assert"

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."
if here:sub(1, 1) ~= "/" then here = os.getenv("PWD") .. (here == "." and "" or "/" .. here) end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The build under test: VMLAB_BUILD, else the directory vmlab.core was found in.
local function build_dir()
  local b = os.getenv("VMLAB_BUILD")
  if not b then
    local so = assert(package.searchpath("vmlab.core", package.cpath), "vmlab.core is not on package.cpath")
    b = so:gsub("/vmlab/core%.so$", "")
  end
  if b:sub(1, 1) ~= "/" then b = here .. "/" .. b end
  return b
end

-- README commands not run here, each with why. Each must still be in the README.
local EXCLUDED = {
  ["make demo"] = "installs packages and runs the tour: bin/vmlab tour runs the same tour here",
  ["make test"] = "the whole suite plain and under ASan+UBSan, and luacheck: what CI runs (this spec is part of it)",
  ["make matrix"] = "the plain suite once per machine configuration, changing sysctls, minutes each "
    .. "(CI's matrix job); its --dry-run is run here",
  ["luarocks --lua-version=5.4 make"] = "installs into the system tree; spec/rockspec_spec.lua installs the "
    .. "rockspec into an empty tree",
  ["make fuzz"] = "minutes of fuzzing under two sanitizer builds (CI's fuzz job)",
  ["make fuzz SEEDS=2000 FUZZ_JOBS=4"] = "a longer make fuzz",
  ["lua5.4 fuzz/run.lua --build build-asan --sanitize asan --seeds 500 --first 1000 --calls 2500 --jobs 4"] =
    "a fuzz campaign of minutes against the ASan build (make fuzz runs the same runner)",
}

-- README commands run in another form, each with why ({command, reason}).
local REWRITTEN = {
  ["make"] = { "make BUILD=%s", "builds the build under test (a no-op once built), not the checkout's build/" },
  ["make matrix MATRIX_ARGS=--dry-run"] = { "make BUILD=%s matrix MATRIX_ARGS=--dry-run",
    "with the build under test, as make above" },
  ["sh .ci/matrix --only user,thp-never"] = { "sh .ci/matrix --only user,thp-never --dry-run",
    "the real run changes THP and runs the suite twice; the dry run checks the names and prints the plan" },
}

-- Commands the README names in its comments ("sh .ci/matrix --list names them
-- all"): run as well. Each must still be in the README.
local NAMED_IN_COMMENTS = { "sh .ci/matrix --list", "bin/vmlab --version", "bin/vmlab run --help" }

-- The fenced blocks of README.md: {lang=, first= (line number), lines={...}}.
local function blocks(text)
  local list, cur, n = {}, nil, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local fence = line:match("^```(%S*)%s*$")
    if fence and not cur then
      cur = { lang = fence, first = n + 1, lines = {} }
    elseif fence then
      list[#list + 1] = cur
      cur = nil
    elseif cur then
      cur.lines[#cur.lines + 1] = line
    end
  end
  assert(not cur, "README.md: a code block is not closed")
  return list
end

-- A command line without its comment (a # after two spaces) and blanks.
local function command_of(line)
  return (line:gsub("%s%s+#.*$", ""):gsub("^%s+", ""):gsub("%s+$", ""))
end

-- The examples: {kind = "sh"|"lua", line =, command = (sh), input = (the
-- > lines for a REPL), source = (lua), shown = (the lines a transcript shows after it)}.
local function examples(text)
  local list = {}
  for _, b in ipairs(blocks(text)) do
    if b.lang == "sh" then
      for i, line in ipairs(b.lines) do
        local c = command_of(line)
        if c ~= "" then list[#list + 1] = { kind = "sh", line = b.first + i - 1, command = c } end
      end
    elseif b.lang == "lua" then
      list[#list + 1] = { kind = "lua", line = b.first, source = table.concat(b.lines, "\n") }
    elseif b.lang == "" then -- a transcript ($ and > lines), or a listing (no commands)
      local cur
      for i, line in ipairs(b.lines) do
        local dollar, prompt = line:match("^%$ (.*)$"), line:match("^> (.*)$")
        if dollar then
          cur = { kind = "sh", line = b.first + i - 1, command = command_of(dollar), shown = {} }
          list[#list + 1] = cur
        elseif prompt and cur then
          cur.input = (cur.input or "") .. prompt .. "\n"
        elseif cur then
          cur.shown[#cur.shown + 1] = line
        end
      end
    else
      error(("README.md:%d: a ```%s block: this spec knows sh, lua and plain blocks"):format(b.first - 1, b.lang))
    end
  end
  return list
end

local function slurp(path) return assert(require("vmlab.proc").read_file(path)) end

-- Run command with sh in dir (stdin: input or nothing); out, err, exit code.
local function run(command, dir, env, input)
  local tmp = os.tmpname()
  local fin = assert(io.open(tmp .. ".in", "w"))
  fin:write(input or "")
  fin:close()
  local sh = ("cd %s && %s timeout 600 sh -c %s <%s >%s 2>%s"):format(q(dir), env, q("set -e; " .. command),
    q(tmp .. ".in"), q(tmp .. ".out"), q(tmp .. ".err"))
  local _, _, code = os.execute(sh)
  local out, err = slurp(tmp .. ".out"), slurp(tmp .. ".err")
  os.remove(tmp); os.remove(tmp .. ".in"); os.remove(tmp .. ".out"); os.remove(tmp .. ".err")
  return out, err, code
end

describe("README.md's examples", function()
  local text = slurp(here .. "/README.md")
  local list = examples(text)
  local sanitized = os.getenv("VMLAB_SANITIZED")
  local build = build_dir()
  -- the environment of every command: the checkout's Lua modules and the build under test
  local env = ("LUA_PATH=%s LUA_CPATH=%s VMLAB_BUILD=%s"):format(
    q(here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;;"), q(build .. "/?.so;;"), q(build))
  local dir -- the stand-in checkout

  setup(function()
    if sanitized then return end
    local p = assert(io.popen("mktemp -d /tmp/vmlab-readme.XXXXXX"))
    dir = p:read("l")
    p:close()
    assert(os.execute(("ln -s %s %s/bin && ln -s %s %s/lua && ln -s %s %s/examples && mkdir %s/build"):format(
      q(here .. "/bin"), q(dir), q(here .. "/lua"), q(dir), q(here .. "/examples"), q(dir), q(dir))))
  end)
  teardown(function()
    if dir and dir:match("^/tmp/vmlab%-readme%.") then os.execute("rm -rf " .. q(dir)) end
  end)

  it("has its commands and its exclusions in step: each exclusion and rewrite names a command it has", function()
    local commands = {}
    for _, e in ipairs(list) do if e.command then commands[e.command] = true end end
    assert.is_true(#list >= 20, #list .. " examples")
    for c in pairs(EXCLUDED) do assert.is_true(commands[c], "EXCLUDED names a command README.md lacks: " .. c) end
    for c in pairs(REWRITTEN) do assert.is_true(commands[c], "REWRITTEN names a command README.md lacks: " .. c) end
    for _, c in ipairs(NAMED_IN_COMMENTS) do
      assert.is_truthy(text:find(c, 1, true), "README.md no longer names " .. c)
    end
  end)

  for _, e in ipairs(list) do
    local where = ("README.md:%d"):format(e.line)
    if e.kind == "sh" and EXCLUDED[e.command] then
      pending(where .. " `" .. e.command .. "` is not run here: " .. EXCLUDED[e.command])
    elseif e.kind == "sh" then
      local rewrite = REWRITTEN[e.command]
      local title = where .. " `" .. e.command .. "` runs and exits 0"
        .. (rewrite and (" (as `" .. rewrite[1]:format("BUILD") .. "`: " .. rewrite[2] .. ")") or "")
        .. (e.input and ", and the lines typed into it raise no error" or "")
      it(title, function()
        if sanitized then
          return vassert.pending("the README's commands run the plain build: the plain run covers them")
        end
        local command = rewrite and rewrite[1]:format(q(build)) or e.command
        local in_checkout = command:match("^make") or command:match("^sh %.ci/")
        local out, err, code = run(command, in_checkout and here or dir, env, e.input)
        assert.equal(0, code, ("%s: `%s` exited %s:\n%s%s"):format(where, command, tostring(code), out, err))
        if e.input then -- the REPL reports an error on stderr and goes on
          assert.equal("", err, where .. ": a line typed into the REPL failed")
          assert.is_truthy(out:find("> ", 1, true), out)
        end
        if e.command == "cat sums.txt" then -- vmlab sum's output is the same on every machine
          assert.equal(table.concat(e.shown, "\n") .. "\n", out)
        end
      end)
    else -- a lua block
      if e.source:find("\nit%(") or e.source:match("^it%(") then
        -- a spec: its cases run as cases of this one, with busted's assert
        local spec_env = setmetatable({
          it = function(name, fn)
            it(where .. " (a spec in the README): " .. name, function()
              if sanitized then return vassert.pending("the plain run covers the README's spec") end
              fn()
            end)
          end,
        }, { __index = _ENV })
        assert(load(e.source, "=" .. where, "t", spec_env))()
      else
        it(where .. " a Lua example runs to its end as a script", function()
          if sanitized then
            return vassert.pending("the README's scripts run the plain build: the plain run covers them")
          end
          local file = dir .. ("/readme-%d.lua"):format(e.line)
          local f = assert(io.open(file, "w"))
          f:write(e.source, "\n")
          f:close()
          local out, err, code = run("lua5.4 " .. q(file), dir, env)
          assert.equal(0, code, ("%s exited %s:\n%s%s"):format(where, tostring(code), out, err))
        end)
      end
    end
  end
end)
