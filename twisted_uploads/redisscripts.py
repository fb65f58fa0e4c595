"""The Lua scripts behind :class:`~twisted_uploads.redisstate.RedisState`: each atomic step is one script.

Redis runs a script to its end before any other command, so two nodes (or two Django workers) calling the same
script can never both win a claim, both take the last place of a slot, or both pick one entry id.

Layout under the key prefix ``P`` (passed as ``ARGV[1]``; the keys are computed in the scripts, so this expects one
Redis, not a Redis Cluster):

- ``P e:<entry id>`` — a hash per entry record. ``json`` holds the fields nothing but the owning node changes; the
  fields scripts decide on are hash fields of their own (``session``, ``status``, ``server``, ``deadline``,
  ``claimed_until``, ``cancel_pending``, ``error``, ``message``) beside read-only copies of ``slot``, ``size`` and
  ``ref``. Scripts thus never decode or re-encode the JSON (cjson would turn ``[]`` into ``{}`` and round floats).
- ``P s:<session>`` — a sorted set of the session's entry ids, scored by admission order (``P seq``).
- ``P due`` — a sorted set of entry ids scored by when they become due: the deadline, or for an entry cancelled
  while claimed the end of its claim.
- ``P node:<node id>`` — a node's heartbeat (a key with a TTL); ``P nodes`` the set of node ids seen.
- ``P o:<node id>`` — the ids of the entries a node owns; ``P owners`` the nodes that own any (orphan takeover).
- channel ``P events:<node id>`` — the events addressed to one node.

Absent hash fields mean ``None``. Every script returns strings or arrays of strings (Lua numbers would be
truncated to integers on the way out).
"""

from __future__ import annotations

_COMMON = r"""
local P = ARGV[1]
local DUE = P .. 'due'
local function rec_key(id) return P .. 'e:' .. id end
local function sess_key(s) return P .. 's:' .. s end
local function num(v) if v == nil or v == false or v == '' then return nil end return tonumber(v) end
local function fetch(id)
  local flat = redis.call('HGETALL', rec_key(id))
  if #flat == 0 then return nil, flat end
  local r = {}
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  return r, flat
end
local function claimed(r, now)
  local c = num(r.claimed_until)
  return c ~= nil and c > now
end
local function index_due(id, r)
  local d = num(r.deadline)
  if r.cancel_pending == '1' then
    local c = num(r.claimed_until)
    if c ~= nil and (d == nil or c < d) then d = c end
  end
  if d == nil then redis.call('ZREM', DUE, id) else redis.call('ZADD', DUE, d, id) end
end
local function own(id, node)
  redis.call('SADD', P .. 'o:' .. node, id)
  redis.call('SADD', P .. 'owners', node)
end
local function disown(id, node)
  if node ~= nil and node ~= false then redis.call('SREM', P .. 'o:' .. node, id) end
end
local function remove(id, r)
  redis.call('DEL', rec_key(id))
  redis.call('ZREM', sess_key(r.session), id)
  redis.call('ZREM', DUE, id)
  disown(id, r.server)
end
local function publish(node, event)
  if node ~= nil and node ~= false and node ~= '' then
    redis.call('PUBLISH', P .. 'events:' .. node, cjson.encode(event))
  end
end
local function in_list(value, list) for _, x in ipairs(list) do if x == value then return true end end return false end
"""

#: ARGV: P, session, slot, size, max_session_entries, max_entries, max_session_bytes ('' = unchecked), count of
#: candidate ids, the candidates, then field/value pairs. Returns {'ok', id} or {code, detail}.
ADMIT = _COMMON + r"""
local session, slot, size = ARGV[2], ARGV[3], tonumber(ARGV[4])
local max_total, max_slot, max_bytes = num(ARGV[5]), num(ARGV[6]), num(ARGV[7])
local ids = redis.call('ZRANGE', sess_key(session), 0, -1)
local total, in_slot, bytes = 0, 0, 0
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', rec_key(id), 'slot', 'status', 'size')
  if f[2] then
    total = total + 1
    if f[2] ~= 'error' and f[2] ~= 'cancelled' then
      bytes = bytes + (tonumber(f[3]) or 0)
      if f[1] == slot then in_slot = in_slot + 1 end
    end
  else
    redis.call('ZREM', sess_key(session), id)
  end
end
if max_slot ~= nil and in_slot >= max_slot then return {'too_many_files', tostring(in_slot)} end
if max_total ~= nil and total >= max_total then return {'too_many_entries', tostring(total)} end
if max_bytes ~= nil and bytes + size > max_bytes then return {'quota_exceeded', tostring(bytes)} end
local candidates = tonumber(ARGV[8])
local chosen = nil
for i = 1, candidates do
  if redis.call('EXISTS', rec_key(ARGV[8 + i])) == 0 then chosen = ARGV[8 + i] break end
end
if chosen == nil then return {'id_collision', ''} end
local key = rec_key(chosen)
for i = 9 + candidates, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', key, 'entry', chosen)
own(chosen, redis.call('HGET', key, 'server'))
redis.call('ZADD', sess_key(session), redis.call('INCR', P .. 'seq'), chosen)
index_due(chosen, fetch(chosen))
return {'ok', chosen}
"""

