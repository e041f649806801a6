-- cow: after fork, pages are shared until written; each first write copies one page.
-- Evidence without privilege: the pagemap exclusive bit and smaps; frame numbers
-- where they are visible. A MAP_SHARED mapping is the other kind on any machine.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

local PAGES = 1024
local SIZE = PAGES * vm.page_size

describe("the cow experiment", function()
  local r, shared
  setup(function()
    r = experiments.run("cow", { size = SIZE })
    shared = experiments.run("cow", { size = SIZE, share = "shared" })
  end)

  it("the child's reads of the parent's pages cost (almost) no faults", function()
    assert.equal(PAGES, r.pages)
    vassert.claim_holds(r, "child_reads_free")
    assert.within(r.child_read_faults, 0, 16, "child_read_faults")
  end)

  it("after fork the child shares the parent's frames: smaps, the exclusive bit, and the frames themselves", function()
    vassert.claim_holds(r, "child_shares_frames")
    assert.is_true(r.child_saw_parent_data)
    -- the exclusive bit needs no privilege: the parent's pages are its own, the child's are shared
    assert.equal(PAGES, r.parent_exclusive_before_fork)
    assert.within(r.child_exclusive_after_read, 0, PAGES // 100, "child_exclusive_after_read")
    assert.within(r.smaps.child_after_fork.shared, 0.98 * SIZE, SIZE, "child shared after fork")
    if require("vmlab.kernel").has("pfns_visible") then
      assert.equal(PAGES, r.shared_frames_before_write)
    else
      assert.is_nil(r.shared_frames_before_write)
      assert.matches("exclusive bit", experiments.claim(r, "child_shares_frames").evidence)
    end
  end)

  it("the child's first write to each page faults once and gives it a frame of its own", function()
    vassert.claim_holds(r, "write_copies_page")
    assert.within(r.child_write_faults, 0.98 * PAGES, 1.1 * PAGES, "child_write_faults")
    assert.within(r.child_exclusive_after_write, 0.99 * PAGES, PAGES, "child_exclusive_after_write")
    if r.shared_frames_after_write then
      assert.within(r.shared_frames_after_write, 0, PAGES // 100, "shared_frames_after_write")
    end
  end)

  it("the parent's data is unchanged by the child's writes", function()
    vassert.claim_holds(r, "parent_unchanged")
    assert.is_true(r.parent_intact)
  end)

  it("smaps counts the pages as shared after fork and private after the child's writes", function()
    local s = r.smaps
    assert.within(s.parent_before_fork.private, SIZE, SIZE, "parent private before fork")
    assert.within(s.child_after_write.private, 0.98 * SIZE, SIZE, "child private after write")
    assert.within(s.child_after_write.shared, 0, SIZE // 50, "child shared after write")
    assert.within(s.parent_after_child.private, SIZE, SIZE, "parent private after the child is gone")
  end)

  it("decides the claims as not held for a shared mapping, which fork does not copy-on-write", function()
    -- on every machine: MAP_SHARED is one copy for both, so this is the other kind
    for _, id in ipairs { "child_reads_free", "child_shares_frames", "write_copies_page", "parent_unchanged" } do
      local c = experiments.claim(shared, id)
      assert.equal(false, c.holds, id .. ": " .. tostring(c.evidence))
      assert.is_string(c.why)
      assert.not_matches("unknown", c.why)
    end
    assert.is_true(shared.child_read_faults > PAGES // 64, "shared read faults " .. shared.child_read_faults)
    assert.within(shared.child_write_faults, 0, PAGES // 10, "shared write faults")
    assert.is_false(shared.parent_intact)
    local text = require("vmlab.report").text({ experiment = "cow", params = {}, result = shared })
    assert.matches("DID NOT HOLD%s+the parent's data is unchanged", text)
    assert.not_matches("The copies belong to the child alone", text)
  end)

  it("decides each claim from the numbers it is given, not from the machine", function()
    local e = experiments.get("cow")
    local function decided(result, id) return experiments.claim({ claims = experiments.decide(e, result) }, id) end
    local cow = { share = "private", pages = PAGES, size = SIZE, child_read_faults = 0, child_write_faults = PAGES,
      parent_exclusive_before_fork = PAGES, child_exclusive_after_read = 0, child_exclusive_after_write = PAGES,
      child_saw_parent_data = true, parent_intact = true,
      smaps = { child_after_fork = { rss = SIZE, shared = SIZE, private = 0 },
                child_after_write = { rss = SIZE, shared = 0, private = SIZE } } }
    for _, c in ipairs(experiments.decide(e, cow)) do assert.is_true(c.holds, c.id) end
    -- a fork that copied everything at once (no sharing): the child's pages are its own from the start
    local copied = setmetatable({ child_exclusive_after_read = PAGES, child_write_faults = 0,
      smaps = { child_after_fork = { rss = SIZE, shared = 0, private = SIZE },
                child_after_write = { rss = SIZE, shared = 0, private = SIZE } } }, { __index = cow })
    assert.is_false(decided(copied, "child_shares_frames").holds)
    assert.is_false(decided(copied, "write_copies_page").holds)
    -- with PFNs hidden and no exclusive bit (never seen set), smaps alone decides
    local blind = setmetatable({ parent_exclusive_before_fork = 0, child_exclusive_after_read = 0 },
      { __index = cow })
    local c = decided(blind, "child_shares_frames")
    assert.is_true(c.holds)
    assert.not_matches("exclusive", c.evidence)
    assert.is_false(decided(setmetatable({ child_read_faults = PAGES }, { __index = cow }), "child_reads_free").holds)
    assert.is_false(decided(setmetatable({ parent_intact = false }, { __index = cow }), "parent_unchanged").holds)
  end)
end)
