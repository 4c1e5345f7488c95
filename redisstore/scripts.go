package redisstore

import "github.com/redis/go-redis/v9"

// The Lua scripts. Each declares the record key as KEYS[1], and the save
// script the new user's index set as KEYS[2]. The index set of a record's
// previous user is known only once the script has read the record, so it
// is named inside the script (the bucket's index prefix from ARGV plus
// redis.sha1hex of the user); it has the record key's hash tag, hence its
// cluster slot, and Redis allows a script keys of its own slot that it did
// not declare.
//
// Stored values (see encodeRecord): byte 1 is the format (0 tombstone,
// 1 record), bytes 2..9 the expiry or tombstone end in Unix ms, big-endian;
// for a record, bytes 10..17 the version, 18 the kind, then the user as a
// uvarint length and bytes, then the data. Lua numbers are doubles: Unix
// milliseconds are exact in them, versions (up to 2^64) are not, so
// versions are compared as 8-byte strings; and numbers passed on to Redis
// commands are passed as the ARGV strings they came from.

const luaHelpers = `
local function valid(v)
  local f = string.byte(v, 1)
  if f == 0 then return #v == 9 end
  if f ~= 1 or #v < 19 then return false end
  local n, m, i = 0, 1, 19
  while true do
    local b = string.byte(v, i)
    if not b or i > 28 then return false end
    i = i + 1
    n = n + (b % 128) * m
    if b < 128 then break end
    m = m * 128
  end
  return i + n - 1 <= #v
end
local function ms(v)
  local n = 0
  for i = 2, 9 do n = n * 256 + string.byte(v, i) end
  return n
end
local function user(v)
  local n, m, i = 0, 1, 19
  while true do
    local b = string.byte(v, i)
    i = i + 1
    n = n + (b % 128) * m
    if b < 128 then break end
    m = m * 128
  end
  return string.sub(v, i, i + n - 1)
end
`

// saveScript: compare-and-set write of a record.
//
// KEYS: 1 record, 2 the new user's index set (absent when the user is "").
// ARGV: 1 value, 2 prev version (8 bytes, or "" to create), 3 now (ms),
// 4 TTL (ms; 0 when the record is already dead), 5 index prefix, 6 member
// (the raw key), 7 user, 8 expires (ms, the index score).
// Returns 1 when written, 0 on a version conflict.
var saveScript = redis.NewScript(luaHelpers + `
local now = tonumber(ARGV[3])
local old = redis.call('GET', KEYS[1])
if old and not valid(old) then old = false end -- corrupt: as absent
local olduser = ''
if old then
  local live = ms(old) > now
  if string.byte(old, 1) == 0 then
    if live or ARGV[2] ~= '' then return 0 end
  else
    if live then
      if ARGV[2] == '' or string.sub(old, 10, 17) ~= ARGV[2] then return 0 end
    elseif ARGV[2] ~= '' then
      return 0
    end
    olduser = user(old)
  end
elseif ARGV[2] ~= '' then
  return 0
end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
elseif old then
  redis.call('DEL', KEYS[1])
end
local nu = ARGV[7]
if olduser ~= '' and (olduser ~= nu or ttl <= 0) then
  redis.call('ZREM', ARGV[5] .. redis.sha1hex(olduser), ARGV[6])
end
if nu ~= '' and ttl > 0 then
  local ik = KEYS[2]
  redis.call('ZADD', ik, ARGV[8], ARGV[6])
  redis.call('ZREMRANGEBYSCORE', ik, '-inf', ARGV[3])
  if redis.call('PTTL', ik) < ttl then redis.call('PEXPIRE', ik, ARGV[4]) end
end
return 1
`)

// deleteScript: removes a record and its index entry, and leaves a
// tombstone; a live tombstone is only lengthened.
//
// ARGV: 1 now (ms), 2 tombstone value (or "" for none), 3 tombstone TTL
// (ms), 4 index prefix, 5 member. Returns 1.
var deleteScript = redis.NewScript(luaHelpers + `
local now = tonumber(ARGV[1])
local old = redis.call('GET', KEYS[1])
local bad = old and not valid(old)
if bad then old = false end
if old then
  if string.byte(old, 1) == 0 then
    if ms(old) > now and (ARGV[2] == '' or ms(old) >= ms(ARGV[2])) then return 1 end
  else
    local u = user(old)
    if u ~= '' then redis.call('ZREM', ARGV[4] .. redis.sha1hex(u), ARGV[5]) end
  end
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
elseif old or bad then
  redis.call('DEL', KEYS[1])
end
return 1
`)

// takeScript: removes a live record and its index entry and returns it.
//
// ARGV: 1 now (ms), 2 index prefix, 3 member. Returns the record's value,
// 0 under a live tombstone (left in place), or nil when there is no live
// record.
var takeScript = redis.NewScript(luaHelpers + `
local old = redis.call('GET', KEYS[1])
if not old or not valid(old) or ms(old) <= tonumber(ARGV[1]) then return false end
if string.byte(old, 1) == 0 then return 0 end
local u = user(old)
if u ~= '' then redis.call('ZREM', ARGV[2] .. redis.sha1hex(u), ARGV[3]) end
redis.call('DEL', KEYS[1])
return old
`)

// unlockScript: deletes a lock key if it still holds the caller's token.
// Returns 1 if it did, 0 if the lock was no longer held.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)
