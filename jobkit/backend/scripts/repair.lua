-- repair: put back the index entries a queue's job records call for, and drop the
-- entries no record backs (jobkit repair; jobkit doctor runs it writing nothing).
-- KEYS[1]  base "{prefix:queue}"; job:<id>, running, scheduled, dead, finished, created,
--          queue:<lane>, lanes and seq are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     fix, lease_ms, listed_in, *(id)
--          fix ('1': write what is missing, '0': only say it), lease_ms (a running job
--          with no lease is given one that ends this long from now), listed_in ('': the
--          ids are of job records, as SCAN found their keys; else the index whose
--          entries they are: running, scheduled, dead, finished, created or
--          queue:<lane>), ids
-- Returns  *(id, index, state): one triple per thing not as it should be (none: all is);
--          index is where (an index above, 'lanes', 'seq', 'record' or 'status'), state
--          'missing' (an entry the record calls for; 'seq': the counter is behind this
--          job's), 'added' (written), 'blocked' (the index holds another type, which a
--          fix sets aside first: nothing written), 'invalid' (the record cannot say where it belongs), 'stray' (an
--          entry with no record), 'removed' (dropped)
-- Invariant: a record's status decides its index (queued: its lane's queue, scored as
-- ready_score does; scheduled and retrying: scheduled at due_at; running: running;
-- dead: dead; succeeded and cancelled: finished at finished_at; every record: created
-- at created_at). Each record is read here, in the call that writes for it, and only
-- what is absent is added (never a score changed), so it is safe while workers run and
-- idempotent: sent twice, the second call finds nothing to do. A running job given a
-- lease is renewed by its worker's heartbeat if that worker lives, and reaped when the
-- lease lapses if not.
local base = KEYS[1]
local fix, lease_ms, listed_in = ARGV[1] == '1', tonumber(ARGV[2]), ARGV[3]
local now = now_ms()
local out = {}

local function say(id, where, state)
  out[#out + 1], out[#out + 2], out[#out + 3] = id, where, state
end

local function whole(v) return v and string.match(v, '^%-?%d+$') ~= nil end

-- the first of the record's times given that is a number, else now
local function moment(a, b)
  if tonumber(a) then return a end
  if tonumber(b) then return b end
  return str(now)
end

-- The record `id` belongs in index `key` (named `name`) with `score`: added when absent.
local function want(id, name, key, score)
  local have = redis.pcall('ZSCORE', key, id)
  if type(have) == 'table' and have['err'] and fix and set_aside(base, key, 'zset') then
    have = nil  -- garbage under the index's name, set aside (_lib.lua): an empty index
  end
  if type(have) == 'table' and have['err'] then
    say(id, name, 'blocked')
  elseif not have then
    if fix then redis.call('ZADD', key, score, id) end  -- a zset or none: ZSCORE said so
    say(id, name, fix and 'added' or 'missing')
  end
end

local function ended(key_of, name)
  return function(id, f) want(id, name, key_of(base), moment(f[7], f[5])) end
end

local function due(id, f) want(id, 'scheduled', scheduled_key(base), moment(f[6], f[5])) end

-- where each status's record belongs, besides `created`
local PLACE = {
  queued = function(id, f)
    local lane, priority, seq = f[2], f[3], f[4]
    if not lane or lane == '' or not whole(priority) or not whole(seq) then
      say(id, 'queue', 'invalid')
      return
    end
    want(id, 'queue:' .. lane, queue_key(base, lane), ready_score(priority, seq))
    if string.find(lane, '|', 1, true) then  -- a tagged lane: `--tags '*'` finds it in lanes
      local known = redis.pcall('SISMEMBER', lanes_key(base), lane)
      if type(known) == 'table' then
        say(id, 'lanes', 'blocked')
      elseif known == 0 then
        if fix then redis.call('SADD', lanes_key(base), lane) end
        say(id, 'lanes', fix and 'added' or 'missing')
      end
    end
  end,
  scheduled = due,
  retrying = due,
  running = function(id)
    want(id, 'running', running_key(base), str(now + lease_ms))
  end,
  dead = ended(dead_key, 'dead'),
  succeeded = ended(finished_key, 'finished'),
  cancelled = ended(finished_key, 'finished'),
  waiting = function() end,  -- in no index but created until what it waits for ends
}

-- the indexes whose entries can be checked against their records
local INDEX = {running = running_key, scheduled = scheduled_key, dead = dead_key,
  finished = finished_key, created = created_key}

if listed_in ~= '' then
  local key_of, lane = INDEX[listed_in], string.match(listed_in, '^queue:(.+)$')
  local key = key_of and key_of(base) or lane and queue_key(base, lane)
  if not key then return redis.error_reply('jobkit: no index ' .. listed_in) end
  for i = 4, #ARGV do
    local id = ARGV[i]
    if redis.call('EXISTS', job_key(base, id)) == 0 then
      if fix then redis.pcall('ZREM', key, id) end
      say(id, listed_in, fix and 'removed' or 'stray')
    end
  end
  return out
end

local newest, newest_id = nil, nil  -- the highest seq of the records seen
for i = 4, #ARGV do
  local id = ARGV[i]
  local jk = job_key(base, id)
  local f = redis.pcall('HMGET', jk, 'status', 'lane', 'priority', 'seq', 'created_at',
    'due_at', 'finished_at')
  if f['err'] then
    say(id, 'record', 'invalid')  -- no hash: the script that meets it dead-letters it
  elseif f[1] or redis.call('EXISTS', jk) == 1 then  -- else: it expired since the SCAN
    local place = PLACE[f[1] or '']
    if not place then
      say(id, 'status', 'invalid')
    else
      want(id, 'created', created_key(base), moment(f[5], f[7]))
      place(id, f)
      if whole(f[4]) and (not newest or tonumber(f[4]) > newest) then
        newest, newest_id = tonumber(f[4]), id
      end
    end
  end
end

if newest then  -- the counter is past every seq a record holds (enqueue INCRs it)
  local seq = redis.pcall('GET', seq_key(base))
  if type(seq) == 'table' then
    say(newest_id, 'seq', 'blocked')
  elseif not whole(seq) or tonumber(seq) < newest then
    if fix then redis.call('SET', seq_key(base), str(newest)) end
    say(newest_id, 'seq', fix and 'added' or 'missing')
  end
end
return out
