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

  describe("vmlab.pagecache", function()
    local pagecache = require "vmlab.pagecache"

    it("fill writes exactly size bytes of one byte, also past a whole MiB", function()
      local path = os.tmpname()
      pagecache.fill(path, (1 << 20) + 5, "q")
      local f = assert(io.open(path, "rb"))
      local data = f:read("a")
      f:close()
      os.remove(path)
      assert.equal((1 << 20) + 5, #data)
      assert.is_nil(data:find("[^q]"))
      assert.has_error(function() pagecache.fill(path, 10, "ab") end, "byte must be a one-character string")
    end)

    it("drop writes back through the mapping, then the file's pages leave the cache", function()
      local path = os.tmpname()
      pagecache.fill(path, 64 * vm.page_size, "d")
      local r <close> = assert(vm.mmap(nil, { file = path, share = "shared" }))
      assert.equal("posix_fadvise(POSIX_FADV_DONTNEED)", pagecache.drop(path, r))
      local cached = vm.file_resident(path)
      os.remove(path)
      if cached > 4 then
        return pending("this filesystem keeps pages cached after POSIX_FADV_DONTNEED (" .. cached .. ")")
      end
      assert.equal(0, r:resident())
    end)

    it("drop of a missing file returns nil and the reason", function()
      local ok, msg = pagecache.drop("/nonexistent/vmlab")
      assert.is_nil(ok)
      assert.matches("No such file or directory", msg)
    end)
  end)
end)
