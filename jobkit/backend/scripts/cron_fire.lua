-- cron_fire: enqueue the jobs of one cron schedule's due slots, each slot at most once ever.
-- KEYS[1]  base "{prefix:queue}"; job, queue, wake and lanes keys are built from it
-- KEYS[2]  schedule:<key> hash: cursor (last handled slot), last_slot, last_job,
--          last_fired_at, next_slot, fired, skipped; paused / resumed_at (cron_pause.lua)
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     key, next_slot, skip_to, missed, n, name, lane, params, priority, max_attempts,
--          timeout, result_ttl, limits, version, *(slot, id)
--          schedule key, next_slot, skip_to (0 = none), missed count, N, then the 9 job
--          fields every slot shares: name, lane, params JSON, priority, max_attempts,
--          timeout seconds, result_ttl seconds, limits ('' for none; a slot's job is
--          unique by its id, so only concurrency and rate apply), the class's payload
--          version (written above 1, as enqueue.lua does); then N pairs (slot epoch
--          seconds, job id), oldest slot first
-- Returns  advanced, *(code, detail):
--          {advanced 1|0, then N pairs code, detail}: advanced says this call moved the
--          cursor. code 1 enqueued (detail 'queued'); 2 skipped, as the slot fell due
--          while the schedule was paused (detail 'paused'); 0 already handled by this or
--          another scheduler (detail: that job's status or ''); -1 not due yet by Redis
--          time (detail: ms to wait; later slots of the call are not looked at)
-- Invariant: the cursor only grows, and a slot at or below it is never enqueued again, so
-- a slot fires once even after its job hash expired (result_ttl); the job and the cursor
-- change together. A slot due while the schedule is paused, or before its last resume,
-- moves the cursor and is counted skipped but enqueues nothing: a resume never fires a
-- backlog, whatever the misfire policy, even when no scheduler ran during the pause.
-- Job fields mirror enqueue.lua (tests compare the two hashes).
local base, sk = KEYS[1], KEYS[2]
local key, next_slot = ARGV[1], ARGV[2]
local skip_to, missed, n = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local name, lane, params = ARGV[6], ARGV[7], ARGV[8]
local priority, max_attempts, timeout, ttl = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local limits, version = ARGV[13], ARGV[14]
local now = now_ms()
local state = redis.call('HMGET', sk, 'cursor', 'paused', 'resumed_at')
local cursor = tonumber(state[1] or '-1') or -1
local paused = state[2] ~= false
-- slots before this (ms) fell due during a pause that has ended: never fired
local resumed_at = tonumber(state[3] or '0') or 0
local skipped = missed
local advanced = false
if skip_to > 0 and skip_to > cursor and skip_to * 1000 <= now then
  cursor = skip_to
  advanced = true
end
local out = {}
for i = 0, n - 1 do
  local slot, id = tonumber(ARGV[15 + 2 * i]), ARGV[16 + 2 * i]
  if slot * 1000 > now then
    out[#out + 1] = -1
    out[#out + 1] = slot * 1000 - now
    break
  end
  if slot <= cursor then
    out[#out + 1] = 0
    local f = read_job(job_key(base, id), 'status')
    out[#out + 1] = f and f[1] or ''
  elseif paused or slot * 1000 < resumed_at then
    cursor = slot
    advanced = true
    skipped = skipped + 1
    out[#out + 1] = 2
    out[#out + 1] = 'paused'
  else
    cursor = slot
    advanced = true
    local jk = job_key(base, id)
    local f = read_job(jk, 'status')
    local existing = f == nil and 'invalid' or f[1]  -- nil: a key that is not a job
    if existing then  -- someone dispatched this id by hand: keep it, the slot is served
      out[#out + 1] = 0
      out[#out + 1] = existing
    else
      create_job(base, id, 'queued', slot * 1000, str(now), name, lane, params, priority,
        max_attempts, timeout, ttl)
      wake(base, lane, 1)
      note_lane(base, lane)
      redis.call('HSET', jk, 'schedule', key)
      if limits ~= '' then redis.call('HSET', jk, 'limits', limits) end
      if version ~= '1' then
        redis.call('HSET', jk, 'version', version)
        redis.call('SET', versioned_key(base), '1')  -- see enqueue.lua
      end
      redis.call('HSET', sk, 'last_slot', slot, 'last_job', id, 'last_fired_at', now)
      redis.call('HINCRBY', sk, 'fired', 1)
      out[#out + 1] = 1
      out[#out + 1] = 'queued'
    end
  end
end
if advanced then
  redis.call('HSET', sk, 'cursor', cursor)
  -- only the scheduler that moved the cursor counts the misses, so they count once
  if skipped > 0 then redis.call('HINCRBY', sk, 'skipped', skipped) end
end
redis.call('HSET', sk, 'next_slot', next_slot)
table.insert(out, 1, advanced and 1 or 0)
return out
