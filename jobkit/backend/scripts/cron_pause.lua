-- cron_pause: pause or resume one cron schedule.
-- KEYS[1]  base "{prefix:queue}" of the schedule's job class's queue
-- KEYS[2]  schedule:<key> hash (see cron_fire.lua): its paused and resumed_at fields
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     action
--          action ('pause' | 'resume')
-- Returns  flag: 1 if the schedule's state changed, 0 if it was already so
-- Invariant: while `paused` is set (the Redis time it was paused, ms), cron_fire.lua
-- enqueues nothing for due slots, only moves the cursor past them; a resume clears it
-- and sets `resumed_at` (ms), before which cron_fire fires no slot, so resuming never
-- fires the slots of the pause, even those no scheduler saw. Running it twice has the
-- effect of running it once.
local base, sk, action = KEYS[1], KEYS[2], ARGV[1]
expect_types(base, sk, 'hash')
if action == 'pause' then
  if redis.call('HGET', sk, 'paused') then return 0 end
  redis.call('HSET', sk, 'paused', now_ms())
  return 1
end
if redis.call('HDEL', sk, 'paused') == 0 then return 0 end
redis.call('HSET', sk, 'resumed_at', now_ms())
return 1
