-- Validation of what scripts read from job records, and what becomes of a record that
-- cannot be trusted: prepended to every script after _lib.lua (see __init__.py).

-- -- validation -------------------------------------------------------------------------


-- HMGET on a job key that may hold another type: the fields, or nil when it is no hash.
local function read_job(jk, ...)
  local f = redis.pcall('HMGET', jk, ...)
  if f['err'] then return nil end
  return f
end

-- A counter or token field: absent (0) or a whole number.
local function count_ok(v) return not v or string.match(v, '^%d+$') ~= nil end
-- A finite number (Lua's tonumber also takes 'nan' and 'inf').
local function finite(v)
  local n = tonumber(v)
  return n ~= nil and n == n and n ~= math.huge and n ~= -math.huge
end
local function int_ok(v) return v and string.match(v, '^%-?%d+$') ~= nil end

-- Text a client can decode: valid UTF-8 (as Python's strict decoder reads it: no
-- overlong forms, no surrogates, nothing past U+10FFFF). ASCII, the usual case, is one
-- string.find; other text is walked one character at a time from one non-ASCII byte to
-- the next.
local function utf8_ok(s)
  local i = string.find(s, '[\128-\255]')
  local byte, find = string.byte, string.find
  while i do
    local c = byte(s, i)
    local more, lo, hi = 0, 128, 191
    if c >= 194 and c <= 223 then more = 1
    elseif c >= 224 and c <= 239 then
      more = 2
      if c == 224 then lo = 160 elseif c == 237 then hi = 159 end
    elseif c >= 240 and c <= 244 then
      more = 3
      if c == 240 then lo = 144 elseif c == 244 then hi = 143 end
    else return false end
    for k = 1, more do
      local d = byte(s, i + k)
      if not d or d < lo or d > hi then return false end
      lo, hi = 128, 191
    end
    i = find(s, '[\128-\255]', i + more + 1)  -- skip the ASCII that follows at C speed
  end
  return true
end

-- Why a job's record cannot be put back in its queue, or nil when it can: a lane, an
-- integer priority and sequence number. (Its lane's keys are shared: garbage there is
-- set aside when met.)
local function requeue_problem(lane, priority, seq)
  if not lane or lane == '' then return 'no lane' end
  if not int_ok(priority) then return 'priority is not an integer' end
  if seq ~= nil and not int_ok(seq) then return 'seq is not an integer' end
  return nil
end

-- Dead-letter, with reason invalid_record, a job whose record cannot be trusted; the
-- caller has taken it off wherever it was. A record that is not a hash is kept, renamed
-- to corrupt:<id>, and a hash saying what happened takes its place, so every reader
-- finds an ordinary dead job.
local function invalid_record(base, id, why, now)
  local jk = job_key(base, id)
  local t = key_type(jk)
  local was = t == 'hash' and redis.call('HMGET', jk, 'status', 'name', 'attempts', 'limits')
    or {}
  limits_end(base, jk, id, was[2], was[4], true)
  event(base, id, was[2], was[1] or '', 'dead', was[3], '', '', 'invalid_record')
  if t ~= 'hash' and t ~= 'none' then
    redis.call('RENAME', jk, corrupt_key(base, id))
    why = why .. '; the ' .. t .. ' found there is kept as ' .. corrupt_key(base, id)
  end
  local err = cjson.encode({type = 'InvalidRecord', message = why, traceback = ''})
  redis.call('HSET', jk, 'status', 'dead', 'reason', 'invalid_record', 'error', err,
    'finished_at', now)
  redis.call('PERSIST', jk)
  on(base, 'zset', 'ZADD', dead_key(base), now, id)
  count(base, 'dead', 1)
  job_ended(base, id, 'dead')
end