#: ARGV: P, node id, entry id, session, then field/value pairs. Keeps what scripts own (session, server, claim).
SAVE = _COMMON + r"""
local node, id, session = ARGV[2], ARGV[3], ARGV[4]
local r = fetch(id)
if r == nil or r.session ~= session then return 'gone' end
if r.server ~= node then return 'not_owner' end
local fresh = {}
for i = 5, #ARGV, 2 do fresh[ARGV[i]] = ARGV[i + 1] end
if r.status == 'cancelled' and fresh.status ~= 'cancelled' then return 'cancelled' end
local key = rec_key(id)
redis.call('DEL', key)
for name, value in pairs(fresh) do redis.call('HSET', key, name, value) end
for _, name in ipairs({'entry', 'session', 'server', 'claimed_until', 'cancel_pending'}) do
  if r[name] ~= nil then redis.call('HSET', key, name, r[name]) end
end
index_due(id, fetch(id))
return 'ok'
"""

#: ARGV: P, session. Returns the session's records (flat field lists), oldest first.
SESSION_RECORDS = _COMMON + r"""
local out = {}
for _, id in ipairs(redis.call('ZRANGE', sess_key(ARGV[2]), 0, -1)) do
  local r, flat = fetch(id)
  if r ~= nil then out[#out + 1] = flat end
end
return out
"""

#: ARGV: P, session, entry id. Removes the record; returns it (a flat field list, empty when there was none).
REMOVE = _COMMON + r"""
local r, flat = fetch(ARGV[3])
if r == nil or r.session ~= ARGV[2] then return {} end
remove(ARGV[3], r)
return flat
"""

#: ARGV: P, node id, session, entry id, states... Returns the record as it was, or {} when not taken.
TAKE_OVER = _COMMON + r"""
local node, session, id = ARGV[2], ARGV[3], ARGV[4]
local r, flat = fetch(id)
if r == nil or r.session ~= session then return {} end
local states = {}
for i = 5, #ARGV do states[#states + 1] = ARGV[i] end
if not in_list(r.status, states) then return {} end
redis.call('HSET', rec_key(id), 'server', node)
if r.server ~= node then
  disown(id, r.server)
  own(id, node)
  publish(r.server, {event = 'moved', session = session, entry = tonumber(id), to = node})
end
return flat
"""

#: ARGV: P, node id, limit, states... Takes over the records in those states whose owner's heartbeat ran out;
#: returns them as they were (their ``server`` is the dead owner).
TAKE_ORPHANS = _COMMON + r"""
local node, limit = ARGV[2], tonumber(ARGV[3])
local states = {}
for i = 4, #ARGV do states[#states + 1] = ARGV[i] end
local out = {}
for _, owner in ipairs(redis.call('SMEMBERS', P .. 'owners')) do
  if #out >= limit then break end
  if owner ~= node and redis.call('EXISTS', P .. 'node:' .. owner) == 0 then
    for _, id in ipairs(redis.call('SMEMBERS', P .. 'o:' .. owner)) do
      if #out >= limit then break end
      local r, flat = fetch(id)
      if r == nil or r.server ~= owner then
        redis.call('SREM', P .. 'o:' .. owner, id)
      elseif in_list(r.status, states) then
        redis.call('HSET', rec_key(id), 'server', node)
        disown(id, owner)
        own(id, node)
        out[#out + 1] = flat
      end
    end
    if redis.call('SCARD', P .. 'o:' .. owner) == 0 then redis.call('SREM', P .. 'owners', owner) end
  end
end
return out
"""

#: ARGV: P, from session, to session, entry id, max_session_entries ('' = unchecked), states...
#: Returns {'ok', record...}, {'too_many_entries'} or {} when there is no such entry in those states.
MOVE = _COMMON + r"""
local from, to, id, max_total = ARGV[2], ARGV[3], ARGV[4], num(ARGV[5])
local r = fetch(id)
if r == nil or r.session ~= from or from == to then return {} end
local states = {}
for i = 6, #ARGV do states[#states + 1] = ARGV[i] end
if #states > 0 and not in_list(r.status, states) then return {} end
if max_total ~= nil and redis.call('ZCARD', sess_key(to)) >= max_total then return {'too_many_entries'} end
redis.call('ZREM', sess_key(from), id)
redis.call('ZADD', sess_key(to), redis.call('INCR', P .. 'seq'), id)
redis.call('HSET', rec_key(id), 'session', to)
local _, flat = fetch(id)
local out = {'ok'}
for _, x in ipairs(flat) do out[#out + 1] = x end
return out
"""

