-- promote: move due entries of `scheduled` (delays, retry back-offs) to their queues.
-- KEYS[1]  base "{prefix}"
-- ARGV     limit per call
-- Returns  {promoted count, ms until the next due entry or -1 if none}
-- Invariant: a job is in `scheduled` or in its queue, never both; promotion is idempotent.
local base = KEYS[1]
local limit = tonumber(ARGV[1])
local now = now_ms()
local sched = base .. ':scheduled'
local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, limit)
local moved = 0
for _, id in ipairs(due) do
  redis.call('ZREM', sched, id)
  local jk = job_key(base, id)
  local f = redis.call('HMGET', jk, 'status', 'lane', 'priority')
  if f[1] == 'scheduled' or f[1] == 'retrying' then
    redis.call('HSET', jk, 'status', 'queued')
    push_ready(base, id, f[2], f[3], next_seq(base))
    moved = moved + 1
  end
end
local nxt = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
local wait = -1
if nxt[1] then
  wait = tonumber(nxt[2]) - now
  if wait < 0 then wait = 0 end
end
return {moved, wait}
