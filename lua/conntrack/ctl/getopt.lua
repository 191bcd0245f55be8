-- conntrack/ctl/getopt.lua: glibc's getopt_long, as conntrack(8) sees it.
-- Same permutation of non-options, same unique-prefix abbreviations (and
-- the same "ambiguous" verdicts), optional arguments only when attached,
-- and the same optind bookkeeping, which conntrack's messages depend on.

local M = {}

-- A parser over argv (argv[0] is the program). shorts is a getopt string
-- such as ":L::s:"; longs is a list of { name =, has_arg = 0|1|2, val = }.
-- Options marked exact = true match only when spelt out in full and take no
-- part in abbreviations, so extensions never make a conntrack prefix ambiguous.
function M.new(argv, shorts, longs)
  local self = {
    argv = argv, argc = #argv + 1, shorts = shorts, longs = longs,
    optind = 1, nextchar = nil, first_nonopt = 1, last_nonopt = 1,
  }
  return setmetatable(self, { __index = M })
end

local function is_nonoption(arg)
  return arg:sub(1, 1) ~= "-" or #arg == 1
end

-- Moves the non-options skipped so far after the options that followed them.
local function exchange(self)
  local argv = self.argv
  local moved = {}
  for i = self.first_nonopt, self.last_nonopt - 1 do moved[#moved + 1] = argv[i] end
  local j = self.first_nonopt
  for i = self.last_nonopt, self.optind - 1 do argv[j] = argv[i]; j = j + 1 end
  for _, v in ipairs(moved) do argv[j] = v; j = j + 1 end
  self.first_nonopt = self.first_nonopt + (self.optind - self.last_nonopt)
  self.last_nonopt = self.optind
end

local function long_option(self)
  local text = self.nextchar
  local eq = text:find("=", 1, true)
  local name = eq and text:sub(1, eq - 1) or text
  local found, ambiguous
  for _, o in ipairs(self.longs) do
    if o.name == name then found = o; ambiguous = false; break end
  end
  if not found then
    for _, o in ipairs(self.longs) do
      if not o.exact and o.name:sub(1, #name) == name then
        if not found then
          found = o
        elseif found.has_arg ~= o.has_arg or found.val ~= o.val then
          ambiguous = true
        end
      end
    end
  end
  local this = self.argv[self.optind]
  self.optind = self.optind + 1
  self.nextchar = nil
  if ambiguous or not found then
    return "?", nil, this
  end
  if eq then
    if found.has_arg == 0 then return "?", nil, this end
    return found.val, text:sub(eq + 1), this
  end
  if found.has_arg == 1 then
    if self.optind <= #self.argv then
      local arg = self.argv[self.optind]
      self.optind = self.optind + 1
      return found.val, arg, this
    end
    return ":", nil, this
  end
  return found.val, nil, this
end

-- The next option: val, optarg. val is nil at the end, "?" for an unknown
-- option and ":" for a missing argument; self:last() is then argv[optind-1].
function M:next()
  local argv = self.argv
  if self.nextchar == nil or self.nextchar == "" then
    if self.last_nonopt > self.optind then self.last_nonopt = self.optind end
    if self.first_nonopt > self.optind then self.first_nonopt = self.optind end
    if self.first_nonopt ~= self.last_nonopt and self.last_nonopt ~= self.optind then
      exchange(self)
    elseif self.last_nonopt ~= self.optind then
      self.first_nonopt = self.optind
    end
    while self.optind < self.argc and is_nonoption(argv[self.optind]) do
      self.optind = self.optind + 1
    end
    self.last_nonopt = self.optind
    if self.optind ~= self.argc and argv[self.optind] == "--" then
      self.optind = self.optind + 1
      if self.first_nonopt ~= self.last_nonopt and self.last_nonopt ~= self.optind then
        exchange(self)
      elseif self.first_nonopt == self.last_nonopt then
        self.first_nonopt = self.optind
      end
      self.last_nonopt = self.argc
      self.optind = self.argc
    end
    if self.optind == self.argc then
      if self.first_nonopt ~= self.last_nonopt then self.optind = self.first_nonopt end
      return nil
    end
    local arg = argv[self.optind]
    if arg:sub(2, 2) == "-" then
      self.nextchar = arg:sub(3)
      return long_option(self)
    end
    self.nextchar = arg:sub(2)
  end

  local c = self.nextchar:sub(1, 1)
  self.nextchar = self.nextchar:sub(2)
  local at = c ~= ":" and self.shorts:find(c, 1, true)
  if self.nextchar == "" then self.optind = self.optind + 1 end
  if not at then return "?" end
  local spec = self.shorts:sub(at + 1, at + 2)
  if spec:sub(1, 1) ~= ":" then return c end
  local arg
  if spec == "::" then
    if self.nextchar ~= "" then
      arg = self.nextchar
      self.optind = self.optind + 1
    end
  elseif self.nextchar ~= "" then
    arg = self.nextchar
    self.optind = self.optind + 1
  elseif self.optind == self.argc then
    self.nextchar = nil
    return ":"
  else
    arg = argv[self.optind]
    self.optind = self.optind + 1
  end
  self.nextchar = nil
  return c, arg
end

-- argv[optind - 1], the element conntrack names in its messages.
function M:last()
  return self.argv[self.optind - 1]
end

-- The element conntrack peeks at for an optional argument (a table name, a
-- NAT address): the next one, unless it looks like an option or a negation.
function M:take_optional()
  local arg = self.argv[self.optind]
  if self.optind < self.argc and arg:sub(1, 1) ~= "-" and arg:sub(1, 1) ~= "!" then
    self.optind = self.optind + 1
    return arg
  end
  return nil
end

return M
