-- progress: record how far a running attempt has got, for the holder of its lease only.
-- KEYS[1]  base "{prefix:queue}"; job:<id> is built from it
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     id, token, fraction, message
--          job id, the attempt's lease token, fraction from 0 to 1 (text), message ('':
--          none; the client caps its length)
-- Returns  flag: 1 written (by this call, or by this same call sent before and its reply
--          lost: the same fields again), 0 refused (another attempt holds the lease, the
--          job is no longer running, or no readable record)
-- Invariant: only the attempt holding the lease writes a job's progress; a zombie with an
-- old token writes nothing. Its fields (progress, progress_message, progress_at,
-- progress_lease) name the lease they were written under: a reader shows them only while
-- that lease is the record's (a new attempt starts with none), so no other script clears
-- them. One HSET of the job hash and nothing else: no index, event or count moves.
local jk = job_key(KEYS[1], ARGV[1])
local fraction = tonumber(ARGV[3])
if not fraction or fraction ~= fraction or fraction < 0 or fraction > 1 then
  return redis.error_reply('progress: fraction must be a number from 0 to 1')
end
local f = read_job(jk, 'status', 'lease')
if not f or f[1] ~= 'running' or f[2] ~= ARGV[2] then return 0 end
redis.call('HSET', jk, 'progress', ARGV[3], 'progress_message', ARGV[4],
  'progress_at', str(now_ms()), 'progress_lease', ARGV[2])
return 1
