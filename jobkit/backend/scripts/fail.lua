-- fail: end an attempt that raised, timed out or could not run.
-- KEYS[1]  base "{prefix:queue}"   KEYS[2]  job:<id>
--          (running, scheduled, seq, stats, dead, queue, wake, done and the sched:wake
--          channel are built from KEYS[1])
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     id, token, action, delay_ms, reason, error, ttl, error_type, message
--          id, token, action ('retry' | 'dead'), delay_ms, reason, error JSON,
--          result_ttl seconds (how long waiters' wake token lives), the error's type
--          and its message cut short (for the event: each attempt keeps its own error)
-- Returns  flag: 1 applied (now, or by this same call sent before and its reply lost),
--          0 refused (stale token or job no longer running)
-- Invariant: the job leaves `running` for exactly one of queue, scheduled or dead; a
-- record that cannot be put back in its queue goes to dead (reason invalid_record).
local base, jk = KEYS[1], KEYS[2]
local id, token, action = ARGV[1], ARGV[2], ARGV[3]
local delay = tonumber(ARGV[4])
local f = read_job(jk, 'status', 'lease', 'lane', 'priority', 'name', 'attempts', 'worker',
  'started_at', 'limits', 'unstarted')
if not f or f[2] ~= token then return 0 end
if f[1] ~= 'running' then
  -- a re-sent call finds the outcome it asked for already applied
  if f[1] == 'retrying' or f[1] == 'queued' or f[1] == 'dead' then return 1 end
  return 0
end
local now = now_ms()
local why = action ~= 'dead' and delay <= 0 and requeue_problem(f[3], f[4])
on(base, 'zset', 'ZREM', running_key(base), id)
unmark(base, {start_mark(token, id)})
if f[10] then redis.call('HDEL', jk, 'unstarted') end  -- it began: it could be read
if why then
  invalid_record(base, id, 'cannot be queued again: ' .. why, now)
  return 1
end
redis.call('HSET', jk, 'error', ARGV[6], 'reason', ARGV[5])
local to = action == 'dead' and 'dead' or delay > 0 and 'retrying' or 'queued'
event(base, id, f[5], 'running', to, f[6], f[7], ran_ms(now, f[8]), ARGV[5], ARGV[8], ARGV[9])
count(base, 'failed', 1)
limits_end(base, jk, id, f[5], f[9], action == 'dead')
if action == 'dead' then
  redis.call('HSET', jk, 'status', 'dead', 'finished_at', now)
  redis.call('PERSIST', jk)
  on(base, 'zset', 'ZADD', dead_key(base), now, id)
  count(base, 'dead', 1)
  notify_done(base, id, tonumber(ARGV[7]))
  job_ended(base, id, 'dead')
elseif delay > 0 then
  redis.call('HSET', jk, 'status', 'retrying', 'due_at', now + delay)
  schedule_at(base, id, now + delay)
else
  redis.call('HSET', jk, 'status', 'queued', 'due_at', now)
  push_ready(base, id, f[3], f[4], next_seq(base))
end
return 1
