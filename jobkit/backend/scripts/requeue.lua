-- requeue: give a claimed job back to its queue (worker shutdown, unstarted prefetch).
-- KEYS[1]  base "{prefix:queue}"   KEYS[2]  job:<id>
--          (running, queue, wake, dead and stats are built from KEYS[1])
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     id, token, uncount
--          id, token, uncount (1: the attempt never really ran, take it back)
-- Returns  flag: 1 requeued (now, or by this same call sent before and its reply lost),
--          0 refused (stale token or job no longer running)
-- Invariant: the job keeps its FIFO place; it is never both queued and running. A job
-- handed back unrun shows no worker and no start time.
local base, jk = KEYS[1], KEYS[2]
local id, token = ARGV[1], ARGV[2]
local f = read_job(jk, 'status', 'lease', 'lane', 'priority', 'seq', 'attempts', 'name',
  'worker', 'limits')
if not f or f[2] ~= token then return 0 end
if f[1] ~= 'running' then return f[1] == 'queued' and 1 or 0 end
on(base, 'zset', 'ZREM', running_key(base), id)
unmark(base, {start_mark(token, id)})
local why = requeue_problem(f[3], f[4], f[5])
if not why and not count_ok(f[6]) then why = 'attempts is not a whole number' end
if why then
  invalid_record(base, id, 'cannot be queued again: ' .. why, now_ms())
  return 1
end
redis.call('HSET', jk, 'status', 'queued')
event(base, id, f[7], 'running', 'queued', f[6], f[8], '',
  ARGV[3] == '1' and 'handed_back' or 'requeued')
if ARGV[3] == '1' then
  redis.call('HSET', jk, 'attempts', math.max(0, (tonumber(f[6]) or 0) - 1))
  redis.call('HDEL', jk, 'worker', 'started_at')
end
limits_end(base, jk, id, f[7], f[9], false)
push_ready(base, id, f[3], f[4], f[5])
return 1