#: ARGV: P, session, slot, claimed until, now. Claims the slot's complete, unclaimed, undue entries.
CLAIM_COMPLETE = _COMMON + r"""
local session, slot, claimed_until, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local out = {}
for _, id in ipairs(redis.call('ZRANGE', sess_key(session), 0, -1)) do
  local r = fetch(id)
  if r ~= nil and r.slot == slot and r.status == 'complete' and r.cancel_pending ~= '1' and not claimed(r, now) then
    local deadline = num(r.deadline)
    if deadline == nil or deadline > now then
      redis.call('HSET', rec_key(id), 'claimed_until', claimed_until)
      local _, flat = fetch(id)
      out[#out + 1] = flat
    end
  end
end
return out
"""

#: ARGV: P, session, now, entry ids... Ends their claims; removes and returns those that must go now.
RELEASE = _COMMON + r"""
local session, now = ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local r = fetch(id)
  if r ~= nil and r.session == session and r.claimed_until ~= nil then
    redis.call('HDEL', rec_key(id), 'claimed_until')
    local fresh, flat = fetch(id)
    local deadline = num(fresh.deadline)
    if fresh.cancel_pending == '1' or (deadline ~= nil and deadline <= now) then
      remove(id, fresh)
      out[#out + 1] = flat
    else
      index_due(id, fresh)
    end
  end
end
return out
"""

#: ARGV: P, session, 'id' | 'ref', value, now, deadline for a cancelled streaming entry.
#: Returns {outcome, previous status, record...}; outcome is unknown | noop | pending | removed | cancelled.
CANCEL = _COMMON + r"""
local session, kind, value, now, cancelled_deadline = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
local id = nil
local members = redis.call('ZRANGE', sess_key(session), 0, -1)
if kind == 'ref' then
  for _, member in ipairs(members) do
    if redis.call('HGET', rec_key(member), 'ref') == value then id = member break end
  end
end
if id == nil and string.match(value, '^%d+$') and in_list(value, members) then id = value end
local r, flat = nil, {}
if id ~= nil then r, flat = fetch(id) end
if r == nil or r.session ~= session then return {'unknown'} end
local function reply(outcome, record)
  local out = {outcome, r.status}
  for _, x in ipairs(record) do out[#out + 1] = x end
  return out
end
if r.status == 'cancelled' then return reply('noop', flat) end
if claimed(r, now) then
  redis.call('HSET', rec_key(id), 'cancel_pending', '1')
  local fresh, updated = fetch(id)
  index_due(id, fresh)
  return reply('pending', updated)
end
local event = {event = 'cancel', session = session, entry = tonumber(id)}
if r.status == 'uploading' then
  redis.call('HSET', rec_key(id), 'status', 'cancelled', 'error', 'cancelled', 'message', 'cancelled',
             'deadline', cancelled_deadline)
  local fresh, updated = fetch(id)
  index_due(id, fresh)
  publish(r.server, event)
  return reply('cancelled', updated)
end
remove(id, r)
publish(r.server, event)
return reply('removed', flat)
"""

#: ARGV: P, now, limit. Removes and returns the due records nobody holds a claim on.
TAKE_DUE = _COMMON + r"""
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
local skipped = 0
while #out < limit do
  local ids = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', skipped, 100)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    if #out >= limit then break end
    local r, flat = fetch(id)
    if r == nil then
      redis.call('ZREM', DUE, id)
    elseif claimed(r, now) then
      skipped = skipped + 1
    else
      local deadline = num(r.deadline)
      if r.cancel_pending == '1' or (deadline ~= nil and deadline <= now) then
        remove(id, r)
        out[#out + 1] = flat
      else
        index_due(id, r)
      end
    end
  end
end
return out
"""

#: ARGV: P, node id, TTL in milliseconds.
HEARTBEAT = _COMMON + r"""
redis.call('SET', P .. 'node:' .. ARGV[2], '1', 'PX', ARGV[3])
redis.call('SADD', P .. 'nodes', ARGV[2])
return 'ok'
"""

#: ARGV: P, node id. A node that stops cleanly is not alive any more.
DEPART = _COMMON + r"""
redis.call('DEL', P .. 'node:' .. ARGV[2])
redis.call('SREM', P .. 'nodes', ARGV[2])
return 'ok'
"""

#: ARGV: P. The ids of the nodes whose heartbeat has not run out (the others are forgotten).
ALIVE_NODES = _COMMON + r"""
local alive = {}
for _, node in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  if redis.call('EXISTS', P .. 'node:' .. node) == 1 then alive[#alive + 1] = node
  else redis.call('SREM', P .. 'nodes', node) end
end
return alive
"""
