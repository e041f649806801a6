-- vm.file_resident and vm.fadvise on files that have no page cache (issue 9,
-- family 10): a FIFO nobody writes to, a directory, a device are refused with
-- nil, a message naming what the file is, EINVAL - never a hang.
local vm = require "vmlab"

local EINVAL = 22

-- Run fn in a forked child (so a hang cannot stop the suite) and return its result.
local function in_child(fn)
  local result, status = vm.child.run(fn, { timeout = 20 })
  assert.is_not_true(status.timed_out, "the call hung (killed after 20 s)")
  assert.is_nil(status.error)
  return result
end

describe("page cache calls on a file that is not a regular file", function()
  local dir, fifo
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    fifo = dir .. "/fifo"
    assert(os.execute("mkfifo " .. fifo))
  end)
  after_each(function()
    os.remove(fifo)
    os.remove(dir)
  end)

  it("file_resident of a FIFO nobody writes to returns nil, 'a FIFO', EINVAL instead of hanging", function()
    local r = in_child(function() return { vm.file_resident(fifo) } end)
    assert.is_nil(r[1])
    assert.matches("a FIFO, not a regular file", r[2])
    assert.equal(EINVAL, r[3])
  end)

  it("fadvise of a FIFO nobody writes to returns nil, 'a FIFO', EINVAL instead of hanging", function()
    local r = in_child(function() return { vm.fadvise(fifo, "dontneed") } end)
    assert.is_nil(r[1])
    assert.matches("a FIFO, not a regular file", r[2])
    assert.equal(EINVAL, r[3])
  end)

  it("a directory and a character device are refused the same way", function()
    local ok, msg, errno = vm.file_resident(dir)
    assert.is_nil(ok)
    assert.matches("a directory", msg)
    assert.equal(EINVAL, errno)
    ok, msg, errno = vm.fadvise("/dev/null", "willneed")
    assert.is_nil(ok)
    assert.matches("a character device", msg)
    assert.equal(EINVAL, errno)
  end)

  it("a path with a NUL byte raises instead of naming a shorter path", function()
    assert.has_error(function() vm.file_resident(dir .. "\0/x") end,
      "bad argument #1 to 'file_resident' (string contains a NUL byte)")
    assert.has_error(function() vm.fadvise(dir .. "\0/x", "normal") end,
      "bad argument #1 to 'fadvise' (string contains a NUL byte)")
    assert.has_error(function() vm.fadvise("/tmp", "normal\0") end)
  end)
end)
