-- trim: drop the listing's index entries of jobs whose records have expired, and a few
-- start marks of attempts no longer under way.
-- KEYS[1]  base "{prefix:queue}"; finished, created and started are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     oldest, limit
--          oldest (ms: `finished` entries that ended before it go), limit per call
-- Returns  count: how many entries of `finished` were dropped (below limit: none older is left)
-- Invariant: an id leaves `finished` and `created` together, so the creation index never
-- keeps a job the finished index let go of. Sent twice, the second finds less to drop.
local SWEEP = 20  -- start marks looked at per call
local base = KEYS[1]
local oldest, limit = ARGV[1], tonumber(ARGV[2])
-- A mark (see start_mark) outlives its attempt only when no script ended it under its
-- token: a worker that lost its lease began the job all the same, or the job was purged
-- or found invalid as it ran. A few, picked at random, are looked at per call, so
-- `started` holds little more than the attempts under way.
local started = started_key(base)
local sample = on(base, 'hash', 'HRANDFIELD', started, SWEEP)
if type(sample) == 'table' and not sample['err'] then
  for _, mark in ipairs(sample) do
    local token, id = string.match(mark, '^(%d+):(.+)$')
    local f = id and redis.pcall('HMGET', job_key(base, id), 'status', 'lease')
    if not f or f['err'] or f[1] ~= 'running' or f[2] ~= token then
      redis.call('HDEL', started, mark)
    end
  end
end
local finished = finished_key(base)
local ids = on(base, 'zset', 'ZRANGEBYSCORE', finished, '-inf', oldest, 'LIMIT', 0, limit)
if #ids == 0 then return 0 end
for i = 1, #ids, 1000 do
  local last = math.min(i + 999, #ids)
  redis.call('ZREM', finished, unpack(ids, i, last))
  on(base, 'zset', 'ZREM', created_key(base), unpack(ids, i, last))
end
return #ids
