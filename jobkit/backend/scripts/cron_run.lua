-- cron_run: run one cron schedule's job now, outside its slots ("run now").
-- KEYS[1]  base "{prefix:queue}"; job, queue, wake and lanes keys are built from it
-- KEYS[2]  schedule:<key> hash (see cron_fire.lua): last_job, last_fired_at, runs_now
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     key, id, name, lane, params, priority, max_attempts, timeout, result_ttl, limits,
--          version
--          schedule key, job id (a fresh one, never a slot's: see ScheduleStore.run_now),
--          then the 9 job fields cron_fire.lua takes: name, lane, params JSON, priority,
--          max_attempts, timeout seconds, result_ttl seconds, limits ('' for none),
--          payload version
-- Returns  created, status:
--          {1, 'queued'} when it created the job; {0, status} when the id exists already
--          (this call sent again after a lost reply: nothing is written twice)
-- Invariant: the job is created exactly as a slot's (create_job, then the same fields as
-- cron_fire.lua) and the schedule records it as its last run, together; the cursor is
-- not touched, so no slot is fired or skipped for it, paused or not. Sent twice, the id
-- exists the second time: one job, counted once.
local base, sk = KEYS[1], KEYS[2]
local key, id = ARGV[1], ARGV[2]
local name, lane, params = ARGV[3], ARGV[4], ARGV[5]
local priority, max_attempts, timeout, ttl, limits = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local version = ARGV[11]
expect_types(base, sk, 'hash')
local jk = job_key(base, id)
local f = read_job(jk, 'status')
if f == nil then return {0, 'invalid'} end  -- a key that is not a job: keep it
if f[1] then return {0, f[1]} end
local now = now_ms()
create_job(base, id, 'queued', now, str(now), name, lane, params, priority, max_attempts,
  timeout, ttl)
wake(base, lane, 1)
note_lane(base, lane)
redis.call('HSET', jk, 'schedule', key)
if limits ~= '' then redis.call('HSET', jk, 'limits', limits) end
if version ~= '1' then
  redis.call('HSET', jk, 'version', version)
  redis.call('SET', versioned_key(base), '1')  -- see enqueue.lua
end
redis.call('HSET', sk, 'last_job', id, 'last_fired_at', now)
redis.call('HINCRBY', sk, 'runs_now', 1)
return {1, 'queued'}
