-- spec/ctl_errors_spec.lua: bad command lines. Each one runs through
-- conntrack(8) 1.4.7 and through lua/ctl.lua on the same filled table: the
-- same exit status, the same message after each program's prefix (our
-- program's name in the `Try ... --help' line), and the table untouched.
-- Where 1.4.7 accepts garbage or crashes, a clear usage error is pinned.
local ns = require "spec.helpers.ns"
local common = require "spec.helpers.common"
local ctl = require "spec.helpers.ctl"

local temp = {}

after_each(function()
  for _, path in ipairs(temp) do os.remove(path) end
  temp = {}
end)

-- The table is filled once per describe: no case changes it (ctl.compare
-- checks that it is untouched after each program).
local function describe_filled(name, body)
  describe(name, function()
    setup(function()
      ns.fresh()
      ctl.fill(ns.handle())
    end)
    teardown(function() ns.fresh() end)
    body()
  end)
end

-- A file with these lines, for -R.
local function file(text)
  local path = os.tmpname()
  temp[#temp + 1] = path
  ctl.spit(path, text)
  return path
end

local function refused(args)
  local o, t = ctl.compare(args, { ids = false })
  assert(t.status == 1 or t.status == 2, ("conntrack %s: exit %s, not an error"):format(args, tostring(t.status)))
  return o, t
end

local function cases(lines)
  for args, long in common.family(lines) do
    it(("refuses `%s' as conntrack does #diff%s"):format(args, long), function()
      refused(args)
    end)
  end
end

describe_filled("a missing argument", function()
  cases{ "-L -s", "-L --src", "-L -m", "-L --orig-zone", "-L -p tcp --dport", "-L -p tcp --state", "-L -i",
         "-L -p", "-E -e", "-L -o" }
end)

describe_filled("conflicting commands", function()
  cases{ "-L -L", "-L -D", "-L -z -D", "-V -L", "-h -L", "-L -h", "-S -C", "-C -L", "-I -U", "-E -F", "-L --coun",
         "-L -z -p udp", "-L -s 10.0.0.1 --zero" }
end)

describe_filled("a bad address or netmask", function()
  cases{ "-L -s 0x10000000000000001", "-L -d 10.02000000000000000000001", "-L -s 999.1.1.1", "-L --orig-s 999.1.1.1", "-L -d 10.0.0.256", "-L -r fd00::zz", "-L -q 1.2.3.4.5",
         "-L -s 10.0.0.1/33", "-L -s fd00::/129", "-L -d 10.0.0.0/abc", "-L -s 10.0.0.1/255.255.255.0",
         "-L -s 10.0.0.1 -d fd00::1", "-L -f ipv4 -s fd00::1", "-L -s fd00::1 -r 10.0.0.1",
         "-L --mask-src 255.0.0.0", "-L -s 10.0.0.0 --mask-src 999.0.0.0", "-L -s 10.0.0.0 --mask-src ffff::",
         "-L -n 999.1.1.1", "-L -n :61002", "-L -n 203.0.113.1:abc", "-L -n 1.2.3.4:80:90",
         "-I -p tcp -s 10.1.0.0/24 -d 10.1.0.2 --sport 1 --dport 80 --state ESTABLISHED -t 100" }
end)

describe_filled("a bad family, protocol, state, status or output", function()
  cases{ "-L -f ipv7", "-L -f IPV4", "-L -f inet", "-L -p foo", "-L -p 256", "-L -p tcp --state FOO",
         "-L -p tcp --state established", "-L -p dccp --state FOO", "-L -u FOO", "-L -u ASSURED,", "-L -u ,ASSURED", "-L -u !UNREPLIED",
         "-L -u !FOO",
         "-L -o foo", "-L -o xml,foo", "-L -o save,xml", "-L -o id,save", "-E -e FOO", "-E -e NEW,", "-E -o foo",
         "-L expecto", "-L foo", "-L conntrackx", "-C foo" }
end)

describe_filled("an option the command does not take", function()
  cases{ "-L -e NEW", "-L -t 10", "-L -b 100", "-L -i 5", "-L -p sctp --orig-vtag 5", "-L -p dccp --role client",
         "-L -p tcp --tuple-port-src 1",
         "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 -t 10 -o xml",
         "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 -t 10 -z",
         "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 -t 10 -c 5",
         "-G -p tcp -s 10.0.0.1 -d 10.0.0.2 --sport 1001 --dport 80 -w 3", "-U -w 3 -m 9", "-D -z",
         "-F -s 10.0.0.1", "-F -p tcp", "-C -s 10.0.0.1", "-S -s 10.0.0.1", "-E -z", "-E -t 10", "-E -u ASSURED",
         "-V -s 10.0.0.1", "-h -s 10.0.0.1" }
end)

describe_filled("an option the protocol does not have", function()
  cases{ "-L -p tcp --icmp-type 8", "-L --sport 80", "-L --dport 80 -p tcp", "-L -p udp --state ESTABLISHED",
         "-L -p icmpv6 --icmp-type 8", "-L -p icmp --icmpv6-type 128", "-L -p gre --sport 1" }
end)

describe_filled("an unknown or ambiguous option", function()
  cases{ "-L -x", "-L --foo", "--d", "-L --or 1.1.1.1", "-L --ma 7", "-L -p tcp --st ESTABLISHED", "-C --c",
         "-L -R /dev/null", "--st", "-X" }
end)

describe_filled("a missing compulsory option", function()
  cases{ "-I", "-I -p tcp", "-I -s 10.0.0.1 -d 10.0.0.2 -t 10",
         "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 --state ESTABLISHED",
         "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 -t 10",
         "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 1 -t 10", "-I -p udp -s 10.1.0.1 --sport 1 --dport 2 -t 10",
         "-I -p icmp -s 10.1.0.1 -d 10.1.0.2 --icmp-type 8 -t 100", "-G", "-G -p tcp", "-G -s 10.0.0.1",
         "-D expect" }
end)

describe_filled("-R with a bad file", function()
  it("refuses a file that does not exist as conntrack does #diff", function()
    refused("-R /nonexistent/lct-saved")
  end)

  it("refuses an unknown option in the file as conntrack does #diff", function()
    refused("-R " .. file("-X foo\n-A -t 10 -u UNSET -s 10.5.0.1 -d 10.5.0.2 -p udp --sport 1 --dport 3\n"))
  end)

  it("refuses a command -R does not run as conntrack does #diff", function()
    refused("-R " .. file("-L\n"))
  end)

  it("refuses a bad address in the file as conntrack does #diff", function()
    refused("-R " .. file("-A -t 10 -u UNSET -s 999.5.0.1 -d 10.5.0.2 -p udp --sport 1 --dport 3\n"))
  end)
end)

describe_filled("labels", function()
  it("refuses an unknown label without connlabel.conf as conntrack does #diff", function()
    ctl.without_labels(function() refused("-L -l foo") end)
  end)

  it("refuses --label-add without connlabel.conf as conntrack does #diff", function()
    ctl.without_labels(function() refused("-U -s 10.0.0.1 --label-add foo") end)
  end)

  for args, long in common.family({ "-L -l nine", "-L -l one,nine", "-U -s 10.0.0.1 --label-add nine", "-L --label-add one",
                                    "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 -t 10 -l one" }) do
    it(("refuses `%s' with connlabel.conf as conntrack does #diff%s"):format(args, long), function()
      ctl.with_labels(function() refused(args) end)
    end)
  end

  -- strtoul's overflow is no bit: modulo 2^64 these would be bits 5 and 3
  it("names no bit with a number of connlabel.conf beyond 64 bits, as conntrack #diff", function()
    ctl.with_labels(function()
      refused("-L -l five")
      refused("-L -l three")
    end, "0x10000000000000005 five\n01000000000000000000000003 three\n1 one\n")
  end)
end)

-- conntrack 1.4.7 reads numbers with strtoul and no check: `-m abc' is mark
-- 0, `--dport 70000' port 4464, and -D/-U then act on the wrong flows (1.4.9
-- refuses them). A number that is not one, or too large, is a usage error
-- naming it; nothing is touched. (1.4.7 also crashes on an unknown SCTP state.)
describe_filled("a bad number (conntrack 1.4.7 takes it)", function()
  local STRICT = {
    { "-L -m abc", "abc" }, { "-L -m 0x100000000", "0x100000000" }, { "-L -m 1/2/3", "2/3" },
    { "-L -m 7/xyz", "xyz" }, { "-L -p tcp --sport abc", "abc" }, { "-L -p tcp --dport 70000", "70000" },
    { "-L -p udp --sport 53x", "53x" }, { "-L -w abc", "abc" }, { "-L -w 70000", "70000" },
    { "-L --orig-zone z", "z" }, { "-L -p icmp --icmp-type abc", "abc" }, { "-L -p icmp --icmp-type 256", "256" },
    { "-L -p icmp --icmp-id 65536", "65536" }, { "-L -p gre --srckey abc", "abc" }, { "-L -c abc", "abc" },
    { "-D -m abc", "abc" }, { "-D -p tcp --dport 80x", "80x" }, { "-U -s 10.0.0.1 -m abc", "abc" },
    { "-U -s 10.0.0.1 -t 5s", "5s" },
    { "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 --state ESTABLISHED -t abc", "abc" },
    { "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 --state ESTABLISHED -t 10 -m abc", "abc" },
    { "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 99999 --dport 2 --state ESTABLISHED -t 10", "99999" },
    { "-E -b abc", "abc" }, { "-E -m abc", "abc" }, { "-D -i abc", "abc" },
    { "-L -p sctp --state FOO", "FOO" },
    -- beyond 64 bits, in every base (Lua's tonumber(s, 16) would wrap them to 5, 9, 6, 3)
    { "-D -m 0x10000000000000005", "0x10000000000000005" },
    { "-I -p tcp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 --state ESTABLISHED -t 10 -m 0x10000000000000005",
      "0x10000000000000005" },
    { "-I -p udp -s 10.1.0.1 -d 10.1.0.2 --sport 1 --dport 2 -t 10 -w 0x10000000000000009", "0x10000000000000009" },
    { "-L -m 02000000000000000000005", "02000000000000000000005" }, { "-L -m 18446744073709551621", "18446744073709551621" },
    { "-L -m 5/0x1000000000000ffff", "0x1000000000000ffff" }, { "-L --orig-zone 0x10000000000000009", "0x10000000000000009" },
    { "-D -i 0x10000000000000003", "0x10000000000000003" }, { "-L -c 02000000000000000000003", "02000000000000000000003" },
    { "-L -p gre --srckey 0x10000000000000007", "0x10000000000000007" },
    { "-L -p 0x10000000000000006", "0x10000000000000006" }, { "-L -p 01000000000000000000006", "01000000000000000000006" },
  }
  for case, long in common.family(STRICT) do
    local args, word = case[1], case[2]
    it(("refuses `%s' with a message naming %s #diff%s"):format(args, word, long), function()
      local before = ctl.table_text()
      local out, err, status = ctl.ours(args)
      assert.equal("", out)
      local text = ctl.our_stderr(err)
      local first, second = text:match("^([^\n]*)\n([^\n]*)\n$")
      assert(first, "expected a message and the help line, got: " .. err)
      assert(err:sub(1, #ctl.OUR_PREFIX) == ctl.OUR_PREFIX, "no prefix in: " .. err)
      assert(first:find(word, 1, true), ("message does not name %s: %s"):format(word, first))
      assert.equal(ctl.OUR_TRY, second)
      assert.equal(2, status)
      ctl.assert_same_table(ctl.table_text(), before)
    end)
  end
end)
