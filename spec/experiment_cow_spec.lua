-- cow: after fork, pages are shared until written; each first write copies one page.
local experiments = require "vmlab.experiments"
require "vmlab.assert"

local PAGES = 1024

describe("the cow experiment", function()
  local r
  setup(function() r = experiments.run("cow", { pages = PAGES }) end)

  it("the child's reads of the parent's pages cost (almost) no faults", function()
    assert.equal(PAGES, r.pages)
    assert.within(r.child_read_faults, 0, 16, "child_read_faults")
  end)

  it("the child's first write to each page faults once per page", function()
    assert.within(r.child_write_faults, 0.98 * PAGES, 1.1 * PAGES, "child_write_faults")
  end)

  it("the child sees the parent's frames until it writes, then frames of its own", function()
    if r.shared_frames_before_write == nil then
      pending("frame numbers are hidden here: " .. tostring(r.frames_hidden))
      return
    end
    assert.equal(PAGES, r.shared_frames_before_write)
    assert.within(r.shared_frames_after_write, 0, PAGES // 100, "shared_frames_after_write")
  end)

  it("the parent's data is unchanged by the child's writes", function()
    assert.is_true(r.parent_intact)
  end)

  it("smaps counts the pages as shared after fork and private after the child's writes", function()
    local size = PAGES * 4096
    local s = r.smaps
    assert.within(s.parent_before_fork.private, size, size, "parent private before fork")
    assert.within(s.child_after_fork.shared, 0.98 * size, size, "child shared after fork")
    assert.within(s.child_after_write.private, 0.98 * size, size, "child private after write")
    assert.within(s.child_after_write.shared, 0, size // 50, "child shared after write")
    assert.within(s.parent_after_child.private, size, size, "parent private after the child is gone")
  end)
end)
