-- Shared prelude, prepended by jobkit/backend/scripts/__init__.py to every script below.
-- Key suffixes here mirror jobkit/keys.py; `base` is always KEYS[1] (the "{prefix}"
-- hash tag), so every key a script builds lives in the caller's hash slot.
--
-- Garbage in Redis (a key of the wrong type, a job hash with a missing or mangled field)
-- is met here, not in Python. A key the whole queue shares (running, dead, a lane's
-- queue...) found holding garbage is set aside and replaced by an empty key of its type
-- in the same call (set_aside), so the queue goes on; a job's own record is that job's
-- alone: read with pcall (read_job), its fields validated, and a job whose record cannot
-- be trusted is dead-lettered alone (invalid_record) while the rest of the batch goes on.

-- Every key a script writes or reads, built from its KEYS[1] base by one helper named as
-- jobkit/backend/keys.py names it (tests/…/test_keys.py compares each with keys.py's).
local function running_key(base) return base .. ':running' end
local function scheduled_key(base) return base .. ':scheduled' end
local function dead_key(base) return base .. ':dead' end
local function finished_key(base) return base .. ':finished' end
local function created_key(base) return base .. ':created' end
local function seq_key(base) return base .. ':seq' end
local function lanes_key(base) return base .. ':lanes' end
local function stats_key(base) return base .. ':stats' end
local function paused_key(base) return base .. ':paused' end
local function sched_wake_key(base) return base .. ':sched:wake' end
local function events_key(base) return base .. ':events' end
local function rate_key(base) return base .. ':rate' end
local function started_key(base) return base .. ':started' end
local function workers_key(base) return base .. ':workers' end  -- the global slot's
local function worker_key(base, name) return base .. ':worker:' .. name end
local function job_key(base, id) return base .. ':job:' .. id end
local function corrupt_key(base, id) return base .. ':corrupt:' .. id end
local function claim_key(base, req) return base .. ':claim:' .. req end
local function queue_key(base, lane) return base .. ':queue:' .. lane end
local function wake_key(base, lane) return base .. ':wake:' .. lane end
local function done_key(base, id) return base .. ':done:' .. id end
local function waiter_key(base, id) return base .. ':waiter:' .. id end
-- markers: some job of this queue carries a version or trace / is waited for (see keys.py)
local function versioned_key(base) return base .. ':versioned' end
local function waited_key(base) return base .. ':waited' end
local function asides_key(base) return base .. ':asides' end
local function aside_key(base, name, at) return base .. ':aside:' .. name .. ':' .. at end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- redis.call formats every number it is handed ("%.17g", about 1 µs for a timestamp):
-- a value written for each job of a batch is turned into a string once.
local function str(n) return string.format('%d', n) end

local function key_type(key) return redis.call('TYPE', key)['ok'] end

-- -- shared keys holding garbage ----------------------------------------------------------
-- What a queue goes on without, by the key's name (its part after the base, up to ':').
local ASIDE_NOTES = {
  running = 'the leases it held are lost: jobkit repair gives their jobs lapsed ones',
  scheduled = 'the delayed jobs and retries it held wait for jobkit repair',
  dead = 'the dead jobs it listed are listed again by jobkit repair',
  finished = 'the ended jobs it listed are listed again by jobkit repair',
  created = 'the jobs it listed are listed again by jobkit repair',
  queue = 'the ready jobs it held wait for jobkit repair',
  stats = 'the counts start again from zero',
  seq = "the sequence goes on from the newest job's (jobkit repair sets it past all)",
  events = 'the events it held are not read by the archivers: new ones go to a new stream',
  notices = 'jobs waiting for a job that ended meanwhile are listed by jobkit doctor',
  wake = 'idle workers look for work every 2 s until a new job wakes them',
  started = 'attempts it said had begun count as never begun if their worker dies',
}

-- A key of this shard (`base`) that holds another type than `want` (or, given `found`,
-- a value that is garbage though of that type: a counter that is no number) is renamed
-- to aside:<name>:<ms> (keys.py), noted in `asides` with what the queue goes on without,
-- and logged by Redis; the caller goes on with the key absent, an empty one of its type.
-- True when it set the key aside. The workers log each aside once (chores.py).
local function set_aside(base, key, want, found)
  found = found or key_type(key)
  if found == 'none' or found == want then return false end
  local at = str(now_ms())
  local name = string.sub(key, #base + 2)
  local kept = aside_key(base, name, at)
  redis.call('RENAME', key, kept)
  local note = ASIDE_NOTES[string.match(name, '^[^:]*')] or 'jobkit doctor reports it'
  local entry = cjson.encode({key = key, found = found, want = want, kept = kept,
    at = tonumber(at), note = note})
  if type(redis.pcall('HSET', asides_key(base), kept, entry)) == 'table' then
    set_aside(base, asides_key(base), 'hash')  -- the record of asides itself was garbage
    redis.call('HSET', asides_key(base), kept, entry)
  end
  redis.log(redis.LOG_WARNING, string.format('jobkit: %s held a %s, not a %s: set aside as %s',
    key, found, want, kept))
  return true
end

-- A command on shared key `key` (of type `want`) that Redis refused because the key
-- holds another type: the key is set aside and the command made again on its empty
-- successor. Any other error is returned as redis.pcall returns it, for the caller.
local function on(base, want, cmd, key, ...)
  local r = redis.pcall(cmd, key, ...)
  if type(r) == 'table' and r['err'] and string.find(r['err'], '^WRONGTYPE') then
    set_aside(base, key, want)
    r = redis.pcall(cmd, key, ...)
  end
  return r
end

-- Set aside each key (arguments: key, type, key, type ...) that holds another type: for
-- scripts that read a key before they write it (a read of garbage would stop them).
local function expect_types(base, ...)
  local a = {...}
  for i = 1, #a, 2 do set_aside(base, a[i], a[i + 1]) end
end

-- Every state change appends an event to its queue's stream, capped near this many
-- entries (JOBKIT_EVENTS_MAXLEN, filled in when the scripts are loaded; 0: no events).
local EVENTS_MAXLEN = '@EVENTS_MAXLEN@'

-- Record what just happened to a job in its queue's `events` stream (keys.py), in the
-- script that made it happen, so the record and the change cannot disagree. The entry's
-- id is the Redis time (ms) it happened. `from` is '' for a job just created; `ms` is how
-- long the attempt ran, for an attempt that ended. An events key of another type
-- (garbage) is set aside (see `on`).
local function event(base, id, class, from, to, attempt, worker, ms, reason, etype, emsg)
  if EVENTS_MAXLEN == '0' then return end
  local a = {'XADD', events_key(base), 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'id', id,
    'class', class or '', 'from', from, 'to', to, 'attempt', attempt or 0}
  -- the rest only when there is something to say: most events have no reason
  if worker and worker ~= '' then a[#a + 1], a[#a + 2] = 'worker', worker end
  if ms and ms ~= '' then a[#a + 1], a[#a + 2] = 'ms', ms end
  if reason and reason ~= '' then a[#a + 1], a[#a + 2] = 'reason', reason end
  -- a failed attempt's own error (type, and message cut short by the worker)
  if etype and etype ~= '' then a[#a + 1], a[#a + 2] = 'error', etype end
  if emsg and emsg ~= '' then a[#a + 1], a[#a + 2] = 'message', emsg end
  on(base, 'stream', unpack(a))
end

-- The mark of the attempt under `token` of job `id` in its queue's `started` hash (see
-- Leasing.tell_started): the field the child running it writes as the attempt begins.
local function start_mark(token, id) return token .. ':' .. id end

-- Attempts that ended (field names, see start_mark) are no longer begun ones: their
-- marks go, one HDEL per 1000. A started key of another type (garbage) is set aside.
local function unmark(base, marks)
  for i = 1, #marks, 1000 do
    on(base, 'hash', 'HDEL', started_key(base), unpack(marks, i, math.min(i + 999, #marks)))
  end
end

-- The same change (`from` -> `to`) of many jobs, in one entry of the events stream: its
-- `jobs` field a JSON array of [id, class, attempt, worker, ms] (ms: '' but for an
-- attempt that ended), one entry for a dispatch_many call's, a claim's or a completion's
-- whole batch rather than one per job (an XADD a job less; events.py reads either form).
-- One job: the usual form.
-- The stream's cap counts entries: a batch is one.
local function events(base, from, to, jobs)
  if EVENTS_MAXLEN == '0' or #jobs == 0 then return end
  if #jobs == 1 then
    local j = jobs[1]
    return event(base, j[1], j[2], from, to, j[3], j[4], j[5])
  end
  on(base, 'stream', 'XADD', events_key(base), 'MAXLEN', '~', EVENTS_MAXLEN, '*',
    'from', from, 'to', to, 'jobs', cjson.encode(jobs))
end

-- How long an attempt that started at `started` (ms, a field: may be absent) ran.
local function ran_ms(now, started)
  local s = tonumber(started)
  if not s then return '' end
  return tonumber(now) - s
end


-- Higher priority first, then FIFO by sequence: one zset score carries both.
local function ready_score(priority, seq)
  if priority == '0' then return seq end  -- the default: no arithmetic, no formatting
  return -priority * 1099511627776 + seq  -- Lua turns numeric strings into numbers here
end

-- Wake up to `n` idle workers of a lane: one token each. Tokens nobody waits for pile
-- up to 128 and are trimmed to 64 (so rarely, not on every call); workers drop stale
-- tokens when they find the lane empty.
-- A wake key of another type (garbage) is set aside (see `on`).
local function wake(base, lane, n)
  local wk = wake_key(base, lane)
  local pushed
  if n == 1 then
    pushed = on(base, 'list', 'LPUSH', wk, '1')
  else
    local tokens = {}
    for i = 1, math.min(n, 64) do tokens[i] = '1' end
    pushed = on(base, 'list', 'LPUSH', wk, unpack(tokens))
  end
  if type(pushed) == 'number' and pushed > 128 then redis.call('LTRIM', wk, 0, 63) end
end

-- Make a job ready in its lane and wake one idle worker. `seq` keeps its FIFO place.
local function push_ready(base, id, lane, priority, seq)
  on(base, 'zset', 'ZADD', queue_key(base, lane), ready_score(priority, seq), id)
  wake(base, lane, 1)
end

-- The next `n` places in the queue's FIFO order: the last one's number. A `seq` that
-- is no counter (garbage) is set aside, and the count goes on from the newest job's.
local function next_seq(base, n)
  local sk = seq_key(base)
  local r = redis.pcall('INCRBY', sk, n or 1)
  if type(r) == 'number' then return r end
  local t = key_type(sk)
  set_aside(base, sk, 'string', t == 'string' and 'string that is no counter' or t)
  local newest = redis.pcall('ZRANGE', created_key(base), 0, 0, 'REV')
  local last = type(newest) == 'table' and newest[1]
    and tonumber(redis.pcall('HGET', job_key(base, newest[1]), 'seq')) or 0
  if type(last) ~= 'number' then last = 0 end
  return redis.call('INCRBY', sk, math.floor(last) + (n or 1))
end

-- Add `n` to counter `field` of the queue's `stats`; a stats key of another type, or
-- whose count is no number (garbage), is set aside and the counts start from zero.
local function count(base, field, n)
  local r = on(base, 'hash', 'HINCRBY', stats_key(base), field, n)
  if type(r) == 'table' then
    set_aside(base, stats_key(base), 'hash', 'hash whose ' .. field .. ' is no count')
    redis.call('HINCRBY', stats_key(base), field, n)
  end
end

-- -- limits (jobkit/job_limits.py) --------------------------------------------------------
-- A limited job carries `limits` = "<concurrency>,<interval ms>,<unique ms>" in its hash
-- (0, 0, -1: none); most jobs have no such field, and pay one absent field per script.
-- Its queue's shard keeps `active:<class>` (the ids of the class's running attempts),
-- `rate` (class -> the earliest time its next job may be claimed) and `unique:<digest>`
-- (the job holding the lock on a unique class's params): see keys.py.

local function active_key(base, name) return base .. ':active:' .. name end
local function unique_key(base, digest) return base .. ':unique:' .. digest end

-- concurrency, interval_ms, unique_ms of a `limits` field; nils for garbage (no limit)
local function parse_limits(s)
  local c, i, u = string.match(s or '', '^(%d+),(%d+),(%-?%d+)$')
  return tonumber(c), tonumber(i), tonumber(u)
end

-- A limited job's attempt ended (`limits` its field: nil for most jobs, which return at
-- once). Its concurrency slot is freed, and an idle worker of its lane is woken to use it
-- (a job held back for the slot waits in that lane); when `final` (the job will not run
-- again) its unique lock is released if it still holds it. SREM and the lock's
-- compare-and-delete do nothing the second time, so a script sent twice frees nothing
-- twice; only the real end of an attempt calls this. pcall: garbage under these keys
-- costs the limit its bookkeeping (claim.lua heals a stale slot), never the transition.
local function limits_end(base, jk, id, name, limits, final)
  if not limits then return end
  local c, _, u = parse_limits(limits)
  if c and c > 0 and name and redis.pcall('SREM', active_key(base, name), id) == 1 then
    local lane = redis.call('HGET', jk, 'lane')
    if lane then wake(base, lane, 1) end
  end
  if final and u and u >= 0 then
    local digest = redis.call('HGET', jk, 'unique')
    if digest and redis.pcall('GET', unique_key(base, digest)) == id then
      redis.call('DEL', unique_key(base, digest))
    end
  end
end

-- Wake everyone blocked on this job's outcome. Only a job's one move into a final state
-- calls this, and revive deletes the token on the way back out, so there is no stale
-- token to clear first.
local function push_done(base, id, ttl)
  local dk = done_key(base, id)
  -- pcall: a done key of another type (garbage) costs its waiters this wake-up (they
  -- look again every second), never the transition that calls this
  if type(redis.pcall('LPUSH', dk, '1')) ~= 'table' then redis.call('EXPIRE', dk, ttl) end
end

-- A job reached a final state: wake its waiters, if any. JobHandle.result registers in
-- waiter:<id> (a short TTL) before it reads the status and blocks on done:<id>, so a
-- waiter either sees the final status or finds the token; nobody registered, no token.
local function notify_done(base, id, ttl)
  if redis.call('EXISTS', waiter_key(base, id)) == 1 then push_done(base, id, ttl) end
end

-- Add ids to one of the listing's indexes (see keys.py), all scored `now`: one ZADD per
-- 500 jobs (a whole batch of complete.lua in one). An index key of another type
-- (garbage) is set aside (see `on`).
local function note_in(base, index, now, ids)
  for i = 1, #ids, 500 do
    local a = {index}
    for j = i, math.min(i + 499, #ids) do a[#a + 1], a[#a + 2] = now, ids[j] end
    on(base, 'zset', 'ZADD', unpack(a))
  end
end

-- Jobs that just ended succeeded or cancelled go in their queue's `finished` index,
-- scored by the time they ended, so `jobkit jobs` finds them without a SCAN; the workers'
-- chores drop entries older than the records kept (trim.lua).
local function note_finished(base, now, ids) note_in(base, finished_key(base), now, ids) end

-- Every job goes in its queue's `created` index as it is created, scored by that time:
-- the listing's order that no status change moves, so paging while jobs move lists each
-- job once. Its entry leaves with its record: purged, drained, or trimmed with the
-- finished index once the record has expired.
local function note_created(base, now, ids) note_in(base, created_key(base), now, ids) end

-- -- dependencies (jobkit/flows.py) ---------------------------------------------------
-- A job dispatched with depends_on is stored 'waiting' (wait.lua). Each job waited for
-- has `dependants` = '1' in its hash and, in its shard, dependants:<id> (dependant ->
-- '1' when it takes the result, else '0'; depend.lua adds to it). When such a job ends,
-- the script that ends it appends a notice per dependant to this queue's `notices`
-- stream, and workers deliver each with release.lua on the dependant's shard: no script
-- touches two shards. What telling a waiting job takes (release, make_ready,
-- fail_waiting) is in _flows.lua, prepended to wait.lua and release.lua only: this
-- prelude runs at every call of every script, and each function it defines costs the
-- call its closure (and each upvalue the closure captures, a walk of the open ones).
local function dependants_key(base, id) return base .. ':dependants:' .. id end
local function notices_key(base) return base .. ':notices' end

-- Job `id` of this shard ended `outcome` ('succeeded' with `result`, 'dead',
-- 'cancelled'): if jobs wait for it, a notice for each, once.
local function job_ended(base, id, outcome, result)
  local jk = job_key(base, id)
  if redis.call('HGET', jk, 'dependants') ~= '1' then return end
  redis.call('HSET', jk, 'dependants', '2')  -- told: an end after a revive tells no one
  local dk = dependants_key(base, id)
  local all = redis.pcall('HGETALL', dk)
  if all['err'] then return end
  for i = 1, #all, 2 do
    local r = (outcome == 'succeeded' and all[i + 1] == '1') and result or ''
    on(base, 'stream', 'XADD', notices_key(base), '*', 'job', all[i], 'dep', id,
      'outcome', outcome, 'result', r)
  end
  local ttl = redis.call('TTL', jk)  -- what waited for it is kept as long as its record
  if ttl > 0 then redis.call('EXPIRE', dk, ttl) end
end

-- End a job `cancelled` for good (it is in no queue, `scheduled` or `running` by now):
-- its cancel request is served, its record kept `ttl` seconds, its waiters woken.
local function end_cancelled(base, jk, id, ttl, now)
  local f = redis.call('HMGET', jk, 'status', 'name', 'attempts', 'worker', 'started_at',
    'limits')
  local running = f[1] == 'running'
  limits_end(base, jk, id, f[2], f[6], true)
  event(base, id, f[2], f[1] or '', 'cancelled', f[3], running and f[4] or '',
    running and ran_ms(now, f[5]) or '')
  redis.call('HSET', jk, 'status', 'cancelled', 'finished_at', now)
  redis.call('HDEL', jk, 'cancel')
  redis.call('EXPIRE', jk, ttl)
  note_finished(base, now, {id})
  notify_done(base, id, ttl)
  job_ended(base, id, 'cancelled')
end

-- Park a job in `scheduled` until `due`. Sleeping schedulers are woken (pub/sub channel
-- named in keys.py) only when this entry is due before every other: otherwise they
-- already sleep until an earlier due time.
local function schedule_at(base, id, due)
  local sched = scheduled_key(base)
  local head = on(base, 'zset', 'ZRANGE', sched, 0, 0, 'WITHSCORES')
  redis.call('ZADD', sched, due, id)
  if head[1] == nil or due < tonumber(head[2]) then
    redis.call('PUBLISH', sched_wake_key(base), due)
  end
end

-- Put a new job where it waits, then write its hash: its queue ('queued') or
-- `scheduled` until `due` ('scheduled'), unless the caller `placed` it already (a batch,
-- in one ZADD: see add_ready). A queue or scheduled key of another type (garbage) is
-- set aside. The one place that knows a job hash's initial fields; the counters (attempts, lease,
-- crashes) start absent, meaning 0, and the queue is the lane's part before '|'.
-- `due_at` is written only when it differs from `created_at`: a job queued as it is
-- created is due then (readers fall back to `created_at`), and most jobs are, so the
-- common hash is one field smaller. The caller wakes workers (see `wake`) for queued
-- jobs. `now` and a batch's `seq` (reserved at once) come as strings (see str). A batch
-- passes `born`, where each job's event is collected for the caller to append in one
-- entry (see events); without it, the event is appended here.
local function create_job(base, id, status, due, now, name, lane, params, priority,
                          max_attempts, timeout, ttl, seq, placed, born)
  seq = seq or str(next_seq(base))  -- written twice: as a field and (usually) as the score
  local jk = job_key(base, id)
  if placed then
  elseif status ~= 'queued' then
    schedule_at(base, id, due)
  else
    on(base, 'zset', 'ZADD', queue_key(base, lane), ready_score(priority, seq), id)
  end
  if not placed then note_created(base, now, {id}) end
  redis.call('HSET', jk, 'name', name, 'lane', lane, 'params', params,
    'priority', priority, 'seq', seq, 'status', status, 'max_attempts', max_attempts,
    'timeout', timeout, 'result_ttl', ttl, 'created_at', now)
  if due ~= tonumber(now) then redis.call('HSET', jk, 'due_at', due) end
  if born then born[#born + 1] = {id, name, 0, '', ''} else event(base, id, name, '', status, 0) end
end

-- Add score, id pairs to a lane's queue: one ZADD per 500 jobs (unpack() of a very
-- large table would overflow Lua's C stack).
local function add_ready(base, lane, ready)
  for i = 1, #ready, 1000 do
    on(base, 'zset', 'ZADD', queue_key(base, lane), unpack(ready, i, math.min(i + 999, #ready)))
  end
end

-- A lane with tags ("queue|tag,...") is recorded, so `--tags '*'` workers can find it.
-- (A lanes key of another type is set aside: see `on`.)
local function note_lane(base, lane)
  if string.find(lane, '|', 1, true) then on(base, 'set', 'SADD', lanes_key(base), lane) end
end
