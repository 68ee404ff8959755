"""The Lua scripts of call records: save with expiry and pruning, list, end stale ones.

They run after :data:`~.scripts.LUA_PRELUDE`, like every script of the store.
"""

from __future__ import annotations

__all__ = ["CALL_SCRIPTS"]

# Call records. Index members are sort keys, '<start in µs>:<call id>', with score 0,
# so that ZREVRANGEBYLEX lists newest first and pages from an exact position. The set
# of ended calls is scored by end time and its members also carry the account id
# ('<sort key>:<account id>'): pruning then needs nothing from a record, which may
# have expired already.
_LUA_CALLS = """
local function ended_member(sort_key, account_id)
  if account_id then return sort_key .. ':' .. account_id end
  return sort_key
end
local function call_key(sort_key)
  return base .. 'call:' .. string.match(sort_key, '^%d+:(.*)$')
end
local function unindex_call(key)
  local old = fields(redis.call('HGETALL', key))
  if not old.sort_key then return end
  redis.call('ZREM', base .. 'calls', old.sort_key)
  redis.call('ZREM', base .. 'calls:active', old.sort_key)
  redis.call('ZREM', base .. 'calls:ended', ended_member(old.sort_key, old.account_id))
  if old.account_id then
    redis.call('ZREM', base .. 'calls:account:' .. old.account_id, old.sort_key)
  end
end
local function index_ended(key, sort_key, account_id, ended_at, expire_at)
  redis.call('ZREM', base .. 'calls:active', sort_key)
  local member = ended_member(sort_key, account_id)
  redis.call('ZADD', base .. 'calls:ended', ended_at, member)
  redis.call('EXPIREAT', key, expire_at)
end
local function prune_calls(cutoff, batch)
  local expired = redis.call(
    'ZRANGEBYSCORE', base .. 'calls:ended', '-inf', '(' .. cutoff, 'LIMIT', 0, batch)
  for _, member in ipairs(expired) do
    local sort_key, call_id, account_id =
      string.match(member, '^(%d+:([%w_%-]+)):?(.*)$')
    redis.call('ZREM', base .. 'calls', sort_key)
    if account_id ~= '' then
      redis.call('ZREM', base .. 'calls:account:' .. account_id, sort_key)
    end
    redis.call('DEL', base .. 'call:' .. call_id)
  end
  if #expired > 0 then redis.call('ZREM', base .. 'calls:ended', unpack(expired)) end
  return #expired
end
"""

# KEYS[1] = call hash, ARGV[3] = prune cutoff, ARGV[4] = prune batch, ARGV[5] = when
# an ended record expires (Unix seconds), ARGV[6..] = field/value pairs. Replaces the
# record and its index entries; returns how many expired records were pruned.
_SAVE_CALL = """
local key = KEYS[1]
local h = fields({unpack(ARGV, 6)})
unindex_call(key)
redis.call('DEL', key)
redis.call('HSET', key, unpack(ARGV, 6))
redis.call('ZADD', base .. 'calls', 0, h.sort_key)
if h.account_id then
  redis.call('ZADD', base .. 'calls:account:' .. h.account_id, 0, h.sort_key)
end
if h.ended_at then
  index_ended(key, h.sort_key, h.account_id, h.ended_at, ARGV[5])
else
  redis.call('ZADD', base .. 'calls:active', 0, h.sort_key)
end
return prune_calls(ARGV[3], ARGV[4])
"""

# KEYS[1] = a call index, ARGV[3] = ZREVRANGEBYLEX start, ARGV[4] = count. Returns
# {sort key, record hash} pairs, newest first.
_SCAN_CALLS = """
local out = {}
local members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[3], '-', 'LIMIT', 0, ARGV[4])
for i, sort_key in ipairs(members) do
  out[i] = {sort_key, redis.call('HGETALL', call_key(sort_key))}
end
return out
"""

# KEYS[1] = the index of active calls, ARGV[3] = instance, ARGV[4] = end time,
# ARGV[5] = who ended them, ARGV[6] = reason, ARGV[7] = when they expire. Returns how
# many calls were ended.
# Limitation: every active call of the fleet is looked at; at start-up only, and a
# fleet's active calls number in the thousands, a few milliseconds of Redis time.
_END_STALE_CALLS = """
local ended = 0
for _, sort_key in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = call_key(sort_key)
  if redis.call('HGET', key, 'instance') == ARGV[3] then
    redis.call(
      'HSET', key, 'ended_at', ARGV[4], 'ended_by', ARGV[5], 'end_reason', ARGV[6])
    local account_id = redis.call('HGET', key, 'account_id')
    index_ended(key, sort_key, account_id, ARGV[4], ARGV[7])
    ended = ended + 1
  end
end
return ended
"""


# Each call script runs after the call-record functions (and the common prelude).
CALL_SCRIPTS = {
    "save_call": _LUA_CALLS + _SAVE_CALL,
    "scan_calls": _LUA_CALLS + _SCAN_CALLS,
    "end_stale_calls": _LUA_CALLS + _END_STALE_CALLS,
}
