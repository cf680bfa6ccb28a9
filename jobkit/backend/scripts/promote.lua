-- promote: move due entries of `scheduled` (delays, retry back-offs) to their queues.
-- KEYS[1]  base "{prefix:queue}"; scheduled, seq, job, queue, wake, dead and stats keys are
--          built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     limit
--          limit per call
-- Returns  promoted, wait_ms: {promoted count, ms until the next due entry or -1 if none}
-- Invariant: a job is in `scheduled` or in its queue, never both; promotion is idempotent.
-- A due job whose record cannot be queued goes to `dead` (reason invalid_record) alone.
local base = KEYS[1]
local limit = tonumber(ARGV[1])
local sched = scheduled_key(base)
local now = now_ms()
local due = on(base, 'zset', 'ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, limit)
local moved = 0
for _, id in ipairs(due) do
  redis.call('ZREM', sched, id)
  local jk = job_key(base, id)
  local f = read_job(jk, 'status', 'lane', 'priority', 'name', 'attempts')
  if not f then
    invalid_record(base, id, 'its record is not a hash', now)
  elseif f[1] == 'scheduled' or f[1] == 'retrying' then
    local why = requeue_problem(f[2], f[3])
    if why then
      invalid_record(base, id, why, now)
    else
      redis.call('HSET', jk, 'status', 'queued')
      event(base, id, f[4], f[1], 'queued', f[5])
      push_ready(base, id, f[2], f[3], next_seq(base))
      moved = moved + 1
    end
  end
end
local nxt = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
local wait = -1
if nxt[1] then
  wait = tonumber(nxt[2]) - now
  if wait < 0 then wait = 0 end
end
return {moved, wait}
