-- pause: stop or restart claims from one queue (every lane of it).
-- KEYS[1]  base "{prefix:queue}"; its paused flag, lanes set, queue and wake keys are built
--          from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     action, queue
--          action ('pause' | 'resume'), the queue's name
-- Returns  flag: 1 if the queue's state changed, 0 if it was already so
-- Invariant: while `paused` exists, claim.lua leases nothing from this queue (and drops
-- its wake tokens, so idle workers do not spin on them); resuming wakes one idle worker
-- per lane that holds ready jobs, so work restarts at once, not at the next idle poll.
-- Running it twice has the effect of running it once.
local base, action, queue = KEYS[1], ARGV[1], ARGV[2]
local flag, lanes = paused_key(base), lanes_key(base)
expect_types(base, flag, 'string', lanes, 'set')
if action == 'pause' then
  if redis.call('EXISTS', flag) == 1 then return 0 end
  redis.call('SET', flag, '1')
  return 1
end
if redis.call('DEL', flag) == 0 then return 0 end
local all = redis.call('SMEMBERS', lanes)
all[#all + 1] = queue
for _, lane in ipairs(all) do
  local ready = on(base, 'zset', 'ZCARD', queue_key(base, lane))
  if type(ready) == 'number' and ready > 0 then wake(base, lane, 1) end
end
return 1
