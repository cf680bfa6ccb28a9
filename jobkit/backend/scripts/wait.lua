-- wait: store a new job that runs once the jobs it depends on have succeeded.
-- KEYS[1]  base "{prefix:queue}"; job:<id>, inputs:<id>, created and seq are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     id, name, lane, params, priority, max_attempts, timeout, ttl, limits,
--          on_failure, takes, gather, *(dep)
--          the job's id and record (as enqueue.lua's), its limits ('' for none),
--          'cancel' | 'fail' (what a failed dependency does to it), the params field
--          that takes the results ('' none), '1' when it takes every dependency's
--          result as a list, then the ids of the jobs it waits for (depend.lua has
--          recorded it with each)
-- Returns  created, status: 1 and its status now ('waiting'; 'queued' when every
--          dependency had succeeded already; 'cancelled' or 'dead' when one had failed),
--          or 0 and the status of the job already stored under this id
-- Invariant: a notice that came before the job was stored (kept in its inputs) counts
--          as one that comes after: each dependency once.
local base, id = KEYS[1], ARGV[1]
local jk = job_key(base, id)
if redis.call('EXISTS', jk) == 1 then return {0, redis.call('HGET', jk, 'status') or ''} end
expect_types(base, inputs_key(base, id), 'hash', created_key(base), 'zset', seq_key(base), 'string')
local deps, wanted = {}, {}
for i = 13, #ARGV do
  deps[#deps + 1] = ARGV[i]
  wanted[ARGV[i]] = true
end
local now = str(now_ms())
note_created(base, now, {id})
redis.call('HSET', jk, 'name', ARGV[2], 'lane', ARGV[3], 'params', ARGV[4],
  'priority', ARGV[5], 'seq', str(next_seq(base)), 'status', 'waiting',
  'max_attempts', ARGV[6], 'timeout', ARGV[7], 'result_ttl', ARGV[8], 'created_at', now,
  'deps', cjson.encode(deps), 'waits', #deps, 'on_failure', ARGV[10])
if ARGV[9] ~= '' then redis.call('HSET', jk, 'limits', ARGV[9]) end
if ARGV[11] ~= '' then redis.call('HSET', jk, 'takes', ARGV[11], 'gather', ARGV[12]) end
note_lane(base, ARGV[3])
event(base, id, ARGV[2], '', 'waiting', 0)
local early = redis.call('HGETALL', inputs_key(base, id))
local met, failed, how = 0, nil, nil
for i = 1, #early, 2 do
  if wanted[early[i]] then
    if string.sub(early[i + 1], 1, 1) == '=' then
      met = met + 1
    elseif not failed then
      failed, how = early[i], string.sub(early[i + 1], 2)
    end
  end
end
redis.call('PERSIST', inputs_key(base, id))
if failed then
  fail_waiting(base, jk, id, failed, how, now)
elseif met >= #deps then
  make_ready(base, jk, id)
elseif met > 0 then
  redis.call('HSET', jk, 'waits', #deps - met)
end
return {1, redis.call('HGET', jk, 'status')}
