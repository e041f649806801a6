-- Regression of issue 9 (family 12): the fault guard's state is per thread.
-- spec/support/guard_threads.c runs two threads, each with its own
-- lua_State, that catch faults through vmlab at the same time; before, they
-- shared one jump buffer and the process crashed. Each thread that used the
-- guard also has an alternate signal stack.
local vm = require "vmlab"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, how, code = p:close()
  return ok, out, how, code
end

describe("safety: the fault guard and threads", function()
  it("two threads, each with its own lua_State, catch faults through vmlab at the same time", function()
    local build = os.getenv("VMLAB_BUILD") or "build"
    local exe = os.tmpname()
    local cflags = os.getenv("LUA_INC") or "-I/usr/include/lua5.4"
    local ok, out = sh(("cc -std=gnu11 -O1 %s %q -o %q -llua5.4 -pthread"):format(cflags,
      here .. "/support/guard_threads.c", exe))
    assert.is_true(ok, "could not build guard_threads.c: " .. out)
    local rounds = os.getenv("VMLAB_SANITIZED") and 3000 or 20000
    local ran, text, how, code = sh(("VMLAB_BUILD=%q %q %d"):format(build, exe, rounds))
    os.remove(exe)
    assert.is_true(ran, ("guard_threads ended by %s %s: %s"):format(tostring(how), tostring(code), text))
    assert.equal(("ok %d\n"):format(2 * 3 * rounds), text)
  end)

  it("the module still catches faults in the main thread after the threads' states are gone", function()
    local r <close> = assert(vm.mmap(vm.page_size, { prot = "none" }))
    local ok, err = pcall(r.read, r, 0, 1)
    assert.is_false(ok)
    assert.matches("SIGSEGV", err)
  end)
end)
