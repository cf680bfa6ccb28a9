-- enqueue: create one or many jobs of one class, queued now or scheduled for later.
-- KEYS[1]  base "{prefix:queue}"; job, queue, wake, seq, scheduled, created and lanes keys
--          are built from it (and the sched:wake channel, published to when a new earliest delayed job
--          arrives)
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     n, name, lane, priority, delay_ms, at_ms, max_attempts, timeout, result_ttl,
--          limits, version, trace, check, *(id, params)
--          N, then what every job shares: name, lane, priority, delay_ms, at_ms (0 = none),
--          max_attempts, timeout seconds (0 = none), result_ttl seconds, limits ('' for
--          none: see jobkit/job_limits.py), version (the class's payload version), trace
--          (the dispatcher's trace context as JSON, '' for none: see jobkit/tracing.py),
--          check (1: an id that exists is reported with
--          its status, for caller-chosen ids and unique classes; 0: ids are fresh
--          random), then N pairs: id, params JSON
-- Returns  reply: with check 1: N pairs {created 1|0, status}, triples {created, status, id of
--          the job holding the params' lock} for a unique class (check is 1 for them);
--          with check 0 every job is created with the same status, so just that status
--          (a smaller reply for a big batch).
-- Invariant: a job hash and its place (queue or scheduled) appear together or not at all
-- (the place is written first: a key of another type fails the call before any job
-- exists), and an id that exists is never written: the same call sent twice (its reply
-- was lost, and a worker may have claimed a job meanwhile) creates each job once. A
-- unique class's params have at most one active job (queued, scheduled, retrying or
-- running): `unique:<digest>` names it; a lock whose holder is no longer active (ended
-- in a way that did not release it: purged, expired, garbage) is taken over, so a stale
-- lock never refuses a job for ever. The same call sent twice finds its own job holding
-- the lock (its id exists), and answers with it.
-- Version and trace are written only when they say something (a version above 1, a
-- trace context): a job without the field is version 1, untraced, as every job stored
-- before they existed is. claim.lua reads them and returns them only for jobs that have
-- them (outside the 7 fields of each job), so plain jobs cost what they did.
local base = KEYS[1]
local n, name, lane, priority = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local delay, at = tonumber(ARGV[5]), tonumber(ARGV[6])
local max_attempts, timeout, ttl = ARGV[7], ARGV[8], ARGV[9]
local limits, version, trace = ARGV[10], ARGV[11], ARGV[12]
local check, first = ARGV[13] == '1', 14  -- first: where the pairs start
local extras = {}  -- the fields written only when they say something (see above)
if version ~= '1' then extras[#extras + 1], extras[#extras + 2] = 'version', version end
if trace ~= '' then extras[#extras + 1], extras[#extras + 2] = 'trace', trace end
-- claim.lua reads a job's version and trace only in a queue marked to have such jobs
if #extras > 0 then redis.call('SET', versioned_key(base), '1') end
local unique_ms = limits ~= '' and select(3, parse_limits(limits)) or -1
local ACTIVE = {queued = true, scheduled = true, retrying = true, running = true}

-- The active job that holds the lock on `params`, and its status; or nil when there is
-- none, and the lock is `id`'s from now (for unique_ms, if above 0), its digest returned
-- for the job's hash (the ending scripts release it: see limits_end).
local function lock_unique(id, params)
  local digest = redis.sha1hex(name .. '\n' .. params)
  local lk = unique_key(base, digest)
  local holder = redis.call('GET', lk)
  if holder and holder ~= id then
    local st = redis.pcall('HGET', job_key(base, holder), 'status')
    if ACTIVE[st] then return holder, st end
  end
  if unique_ms > 0 then
    redis.call('SET', lk, id, 'PX', unique_ms)
  else
    redis.call('SET', lk, id)
  end
  return nil, digest
end

-- What a limited, versioned or traced job's hash carries besides create_job's fields
-- (see _lib.lua's limits).
local function note_limits(id, digest)
  if #extras > 0 then redis.call('HSET', job_key(base, id), unpack(extras)) end
  if digest then
    redis.call('HSET', job_key(base, id), 'limits', limits, 'unique', digest)
  elseif limits ~= '' then
    redis.call('HSET', job_key(base, id), 'limits', limits)
  end
end
local now = now_ms()
local now_s = str(now)
local due = now + delay
if at > due then due = at end
local status = 'queued'
if due > now then status = 'scheduled' end
local out
if not check then
  -- every FIFO place reserved at once (first: next_seq may read `created` to recover)
  local first_seq = next_seq(base, n) - n
  -- fresh random ids, all created by one call or none: if its first exists, this is the
  -- very call sent again (128 random bits do not collide), and it is done already. For
  -- queued jobs the ZADD NX that notes the first in `created` tells (a command fewer than
  -- an EXISTS); create_job notes a scheduled job there itself, so EXISTS it is.
  local fresh
  if status == 'queued' then
    fresh = on(base, 'zset', 'ZADD', created_key(base), 'NX', now_s, ARGV[first]) == 1
  else
    fresh = redis.call('EXISTS', job_key(base, ARGV[first])) == 0
  end
  if not fresh then return status end
  -- every job created alike, the queue first
  if status == 'queued' then
    local ready = {}
    for i = 0, n - 1 do
      ready[2 * i + 1] = ready_score(priority, str(first_seq + i + 1))
      ready[2 * i + 2] = ARGV[first + 2 * i]
    end
    add_ready(base, lane, ready)
  end
  local later = {}  -- the ids but the first, noted in `created` below
  local born = {}  -- their events, in one entry: an XADD per call, not per job
  for i = 0, n - 1 do
    local id = ARGV[first + 2 * i]
    if i > 0 then later[i] = id end
    create_job(base, id, status, due, now_s, name, lane, ARGV[first + 1 + 2 * i], priority,
      max_attempts, timeout, ttl, str(first_seq + i + 1), status == 'queued', born)
    note_limits(id)
  end
  events(base, '', status, born)
  if status == 'queued' then note_created(base, now_s, later) end  -- `placed`: at once
  if status == 'queued' then wake(base, lane, n) end
  out = status
else
  -- ids of the caller's: a FIFO place only for a new job, so a repeated dispatch writes
  -- nothing at all. Every id is looked up before anything is written.
  local existing = {}
  for i = 0, n - 1 do
    local got = redis.pcall('HGET', job_key(base, ARGV[first + 2 * i]), 'status')
    if type(got) == 'table' and got['err'] then
      error({err = 'INVALID jobkit: job id ' .. ARGV[first + 2 * i]
        .. ' is taken by a key that is not a job'})
    end
    existing[i] = got
  end
  out = {}
  local queued = 0
  for i = 0, n - 1 do
    local id, params = ARGV[first + 2 * i], ARGV[first + 1 + 2 * i]
    local holder, got = nil, nil  -- the lock's active holder and its status, or its digest
    if not existing[i] and unique_ms >= 0 then holder, got = lock_unique(id, params) end
    if existing[i] or holder then
      out[#out + 1] = 0
      out[#out + 1] = existing[i] or got
    else
      create_job(base, id, status, due, now_s, name, lane, params, priority, max_attempts,
        timeout, ttl)
      note_limits(id, got)
      if status == 'queued' then queued = queued + 1 end
      out[#out + 1] = 1
      out[#out + 1] = status
    end
    if unique_ms >= 0 then out[#out + 1] = holder or id end
  end
  if queued > 0 then wake(base, lane, queued) end
end
note_lane(base, lane)
return out
