-- worker: a worker's heartbeat into the registry, its goodbye, or a prune of stale ones.
-- KEYS[1]  base "{prefix}" (the global slot); workers zset and worker:<name> hash are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     name, action, ttl, *(field, value)
--          name, action ('beat' | 'gone' | 'prune'), ttl seconds, then field/value pairs
--          ('prune': no name; ttl is the default beat interval of a worker whose hash
--          names none)
-- Returns  pruned: number of stale workers pruned ('prune': their names)
-- Invariant: `workers` lists exactly the workers whose hash has not expired. A worker is
-- stale once it missed two beats (its hash's `heartbeat` field says how often it beats):
-- a prune drops it then, before its hash expires; its jobs are reaped as any dead
-- worker's, when their leases lapse. A worker pruned by mistake (it was only slow) is
-- back whole with its next beat, which writes every field.
local base, name, action, ttl = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local zk = workers_key(base)
if action == 'prune' then
  expect_types(base, zk, 'zset')
  local now, pruned = now_ms(), {}
  local seen = redis.call('ZRANGE', zk, 0, -1, 'WITHSCORES')
  for i = 1, #seen, 2 do
    local wk = worker_key(base, seen[i])
    local every = tonumber(redis.pcall('HGET', wk, 'heartbeat')) or ttl
    if redis.call('EXISTS', wk) == 0 or now - tonumber(seen[i + 1]) > 2000 * every then
      redis.call('DEL', wk)
      redis.call('ZREM', zk, seen[i])
      pruned[#pruned + 1] = seen[i]
    end
  end
  return pruned
end
local wk = worker_key(base, name)
expect_types(base, zk, 'zset', wk, 'hash')
if action == 'gone' then
  redis.call('DEL', wk)
  redis.call('ZREM', zk, name)
  return 0
end
local now = now_ms()
if #ARGV > 3 then
  local fields = {}
  for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', wk, 'last_seen', now, unpack(fields))
end
redis.call('EXPIRE', wk, ttl)
redis.call('ZADD', zk, now, name)
return redis.call('ZREMRANGEBYSCORE', zk, '-inf', now - ttl * 1000)
