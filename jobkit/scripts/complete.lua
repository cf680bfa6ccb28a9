-- complete: record a success, once, for the holder of the current lease.
-- KEYS[1]  base "{prefix}"   KEYS[2]  job:<id>
-- ARGV     id, token, result JSON, result_ttl seconds
-- Returns  1 recorded, 0 refused (stale token or job no longer running)
-- Invariant: a job is recorded succeeded at most once; a zombie with an old token loses.
local base, jk = KEYS[1], KEYS[2]
local id, token, ttl = ARGV[1], ARGV[2], tonumber(ARGV[4])
local f = redis.call('HMGET', jk, 'status', 'lease')
if f[1] ~= 'running' or f[2] ~= token then return 0 end
redis.call('HSET', jk, 'status', 'succeeded', 'result', ARGV[3], 'finished_at', now_ms())
redis.call('ZREM', base .. ':running', id)
redis.call('EXPIRE', jk, ttl)
redis.call('HINCRBY', base .. ':stats', 'succeeded', 1)
notify_done(base, id, ttl)
return 1
