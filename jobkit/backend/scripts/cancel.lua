-- cancel: withdraw a job that has not started (queued, scheduled, waiting to retry or
-- waiting for the jobs it depends on), or ask the worker running it to stop it.
-- KEYS[1]  base "{prefix:queue}"   KEYS[2]  job:<id>
--          (its queue, scheduled and done:<id> are built from KEYS[1])
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     id, ttl
--          id, result_ttl seconds (how long the cancelled record is kept)
-- Returns  code: 1 cancelled; 2 requested (it runs: `cancel` = ttl is set in its hash, its
--          supervisor sees it through heartbeat.lua, kills the child and ends the attempt
--          with cancelled.lua; should the attempt end otherwise and the job be queued
--          again, claim.lua cancels it instead of leasing it); 0 refused, it has finished;
--          -1 refused, no such job
-- Invariant: a cancelled job is in no queue and not in `scheduled`, so nothing runs it.
local base, jk = KEYS[1], KEYS[2]
local id, ttl = ARGV[1], tonumber(ARGV[2])
local f = read_job(jk, 'status', 'lane')
if not f or not f[1] then return -1 end
if f[1] == 'running' then
  redis.call('HSET', jk, 'cancel', ttl)
  return 2
end
if f[1] ~= 'queued' and f[1] ~= 'scheduled' and f[1] ~= 'retrying' and f[1] ~= 'waiting' then
  return 0
end
if f[2] then on(base, 'zset', 'ZREM', queue_key(base, f[2]), id) end
on(base, 'zset', 'ZREM', scheduled_key(base), id)
end_cancelled(base, jk, id, ttl, now_ms())
return 1
