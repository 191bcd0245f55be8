-- spec/numbers_spec.lua: the kernel's u32 and u64 values, exactly, in both
-- directions: cross/values32.lua with the Lua under test (check-cross runs it
-- on 32-bit Lua 5.1 too), then the whole u32 range through the real table,
-- with conntrack(8) as the reference.
local ns = require "spec.helpers.ns"
local ctl = require "spec.helpers.ctl"

describe("numbers", function()
  it("reads and takes every u32 and u64 value cross/values32.lua checks", function()
    local out, err, status = ns.run(("LUA_CPATH='%s/?.so;;' %s cross/values32.lua"):format(ns.CHILD_SO_DIR, ns.LUA))
    assert.equal("", err)
    assert.equal(0, status)
    assert.matches("^values32: %d+ checks passed", out)
  end)

  describe("through the kernel", function()
    local ct
    local top = { proto = "udp", orig_src = "10.9.0.1", orig_dst = "10.9.0.2", orig_sport = 65535, orig_dport = 1,
                  timeout = 4000000, mark = 0xfffffffe, zone = 65535 }
    before_each(function()
      ct = ns.fresh()
      assert(ct:create(top))
      assert(ct:create{ proto = "udp", orig_src = "10.9.0.1", orig_dst = "10.9.0.3", orig_sport = 1, orig_dport = 1,
                        timeout = 60, mark = 0x7fffffff })
    end)

    it("creates, finds and reads a mark of 0xfffffffe and a zone of 65535", function()
      local flows = {}
      for flow in ct:dump{ mark = 0xfffffffe } do flows[#flows + 1] = flow end
      assert.equal(1, #flows)
      assert.equal(0xfffffffe, flows[1].mark)
      assert.equal(65535, flows[1].zone)
      assert.is_true(flows[1].id >= 0)
      assert.same({ "mark=4294967294" }, { tostring(flows[1]):match("mark=%d+") })
      assert.equal(1, #ns.reference_lines("-L -m 4294967294"))
    end)

    it("updates and deletes by masks that cover the top bit", function()
      assert.equal(1, ct:update({ mark = { 0x80000000, 0x80000000 } }, { mark = { 0x00000001, 0xffffffff } }))
      assert.equal(1, #ns.reference_lines("-L -m 1"))
      assert.equal(1, ct:delete{ mark = { 0x7fffffff, 0xffffffff } })
      assert.equal(1, ct:count())
    end)

    it("gives the command line's -m in every base the same flow as conntrack", function()
      for _, m in ipairs({ "4294967294", "0xfffffffe", "037777777776" }) do
        local out, _, status = ctl.ours("-L -m " .. m)
        assert.equal(0, status)
        assert.same(ns.reference_lines("-L -m 4294967294"), ns.sorted_lines(out))
      end
    end)
  end)
end)
