-- The file-mmap experiment: a shared file mapping is the page cache.
local experiments = require "vmlab.experiments"

local MiB = 1024 * 1024

describe("the file-mmap experiment", function()
  local res
  setup(function() res = experiments.run("file-mmap", { size = 8 * MiB }) end)

  it("writes through a shared mapping dirty the page cache, and msync writes them to the file", function()
    assert.is_true(res.dirty_before_sync > 0, "the written pages are dirty")
    if res.in_memory_fs then
      return pending(res.fs_type .. " keeps files in memory only: msync has no disk to write them to")
    end
    assert.equal(0, res.dirty_after_sync)
    assert.is_true(res.persisted, "the file read back from disk holds both writes")
  end)

  it("read(2) sees the mapping's writes before msync: one page cache", function()
    assert.is_true(res.visible_before_sync)
  end)

  it("with the cache dropped nothing is resident, and reading through the mapping brings it all in", function()
    if res.major_faults_note and res.resident_before_read > res.pages // 2 then
      return pending(res.major_faults_note)
    end
    assert.is_true(res.resident_before_read <= res.pages // 20, res.resident_before_read .. " pages still cached")
    assert.equal(res.pages, res.resident_after_read)
  end)

  it("with no read-ahead every page of a cold file is a major fault", function()
    if res.resident_before_read > res.pages // 2 then return pending(res.major_faults_note or "file stayed cached") end
    assert.is_true(res.major_faults >= res.pages * 0.9 and res.major_faults <= res.pages * 1.05,
      res.major_faults .. " major faults for " .. res.pages .. " pages")
  end)

  it("read-ahead turns most of those into minor faults", function()
    if res.resident_before_readahead > res.pages // 2 then
      return pending(res.major_faults_note or "file stayed cached")
    end
    assert.is_true(res.major_faults_readahead >= 1, "the first access still waits for the disk")
    assert.is_true(res.major_faults_readahead <= res.pages // 4, res.major_faults_readahead .. " major faults")
  end)

  it("removes its scratch file", function()
    assert.is_string(res.path)
    assert.is_nil(io.open(res.path))
  end)
end)
