-- start: an attempt is about to begin (its child says so before it runs the job, with no
-- reply read: see child.py). One of the scripts run without the prelude (BARE in
-- __init__.py): it runs for every job, and the prelude's closures would cost it more than
-- its own work.
-- KEYS[1]  base "{prefix:queue}"   KEYS[2]  job:<id> (built by keys.py)
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     id, token
--          the job's id and the token of the lease it is run under
-- Returns  flag: 1 marked, 0 not held under that token any more (or no job hash)
-- Invariant: as mark.lua's 'started': a lapsed lease counts as a crash only for an
-- attempt marked started (reap.lua); a record that is no hash is left as it is.
local jk, token = KEYS[2], ARGV[2]
local f = redis.pcall('HMGET', jk, 'status', 'lease', 'unstarted')
if f['err'] or f[1] ~= 'running' or f[2] ~= token then return 0 end
redis.call('HSET', jk, 'started', token)
if f[3] then redis.call('HDEL', jk, 'unstarted') end  -- it could be read: not suspect
return 1
