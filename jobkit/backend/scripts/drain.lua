-- drain: delete every ready job of one queue (`jobkit queues purge`), in all its lanes.
-- KEYS[1]  base "{prefix:queue}"; its lanes set, queue, wake, created and job keys are built
--          from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     queue
--          the queue's name
-- Returns  count: how many jobs were deleted
-- Invariant: only jobs waiting in a ready set are touched: running, scheduled and dead
-- jobs, and their leases, are left as they are. A ready set's entry whose record is not a
-- queued job (garbage, or a job that moved on) leaves the set, its record untouched.
-- Not sent twice after a lost reply: the count would hide the first run.
local base, queue = KEYS[1], ARGV[1]
local lanes = lanes_key(base)
expect_types(base, lanes, 'set')
local all = redis.call('SMEMBERS', lanes)
all[#all + 1] = queue
local deleted = 0
for _, lane in ipairs(all) do
  local qk = queue_key(base, lane)
  local ids = on(base, 'zset', 'ZRANGE', qk, 0, -1)
  if not ids['err'] then
    for _, id in ipairs(ids) do
      local jk = job_key(base, id)
      local f = read_job(jk, 'status', 'name', 'attempts')
      if f and f[1] == 'queued' then
        event(base, id, f[2], 'queued', 'purged', f[3])
        redis.call('DEL', jk)
        on(base, 'zset', 'ZREM', created_key(base), id)
        deleted = deleted + 1
      end
    end
    redis.call('DEL', qk)
  end
  redis.call('DEL', wake_key(base, lane))
end
return deleted
