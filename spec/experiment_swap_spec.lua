-- swap: private pages pushed out with MADV_PAGEOUT and touched again; where the
-- machine has no swap, every page stays; as root, a temporary swap file
-- (--swapfile) shows the swapping, and is gone afterwards on every exit path.
local vm = require "vmlab"
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"
local kernel = require "vmlab.kernel"

local MiB = 1024 * 1024

local function slurp(path) return (vm.proc.read_file(path)) end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

local function q(s) return require("vmlab.undo").quote(s) end

-- Swap files of vmlab processes still on (this process's, or any when `all`).
local function vmlab_swaps(all)
  local list = {}
  for path in (slurp("/proc/swaps") or ""):gmatch("\n(%S+)") do
    local pid = path:match("/vmlab%-swap%-(%d+)%-%d+/swapfile$")
    if pid and (all or tonumber(pid) == vm.getpid()) then list[#list + 1] = path end
  end
  return list
end

-- Whatever happened: this process's swap files off and gone.
local function clean_up()
  for _, f in ipairs(vmlab_swaps()) do
    os.execute(("swapoff %s; rm -f %s; rmdir %s 2>/dev/null"):format(q(f), q(f), q(f:match("^(.*)/"))))
  end
end

-- Can this machine show the swap file path: root, no swap of its own.
local function swapfile_possible()
  if not vassert.requires("root") then return false end
  if kernel.has("swap") then
    vassert.pending("this machine has swap of its own: the experiment makes no swap file")
    return false
  end
  return true
end

describe("the swap experiment", function()
  local swaps_before
  setup(function() swaps_before = slurp("/proc/swaps") end)
  teardown(function()
    clean_up()
    assert.equal(swaps_before, slurp("/proc/swaps"), "/proc/swaps is not as it was before the specs")
  end)
  after_each(clean_up)

  describe("with the machine's own swap (or none)", function()
    local r
    setup(function() r = experiments.run("swap", { size = 4 * MiB }) end)

    it("pushes the pages out to swap where there is swap", function()
      vassert.claim_holds(r, "paged_out")
      assert.is_true(r.pageout.smaps_swap >= 0.9 * r.size)
    end)

    it("reads them back with major faults", function()
      vassert.claim_holds(r, "swap_in_major")
    end)

    it("keeps every page resident where there is no swap", function()
      vassert.claim_holds(r, "stays_resident")
      assert.equal(0, r.pageout.pswpout)
      assert.equal(r.pages, r.pageout.present)
      assert.is_nil(r.swapfile)
    end)

    it("skips the swap claims with the reason where there is no swap", function()
      if r.swap_on then return end
      for _, id in ipairs { "paged_out", "swap_in_major", "swap_in_slower" } do
        local c = experiments.claim(r, id)
        assert.equal("skipped", c.holds, id)
        assert.matches("no swap", c.why, 1, true)
      end
    end)
  end)

  describe("with a temporary swap file (root, on a machine without swap)", function()
    local r
    setup(function()
      if kernel.has("root") and not kernel.has("swap") then
        r = experiments.run("swap", { size = 8 * MiB, swapfile = 64 * MiB })
      end
    end)

    it("makes the file, pages out and back in, and removes it", function()
      if not swapfile_possible() then return end
      if not r.swapfile then
        vassert.pending("no swap file could be made here: " .. tostring(r.swapfile_refused))
        return
      end
      assert.is_true(r.swap_on)
      assert.is_true(r.swap_total >= 60 * MiB)
      vassert.claim_holds(r, "paged_out") -- expected: with a swap file of its own, root shows it
      vassert.claim_holds(r, "swap_in_major")
      -- the time per page is decided (held or not), never asserted here
      local slower = experiments.claim(r, "swap_in_slower")
      assert.is_true(slower.holds == true or slower.holds == false)
      assert.equal("skipped", experiments.claim(r, "stays_resident").holds)
      assert.is_true(r.pageout.pswpout >= 0.9 * r.pages)
      assert.equal(r.pages, r.pageout.swapped)
      assert.is_true(r.swap_in.major_faults >= 1)
      assert.within(r.swap_in.major_faults + r.swap_in.minor_faults, 0.9 * r.pages, 1.1 * r.pages)
      assert.is_true(r.swap_in.pswpin >= 0.9 * r.pages)
      -- and it is gone
      assert.is_true(r.swapfile.removed)
      assert.is_false(exists(r.swapfile.path))
      assert.is_false(exists(r.swapfile.path:match("^(.*)/")))
      assert.is_nil((slurp("/proc/swaps") or ""):find(r.swapfile.path, 1, true))
      assert.equal(swaps_before, slurp("/proc/swaps"))
    end)

    it("refuses a swap file on tmpfs with the reason", function()
      local _, fs = experiments.get("swap").check_dir("/dev/shm", 64 * MiB)
      if fs ~= nil then return end -- /dev/shm is not tmpfs here (check_dir accepted it)
      local refused = experiments.get("swap").check_dir("/dev/shm", 64 * MiB)
      assert.is_string(refused)
      assert.matches("tmpfs", refused, 1, true)
      assert.same({}, vmlab_swaps())
    end)
  end)

  it("swaps off and removes the file when the process that made it is killed with SIGKILL (the undo watcher)",
    function()
      if not swapfile_possible() then return end
      local lua_path, lua_cpath = package.path, package.cpath
      local p = assert(io.popen(("LUA_PATH=%s LUA_CPATH=%s lua5.4 -e %s 2>&1"):format(q(lua_path), q(lua_cpath),
        q([[
        local vm = require "vmlab"
        require("vmlab.kernel")()
        vm.set_touch_hook(function() -- the first touch: the swap file is on
          for path in io.open("/proc/swaps"):read("a"):gmatch("\n(%S+)") do
            if path:find("/vmlab%-swap%-" .. vm.getpid() .. "%-") then print(path) end
          end
          io.stdout:flush()
          vm.kill(vm.getpid(), "KILL")
        end)
        require("vmlab.experiments").run("swap", { size = 4 << 20, swapfile = 64 << 20 })]]))))
      local out = p:read("a")
      p:close()
      local path = out:match("(%S+/swapfile)")
      if not path then
        vassert.pending("the child made no swap file: " .. out)
        return
      end
      local dir = path:match("^(.*)/")
      local gone = false
      for _ = 1, 100 do
        if not (slurp("/proc/swaps") or ""):find(path, 1, true) and not exists(path) and not exists(dir) then
          gone = true
          break
        end
        vm.sleep(0.1)
      end
      assert.is_true(gone, path .. " (or its directory) is still there 10 s after its maker was killed")
      assert.equal(swaps_before, slurp("/proc/swaps"))
    end)

  it("sweeps the directory a vanished process left (creator and watcher both killed)", function()
    if not swapfile_possible() then return end
    local c = assert(vm.spawn({ "true" }))
    c:wait() -- a pid no process has now
    local d = ("/var/tmp/vmlab-swap-%d-1"):format(c.pid)
    assert(os.execute("mkdir -m 700 " .. q(d) .. " && : > " .. q(d .. "/swapfile")))
    local removed = experiments.get("swap").sweep()
    assert.is_true(removed >= 1)
    assert.is_false(exists(d))
  end)

  it("refuses bad params with a clear message", function()
    assert.error_matches(function() experiments.run("swap", { size = 0 }) end,
      "experiment 'swap': parameter 'size': 0 is below the minimum")
    assert.error_matches(function() experiments.run("swap", { size = 4 * MiB, swapfile = 1000 }) end,
      "experiment 'swap': %-%-swapfile must be 0 %(none%) or at least 1%.0 MiB")
  end)

  it("decides its claims from the numbers it is given", function()
    local e = experiments.get("swap")
    local pages, size = 1024, 1024 * vm.page_size
    local swapped = { size = size, pages = pages, swap_on = true, swap_total = 64 * MiB, swap_free = 60 * MiB,
      page_cluster = 3,
      first_touch = { minor_faults = pages, major_faults = 0, seconds = 0.01, ns_per_page = 10000 },
      pageout = { pswpout = pages, zswpout = 0, present = 0, swapped = pages, resident = pages,
        smaps_swap = size, smaps_rss = 0 },
      cache_touch = { minor_faults = pages, major_faults = 0, pswpin = 0, zswpin = 0 },
      pageout_again = { pswpout = 0, zswpout = 0, present = 0, swapped = pages, resident = 0, smaps_swap = size },
      swap_in = { minor_faults = pages - 130, major_faults = 130, seconds = 0.1, ns_per_page = 100000,
        pswpin = pages, zswpin = 0, swap_ra = pages - 130, present = pages, swapped = 0, smaps_swap = 0 } }
    local broken = { size = size, pages = pages, swap_on = true, swap_total = 64 * MiB, swap_free = 64 * MiB,
      first_touch = { minor_faults = pages, major_faults = 0, seconds = 0.1, ns_per_page = 100000 },
      pageout = { pswpout = 0, zswpout = 0, present = pages, swapped = 0, resident = pages, smaps_swap = 0,
        smaps_rss = size },
      cache_touch = { minor_faults = 0, major_faults = 0, pswpin = 0, zswpin = 0 },
      pageout_again = { pswpout = 0, zswpout = 0, present = pages, swapped = 0, resident = pages, smaps_swap = 0 },
      swap_in = { minor_faults = 0, major_faults = 1, seconds = 0.001, ns_per_page = 1000, pswpin = 0, zswpin = 0,
        swap_ra = 0, present = pages, swapped = 0, smaps_swap = 0 } }
    local stayed = { size = size, pages = pages, swap_on = false, swap_total = 0, swap_free = 0,
      first_touch = swapped.first_touch,
      pageout = { pswpout = 0, zswpout = 0, present = pages, swapped = 0, resident = pages, smaps_swap = 0,
        smaps_rss = size },
      cache_touch = { minor_faults = 0, major_faults = 0, pswpin = 0, zswpin = 0 } }
    local lost = { size = size, pages = pages, swap_on = false, swap_total = 0, swap_free = 0,
      first_touch = swapped.first_touch,
      pageout = { pswpout = 0, zswpout = 0, present = 0, swapped = 0, resident = 0, smaps_swap = 0, smaps_rss = 0 },
      cache_touch = { minor_faults = pages, major_faults = 0, pswpin = 0, zswpin = 0 } }
    local a = { claims = experiments.decide(e, swapped) }
    local b = { claims = experiments.decide(e, broken) }
    for _, id in ipairs { "paged_out", "swap_in_major", "swap_in_slower" } do
      assert.is_true(experiments.claim(a, id).holds, id)
      assert.is_false(experiments.claim(b, id).holds, id)
    end
    assert.equal("skipped", experiments.claim(a, "stays_resident").holds)
    local c = { claims = experiments.decide(e, stayed) }
    local d = { claims = experiments.decide(e, lost) }
    assert.is_true(experiments.claim(c, "stays_resident").holds)
    assert.is_false(experiments.claim(d, "stays_resident").holds)
    for _, id in ipairs { "paged_out", "swap_in_major", "swap_in_slower" } do
      assert.equal("skipped", experiments.claim(c, id).holds, id)
      assert.matches("no swap", experiments.claim(c, id).why, 1, true)
    end
    -- a refused swap file gives its reason
    local refused = { size = size, pages = pages, swap_on = false, swapfile_refused = "making a swap file needs root" }
    local f = { claims = experiments.decide(e, refused) }
    assert.matches("needs root", experiments.claim(f, "paged_out").why, 1, true)
  end)
end)
