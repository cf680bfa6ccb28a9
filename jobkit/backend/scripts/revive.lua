-- revive: send a dead job back to its queue with a fresh attempt budget, or a job waiting
-- out a retry back-off back to its queue now (an operator's "retry").
-- KEYS[1]  base "{prefix:queue}"   KEYS[2]  job:<id>
--          (dead, scheduled, seq, queue, wake and done:<id> are built from KEYS[1])
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     id
--          id
-- Returns  code: 1 requeued, 0 refused (the job is neither dead nor retrying), -1 refused (its
--          record has no valid lane or priority to queue it with; the message says which)
-- Invariant: a job is in `dead` exactly while its status is 'dead', and in `scheduled`
-- exactly while it is 'scheduled' or 'retrying'. A dead job starts over (attempts and
-- crashes 0); a retrying one keeps its attempts: it only skips the rest of its wait.
local base, jk = KEYS[1], KEYS[2]
local id = ARGV[1]
local f = read_job(jk, 'status', 'lane', 'priority', 'name', 'attempts')
if not f or (f[1] ~= 'dead' and f[1] ~= 'retrying') then return 0 end
local why = requeue_problem(f[2], f[3])
if why then return {-1, why} end
local now = now_ms()
if f[1] == 'retrying' then
  if on(base, 'zset', 'ZREM', scheduled_key(base), id) ~= 1 then return 0 end
  redis.call('HSET', jk, 'status', 'queued', 'due_at', now)
  event(base, id, f[4], 'retrying', 'queued', f[5] or 0, '', '', 'retried')
  push_ready(base, id, f[2], f[3], next_seq(base))
  return 1
end
on(base, 'zset', 'ZREM', dead_key(base), id)
redis.call('DEL', done_key(base, id))
redis.call('HSET', jk, 'status', 'queued', 'attempts', 0, 'crashes', 0, 'due_at', now)
redis.call('HDEL', jk, 'finished_at', 'reason')
event(base, id, f[4], 'dead', 'queued', 0, '', '', 'revived')
push_ready(base, id, f[2], f[3], next_seq(base))
return 1
