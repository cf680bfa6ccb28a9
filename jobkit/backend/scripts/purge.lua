-- purge: delete dead jobs for good.
-- KEYS[1]  base "{prefix:queue}"; dead, created, job:<id>, corrupt:<id>, done:<id>,
--          dependants:<id> and inputs:<id> are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     *(id)
--          ids to purge; none given: every dead job
-- Returns  count: number of jobs deleted
-- Invariant: only jobs whose status is 'dead' are ever deleted here (with the corrupt
-- record an invalid one was found as, if any).
local base = KEYS[1]
local dead = dead_key(base)
expect_types(base, dead, 'zset')
local ids = ARGV
if #ids == 0 then ids = redis.call('ZRANGE', dead, 0, -1) end
local n = 0
for _, id in ipairs(ids) do
  local jk = job_key(base, id)
  local f = read_job(jk, 'status', 'name', 'attempts')
  if f and f[1] == 'dead' then
    event(base, id, f[2], 'dead', 'purged', f[3])
    -- a dead job may have been waited for (dependants) or have waited (inputs)
    redis.call('DEL', jk, done_key(base, id), corrupt_key(base, id), dependants_key(base, id),
      inputs_key(base, id))
    on(base, 'zset', 'ZREM', created_key(base), id)
    n = n + 1
  end
  redis.call('ZREM', dead, id)
end
return n
