-- requeue: give a claimed job back to its queue (worker shutdown, unstarted prefetch).
-- KEYS[1]  base "{prefix}"   KEYS[2]  job:<id>
-- ARGV     id, token, uncount (1: the attempt never really ran, take it back)
-- Returns  1 requeued, 0 refused (stale token or job no longer running)
-- Invariant: the job keeps its FIFO place; it is never both queued and running.
local base, jk = KEYS[1], KEYS[2]
local id, token = ARGV[1], ARGV[2]
local f = redis.call('HMGET', jk, 'status', 'lease', 'lane', 'priority', 'seq')
if f[1] ~= 'running' or f[2] ~= token then return 0 end
redis.call('ZREM', base .. ':running', id)
redis.call('HSET', jk, 'status', 'queued')
if ARGV[3] == '1' then redis.call('HINCRBY', jk, 'attempts', -1) end
push_ready(base, id, f[3], f[4], f[5])
return 1
