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

describe("luarocks make", function()
  it("installs a module that loads and maps memory, and the vmlab command", function()
    if not os.execute("command -v luarocks >/dev/null 2>&1") then
      return pending("luarocks is not installed (make test installs it through .ci/deps)")
    end
    local tmp = os.tmpname()
    os.remove(tmp)
    local function sh(cmd) return os.execute(cmd .. " >" .. tmp .. ".log 2>&1") end
    assert.is_true(sh(("mkdir -p %s/src && cp -r csrc lua bin vmlab-scm-1.rockspec %s/src"):format(tmp, tmp)))
    local ok = sh(("cd %s/src && luarocks --lua-version=5.4 make --tree %s/tree vmlab-scm-1.rockspec"):format(tmp, tmp))
    local log = io.open(tmp .. ".log"):read("a")
    assert.is_true(ok, log)
    local env = ("LUA_PATH='%s/tree/share/lua/5.4/?.lua;%s/tree/share/lua/5.4/?/init.lua' "
      .. "LUA_CPATH='%s/tree/lib/lua/5.4/?.so' "):format(tmp, tmp, tmp)
    local p = io.popen(env .. "lua5.4 -e 'local vm = require \"vmlab\"; local r = vm.mmap(vm.page_size); "
      .. "r:touch(\"write\"); print(package.searchpath(\"vmlab.core\", package.cpath), r:resident())'")
    local out = p:read("a")
    p:close()
    assert.matches("^" .. tmp:gsub("%p", "%%%0") .. "/tree/lib/lua/5.4/vmlab/core.so\t1\t1\n$", out)
    p = io.popen(tmp .. "/tree/bin/vmlab list 2>&1")
    out = p:read("a")
    p:close()
    assert.matches("lazy", out)
    os.execute(("rm -rf %s %s.log"):format(tmp, tmp))
  end)
end)
