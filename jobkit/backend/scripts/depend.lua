-- depend: record that a job waits for another; or say how that one ended already.
-- KEYS[1]  base "{prefix:queue}" of the job waited for; job:<id> and dependants:<id> are
--          built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     dep, job, takes
--          the job waited for, the waiting job's id (any queue), '1' if the waiting job
--          takes its result (a chain's next step, a group's callback), else '0'
-- Returns  status, result: 'waiting' (recorded: it will be told when `dep` ends), or
--          'succeeded' (with the result JSON when `takes`), 'dead', 'cancelled' (ended
--          already: the caller tells the waiting job itself, with release.lua), or
--          'unknown' (no such job: nothing recorded)
-- Invariant: a job waited for is recorded in its dependants before it ends, or its end
--          is returned here; never neither (one script on the waited-for job's shard,
--          as every script that ends a job).
local base, dep, job, takes = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local jk = job_key(base, dep)
local f = read_job(jk, 'status', 'result')
if not f or not f[1] then return {'unknown', ''} end
local status = f[1]
if status == 'succeeded' then return {status, takes == '1' and (f[2] or 'null') or ''} end
if status == 'dead' or status == 'cancelled' then return {status, ''} end
local dk = dependants_key(base, dep)
expect_types(base, dk, 'hash')
redis.call('HSET', dk, job, takes)
redis.call('HSET', jk, 'dependants', '1')
redis.call('SET', waited_key(base), '1')  -- complete.lua looks for dependants from now on
return {'waiting', ''}
