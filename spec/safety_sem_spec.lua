-- Semaphores in shared memory under hostile use (issue 9, family 6): bytes
-- s:sem_init never made, a destroyed semaphore or one whose words were
-- overwritten give nil, "no semaphore at offset N", EINVAL instead of an
-- abort in glibc, and a counter inside the semaphore raises instead of
-- hanging for ever.
local vm = require "vmlab"

local EINVAL = 22

-- Run fn in a forked child, so that an abort or a hang is seen as a failure
-- of this spec, not the end of the suite; returns what fn returned.
local function in_child(fn)
  local result, status = vm.child.run(fn, { timeout = 20 })
  assert.is_not_true(status.timed_out, "the call hung (killed after 20 s)")
  assert.is_nil(status.signal_name, "the child died of " .. tostring(status.signal_name))
  assert.is_nil(status.error)
  return result
end

local function fresh_name()
  return ("vmlab-spec-sem-%d-%d"):format(vm.getpid(), math.random(1, 1 << 30))
end

describe("semaphores vmlab did not make", function()
  local s
  before_each(function() s = assert(vm.shm_open(fresh_name(), { create = true, size = 4096 })) end)
  after_each(function() s:close() end)

  it("every semaphore call on garbage bytes returns nil, 'no semaphore', EINVAL instead of aborting", function()
    s:write(0, ("\255"):rep(256))
    local r = in_child(function()
      local out = {}
      for _, call in ipairs {
        function() return s:sem_post(0) end, function() return s:sem_wait(0) end,
        function() return s:sem_wait(0, 0) end, function() return s:sem_wait(0, 0.01) end,
        function() return s:sem_value(0) end, function() return s:sem_destroy(0) end,
        function() return s:sem_add_n(0, 128, 1, 10) end,
      } do
        out[#out + 1] = { call() }
      end
      return out
    end)
    assert.equal(7, #r)
    for i, got in ipairs(r) do
      assert.is_nil(got[1], "call " .. i)
      assert.matches("no semaphore at offset 0", got[2])
      assert.equal(EINVAL, got[3])
    end
  end)

  it("zeroed bytes are no semaphore either", function()
    local ok, msg, errno = s:sem_post(64)
    assert.is_nil(ok)
    assert.matches("^sem_post: no semaphore at offset 64", msg)
    assert.equal(EINVAL, errno)
    assert.is_nil((s:sem_value(64)))
  end)

  it("a destroyed semaphore is no semaphore any more", function()
    assert.is_true(s:sem_init(64, 1))
    assert.equal(1, s:sem_value(64))
    assert.is_true(s:sem_destroy(64))
    local ok, msg, errno = s:sem_wait(64, 0)
    assert.is_nil(ok)
    assert.matches("no semaphore at offset 64", msg)
    assert.equal(EINVAL, errno)
    assert.is_nil((s:sem_destroy(64)), "destroying twice")
  end)

  it("a semaphore whose words were overwritten after sem_init is refused, not handed to glibc", function()
    assert.is_true(s:sem_init(0, 1))
    -- the sem_t's own words (count, waiters, futex flag), not the marker after them
    s:write(0, ("\255"):rep(16))
    local r = in_child(function() return { s:sem_post(0) } end)
    assert.is_nil(r[1])
    assert.matches("no semaphore at offset 0", r[2])
    assert.equal(EINVAL, r[3])
  end)

  it("semaphores vm.sem_size bytes apart are independent", function()
    local n = vm.sem_size
    assert.is_true(math.type(n) == "integer" and n >= 16 and n <= 128, tostring(n))
    assert.is_true(s:sem_init(0, 1))
    assert.is_true(s:sem_init(n, 5))
    assert.is_true(s:sem_wait(0, 0))
    assert.equal(0, s:sem_value(0))
    assert.equal(5, s:sem_value(n))
    assert.is_true(s:sem_destroy(0))
    assert.is_true(s:sem_destroy(n))
  end)
end)

describe("sem_add_n arguments", function()
  local s
  before_each(function() s = assert(vm.shm_open(fresh_name(), { create = true, size = 4096 })) end)
  after_each(function() s:close() end)

  it("a counter inside the semaphore raises instead of hanging for ever", function()
    assert.is_true(s:sem_init(0, 1))
    local r = in_child(function()
      local ok, err = pcall(function() return s:sem_add_n(0, 0, -1, 10, 32) end)
      return { ok, err }
    end)
    assert.is_false(r[1])
    assert.matches("bad argument #2 to 'sem_add_n' %(the counter at offset 0 overlaps the semaphore", r[2])
    for _, off in ipairs { 8, vm.sem_size - 4 } do
      assert.has_error(function() s:sem_add_n(0, off, 1, 1, 32) end)
    end
  end)

  it("a counter right after the semaphore is fine", function()
    assert.is_true(s:sem_init(0, 1))
    local off = (vm.sem_size + 7) // 8 * 8
    s:atomic_store(off, 0)
    assert.is_number(s:sem_add_n(0, off, 2, 50))
    assert.equal(100, s:atomic_load(off))
    assert.equal(1, s:sem_value(0))
  end)
end)
