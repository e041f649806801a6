-- The man page and the bash completion are generated from the commands' parsers and the experiments'
-- descriptions (tools/gen-doc.lua), and they work.
local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return out, code
end

describe("doc/vmlab.1 and doc/vmlab.bash-completion", function()
  it("are what tools/gen-doc.lua generates from the parsers and descriptions", function()
    local out, code = sh(("cd %s && lua5.4 tools/gen-doc.lua --check"):format(q(here)))
    assert.equal(0, code, out)
  end)

  it("the man page renders with man and documents every command and experiment", function()
    if not os.execute("command -v man >/dev/null 2>&1") then return pending("man is not installed") end
    -- man and its helpers are not ours to sanitize: no ASan preload for them
    local out, code = sh(("env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS MANWIDTH=100 man -l %s/doc/vmlab.1")
      :format(q(here)))
    assert.equal(0, code, out)
    for _, section in ipairs { "NAME", "SYNOPSIS", "COMMANDS", "EXPERIMENTS", "EXIT STATUS" } do
      assert.matches("\n" .. section .. "\n", out)
    end
    for _, cmd in ipairs(require("vmlab.cli").commands) do assert.matches("\n   " .. cmd .. "\n", out) end
    for _, name in ipairs(require("vmlab.experiments").names()) do
      assert.matches("\n   " .. name:gsub("%-", "%%-") .. "\n", out)
    end
  end)

  local function complete(line)
    local out = sh(("env -u LD_PRELOAD bash -c %s _ %s %s"):format(q [=[
      source "$1/doc/vmlab.bash-completion"
      read -ra COMP_WORDS <<< "$2"
      [[ $2 == *" " ]] && COMP_WORDS+=("")
      COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
      _vmlab
      echo "${COMPREPLY[*]}"]=], q(here), q(line)))
    return (out:gsub("\n$", ""))
  end

  it("bash completes commands, experiment names, options and their choices", function()
    assert.equal("lazy", complete("vmlab run la"))
    assert.equal("memtest", complete("vmlab mem"))
    assert.equal("memtest", complete("vmlab help mem"))
    assert.equal("futex poll sem", complete("vmlab sum --sync "))
    assert.equal("r w read write", complete("vmlab memtest "))
    assert.matches("%-%-version", complete("vmlab --v"))
    assert.equal("--keep", complete("vmlab sum --ke"))
  end)
end)
