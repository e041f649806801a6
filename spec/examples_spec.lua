-- The lab scripts in examples/ run from a built checkout and end well: every
-- one of them, so a change to an experiment cannot quietly break its script.
local vassert = require "vmlab.assert"

local function list(dir)
  local names = {}
  for _, f in ipairs(require("vmlab").listdir(dir) or {}) do
    if f:match("%.lua$") then names[#names + 1] = f end
  end
  table.sort(names)
  return names
end

describe("the lab scripts in examples/", function()
  local scripts = list("examples")

  it("are there", function()
    assert.is_true(#scripts >= 16, #scripts .. " scripts")
  end)

  for _, f in ipairs(scripts) do
    it(f .. " runs to the end and prints what it found", function()
      if os.getenv("VMLAB_SANITIZED") then
        -- they load the checkout's plain build/ themselves: the plain run covers them
        return vassert.pending("examples load build/, not the sanitizer build")
      end
      local p = assert(io.popen(("timeout 300 lua5.4 examples/%s 2>&1; echo \"exit=$?\""):format(f)))
      local out = p:read("a")
      p:close()
      assert.matches("\nexit=0\n$", "\n" .. out, out)
      assert.is_true(#out > 40, out)
    end)
  end
end)
