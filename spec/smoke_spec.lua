local ns = require "spec.helpers.ns"

describe("the test harness", function()
  it("runs in a private namespace whose table starts empty after fresh()", function()
    local ct = ns.fresh()
    ns.fill()
    assert.equal(#ns.sample, ct:count())
    ns.fresh()
    assert.equal(0, ct:count())
  end)
end)
