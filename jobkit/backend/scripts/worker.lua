-- worker: a worker's heartbeat into the registry, or its goodbye.
-- KEYS[1]  base "{prefix}" (the global slot); workers zset and worker:<name> hash are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     name, action ('beat' | 'gone'), ttl seconds, then field/value pairs
-- Returns  number of stale workers pruned
-- Invariant: `workers` lists exactly the workers whose hash has not expired.
local base, name, action, ttl = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local wk = base .. ':worker:' .. name
local zk = base .. ':workers'
expect_types(zk, 'zset', wk, 'hash')
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
