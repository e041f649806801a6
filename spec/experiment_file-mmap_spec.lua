-- The file-mmap experiment: a shared file mapping is the page cache. Each claim is
-- checked live, and decided on a file the cache cannot drop (tmpfs) as the other kind.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local MiB = 1024 * 1024

describe("the file-mmap experiment", function()
  local res
  setup(function() res = experiments.run("file-mmap", { size = 8 * MiB }) end)

  it("read(2) sees the mapping's writes before msync: one page cache", function()
    vassert.claim_holds(res, "one_page_cache")
    assert.is_true(res.visible_before_sync)
  end)

  it("writes through a shared mapping dirty the page cache, and msync writes them to the file", function()
    vassert.claim_holds(res, "msync_persists")
    assert.is_true(res.dirty_before_sync > 0, "the written pages are dirty")
    assert.equal(0, res.dirty_after_sync)
    assert.is_true(res.persisted, "the file read back from disk holds both writes")
  end)

  it("with the cache dropped nothing is resident, and every page read without read-ahead is a major fault", function()
    vassert.claim_holds(res, "cold_major_faults")
    assert.within(res.resident_before_read, 0, res.pages // 20, "pages cached after the drop")
    assert.equal(res.pages, res.resident_after_read)
    assert.within(res.major_faults, res.pages * 0.9, res.pages * 1.05, "major faults")
  end)

  it("read-ahead turns most of those into minor faults", function()
    vassert.claim_holds(res, "readahead_fewer_major")
    assert.within(res.major_faults_readahead, 1, res.pages // 4, "major faults with read-ahead")
  end)

  it("removes its scratch file", function()
    assert.is_string(res.path)
    assert.is_nil(io.open(res.path))
  end)

  it("on a file system that keeps files in memory, the cold-read claims are skipped with the reason", function()
    local fm = experiments.get("file-mmap")
    if fm.fs_type("/dev/shm/x") ~= "tmpfs" then return pending("/dev/shm is not a tmpfs here") end
    local t = experiments.run("file-mmap", { size = MiB, dir = "/dev/shm" })
    assert.is_true(t.in_memory_fs)
    assert.is_nil(io.open(t.path))
    for _, id in ipairs { "msync_persists", "cold_major_faults", "readahead_fewer_major" } do
      local c = experiments.claim(t, id)
      assert.equal("skipped", c.holds, id)
      assert.matches("keeps files in memory", c.why)
    end
    assert.equal(true, experiments.claim(t, "one_page_cache").holds)
  end)

  it("decides each claim from the numbers it is given", function()
    local e = experiments.get("file-mmap")
    local N = 256
    local base = { size = N * vm.page_size, pages = N, fs_type = "ext4", in_memory_fs = false, cache_drop = "fadvise",
      visible_before_sync = true, dirty_before_sync = 8192, dirty_after_sync = 0, persisted = true,
      cached_after_drop = 0, resident_before_read = 0, resident_after_read = N, major_faults = N, minor_faults = 0,
      read_seconds = 0.1, resident_before_readahead = 0, major_faults_readahead = 2, minor_faults_readahead = 20,
      readahead_seconds = 0.01 }
    local function decided(fields, id)
      return experiments.claim({ claims = experiments.decide(e, setmetatable(fields, { __index = base })) }, id)
    end
    for _, id in ipairs { "one_page_cache", "msync_persists", "cold_major_faults", "readahead_fewer_major" } do
      assert.is_true(decided({}, id).holds, id)
    end
    assert.is_false(decided({ visible_before_sync = false }, "one_page_cache").holds)
    assert.is_false(decided({ dirty_after_sync = 8192 }, "msync_persists").holds)
    assert.is_false(decided({ persisted = false }, "msync_persists").holds)
    assert.is_false(decided({ major_faults = 0, minor_faults = N }, "cold_major_faults").holds)
    assert.is_false(decided({ major_faults_readahead = N }, "readahead_fewer_major").holds)
  end)
end)
