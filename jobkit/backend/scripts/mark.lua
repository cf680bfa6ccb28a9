-- mark: attempts begin (their child says so before it runs each, see child.py), or the
-- supervisor saw the child running them die.
-- KEYS[1]  base "{prefix:queue}"; job:<id>, running and started are built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     what, *(id, token)
--          what ('started' | 'crashed'), then pairs (id, token)
-- Returns  *(flag): one flag per pair: 1 marked, 0 not held under that token any more
-- A mark is the attempt's field in `started` (start_mark), as its child writes it when
-- the attempt begins (Leasing.tell_started): this script is the supervisor's way.
-- Invariant: a lapsed lease counts as a crash only for an attempt marked started (see
-- reap.lua); 'crashed' marks it and ends its lease now, so the next reap counts the crash
-- without waiting for the lease to run out.
local base, what = KEYS[1], ARGV[1]
local running = running_key(base)
local out = {}
for i = 2, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local jk = job_key(base, id)
  local f = read_job(jk, 'status', 'lease')
  if f and f[1] == 'running' and f[2] == token then
    on(base, 'hash', 'HSET', started_key(base), start_mark(token, id), '1')
    if what == 'crashed' then on(base, 'zset', 'ZADD', running, 'XX', 0, id) end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
