-- revive: send a dead job back to its queue with a fresh attempt budget.
-- KEYS[1]  base "{prefix}"   KEYS[2]  job:<id>
-- ARGV     id
-- Returns  1 requeued, 0 refused (the job is not dead)
-- Invariant: a job is in `dead` exactly while its status is 'dead'.
local base, jk = KEYS[1], KEYS[2]
local id = ARGV[1]
local f = redis.call('HMGET', jk, 'status', 'lane', 'priority')
if f[1] ~= 'dead' then return 0 end
redis.call('ZREM', base .. ':dead', id)
redis.call('DEL', done_key(base, id))
redis.call('HSET', jk, 'status', 'queued', 'attempts', 0, 'crashes', 0, 'due_at', now_ms())
redis.call('HDEL', jk, 'finished_at', 'reason')
push_ready(base, id, f[2], f[3], next_seq(base))
return 1
