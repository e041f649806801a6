-- Every experiment states the claims of the lab it demonstrates, and each one
-- holds on this machine wherever the kernel probes say the machine can show it
-- (and is pending, with the probe's reason, where they say it cannot).
local experiments = require "vmlab.experiments"
local vassert = require "vmlab.assert"

describe("the claims of every experiment", function()
  for _, name in ipairs(experiments.names()) do
    local e = experiments.get(name)
    describe(name, function()
      local result
      setup(function() result = experiments.run(name, nil, { tour = true }) end)

      it("states at least one claim, each with an id, a text and a decide function", function()
        assert.is_true(#e.claims >= 1, name .. " states no claims")
        local ids = {}
        for _, c in ipairs(e.claims) do
          assert.is_nil(ids[c.id], "claim id used twice: " .. c.id)
          ids[c.id] = true
        end
      end)

      it("decides every claim with its evidence, or the reason it could not", function()
        assert.equal(#e.claims, #result.claims)
        for _, c in ipairs(result.claims) do
          assert.is_true(c.holds == true or c.holds == false or c.holds == "skipped", c.id)
          if c.holds ~= "skipped" then
            assert.is_true(type(c.evidence) == "string" and #c.evidence > 0, c.id .. " has no evidence")
          end
          if c.holds ~= true then assert.is_true(type(c.why) == "string" and #c.why > 0, c.id .. " has no why") end
        end
      end)

      for _, c in ipairs(e.claims) do
        it(("'%s' holds where this machine can show it"):format(c.text), function()
          vassert.claim_holds(result, c.id)
        end)
      end
    end)
  end
end)
