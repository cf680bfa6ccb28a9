-- trim: drop the listing's index entries of jobs whose records have expired.
-- KEYS[1]  base "{prefix:queue}"; finished and created are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     oldest, limit
--          oldest (ms: `finished` entries that ended before it go), limit per call
-- Returns  count: how many entries of `finished` were dropped (below limit: none older is left)
-- Invariant: an id leaves `finished` and `created` together, so the creation index never
-- keeps a job the finished index let go of. Sent twice, the second finds less to drop.
local base = KEYS[1]
local oldest, limit = ARGV[1], tonumber(ARGV[2])
local finished = finished_key(base)
local ids = on(base, 'zset', 'ZRANGEBYSCORE', finished, '-inf', oldest, 'LIMIT', 0, limit)
if #ids == 0 then return 0 end
for i = 1, #ids, 1000 do
  local last = math.min(i + 999, #ids)
  redis.call('ZREM', finished, unpack(ids, i, last))
  on(base, 'zset', 'ZREM', created_key(base), unpack(ids, i, last))
end
return #ids
