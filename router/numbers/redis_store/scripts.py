"""The Lua scripts that read and change the map atomically, by name.

Each change that needs several keys at once (attach, detach, deletes, the status
change, API keys, call records) runs as one script, so no other client sees it half
done; each change that alters a number's routing publishes on the invalidation channel
from inside the same script, so caches never miss a change that committed. The scripts
of call records are in :mod:`.call_scripts`.
"""

from __future__ import annotations

from .call_scripts import CALL_SCRIPTS

__all__ = ["LUA_PRELUDE", "SCRIPTS"]

# ARGV[1] is the key base and ARGV[2] the invalidation channel in every script. KEYS[1]
# is the object's key, declared so that a Cluster client routes the call to the node
# owning the map's slot; the other keys are derived from the base inside the script,
# since which ones are touched (the pipe a number moves off, its index sets) depends
# on data read there. That is only safe because every key shares one hash tag.

LUA_PRELUDE = """
local base, channel = ARGV[1], ARGV[2]
local function nkey(e164) return base .. 'number:' .. e164 end
local function resolve(ref)
  if string.sub(ref, 1, 4) == 'num_' then
    return redis.call('GET', base .. 'number_id:' .. ref)
  end
  if redis.call('EXISTS', nkey(ref)) == 1 then return ref end
  return false
end
local function fields(flat)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end
local function index_keys(h)
  local keys = {
    base .. 'numbers',
    base .. 'numbers:status:' .. h.status,
    base .. 'numbers:country:' .. h.country,
    base .. 'numbers:trunk_type:' .. h.trunk_type,
  }
  if h.account_id then
    table.insert(keys, base .. 'numbers:account:' .. h.account_id)
  end
  if h.pipe_id then table.insert(keys, base .. 'pipe:' .. h.pipe_id .. ':numbers') end
  if h.trunk_id then
    table.insert(keys, base .. 'trunk:' .. h.trunk_id .. ':numbers')
  end
  return keys
end
"""

# KEYS[1] = number hash. Returns {} | {number} | {number, pipe} as flat hashes.
_ROUTE = """
local number = redis.call('HGETALL', KEYS[1])
if #number == 0 then return {} end
local pipe_id = redis.call('HGET', KEYS[1], 'pipe_id')
if not pipe_id then return {number} end
return {number, redis.call('HGETALL', ARGV[1] .. 'pipe:' .. pipe_id)}
"""

# ARGV[3] = number ref. Returns the number hash, or {} when unknown.
_GET_NUMBER = """
local e164 = resolve(ARGV[3])
if not e164 then return {} end
return redis.call('HGETALL', nkey(e164))
"""

# ARGV[3] = E.164, ARGV[4] = number id, ARGV[5..] = hash field/value pairs.
_CREATE_NUMBER = """
local e164, number_id = ARGV[3], ARGV[4]
if redis.call('EXISTS', nkey(e164)) == 1 then return 'exists' end
local h = fields({unpack(ARGV, 5)})
if h.trunk_id and redis.call('EXISTS', base .. 'trunk:' .. h.trunk_id) == 0 then
  return 'no_trunk'
end
redis.call('HSET', nkey(e164), unpack(ARGV, 5))
redis.call('SET', base .. 'number_id:' .. number_id, e164)
for _, key in ipairs(index_keys(h)) do redis.call('ZADD', key, 0, e164) end
-- A router may cache "unknown number" answers: announce the new number too.
redis.call('PUBLISH', channel, e164)
return 'ok'
"""

# ARGV[3] = number ref, ARGV[4] = new status. Returns the number hash or {}.
_UPDATE_STATUS = """
local e164 = resolve(ARGV[3])
if not e164 then return {} end
local old = redis.call('HGET', nkey(e164), 'status')
if old ~= ARGV[4] then
  redis.call('ZREM', base .. 'numbers:status:' .. old, e164)
  redis.call('ZADD', base .. 'numbers:status:' .. ARGV[4], 0, e164)
  redis.call('HSET', nkey(e164), 'status', ARGV[4])
  redis.call('PUBLISH', channel, e164)
end
return redis.call('HGETALL', nkey(e164))
"""

# ARGV[3] = number ref. Returns 1 when deleted, 0 when unknown.
_DELETE_NUMBER = """
local e164 = resolve(ARGV[3])
if not e164 then return 0 end
local h = fields(redis.call('HGETALL', nkey(e164)))
for _, key in ipairs(index_keys(h)) do redis.call('ZREM', key, e164) end
redis.call('DEL', nkey(e164), base .. 'number_id:' .. h.number_id)
redis.call('PUBLISH', channel, e164)
return 1
"""

