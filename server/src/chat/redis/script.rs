//! The append script: one Lua script assigns a room's next seq, appends the message to the
//! room's log, records its cid, trims the log to the retention cap and publishes the
//! message, atomically (Redis runs a script alone). So every node sees a room's messages in
//! one order, and a published seq is always in the log first. Each entry also gets its
//! store-wide order `o` (Redis's clock in microseconds, made to rise within the room), the
//! newest-first order of `search`. Run with EVALSHA, loaded again
//! when Redis answers NOSCRIPT (after a restart).
//!
//! KEYS: seq, log, cids, channel, order. ARGV: from, text, action (`1`/`0`), cid (`` for none), id,
//! cap (0: keep all), the publish command (`PUBLISH`, or `SPUBLISH` on a Redis Cluster), node.
//! Returns `{duplicate (0/1), entry}`.

use std::sync::LazyLock;

pub(super) static APPEND: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SOURCE));

const SOURCE: &str = r#"
local cid = ARGV[4]
if cid ~= '' then
  local first = redis.call('HGET', KEYS[3], cid)
  if first then
    local found = redis.call('ZRANGEBYSCORE', KEYS[2], first, first)
    if found[1] then return {1, found[1]} end
  end
end
local seq = redis.call('INCR', KEYS[1])
local t = redis.call('TIME')
local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local o = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = tonumber(redis.call('GET', KEYS[5]) or '0')
if o <= prev then o = prev + 1 end
o = string.format('%d', o)
redis.call('SET', KEYS[5], o)
local entry = cjson.encode({id = ARGV[5], seq = seq, from = ARGV[1], text = ARGV[2],
  ts = ts, action = (ARGV[3] == '1'), c = cid, n = ARGV[8], o = o})
redis.call('ZADD', KEYS[2], seq, entry)
if cid ~= '' then redis.call('HSET', KEYS[3], cid, seq) end
local cap = tonumber(ARGV[6])
if cap > 0 then
  local n = redis.call('ZCARD', KEYS[2])
  if n > cap then
    for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, n - cap - 1)) do
      local c = cjson.decode(old).c
      if c and c ~= '' then redis.call('HDEL', KEYS[3], c) end
    end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - cap - 1)
  end
end
redis.call(ARGV[7], KEYS[4], ARGV[8] .. ' ' .. entry)
return {0, entry}
"#;

/// Deletes one message of a room's log (and its cid, so a re-send is a new message); the
/// seq key is left alone, so the seq is never reused. KEYS: log, cids. ARGV: seq. Returns
/// the entry, or nil when the log has no message with that seq.
pub(super) static DELETE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(DELETE_SOURCE));

const DELETE_SOURCE: &str = r#"
local found = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
if not found[1] then return false end
local c = cjson.decode(found[1]).c
if c and c ~= '' and redis.call('HGET', KEYS[2], c) == ARGV[1] then
  redis.call('HDEL', KEYS[2], c)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
return found[1]
"#;

/// Replaces an identity's password hash in place. KEYS: the identities hash. ARGV: nick
/// key, hash. Returns 1, or 0 when there is no such identity.
pub(super) static SET_PASSWORD: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(SET_PASSWORD_SOURCE));

const SET_PASSWORD_SOURCE: &str = r#"
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then return 0 end
local identity = cjson.decode(json)
identity.password_hash = ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(identity))
return 1
"#;
