-- The rockspec builds and installs what the checkout has: no module left out.
describe("the rockspec", function()
  local spec = {}
  local chunk = assert(loadfile("vmlab-scm-1.rockspec", "t", spec))
  chunk()

  local function files(cmd)
    local list = {}
    local p = assert(io.popen(cmd))
    for line in p:lines() do list[#list + 1] = line end
    p:close()
    return list
  end

  it("is a builtin build of vmlab.core from every C file in csrc/", function()
    assert.equal("builtin", spec.build.type)
    local core = spec.build.modules["vmlab.core"]
    local listed = {}
    for _, src in ipairs(core.sources) do listed[src] = true end
    for _, c in ipairs(files("ls csrc/*.c")) do
      assert.is_true(listed[c], c .. " is not in the rockspec's sources")
    end
    assert.truthy(core.libraries)
  end)

  it("installs every Lua module under lua/ and the vmlab command", function()
    for _, path in ipairs(files("find lua -name '*.lua' | sort")) do
      local name = path:gsub("^lua/", ""):gsub("/init%.lua$", ""):gsub("%.lua$", ""):gsub("/", ".")
      assert.equal(path, spec.build.modules[name], name .. " is not installed by the rockspec")
    end
    assert.equal("bin/vmlab", spec.build.install.bin.vmlab)
  end)
end)

describe("the rockspec's dependencies", function()
  local spec = {}
  assert(loadfile("vmlab-scm-1.rockspec", "t", spec))()
  local function files(cmd)
    local list = {}
    local p = assert(io.popen(cmd))
    for line in p:lines() do list[#list + 1] = line end
    p:close()
    return list
  end

  it("lists every Lua module vmlab requires from outside, each with a version", function()
    local deps = {}
    for _, d in ipairs(spec.dependencies) do
      local name, constraint = d:match("^(%S+)%s*(.*)$")
      deps[name] = constraint
    end
    assert.matches("^>= 5%.4", deps.lua)
    assert.matches("%d", deps.argparse or "", "argparse")
    assert.matches("%d", deps["lua-cjson"] or "", "lua-cjson (the cjson module)")
    -- luassert and say come with busted: vmlab.assert is for specs (the rockspec's test_dependencies)
    local rock_of = { argparse = "argparse", cjson = "lua-cjson", luassert = "busted", say = "busted" }
    for _, d in ipairs(spec.test_dependencies or {}) do
      local name, constraint = d:match("^(%S+)%s*(.*)$")
      deps[name] = constraint
    end
    for _, path in ipairs(files("find lua bin -type f | sort")) do
      for mod in io.open(path):read("a"):gmatch("require%s*%(?%s*[\"']([%w_.]+)[\"']") do
        local top = mod:match("^[^.]+")
        if top ~= "vmlab" then
          assert.is_not_nil(rock_of[top], path .. " requires '" .. mod .. "', which no dependency provides")
          assert.is_not_nil(deps[rock_of[top]], rock_of[top] .. " is not in the rockspec's dependencies")
        end
      end
    end
  end)

  it("has a source url that is not a path on one machine", function()
    assert.matches("^git%+https://", spec.source.url)
  end)
end)

-- LuaRocks cannot reach its registry here, and Debian's lua-argparse and lua-cjson register no rock
-- manifests, so the tree's config declares them `rocks_provided` with the versions dpkg reports: LuaRocks
-- still checks each of the rockspec's dependencies (and its version constraint) against them.
describe("luarocks make into an empty tree", function()
  it("installs vmlab with only the rockspec's dependencies, and the installed vmlab command runs the tour", function()
    if not os.execute("command -v luarocks >/dev/null 2>&1") then
      return pending("luarocks is not installed (make test installs it through .ci/deps)")
    end
    local function dpkg_version(pkg)
      local p = io.popen("dpkg-query -W -f '${Version}' " .. pkg .. " 2>/dev/null")
      local v = p and p:read("a") or ""
      if p then p:close() end
      return v:match("^(%d[%d.]*)")
    end
    local argparse_v, cjson_v = dpkg_version("lua-argparse"), dpkg_version("lua-cjson")
    if not (argparse_v and cjson_v) then return pending("lua-argparse or lua-cjson is not a Debian package here") end
    local tmp = os.tmpname()
    os.remove(tmp)
    local function sh(cmd) return os.execute(cmd .. " >>" .. tmp .. ".log 2>&1") end
    assert.is_true(sh(("mkdir -p %s/src && cp -r csrc lua bin doc vmlab-scm-1.rockspec %s/src"):format(tmp, tmp)))
    local cfg = assert(io.open(tmp .. "/config.lua", "w"))
    cfg:write(("rocks_trees = { %q }\nrocks_provided = { argparse = %q, [\"lua-cjson\"] = %q }\n"):format(
      tmp .. "/tree", argparse_v .. "-1", cjson_v .. "-1"))
    cfg:close()
    -- without the sanitizer's preload: luarocks runs wget and the compiler, and the tree's core is not sanitized
    local ok = sh(("cd %s/src && unset LD_PRELOAD && LUAROCKS_CONFIG=%s/config.lua timeout 600 "
      .. "luarocks --lua-version=5.4 make "
      .. "--tree %s/tree vmlab-scm-1.rockspec"):format(tmp, tmp, tmp))
    local log = io.open(tmp .. ".log"):read("a")
    assert.is_true(ok, log)
    local env = ("env -u LD_PRELOAD LUA_PATH='%s/tree/share/lua/5.4/?.lua;%s/tree/share/lua/5.4/?/init.lua;;' "
      .. "LUA_CPATH='%s/tree/lib/lua/5.4/?.so;;' "):format(tmp, tmp, tmp)
    local p = io.popen(env .. "lua5.4 -e 'local vm = require \"vmlab\"; local r = vm.mmap(vm.page_size); "
      .. "r:touch(\"write\"); print(package.searchpath(\"vmlab.core\", package.cpath), r:resident())'")
    local out = p:read("a")
    p:close()
    assert.matches("^" .. tmp:gsub("%p", "%%%0") .. "/tree/lib/lua/5.4/vmlab/core.so\t1\t1\n$", out)
    -- the installed command, with nothing of the checkout on its paths
    local clean = "env -u LD_PRELOAD -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u VMLAB_BUILD "
    local function run(args)
      local rp = io.popen(("cd / && %s%s/tree/bin/vmlab %s 2>&1"):format(clean, tmp, args))
      local text = rp:read("a")
      local _, _, code = rp:close()
      return text, code
    end
    local text, code = run("--version")
    assert.equal(0, code, text)
    assert.matches("^vmlab ", text)
    text, code = run("list")
    assert.equal(0, code, text)
    assert.matches("lazy", text)
    text, code = run("run page-table")
    assert.equal(0, code, text)
    assert.matches("^page%-table %- ", text)
    -- the whole tour, from the installed files alone
    text, code = run("tour")
    assert.equal(0, code, text)
    assert.matches("\ntour: %d+ experiments ran %(%d+ skipped%), 0 failed", text)
    assert.matches("\ntour: %d+ experiments, %d+ claims: %d+ held", text)
    -- the man page and the completion are in the rock's doc/
    local doc = tmp .. "/tree/lib/luarocks/rocks-5.4/vmlab/scm-1/doc/"
    assert.truthy(io.open(doc .. "vmlab.1"), "man page installed")
    assert.truthy(io.open(doc .. "vmlab.bash-completion"), "completion installed")
    os.execute(("rm -rf %s %s.log"):format(tmp, tmp))
  end)
end)
