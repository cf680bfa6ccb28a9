-- register: put queues into the registry every view fans out over, setting a registry
-- of the wrong type aside first (jobkit repair; a worker's start or a process's first
-- dispatch to a queue, when Redis refused their SADD because the registry held garbage).
-- KEYS[1]  base "{prefix}" (the global slot); asides and aside:queues:<ms> are built from it
-- KEYS[2]  the registry "{prefix}:queues" (keys.py's Keys.queues)
-- KEYS[n]  the slot's fence (last; never exists, never touched): see keys.fenced
-- ARGV     *(queue)
--          the queues to register
-- Returns  kept, added: the name the registry held of another type was kept under ('':
--          it was a set, or absent), and how many of the queues it did not hold yet
-- Invariant: the registry is a set holding every queue named here; a key of another type
-- under its name is renamed (set_aside, _lib.lua), never deleted, and noted in the global
-- slot's asides. SADD adds only what is absent, so sent twice the second call adds
-- nothing and finds a set.
local base, registry = KEYS[1], KEYS[2]
local kept = ''
if set_aside(base, registry, 'set') then
  -- set_aside named it by Redis's clock: the newest aside:queues:<ms> the asides note
  local head = aside_key(base, 'queues', '')
  for _, name in ipairs(redis.call('HKEYS', asides_key(base))) do
    if string.sub(name, 1, #head) == head and name > kept then kept = name end
  end
end
local added = 0
if #ARGV > 0 then added = redis.call('SADD', registry, unpack(ARGV)) end
return {kept, added}