# ARGV[3] = number ref, ARGV[4] = pipe id. Returns {'ok', number} or {'no_number'} or
# {'no_pipe'}; nothing changes unless both exist.
_ATTACH = """
local e164 = resolve(ARGV[3])
if not e164 then return {'no_number'} end
local pipe_id = ARGV[4]
if redis.call('EXISTS', base .. 'pipe:' .. pipe_id) == 0 then return {'no_pipe'} end
local old = redis.call('HGET', nkey(e164), 'pipe_id')
if old ~= pipe_id then
  if old then redis.call('ZREM', base .. 'pipe:' .. old .. ':numbers', e164) end
  redis.call('HSET', nkey(e164), 'pipe_id', pipe_id)
  redis.call('ZADD', base .. 'pipe:' .. pipe_id .. ':numbers', 0, e164)
  redis.call('PUBLISH', channel, e164)
end
return {'ok', redis.call('HGETALL', nkey(e164))}
"""

# ARGV[3] = number ref. Returns the number hash, or {} when unknown.
_DETACH = """
local e164 = resolve(ARGV[3])
if not e164 then return {} end
local old = redis.call('HGET', nkey(e164), 'pipe_id')
if old then
  redis.call('ZREM', base .. 'pipe:' .. old .. ':numbers', e164)
  redis.call('HDEL', nkey(e164), 'pipe_id')
  redis.call('PUBLISH', channel, e164)
end
return redis.call('HGETALL', nkey(e164))
"""

# KEYS[1] = pipe hash, ARGV[3..] = field/value pairs. Returns the pipe hash or {}.
# Limitation: this and _DELETE_PIPE publish once per number of the pipe inside the
# script; a pipe with hundreds of thousands of numbers holds Redis that long.
_UPDATE_PIPE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
if #ARGV > 2 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3))
  for _, e164 in ipairs(redis.call('ZRANGE', KEYS[1] .. ':numbers', 0, -1)) do
    redis.call('PUBLISH', channel, e164)
  end
end
return redis.call('HGETALL', KEYS[1])
"""

# KEYS[1] = pipe hash, ARGV[3] = pipe id. Returns how many numbers were detached, or
# -1 when the pipe is unknown.
_DELETE_PIPE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local pipe_id = ARGV[3]
local numbers = redis.call('ZRANGE', KEYS[1] .. ':numbers', 0, -1)
for _, e164 in ipairs(numbers) do
  if redis.call('HGET', nkey(e164), 'pipe_id') == pipe_id then
    redis.call('HDEL', nkey(e164), 'pipe_id')
  end
  redis.call('PUBLISH', channel, e164)
end
local account_id = redis.call('HGET', KEYS[1], 'account_id')
if account_id then
  redis.call('ZREM', base .. 'pipes:account:' .. account_id, pipe_id)
end
redis.call('ZREM', base .. 'pipes', pipe_id)
redis.call('DEL', KEYS[1], KEYS[1] .. ':numbers')
return #numbers
"""

# KEYS[1] = trunk hash, ARGV[3] = trunk id. Returns 1 when deleted, 0 when unknown.
_DELETE_TRUNK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local trunk_id = ARGV[3]
for _, e164 in ipairs(redis.call('ZRANGE', KEYS[1] .. ':numbers', 0, -1)) do
  if redis.call('HGET', nkey(e164), 'trunk_id') == trunk_id then
    redis.call('HDEL', nkey(e164), 'trunk_id')
    redis.call('PUBLISH', channel, e164)
  end
end
local account_id = redis.call('HGET', KEYS[1], 'account_id')
if account_id then
  redis.call('ZREM', base .. 'trunks:account:' .. account_id, trunk_id)
