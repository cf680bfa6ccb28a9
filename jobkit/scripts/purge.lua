-- purge: delete dead jobs for good.
-- KEYS[1]  base "{prefix}"
-- ARGV     ids to purge; none given: every dead job
-- Returns  number of jobs deleted
-- Invariant: only jobs whose status is 'dead' are ever deleted here.
local base = KEYS[1]
local dead = base .. ':dead'
local ids = ARGV
if #ids == 0 then ids = redis.call('ZRANGE', dead, 0, -1) end
local n = 0
for _, id in ipairs(ids) do
  local jk = job_key(base, id)
  if redis.call('HGET', jk, 'status') == 'dead' then
    redis.call('DEL', jk, done_key(base, id))
    n = n + 1
  end
  redis.call('ZREM', dead, id)
end
return n
