-- POSIX shared memory and the ways two processes coordinate through it:
-- vm.shm_open/shm_unlink, atomics, futex wait/wake, semaphores, the race loops.
local vm = require "vmlab"

local PAGE = vm.page_size -- the objects here are one page

local EEXIST, ENOENT = 17, 2
local serial = 0
local function fresh_name()
  serial = serial + 1
  return ("/vmlab-spec-shm-%d-%d"):format(vm.getpid(), serial)
end

local function in_dev_shm(name)
  local f = io.open("/dev/shm" .. name, "rb")
  if f then f:close() end
  return f ~= nil
end

-- wait for a forked child and return its exit code (it must exit normally)
local function code_of(child)
  local st = assert(child:wait({ timeout = 20 }))
  assert(st.exited, "child did not exit normally: " .. tostring(st.signal_name))
  return st.code
end

describe("vm.shm_open", function()
  after_each(function()
    for _, o in ipairs(vm.shm_list("vmlab-spec-shm-" .. vm.getpid() .. "-")) do vm.shm_unlink(o.name) end
  end)

  it("creates a named object, opens it again by name, and shm_unlink removes the name", function()
    local name = fresh_name()
    local s = assert(vm.shm_open(name, { create = true, exclusive = true, size = 8192 }))
    assert.equal("shm", s.kind)
    assert.is_true(s.shared)
    assert.equal(name, s.name)
    assert.equal(8192, s.size)
    assert.is_true(in_dev_shm(name))
    s:write(100, "hello")
    local o = assert(vm.shm_open(name)) -- no size: the object's current size
    assert.equal(8192, o.size)
    assert.equal("hello", o:read(100, 5))
    assert.are_not.equal(s.address, o.address)
    o:close()
    assert.is_true(vm.shm_unlink(name))
    assert.is_false(in_dev_shm(name))
    local r, msg, errno = vm.shm_open(name)
    assert.is_nil(r)
    assert.matches("No such file", msg)
    assert.equal(ENOENT, errno)
    s:close()
  end)

  it("adds the leading slash when the name has none", function()
    local name = fresh_name()
    local s = assert(vm.shm_open(name:sub(2), { create = true, size = 64 }))
    assert.equal(name, s.name)
    assert.is_true(in_dev_shm(name))
    s:close()
  end)

  it("refuses an exclusive create of a name that exists with nil, message, EEXIST", function()
    local name = fresh_name()
    local s = assert(vm.shm_open(name, { create = true, exclusive = true, size = 64 }))
    local r, msg, errno = vm.shm_open(name, { create = true, exclusive = true, size = 64 })
    assert.is_nil(r)
    assert.matches("File exists", msg)
    assert.matches(name, msg, 1, true)
    assert.equal(EEXIST, errno)
    s:close()
  end)

  it("a non-exclusive create of an existing name opens it and leaves the name to its creator", function()
    local name = fresh_name()
    local s = assert(vm.shm_open(name, { create = true, size = 64 }))
    local o = assert(vm.shm_open(name, { create = true, size = 64 }))
    o:close()
    assert.is_true(in_dev_shm(name), "the opener must not unlink the creator's object")
    s:close()
    assert.is_false(in_dev_shm(name))
  end)

  it("the object disappears from /dev/shm when its creator closes or collects it", function()
    local a, b = fresh_name(), fresh_name()
    local s = assert(vm.shm_open(a, { create = true, size = PAGE }))
    assert.is_true(in_dev_shm(a))
    s:close()
    assert.is_false(in_dev_shm(a))
    s:close() -- twice is harmless
    do -- a region nothing refers to any more
      assert(vm.shm_open(b, { create = true, size = PAGE }))
      assert.is_true(in_dev_shm(b))
    end
    collectgarbage()
    collectgarbage()
    assert.is_false(in_dev_shm(b))
  end)

  it("keep = true leaves the name in place after close", function()
    local name = fresh_name()
    local s = assert(vm.shm_open(name, { create = true, size = PAGE, keep = true }))
    s:close()
    assert.is_true(in_dev_shm(name))
    assert.is_true(vm.shm_unlink(name))
  end)

  it("s:unlink() removes the name at once and the mapping keeps working", function()
    local name = fresh_name()
    local s = assert(vm.shm_open(name, { create = true, size = PAGE }))
    assert.is_true(s:unlink())
    assert.is_false(in_dev_shm(name))
    s:atomic_store(0, 42)
    assert.equal(42, s:atomic_load(0))
    s:close()
  end)

  it("a forked child closing the region does not unlink the parent's object", function()
    local name = fresh_name()
    local s = assert(vm.shm_open(name, { create = true, size = PAGE }))
    local child = assert(vm.fork(function()
      s:close()
      collectgarbage()
      return 0
    end))
    assert.equal(0, code_of(child))
    assert.is_true(in_dev_shm(name))
    s:close()
  end)

  it("mode sets the object's permissions (default 0600)", function()
    local a, b = fresh_name(), fresh_name()
    local s = assert(vm.shm_open(a, { create = true, size = 64 }))
    local t = assert(vm.shm_open(b, { create = true, size = 64, mode = tonumber("640", 8) }))
    assert.equal(tonumber("600", 8), vm.shm_list(a)[1].mode)
    assert.equal(tonumber("640", 8), vm.shm_list(b)[1].mode)
    s:close()
    t:close()
  end)

  it("an existing object of size 0 gives a clear error instead of an empty mapping", function()
    local name = fresh_name()
    local f = assert(io.open("/dev/shm" .. name, "w")) -- /dev/shm files are the objects
    f:close()
    local r, msg, errno = vm.shm_open(name)
    assert.is_nil(r)
    assert.matches("size 0", msg)
    assert.equal(22, errno)
    r, msg = vm.shm_open(name, { size = PAGE })
    assert.is_nil(r)
    assert.matches("fewer than the " .. PAGE, msg)
    assert.is_true(vm.shm_unlink(name))
  end)

  it("bad names and options raise errors naming them", function()
    assert.error_matches(function() vm.shm_open("a/b") end, "name must not contain '/'")
    assert.error_matches(function() vm.shm_open("/") end, "name is empty")
    assert.error_matches(function() vm.shm_open(("x"):rep(256)) end, "NAME_MAX")
    assert.error_matches(function() vm.shm_open("..") end, "'.' or '..'")
    assert.error_matches(function() vm.shm_open("x", { create = true }) end, "'size'.*required")
    assert.error_matches(function() vm.shm_open("x", { create = true, size = 0 }) end, "'size'.*positive")
    assert.error_matches(function() vm.shm_open("x", { exclusive = true }) end, "'exclusive'")
    assert.error_matches(function() vm.shm_open("x", { create = true, size = 1, mode = -1 }) end, "'mode'")
    assert.error_matches(function() vm.shm_open("x", { creat = true }) end, "'creat'.*unknown option")
  end)

  it("shm_list finds objects by name prefix", function()
    local name = fresh_name()
    local s = assert(vm.shm_open(name, { create = true, size = 12345 }))
    local l = vm.shm_list(name)
    assert.equal(1, #l)
    assert.equal(name, l[1].name)
    assert.equal(12345, l[1].size)
    assert.is_number(l[1].mtime)
    assert.equal(tonumber("600", 8), l[1].mode)
    s:close()
    assert.equal(0, #vm.shm_list(name))
  end)

  it("truncating the object under a mapping makes a read raise a Lua error, not SIGBUS", function()
    local name = fresh_name()
    local s = assert(vm.shm_open(name, { create = true, size = 2 * vm.page_size }))
    s:atomic_store(vm.page_size, 7)
    local f = assert(io.open("/dev/shm" .. name, "w")) -- O_TRUNC: the object now has size 0
    f:close()
    assert.error_matches(function() s:atomic_load(vm.page_size) end, "SIGBUS")
    assert.error_matches(function() s:atomic_add(0, 1) end, "SIGBUS")
    assert.error_matches(function() s:plain_add_n(0, 1, 10) end, "SIGBUS")
    assert.error_matches(function() s:sem_init(64, 1) end, "SIGBUS")
    s:close()
  end)
end)

describe("atomic words", function()
  local s
  before_each(function() s = assert(vm.shm_open(fresh_name(), { create = true, size = PAGE })) end)
  after_each(function() s:close() end)

  it("atomic_add returns the value before the add, like fetch_add", function()
    assert.equal(0, s:atomic_add(8, 5))
    assert.equal(5, s:atomic_add(8, -2))
    assert.equal(3, s:atomic_load(8))
  end)

  it("compare_swap swaps only when the word holds the expected value and returns what it found", function()
    s:atomic_store(16, 10)
    local ok, found = s:compare_swap(16, 11, 20)
    assert.is_false(ok)
    assert.equal(10, found)
    ok, found = s:compare_swap(16, 10, 20)
    assert.is_true(ok)
    assert.equal(10, found)
    assert.equal(20, s:atomic_load(16))
  end)

  it("32-bit words are separate, signed and wrap around", function()
    s:atomic_store(0, 0)
    s:atomic_store(4, -1, 32)
    assert.equal(-1, s:atomic_load(4, 32))
    assert.equal(0, s:atomic_load(0, 32), "the neighbouring word is untouched")
    s:atomic_store(4, 0xffffffff, 32)
    assert.equal(-1, s:atomic_load(4, 32))
    s:atomic_store(4, math.maxinteger & 0x7fffffff, 32)
    assert.equal(0x7fffffff, s:atomic_add(4, 1, 32))
    assert.equal(-0x80000000, s:atomic_load(4, 32))
  end)

  it("64-bit adds wrap like two's complement instead of failing", function()
    s:atomic_store(8, math.maxinteger)
    s:atomic_add(8, 1)
    assert.equal(math.mininteger, s:atomic_load(8))
  end)

  it("bad offsets, alignment, sizes and values raise errors naming the argument", function()
    assert.error_matches(function() s:atomic_load(3) end, "offset 3 is not aligned to 8")
    assert.error_matches(function() s:atomic_load(6, 32) end, "offset 6 is not aligned to 4")
    assert.error_matches(function() s:atomic_load(-8) end, "offset must not be negative")
    assert.error_matches(function() s:atomic_load(PAGE) end, "offset " .. PAGE .. " %+ 8 bytes is past the end")
    assert.error_matches(function() s:atomic_store(PAGE - 4, 1) end, "offset " .. PAGE - 4 .. " is not aligned")
    assert.error_matches(function() s:wait(PAGE, 0, 0) end, "offset " .. PAGE .. " %+ 4 bytes is past the end")
    assert.error_matches(function() s:atomic_load(0, 16) end, "bits must be 32 or 64")
    assert.error_matches(function() s:atomic_store(0, 1 << 32, 32) end, "value does not fit in 32 bits")
    assert.error_matches(function() s:atomic_load(1.5) end, "number has no integer representation")
    assert.error_matches(function() s.atomic_load({}, 0) end, "vmlab.Region expected")
    s:close()
    assert.error_matches(function() s:atomic_load(0) end, "attempt to use a closed region")
  end)

  it("a forked child's atomic adds are seen by the parent", function()
    s:atomic_store(0, 1)
    local child = assert(vm.fork(function()
      if s:atomic_load(0) ~= 1 then return 3 end -- the child sees the parent's store
      for _ = 1, 1000 do s:atomic_add(0, 2) end
      return 0
    end))
    assert.equal(0, code_of(child))
    assert.equal(2001, s:atomic_load(0))
  end)

  it("two processes counting with atomic adds and with a semaphore lose no update", function()
    local n = 200000
    s:atomic_store(0, 0)
    s:atomic_store(8, 0)
    assert.is_true(s:sem_init(64, 1))
    local kids = {}
    for i = 1, 2 do
      kids[i] = assert(vm.fork(function()
        s:atomic_add_n(0, 1, n)
        assert(s:sem_add_n(64, 8, 1, n))
        return 0
      end))
    end
    for i = 1, 2 do assert.equal(0, code_of(kids[i])) end
    assert.equal(2 * n, s:atomic_load(0))
    assert.equal(2 * n, s:atomic_load(8))
    s:atomic_store(16, 0)
    assert.is_number(s:plain_add_n(16, 3, 1000))
    assert.equal(3000, s:atomic_load(16), "alone, plain increments are exact")
    assert.is_true(s:sem_destroy(64))
  end)
end)

describe("futex wait and wake", function()
  local s
  before_each(function() s = assert(vm.shm_open(fresh_name(), { create = true, size = PAGE })) end)
  after_each(function() s:close() end)

  it("wait returns 'timeout' when nobody wakes it and 'changed' when the word differs", function()
    s:atomic_store(0, 5, 32)
    assert.equal("timeout", s:wait(0, 5, 0.02))
    assert.equal("changed", s:wait(0, 6, 10))
    assert.equal(0, s:wake(0), "nobody is waiting")
  end)

  it("a child sleeping in wait is woken by the parent's wake", function()
    s:atomic_store(0, 0, 32)
    local child = assert(vm.fork(function()
      s:atomic_store(8, 1) -- about to wait
      local r = s:wait(0, 0, 10)
      return r == "woken" and 0 or r == "changed" and 1 or 2
    end))
    while s:atomic_load(8) == 0 do end
    local woken = 0
    for _ = 1, 2000 do -- until the child is really asleep in FUTEX_WAIT
      woken = s:wake(0)
      if woken > 0 then break end
      s:wait(4, 0, 0.001)
    end
    assert.equal(1, woken)
    assert.equal(0, code_of(child))
  end)

  it("a private mapping uses a private futex that still times out and wakes", function()
    local r = assert(vm.mmap(PAGE))
    assert.equal("timeout", r:wait(0, 0, 0.01))
    assert.equal(0, r:wake(0))
    r:close()
  end)

  it("sleep_poll is the lab's flag-and-usleep loop", function()
    s:atomic_store(0, 1, 32)
    assert.equal("timeout", s:sleep_poll(0, 1, 0.001, 0.01))
    assert.equal("changed", s:sleep_poll(0, 0, 0.001, 1))
  end)

  it("a caught signal interrupts a futex wait instead of killing the process", function()
    assert.is_true(vm.signal_catch({ "USR1" }))
    vm.signal_caught(true)
    local parent = vm.getpid()
    local child = assert(vm.fork(function()
      s:wait(4, 0, 0.05)
      vm.kill(parent, "USR1")
      return 0
    end))
    local r = s:wait(0, 0, 10)
    assert.equal(0, code_of(child))
    vm.signal_restore()
    assert.equal("interrupted", r)
    assert.equal("SIGUSR1", vm.signal_caught(true))
    assert.is_nil(vm.signal_caught())
  end)

  it("signal_catch refuses signals it must not take over", function()
    assert.error_matches(function() vm.signal_catch("KILL") end, "cannot be caught")
    assert.error_matches(function() vm.signal_catch({ "SEGV" }) end, "cannot be caught")
    assert.error_matches(function() vm.signal_catch("NOPE") end, "unknown signal")
  end)
end)

describe("semaphores in shared memory", function()
  local s
  before_each(function() s = assert(vm.shm_open(fresh_name(), { create = true, size = PAGE })) end)
  after_each(function() s:close() end)

  it("count posts and waits, and a wait with timeout 0 does not block", function()
    assert.is_true(s:sem_init(0, 2))
    assert.is_true(s:sem_wait(0))
    assert.is_true(s:sem_wait(0, 0))
    local ok, why = s:sem_wait(0, 0)
    assert.is_false(ok)
    assert.equal("timeout", why)
    assert.equal(0, s:sem_value(0))
    assert.is_true(s:sem_post(0))
    assert.equal(1, s:sem_value(0))
    ok, why = s:sem_wait(0, 0.01)
    assert.is_true(ok, why)
    ok, why = s:sem_wait(0, 0.01)
    assert.is_false(ok)
    assert.equal("timeout", why)
    assert.is_true(s:sem_destroy(0))
  end)

  it("a child blocked in sem_wait is released by the parent's sem_post", function()
    assert.is_true(s:sem_init(32, 0))
    local child = assert(vm.fork(function()
      local ok = s:sem_wait(32, 10)
      return ok and 0 or 1
    end))
    assert.is_true(s:sem_post(32))
    assert.equal(0, code_of(child))
  end)

  it("semaphore offsets must be aligned and leave room for a sem_t", function()
    assert.error_matches(function() s:sem_init(4, 1) end, "offset 4 is not aligned")
    assert.error_matches(function() s:sem_init(4088, 1) end, "past the end")
    assert.error_matches(function() s:sem_init(0, -1) end, "value must be")
  end)
end)