end
redis.call('ZREM', base .. 'trunks', trunk_id)
redis.call('DEL', KEYS[1], KEYS[1] .. ':numbers', KEYS[1] .. ':secret')
redis.call('PUBLISH', channel, 'trunk:' .. trunk_id)
return 1
"""

# KEYS[1] = account hash, ARGV[3] = account id. Returns {'ok'}, {'missing'}, or
# {'owns', numbers, pipes, trunks} when the account still owns something.
_DELETE_ACCOUNT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local account_id = ARGV[3]
local owned = {
  redis.call('ZCARD', base .. 'numbers:account:' .. account_id),
  redis.call('ZCARD', base .. 'pipes:account:' .. account_id),
  redis.call('ZCARD', base .. 'trunks:account:' .. account_id),
}
if owned[1] + owned[2] + owned[3] > 0 then
  return {'owns', owned[1], owned[2], owned[3]}
end
for _, key_id in ipairs(redis.call('ZRANGE', KEYS[1] .. ':api_keys', 0, -1)) do
  local key = base .. 'api_key:' .. key_id
  local secret_hash = redis.call('HGET', key, 'secret_sha256')
  if secret_hash then redis.call('DEL', base .. 'api_key_hash:' .. secret_hash) end
  redis.call('DEL', key)
end
redis.call('ZREM', base .. 'accounts', account_id)
redis.call('DEL', KEYS[1], KEYS[1] .. ':api_keys')
return {'ok'}
"""

# KEYS[1] = account hash, ARGV[3] = key id, ARGV[4] = SHA-256 of the secret,
# ARGV[5..] = the key's field/value pairs. Returns 1, or 0 when the account is unknown.
_CREATE_API_KEY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local key_id = ARGV[3]
redis.call('HSET', base .. 'api_key:' .. key_id, unpack(ARGV, 5))
redis.call('SET', base .. 'api_key_hash:' .. ARGV[4], key_id)
redis.call('ZADD', KEYS[1] .. ':api_keys', 0, key_id)
return 1
"""

# KEYS[1] = the hash-to-id key of a secret. Returns the key's hash, or {}.
_AUTHENTICATE = """
local key_id = redis.call('GET', KEYS[1])
if not key_id then return {} end
return redis.call('HGETALL', base .. 'api_key:' .. key_id)
"""

# KEYS[1] = account hash. Returns every key's hash, or nil when the account is unknown.
_LIST_API_KEYS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local out = {}
for i, key_id in ipairs(redis.call('ZRANGE', KEYS[1] .. ':api_keys', 0, -1)) do
  out[i] = redis.call('HGETALL', base .. 'api_key:' .. key_id)
end
return out
"""

# KEYS[1] = API key hash. Marks it revoked and forgets its secret's hash, so the
# secret no longer finds it. Returns the key's hash, or {} when unknown.
_REVOKE_API_KEY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local secret_hash = redis.call('HGET', KEYS[1], 'secret_sha256')
if secret_hash then redis.call('DEL', base .. 'api_key_hash:' .. secret_hash) end
redis.call('HSET', KEYS[1], 'revoked', '1')
return redis.call('HGETALL', KEYS[1])
"""

# KEYS[1] = an id index (pipes, trunks, or one account's), ARGV[3] = 'pipe:' or
# 'trunk:'. Returns every object's hash.
_LIST_OBJECTS = """
local out = {}
for i, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  out[i] = redis.call('HGETALL', base .. ARGV[3] .. id)
end
return out
"""

# KEYS[1] = a number index, ARGV[3] = ZRANGEBYLEX start, ARGV[4] = count. Returns
# {e164, number hash} pairs in E.164 order.
_SCAN_NUMBERS = """
local out = {}
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], '+', 'LIMIT', 0, ARGV[4])
for i, e164 in ipairs(members) do
  out[i] = {e164, redis.call('HGETALL', nkey(e164))}
end
return out
"""


# Every script by the name RedisStore calls it with; LUA_PRELUDE goes before each.
SCRIPTS = {
    "route": _ROUTE,
    "get_number": _GET_NUMBER,
    "create_number": _CREATE_NUMBER,
    "update_status": _UPDATE_STATUS,
    "delete_number": _DELETE_NUMBER,
    "attach": _ATTACH,
    "detach": _DETACH,
    "update_pipe": _UPDATE_PIPE,
    "delete_pipe": _DELETE_PIPE,
    "delete_trunk": _DELETE_TRUNK,
    "list_objects": _LIST_OBJECTS,
    "scan_numbers": _SCAN_NUMBERS,
    "delete_account": _DELETE_ACCOUNT,
    "create_api_key": _CREATE_API_KEY,
    "authenticate": _AUTHENTICATE,
    "list_api_keys": _LIST_API_KEYS,
    "revoke_api_key": _REVOKE_API_KEY,
    **CALL_SCRIPTS,
}
