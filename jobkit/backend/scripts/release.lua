-- release: tell waiting jobs of this shard that a job they wait for has ended.
-- KEYS[1]  base "{prefix:queue}" of the waiting jobs; job:<id>, inputs:<id> and the
--          queues are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     *(job, dep, outcome, result)
--          groups of 4: the waiting job, the job it waits for (any queue), how that one
--          ended ('succeeded', 'dead', 'cancelled'), its result JSON ('' when the
--          waiting job does not take it)
-- Returns  *(flag): 1 counted now, 0 told before (a notice delivered twice)
-- Invariant: each dependency is counted once per waiting job, whatever the order and
--          number of notices; a job whose dependencies all succeeded is queued, one that
--          met a failure is cancelled (or dead-lettered: on_failure 'fail') with reason
--          dependency_failed, and its own dependants are told in turn.
local base = KEYS[1]
local now = now_ms()
local out = {}
for i = 1, #ARGV, 4 do
  out[#out + 1] = release(base, ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], now)
end
return out
