-- Regressions of issue 9 (families 4, 8, 10, 11 for regions): option strings
-- stay valid while vm.mmap uses them, non-regular files are refused without
-- blocking, heap blocks refuse dontfork, C strings with a NUL byte raise,
-- tostring(region) stays cheap for huge regions, integers that become a C
-- int are range-checked.
local vm = require "vmlab"

describe("safety: regions", function()
  it("vm.mmap keeps a 'file' string from an __index metamethod valid while it opens the file", function()
    -- a long name: long strings are not interned, so each lookup makes a new one
    local base = os.tmpname()
    local path = base .. ("-a-long-file-name"):rep(4)
    local f = assert(io.open(path, "wb"))
    f:write(("x"):rep(3 * vm.page_size))
    f:close()
    -- every lookup makes a fresh string and collects garbage, so a popped
    -- string would be freed (and its memory reused) before open(2)
    local opts = setmetatable({}, { __index = function(_, k)
      collectgarbage("collect")
      local junk = {}
      for i = 1, 64 do junk[i] = ("%0" .. #path .. "d"):format(i) end -- same size: reuses freed memory
      if k == "file" then return (path .. "/"):sub(1, -2) end
      if k == "junk" then return junk end
      return nil
    end })
    local ok, r, err = pcall(vm.mmap, nil, opts)
    os.remove(path)
    os.remove(base)
    assert.is_true(ok, tostring(r))
    assert.is_truthy(r, err)
    assert.equal(3 * vm.page_size, r.size)
    assert.equal(path, r.name)
    r:close()
  end)

  it("vm.mmap refuses a FIFO at once, with a clear error, instead of waiting for a writer", function()
    local fifo = os.tmpname()
    os.remove(fifo)
    assert(os.execute("mkfifo " .. fifo))
    local result, status = vm.child.run(function()
      local ok, err = pcall(vm.mmap, nil, { file = fifo })
      local ok2, err2 = pcall(vm.mmap, vm.page_size, { file = fifo, share = "shared" })
      return { ok = ok, err = err, ok2 = ok2, err2 = err2 }
    end, { timeout = 20 })
    os.remove(fifo)
    assert.is_falsy(status.timed_out, "vm.mmap blocked on the FIFO")
    assert.is_nil(status.error)
    assert.is_false(result.ok)
    assert.matches("FIFO", result.err)
    assert.is_false(result.ok2)
    assert.matches("regular file", result.err2)
  end)

  it("vm.mmap refuses a directory or a device as 'file'", function()
    assert.has_error(function() vm.mmap(nil, { file = "/tmp" }) end)
    assert.has_error(function() vm.mmap(vm.page_size, { file = "/dev/null" }) end)
  end)

  it("strings with a NUL byte raise where C would cut them", function()
    local r <close> = assert(vm.mmap(vm.page_size))
    assert.has_error(function() r:protect("rw\0") end)
    assert.has_error(function() r:protect("r\0w") end)
    assert.equal("rw", r.prot)
    assert.has_error(function() r:advise("dontneed\0x") end)
    assert.has_error(function() r:touch("read\0x") end)
    assert.has_error(function() r:touch("read", { order = "random\0" }) end)
    assert.has_error(function() vm.mmap(vm.page_size, { prot = "r\0w" }) end)
    assert.has_error(function() vm.mmap(vm.page_size, { share = "shared\0" }) end)
    assert.has_error(function() vm.mmap(nil, { file = "/etc/passwd\0junk" }) end)
    assert.has_error(function() vm.listdir("/tmp\0/x") end)
    assert.has_error(function() vm.getrlimit("stack\0") end)
    assert.has_error(function() vm.setrlimit("core", "unlimited\0") end)
    assert.has_error(function() vm.probe(r.address, "read\0") end)
    assert.is_nil(r["size\0"])
    assert.equal(vm.page_size, r.size)
  end)

  it("a heap block refuses dontfork, which would outlive the block in malloc's pages", function()
    local h <close> = assert(vm.malloc(1 << 20))
    local ok, err = pcall(h.advise, h, "dontfork")
    assert.is_false(ok)
    assert.matches("dontfork", err)
    assert.is_truthy(h:advise("dofork"))
    local m <close> = assert(vm.mmap(4 * vm.page_size))
    assert.is_truthy(m:advise("dontfork"))
    assert.is_truthy(m:advise("dofork"))
  end)

  it("tostring of a huge region does not count its resident pages; of a small one it does", function()
    local big <close> = assert(vm.mmap(1 << 42, { noreserve = true, prot = "none" }))
    local text = tostring(big)
    assert.matches("vmlab.Region mmap", text)
    assert.matches(((1 << 42) // vm.page_size) .. " pages", text)
    assert.not_matches("resident", text)
    local small <close> = assert(vm.mmap(16 * vm.page_size))
    assert.matches("0/16 pages resident", tostring(small))
  end)

  it("vm.signal_name refuses numbers that do not fit a C int instead of cutting them", function()
    assert.equal("SIGSEGV", vm.signal_name(11))
    assert.has_error(function() vm.signal_name((1 << 32) + 11) end)
    assert.has_error(function() vm.signal_name(-(1 << 32) + 11) end)
    assert.is_nil(vm.signal_name(1000))
  end)
end)
