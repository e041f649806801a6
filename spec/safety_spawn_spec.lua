-- vm.spawn under hostile options (issue 9, families 4 and 11): strings an
-- __index metamethod makes stay alive while spawn uses them, each option is
-- read once, and a NUL byte that exec(2) would silently cut raises instead.
local vm = require "vmlab"

-- The absolute path s as a fresh string object ("/./././tmp"): strings
-- longer than 40 bytes are never interned, each concatenation is a new one.
local function fresh(s)
  return ("/."):rep(30) .. s
end

-- Options whose every field comes from __index: a fresh string each time it
-- is asked for; asking for `collect_on` runs a full collection and fills the
-- heap with strings of the same length, so a string spawn read earlier but did
-- not keep is freed and its memory reused.
local function proxy(fields, collect_on)
  return setmetatable({}, {
    __index = function(_, k)
      if k == collect_on then
        collectgarbage("collect")
        local junk = {}
        for i = 1, 2000 do junk[i] = ("#"):rep(60 + i % 7) .. i end
        collectgarbage("collect")
        assert(#junk == 2000) -- still alive: its strings sit where the freed ones were
      end
      local v = fields[k]
      if type(v) == "string" then return fresh(v) end
      return v
    end,
  })
end

local function read_file(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

describe("spawn with options from an __index metamethod", function()
  it("runs in the cwd the metamethod gave, even after a collection frees every unanchored string", function()
    local out = os.tmpname()
    for _, collect_on in ipairs { "clear_env", "death_signal", "env", "stdin", "stdout", "stderr" } do
      local c, msg = vm.spawn({ "pwd" }, proxy({ cwd = "/tmp", stdout = out }, collect_on))
      assert.is_truthy(c, msg)
      local st = c:wait()
      assert.is_true(st.exited and st.code == 0, "pwd did not exit 0 (collection on " .. collect_on .. ")")
      assert.equal("/tmp\n", read_file(out), "collection on " .. collect_on)
    end
    os.remove(out)
  end)

  it("reads each redirection once: a metamethod that answers differently the second time cannot leak a descriptor",
    function()
      local function fds()
        local n = 0
        for _ in io.popen("ls /proc/" .. vm.getpid() .. "/fd"):lines() do n = n + 1 end
        return n
      end
      local before = fds()
      for _ = 1, 20 do
        local asked = {}
        local opts = setmetatable({}, {
          __index = function(_, k)
            asked[k] = (asked[k] or 0) + 1
            if k == "stdin" then return "/dev/null" end
            if k == "stdout" then return asked[k] == 1 and "/dev/null" or {} end
          end,
        })
        local c = vm.spawn({ "true" }, opts)
        assert.equal(1, asked.stdout)
        if c then c:wait() end
      end
      assert.is_true(fds() <= before + 1, ("descriptors grew from %d to %d"):format(before, fds()))
    end)
end)

describe("spawn and NUL bytes", function()
  it("an argv entry with a NUL byte raises naming it instead of being cut", function()
    assert.has_error(function() vm.spawn({ "echo", "a\0b" }) end,
      "bad argument #1 to 'spawn' (argv[2] contains a NUL byte)")
    assert.has_error(function() vm.spawn({ "true\0false" }) end,
      "bad argument #1 to 'spawn' (argv[1] contains a NUL byte)")
  end)

  it("an environment name or value with a NUL byte raises", function()
    assert.has_error(function() vm.spawn({ "true" }, { env = { A = "x\0y" } }) end,
      "bad option 'env' (value of A contains a NUL byte)")
    assert.has_error(function() vm.spawn({ "true" }, { env = { ["A\0B"] = "x" } }) end,
      "bad option 'env' (keys must be variable names without '=' or NUL)")
  end)

  it("a cwd or redirection path with a NUL byte raises", function()
    assert.has_error(function() vm.spawn({ "true" }, { cwd = "/tmp\0/nonexistent" }) end,
      "bad option 'cwd' (string contains a NUL byte)")
    assert.has_error(function() vm.spawn({ "true" }, { stdout = "/dev/null\0x" }) end,
      "bad option 'stdout' (path contains a NUL byte)")
  end)
end)
