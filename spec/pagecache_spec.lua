-- The page cache seen from a file.
local vm = require "vmlab"

describe("the page cache", function()
  it("file_resident counts cached pages and fadvise dontneed drops them", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(("p"):rep(64 * vm.page_size))
    f:close()
    local cached, pages = vm.file_resident(path)
    assert.equal(64, pages)
    assert.is_true(cached >= 60, cached .. " pages cached right after writing")
    assert.is_true(vm.fadvise(path, "dontneed"))
    cached = vm.file_resident(path)
    if cached > 4 then
      os.remove(path)
      return pending("this filesystem keeps pages cached after POSIX_FADV_DONTNEED (" .. cached .. ")")
    end
    local r <close> = assert(vm.mmap(nil, { file = path }))
    local t = r:touch("read")
    assert.is_true(t.major_faults >= 1, "reading a dropped file through a mapping costs major faults")
    assert.equal(64, (vm.file_resident(path)))
    os.remove(path)
  end)

  it("a missing file returns nil, a message and errno", function()
    local ok, msg, errno = vm.file_resident("/nonexistent/vmlab")
    assert.is_nil(ok)
    assert.equal("open /nonexistent/vmlab: No such file or directory", msg)
    assert.equal(2, errno)
    assert.has_error(function() vm.fadvise("/tmp", "forget") end)
  end)
end)
