-- cancel: withdraw a job that has not started (queued, scheduled or waiting to retry).
-- KEYS[1]  base "{prefix:queue}"   KEYS[2]  job:<id>
--          (its queue, scheduled and done:<id> are built from KEYS[1])
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     id, result_ttl seconds (how long the cancelled record is kept)
-- Returns  1 cancelled, 0 refused (running or already finished: it cannot be withdrawn)
-- Invariant: a cancelled job is in no queue and not in `scheduled`, so nothing runs it.
local base, jk = KEYS[1], KEYS[2]
local id, ttl = ARGV[1], tonumber(ARGV[2])
local f = read_job(jk, 'status', 'lane')
if not f then return 0 end
if f[1] ~= 'queued' and f[1] ~= 'scheduled' and f[1] ~= 'retrying' then return 0 end
-- pcall: a queue or scheduled key of another type holds no entry of this job to remove
if f[2] then redis.pcall('ZREM', queue_key(base, f[2]), id) end
redis.pcall('ZREM', base .. ':scheduled', id)
redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', now_ms())
redis.call('EXPIRE', jk, ttl)
notify_done(base, id, ttl)
return 1
