-- claim: take up to N ready jobs for one worker child, each with its own lease.
-- KEYS[1]  base "{prefix:queue}"; queue, wake, job, running, dead, stats and claim:<request>
--          keys are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     worker, lease_ms, want, request, strict, groups, *(size, lanes)
--          worker name, lease_ms, N, request id ('' = none), strict (1: the client could
--          not decode the reply to this request: dead-letter, as invalid_record, every job
--          whose id, name or params are not UTF-8 text, and answer with the others),
--          G (number of lane groups), then G groups of (count, lane...) in the order the
--          worker checks its queues
-- Returns  *(id, token, name, params_json, attempts, timeout, lane), [rate_wait_ms, extras]:
--          flat list of 7-tuples: id, token, name, params, attempts, timeout, lane; then,
--          only if a job was held back by its class's rate limit or a job leased has
--          extras, one more element: {ms until a job held back by a rate may be claimed
--          (0: none), extras}. A lane's queue key of another type (garbage) is set aside
--          (_lib.lua), so the claim serves the rest. extras: a flat list of
--          (job's place in the reply from 1, version, trace) for each job stored with a
--          payload version above 1 or a trace context (enqueue.lua writes the fields only
--          then); {} when none. A reply of plain jobs is what it was before versions and
--          traces existed: the worker's hot path pays nothing for them.
-- Invariant: nothing is leased from a paused queue (its `paused` key exists; see
-- pause.lua). A job leaves its queue only together with its entry in `running` (or, when
-- its record is invalid, in `dead`), and every claim bumps the job's fencing token
-- (`lease`), so older holders are refused later. A request sent again under the same id
-- (its reply was lost) leases nothing new: it answers with the jobs the first one leased
-- that are still held under its tokens, so a lost reply strands no lease. (UTF-8 is
-- checked only when asked: on the usual path it would cost more than the rest of a claim.)
-- Limits (jobkit/job_limits.py): a job whose class is at its concurrency limit in this
-- queue (`active:<class>` holds that many ids), or whose rate does not allow a start yet
-- (`rate`), is not leased: it goes back to its ready set with the score it had, in this
-- same script, so it keeps its place, stays `queued`, and the claim goes on to the next
-- candidates: other classes are not blocked behind it. At most MAX_HELD held-back jobs
-- are looked at per claim; a queue whose head holds more than that serves the jobs
-- behind them only once the limited ones may run (still correct, slower). The worker
-- asks again when an attempt of the class ends (limits_end wakes its lane) or, for a
-- rate, when the reply says it may (see Returns), at most 2 s later anyway.
local MAX_HELD = 64
local base, worker = KEYS[1], ARGV[1]
local lease_ms, want, req = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local strict, groups = ARGV[5] == '1', tonumber(ARGV[6])
local running = running_key(base)
local out = {}
local extras = {}  -- place, version, trace of jobs stored with either (see Returns)
-- A queue none of whose jobs was ever stored with a version or trace (enqueue.lua marks
-- it otherwise) has them read for no job: an absent field costs a walk of the hash. A
-- paused queue (`jobkit queues pause`) leases nothing; its wake tokens are dropped below.
-- Both flags in one MGET: a command fewer per claim than an EXISTS each.
local flags = redis.call('MGET', versioned_key(base), paused_key(base))
local marked, paused = flags[1] ~= false, flags[2] ~= false

-- The version and trace fields of job hash `jk` into f[at] and f[at + 1] (called in a
-- marked queue only: the call itself is not made for plain jobs).
local function read_extras(jk, f, at)
  local x = redis.call('HMGET', jk, 'version', 'trace')
  f[at], f[at + 1] = x[1], x[2]
end

-- A job's version (absent: 1) and trace context (absent: ''), noted when it has either.
local function note_extras(version, trace)
  if version or trace then
    local k = #extras
    extras[k + 1], extras[k + 2], extras[k + 3] = #out / 7, version or '1', trace or ''
  end
end

local function answer(id, token, name, params, attempts, timeout, lane)
  local k = #out
  out[k + 1], out[k + 2], out[k + 3], out[k + 4] = id, token, name, params
  out[k + 5], out[k + 6], out[k + 7] = attempts, timeout, lane
end

local now = now_ms()

-- Not text the client can decode (checked in strict mode only), or nil.
local function undecodable(id, name, params)
  if not utf8_ok(id) then return 'its id is not UTF-8 text' end
  if not utf8_ok(name) then return 'its name is not UTF-8 text' end
  if not utf8_ok(params) then return 'its params are not UTF-8 text' end
  return nil
end

if req ~= '' then
  local record = redis.pcall('GET', claim_key(base, req))  -- what this request leased
  if type(record) == 'string' then
    local held = cjson.decode(record)  -- id, token, lane ...
    for i = 1, #held, 3 do
      local f = read_job(job_key(base, held[i]), 'status', 'lease', 'name', 'params',
        'attempts', 'timeout')
      if f and f[1] == 'running' and f[2] == held[i + 1] then
        if marked then read_extras(job_key(base, held[i]), f, 7) end
        local why = strict and undecodable(held[i], f[3], f[4])
        if why then
          on(base, 'zset', 'ZREM', running, held[i])
          invalid_record(base, held[i], why, now)
        else
          answer(held[i], f[2], f[3], f[4], f[5], f[6] or '0', held[i + 2])
          if marked then note_extras(f[7], f[8]) end
        end
      end
    end
    if #extras > 0 then out[#out + 1] = {0, extras} end
    return out
  end
end

local now_s, deadline = str(now), str(now + lease_ms)  -- written for every job
local got = 0
local leases = {}  -- score, id pairs for `running`, added in one call
local taken = {}  -- id, token, lane triples: what a re-sent request answers with
local began = {}  -- each job leased, for the batch's event (see events)

-- Why a popped job cannot be run as it stands, or nil.
local function problem(id, f)
  if not count_ok(f[2]) then return 'attempts is not a whole number' end
  if not count_ok(f[3]) then return 'lease is not a whole number' end
  if not f[4] or f[4] == '' then return 'no job name' end
  if not f[5] then return 'no params' end
  if f[9] and not string.match(f[9], '^[1-9]%d*$') then return 'version is not a whole number' end
  if strict and f[10] and not utf8_ok(f[10]) then return 'its trace is not UTF-8 text' end
  if strict then return undecodable(id, f[4], f[5]) end
  if f[6] and not (finite(f[6]) and tonumber(f[6]) >= 0) then
    return 'timeout is not a number of seconds'
  end
  return nil
end

-- A job id names its queue ("<queue>:<key>": see jobkit/backend/keys.py), which is how
-- every later call finds this shard; an id that does not name this one is garbage.
local function names_queue(id, lane)
  local queue = string.match(lane, '^[^|]*')
  return string.sub(id, 1, #queue + 1) == queue .. ':'
end

local held = {}  -- lane, score, id triples of held-back jobs, put back at the end
local full = {}  -- class -> true once held back: nothing in this claim frees it
local rate_wait = 0  -- ms until the soonest rate-held class may start again

-- Whether a job of class `name` with these `limits` may be leased now; if so, its slot
-- and its rate are taken. A slot whose job no longer runs (lost by garbage: the ending
-- scripts free theirs) is freed here, looking at a few of the class's slots when full.
-- Garbage (a limits field or a limit's key that cannot be read) means no limit rather
-- than a job stuck, or a claim failing, for ever.
local function admit(id, name, limits)
  if full[name] then return false end
  local c, interval = parse_limits(limits)
  if not c then return true end
  local ak, rk = active_key(base, name), rate_key(base)
  local function usable(key, want_type)
    local t = key_type(key)
    return t == 'none' or t == want_type
  end
  if c > 0 and not usable(ak, 'set') then c = 0 end
  if interval > 0 and not usable(rk, 'hash') then interval = 0 end
  if c > 0 and redis.call('SCARD', ak) >= c then
    for _, m in ipairs(redis.call('SRANDMEMBER', ak, 4)) do
      if redis.pcall('HGET', job_key(base, m), 'status') ~= 'running' then
        redis.call('SREM', ak, m)
      end
    end
    if redis.call('SCARD', ak) >= c then
      full[name] = true
      return false
    end
  end
  if interval > 0 then
    local next_at = tonumber(redis.call('HGET', rk, name)) or 0
    if now < next_at then
      full[name] = true
      if rate_wait == 0 or next_at - now < rate_wait then rate_wait = next_at - now end
      return false
    end
    redis.call('HSET', rk, name, now + interval)
  end
  if c > 0 then redis.call('SADD', ak, id) end
  return true
end

local function take(id, lane, score)
  local jk = job_key(base, id)
  if not names_queue(id, lane) then
    if key_type(jk) ~= 'none' then invalid_record(base, id, 'its id does not name its queue', now_s) end
    return
  end
  local f = read_job(jk, 'status', 'attempts', 'lease', 'name', 'params', 'timeout', 'cancel',
    'limits')
  if not f then
    invalid_record(base, id, 'its record is not a hash', now_s)
    return
  end
  if marked then read_extras(jk, f, 9) end
  -- an id whose hash vanished or that was cancelled meanwhile is simply dropped
  if f[1] ~= 'queued' then return end
  -- cancelled while an attempt ran that then ended otherwise (see cancel.lua)
  if f[7] then return end_cancelled(base, jk, id, tonumber(f[7]) or 86400, now_s) end
  local why = problem(id, f)
  if why then
    invalid_record(base, id, why, now_s)
    return
  end
  if f[8] and not admit(id, f[4], f[8]) then
    held[#held + 1], held[#held + 2], held[#held + 3] = lane, score, id
    return
  end
  local attempts = (tonumber(f[2]) or 0) + 1
  local token = str((tonumber(f[3]) or 0) + 1)
  redis.call('HSET', jk, 'status', 'running', 'attempts', attempts, 'lease', token,
    'worker', worker, 'started_at', now_s)
  began[#began + 1] = {id, f[4], attempts, worker, ''}
  leases[#leases + 1] = deadline
  leases[#leases + 1] = id
  answer(id, token, f[4], f[5], attempts, f[6] or '0', lane)
  if marked then note_extras(f[9], f[10]) end
  taken[#taken + 1], taken[#taken + 2], taken[#taken + 3] = id, token, lane
  got = got + 1
end

local pos = 7
for g = 1, groups do
  local count = tonumber(ARGV[pos])
  local lanes = {}
  for j = 1, count do lanes[j] = ARGV[pos + j] end
  pos = pos + count + 1
  while got < want and not paused and #held < 3 * MAX_HELD do
    local lane, ids, scores = nil, {}, {}
    if count == 1 then  -- one lane: pop what we want at once
      lane = lanes[1]
      local popped = on(base, 'zset', 'ZPOPMIN', queue_key(base, lane), want - got)
      for k = 1, #popped, 2 do ids[#ids + 1], scores[#ids + 1] = popped[k], popped[k + 1] end
    else  -- the best head among this group's lanes
      local best, best_score = nil, nil
      for j = 1, count do
        local head = on(base, 'zset', 'ZRANGE', queue_key(base, lanes[j]), 0, 0, 'WITHSCORES')
        if head[1] and (best_score == nil or tonumber(head[2]) < best_score) then
          best, best_score = j, tonumber(head[2])
        end
      end
      if best then
        lane = lanes[best]
        ids[1], scores[1] = redis.call('ZPOPMIN', queue_key(base, lane))[1], best_score
      end
    end
    if #ids == 0 then break end
    for k, id in ipairs(ids) do take(id, lane, scores[k]) end
  end
  if got >= want then break end
end
if #leases > 0 then on(base, 'zset', 'ZADD', running, unpack(leases)) end
events(base, 'queued', 'running', began)
for i = 1, #held, 3 do redis.call('ZADD', queue_key(base, held[i]), held[i + 1], held[i + 2]) end
if req ~= '' and got > 0 then
  -- one SET of the packed list: a command fewer than an RPUSH and a PEXPIRE
  redis.call('SET', claim_key(base, req), cjson.encode(taken), 'PX', lease_ms)
end
if got < want then
  -- every lane we serve is empty, or holds only jobs held back: drop stale wake tokens so
  -- idle waits really block (until an attempt ends, a job arrives, or the rate allows)
  pos = 7
  for g = 1, groups do
    local count = tonumber(ARGV[pos])
    for j = 1, count do redis.call('DEL', wake_key(base, ARGV[pos + j])) end  -- any type
    pos = pos + count + 1
  end
end
if rate_wait > 0 or #extras > 0 then
  out[#out + 1] = {rate_wait, extras}
end
return out
