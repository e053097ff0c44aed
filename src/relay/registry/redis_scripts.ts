/**
 * The Lua scripts of the Redis registry (`redis.ts`). Each runs atomically in
 * Redis, so every decision about a state (who holds it, who claims it, who
 * takes its result) is made in one step however many relays ask at once.
 * They are defined with node-redis's `defineScript`: EVALSHA first, EVAL
 * when Redis answers NOSCRIPT (its script cache is empty after a restart).
 *
 * Keys, all under one prefix P (`oauth-relay:` by default); a state `s` is
 * used as it is, the single slot as the empty state:
 *
 * | key            | type   | holds                                                    | lifetime                      |
 * | -------------- | ------ | -------------------------------------------------------- | ----------------------------- |
 * | `P i:ID`       | string | relay ID's last heartbeat (Redis time, ms; 0: retired)   | live + grace after the beat   |
 * | `P clock`      | string | the last heartbeat of any relay                          | a day                         |
 * | `P amnesty`    | string | until when nobody counts as dead (Redis stood still)     | live                          |
 * | `P settling`   | string | Redis lost the registrations; relays are re-asserting    | 2 × live after the last loss  |
 * | `P instances`  | set    | relay ids, to count waiters and sweep dead relays        | until swept                   |
 * | `P b:ID`       | hash   | ID's waiting registrations: `s` socket, `r` remote, `t:FP` per token | as `i:ID`         |
 * | `P o:ID`       | set    | the states ID holds, to sweep them once ID is gone       | live + grace + 60 s           |
 * | `P in:ID`      | set    | states whose registration at ID changed (claimed, moved) | as `i:ID`                     |
 * | `P ch:ID`      | pubsub | wakes ID: `w` + state; `a` + claim id + `:1`/`:0` (ack)  | —                             |
 * | `P w:s`        | hash   | the registration: `o` owner, `g` registration id, `k` kind (`s`/`r`), `e` end (Redis time), `x` end as its client was told, `h` resume hash, `t` token, `c` claimed, `cb`/`ci` claimer, `d` taken by its owner | its timeout + live + grace; grace once claimed (remote) or taken |
 * | `P single`     | hash   | the single slot's registration, as `w:s`                 | as `w:s`                      |
 * | `P r:s`        | string | the claimed callback (JSON), for its owner               | grace                         |
 * | `P rsingle`    | string | the single slot's claimed callback                       | grace                         |
 * | `P u:s`        | string | "delivered": replay memory                               | 10 minutes                    |
 *
 * A relay is alive while its heartbeat is at most `live` ms old. A socket
 * registration of a relay that is not alive no longer blocks its state (the
 * client's connection died with the relay); a remote one does until the
 * relay's heartbeat key expires, `grace` ms later, so that its client can
 * resume it at another relay with its secret.
 *
 * @module
 */

import { defineScript } from "redis";

/** Helpers every script starts with. ARGV[1] is always the key prefix. */
const PRELUDE = `
local P = ARGV[1]
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function wkey(s) if s == '' then return P .. 'single' end return P .. 'w:' .. s end
local function rkey(s) if s == '' then return P .. 'rsingle' end return P .. 'r:' .. s end
local function record(key)
  local flat = redis.call('HGETALL', key)
  if #flat == 0 then return nil end
  local rec = {}
  for i = 1, #flat, 2 do rec[flat[i]] = flat[i + 1] end
  return rec
end
-- Redis itself stood still (frozen, cut off, restarted from a snapshot) for longer than a relay may stay silent:
-- nobody is judged dead until the relays have had time to beat again.
local pardon = nil
local function pardoned(now, live)
  if pardon == nil then
    local clock = tonumber(redis.call('GET', P .. 'clock') or '0')
    pardon = (clock > 0 and now - clock > live) or now < tonumber(redis.call('GET', P .. 'amnesty') or '0')
  end
  return pardon
end
-- true: alive; false: dead (or retired), within the grace period; nil: gone
local function alive(id, now, live)
  local beat = redis.call('GET', P .. 'i:' .. id)
  if not beat then return nil end
  beat = tonumber(beat)
  if beat == 0 then return false end
  return now - beat <= live or pardoned(now, live)
end
-- A registration no live relay stands for, which must not block its state.
local function stale(rec, now, live)
  if rec.c == '1' then return false end
  if tonumber(rec.e) + live < now then return true end
  local a = alive(rec.o, now, live)
  if a == nil then return true end
  if a then return false end
  return rec.k ~= 'r'
end
-- Puts a registration on (n = 1) or off (n = -1) its owner's books.
local function book(rec, s, n)
  local b = P .. 'b:' .. rec.o
  if n > 0 or redis.call('EXISTS', b) == 1 then
    redis.call('HINCRBY', b, rec.k, n)
    if rec.t and rec.t ~= '' then
      if redis.call('HINCRBY', b, 't:' .. rec.t, n) <= 0 then redis.call('HDEL', b, 't:' .. rec.t) end
    end
  end
  if n > 0 then redis.call('SADD', P .. 'o:' .. rec.o, s) else redis.call('SREM', P .. 'o:' .. rec.o, s) end
end
local function drop(key, rec, s)
  redis.call('DEL', key)
  if rec.c ~= '1' then book(rec, s, -1) end
end
local function write(key, me, reg, kind, ttl, hash, token, x, now, live, grace)
  redis.call('HSET', key, 'o', me, 'g', reg, 'k', kind, 'e', now + ttl, 'x', x)
  if kind == 'r' then redis.call('HSET', key, 'h', hash, 't', token) end
  redis.call('PEXPIRE', key, ttl + live + grace)
end
-- Waiting registrations at live relays, and remote ones at relays within their grace period.
local function census(now, live, token)
  local total, held = 0, 0
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'instances')) do
    local a = alive(id, now, live)
    if a ~= nil then
      local b = redis.call('HMGET', P .. 'b:' .. id, 's', 'r', 't:' .. token)
      if a then total = total + (tonumber(b[1]) or 0) end
      total = total + (tonumber(b[2]) or 0)
      held = held + (tonumber(b[3]) or 0)
    end
  end
  return total, held
end
`;

/**
 * KEYS: `w:s`. ARGV: P, me, s, reg, kind, ttl ms, resume hash, token, max waiters, max per token, live, grace,
 * end (epoch ms as the registering relay shows it to its client).
 * Returns `{ok[, previous owner, previous reg]}`, `{state_used}`, `{state_taken}`, `{too_many_waiters}`,
 * `{too_many_per_token}`.
 */
const REGISTER = `
local me, s, reg, kind = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl, hash, token = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local maxWaiters, maxPerToken = tonumber(ARGV[9]), tonumber(ARGV[10])
local live, grace, x = tonumber(ARGV[11]), tonumber(ARGV[12]), ARGV[13]
local now = nowMs()
local key = KEYS[1]
local rec = record(key)
-- A re-assertion that ran first already wrote this very registration.
if rec and rec.o == me and rec.g == reg then return {'ok'} end
if s ~= '' and redis.call('EXISTS', P .. 'u:' .. s) == 1 then return {'state_used'} end
local prev = nil
if rec then
  local gone = stale(rec, now, live)
  if s ~= '' and not gone then return {'state_taken'} end
  if s == '' and not gone and rec.c ~= '1' then prev = rec end
end
local total, held = census(now, live, token)
if total - (prev and 1 or 0) >= maxWaiters then return {'too_many_waiters'} end
if kind == 'r' and maxPerToken > 0 and held >= maxPerToken then return {'too_many_per_token'} end
if rec then drop(key, rec, s) end
write(key, me, reg, kind, ttl, hash, token, x, now, live, grace)
book({o = me, k = kind, t = token}, s, 1)
if prev then
  if prev.o ~= me then
    redis.call('SADD', P .. 'in:' .. prev.o, s)
    redis.call('PUBLISH', P .. 'ch:' .. prev.o, 'w' .. s)
  end
  return {'ok', prev.o, prev.g}
end
return {'ok'}
`;

/**
 * KEYS: `w:s`. ARGV: P, me, s, result JSON, claim id, grace, remember, live.
 * Returns `{none}`, `{already}`, or, having kept the callback in `r:s` for the owner (in its inbox, and woken when
 * it is another relay): `{kept, owner, reg}` (a remote waiter: complete now), `{mine, owner, reg}` (a socket
 * waiter of this relay: take it here), `{sent, owner, reg}` (a socket waiter of another relay).
 */
const CLAIM = `
local me, s, result, cid = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local grace, remember, live = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local now = nowMs()
local key = KEYS[1]
local rec = record(key)
if rec and stale(rec, now, live) then drop(key, rec, s); rec = nil end
if not rec then
  if s ~= '' and redis.call('EXISTS', P .. 'u:' .. s) == 1 then return {'already'} end
  -- Redis lost the registrations and not every relay has re-asserted its own yet: nobody can say nobody waits.
  if redis.call('EXISTS', P .. 'settling') == 1 then return {'settling'} end
  return {'none'}
end
if rec.c == '1' then return {'already'} end
book(rec, s, -1)
-- Kept in Redis until the owner takes it: a claimer that gives up waiting for its answer loses nothing.
redis.call('HSET', key, 'c', '1')
redis.call('SET', rkey(s), result, 'PX', grace)
redis.call('SADD', P .. 'in:' .. rec.o, s)
if rec.k == 'r' then
  -- Complete now: kept for its owner whether or not its stream is open, and for a resume at any relay.
  redis.call('PEXPIRE', key, grace)
  if s ~= '' then redis.call('SET', P .. 'u:' .. s, '1', 'PX', remember) end
elseif rec.o ~= me then
  redis.call('HSET', key, 'cb', me, 'ci', cid)
end
if rec.o ~= me then redis.call('PUBLISH', P .. 'ch:' .. rec.o, 'w' .. s) end
if rec.k == 'r' then return {'kept', rec.o, rec.g} end
if rec.o == me then return {'mine', rec.o, rec.g} end
return {'sent', rec.o, rec.g}
`;

/**
 * KEYS: `w:s`. ARGV: P, me, s, reg, remember, live, grace. The owner takes what happened to its registration.
 * Returns `{gone}` (moved, replaced or expired), `{waiting}`, `{result, json, kind[, claimer, claim id]}`.
 */
const TAKE = `
local me, s, reg = ARGV[2], ARGV[3], ARGV[4]
local remember, live, grace = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local key = KEYS[1]
redis.call('SREM', P .. 'in:' .. me, s)
local rec = record(key)
if not rec or rec.o ~= me or rec.g ~= reg then return {'gone'} end
if rec.c ~= '1' then return {'waiting'} end
if rec.k == 'r' then
  local r = redis.call('GET', rkey(s))
  if r then return {'result', r, 'r'} end
  return {'gone'}
end
local r = redis.call('GET', rkey(s))
if rec.d == '1' then
  -- Taken before, and its answer lost (Redis stood still): the same answer again, so the code is not lost with it.
  if r then return {'result', r, 's', rec.cb or '', rec.ci or ''} end
  return {'gone'}
end
if not r then
  -- Not taken within the grace period: the registration waits again, and the state stays unused.
  redis.call('HDEL', key, 'c', 'cb', 'ci')
  book(rec, s, 1)
  return {'waiting'}
end
-- Taken: the owner removes both once it has written the callback (release), the grace period at most.
redis.call('HSET', key, 'd', '1')
redis.call('PEXPIRE', key, grace)
if s ~= '' then redis.call('SET', P .. 'u:' .. s, '1', 'PX', remember) end
return {'result', r, 's', rec.cb or '', rec.ci or ''}
`;

/**
 * KEYS: `w:s`. ARGV: P, me, s, claim id. The claimer gives up on a claim its owner never took.
 * Returns `retracted` or `taken`.
 */
const RETRACT = `
local s, cid = ARGV[3], ARGV[4]
local key = KEYS[1]
local rec = record(key)
if not rec or rec.c ~= '1' or rec.ci ~= cid or rec.d == '1' then return 'taken' end
redis.call('DEL', rkey(s))
redis.call('HDEL', key, 'c', 'cb', 'ci')
book(rec, s, 1)
redis.call('SREM', P .. 'in:' .. rec.o, s)
return 'retracted'
`;

/**
 * KEYS: `w:s`. ARGV: P, me, s, reg, resume hash, live, grace.
 * Returns `{absent}`, `{refused}`, `{kept, result json, ms left, end}`, `{resumed, ms left, end}` (end: as registered).
 */
const RESUME = `
local me, s, reg, hash = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local live, grace = tonumber(ARGV[6]), tonumber(ARGV[7])
local now = nowMs()
local key = KEYS[1]
local rec = record(key)
if not rec then return {'absent'} end
if rec.k ~= 'r' or rec.h ~= hash then
  if stale(rec, now, live) then drop(key, rec, s); return {'absent'} end
  return {'refused'}
end
if rec.c == '1' then
  local r = redis.call('GET', rkey(s))
  if r then return {'kept', r, tostring(tonumber(rec.e) - now), rec.x or ''} end
  return {'absent'}
end
if stale(rec, now, live) then drop(key, rec, s); return {'absent'} end
local old = rec.o
if old ~= me then
  book(rec, s, -1)
  rec.o = me
  book(rec, s, 1)
  redis.call('HSET', key, 'o', me)
  redis.call('SADD', P .. 'in:' .. old, s)
  redis.call('PUBLISH', P .. 'ch:' .. old, 'w' .. s)
end
redis.call('HSET', key, 'g', reg)
return {'resumed', tostring(tonumber(rec.e) - now), rec.x or ''}
`;

/**
 * KEYS: `w:s`. ARGV: P, me, s, reg, and whether a socket waiter's taken callback reached its client (`1`) or not
 * (`0`). Returns 1 when the registration was this waiter's and is gone now.
 */
const RELEASE = `
local me, s, reg = ARGV[2], ARGV[3], ARGV[4]
local rec = record(KEYS[1])
if not rec or rec.o ~= me or rec.g ~= reg then return 0 end
if rec.d == '1' then
  -- Its taken callback is out of Redis now; a client that went away leaves the state unused, as at a single relay.
  redis.call('DEL', KEYS[1], rkey(s))
  if ARGV[5] == '0' and s ~= '' then redis.call('DEL', P .. 'u:' .. s) end
  return 1
end
if rec.c == '1' then return 0 end
drop(KEYS[1], rec, s)
return 1
`;

/** KEYS: `instances`. ARGV: P, live. Returns the number of clients waiting at every relay. */
const COUNT = `
local total = census(nowMs(), tonumber(ARGV[2]), '')
return total
`;

/**
 * KEYS: `i:me`. ARGV: P, me, live, grace, `beat` or `retire`, `known` once this relay has beaten before. Marks this relay alive (or retired: not
 * alive, its remote registrations still resumable for the grace period) and sweeps relays whose heartbeat
 * key expired. Returns 1 when this relay's last heartbeat was in time, 0 when Redis lost it, 2 when it was so
 * late that others may have counted this relay dead.
 */
const HEARTBEAT = `
local me, live, grace = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = nowMs()
local last = redis.call('GET', KEYS[1])
local had = 1
-- Gone, or so late that other relays may have counted this one dead and taken its states: re-assert.
if not last then had = 0 elseif now - tonumber(last) > live and not pardoned(now, live) then had = 2 end
-- Gone though this relay has beaten before: Redis lost its keys (restarted empty, flushed), the other relays'
-- too. Until they have all re-asserted theirs (each at its next beat), a callback that finds no registration
-- answers "reload in a moment", not "nobody waits".
if not last and ARGV[6] == 'known' then redis.call('SET', P .. 'settling', now, 'PX', 2 * live) end
local clock = tonumber(redis.call('GET', P .. 'clock') or '0')
if clock > 0 and now - clock > live then
  redis.call('SET', P .. 'amnesty', now + live, 'PX', live)
  -- Restored from a snapshot, registrations made after it are missing too: "reload", not "nobody waits".
  redis.call('SET', P .. 'settling', now, 'PX', 2 * live)
end
redis.call('SET', P .. 'clock', now, 'PX', 86400000)
local beat = now
if ARGV[5] == 'retire' then beat = 0 end
redis.call('SET', KEYS[1], beat, 'PX', live + grace)
redis.call('SADD', P .. 'instances', me)
redis.call('PEXPIRE', P .. 'b:' .. me, live + grace)
redis.call('PEXPIRE', P .. 'in:' .. me, live + grace)
redis.call('PEXPIRE', P .. 'o:' .. me, live + grace + 60000)
for _, id in ipairs(redis.call('SMEMBERS', P .. 'instances')) do
  if redis.call('EXISTS', P .. 'i:' .. id) == 0 then
    for _, s in ipairs(redis.call('SMEMBERS', P .. 'o:' .. id)) do
      local key = wkey(s)
      if redis.call('HGET', key, 'o') == id then redis.call('DEL', key) end
    end
    redis.call('DEL', P .. 'o:' .. id, P .. 'b:' .. id, P .. 'in:' .. id)
    redis.call('SREM', P .. 'instances', id)
  end
end
return had
`;

/**
 * KEYS: `i:me`. ARGV: P, me, live, grace, then per registration this relay holds: s, reg, kind, ttl ms,
 * resume hash, token, end. Re-asserts them (Redis came back, perhaps empty) and drops what this relay no
 * longer holds. Returns `{s, reg, …}` of registrations another client took meanwhile.
 */
const RESYNC = `
local me, live, grace = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = nowMs()
local keep = {}
for i = 5, #ARGV, 7 do keep[ARGV[i]] = true end
for _, s in ipairs(redis.call('SMEMBERS', P .. 'o:' .. me)) do
  if not keep[s] then
    local key = wkey(s)
    local rec = record(key)
    if rec and rec.o == me and rec.c ~= '1' then redis.call('DEL', key) end
  end
end
redis.call('DEL', P .. 'o:' .. me, P .. 'b:' .. me)
redis.call('SET', KEYS[1], now, 'PX', live + grace)
redis.call('SADD', P .. 'instances', me)
local lost = {}
for i = 5, #ARGV, 7 do
  local s, reg, kind, ttl = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local hash, token, x = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local key = wkey(s)
  local rec = record(key)
  if rec and rec.o == me and rec.g == reg and rec.c == '1' then
    -- Claimed for this relay meanwhile: its inbox says so, and the sweep takes it.
    redis.call('SADD', P .. 'in:' .. me, s)
  elseif not rec and s ~= '' and redis.call('EXISTS', P .. 'u:' .. s) == 1 then
    -- Delivered meanwhile, most likely by this relay just now (a claim or take not yet answered): leave it be.
  elseif not rec or rec.o == me or stale(rec, now, live) then
    -- This relay's books were emptied above: taking its own registration off them again would undercount.
    if rec and rec.o == me then redis.call('DEL', key) elseif rec then drop(key, rec, s) end
    write(key, me, reg, kind, ttl, hash, token, x, now, live, grace)
    book({o = me, k = kind, t = token}, s, 1)
  else
    table.insert(lost, s)
    table.insert(lost, reg)
  end
end
return lost
`;

/** The reply of a script: what Lua returned, strings and integers. */
export type ScriptReply = string | number | null | ScriptReply[];

function script(body: string) {
  return defineScript({
    SCRIPT: PRELUDE + body,
    NUMBER_OF_KEYS: 1,
    // The key is declared (KEYS[1]); further keys are built from the prefix in ARGV[1]. Redis Cluster,
    // which needs every key declared and on one node, is not supported: use one Redis (with replicas).
    parseCommand(parser: { pushKey(key: string): void; push(...args: string[]): void }, key: string, args: string[]) {
      parser.pushKey(key);
      parser.push(...args);
    },
    transformReply: undefined as unknown as () => ScriptReply,
  });
}

/** The registry's scripts, by name. */
export const SCRIPTS = {
  oauthRegister: script(REGISTER),
  oauthClaim: script(CLAIM),
  oauthTake: script(TAKE),
  oauthRetract: script(RETRACT),
  oauthResume: script(RESUME),
  oauthRelease: script(RELEASE),
  oauthCount: script(COUNT),
  oauthHeartbeat: script(HEARTBEAT),
  oauthResync: script(RESYNC),
};

/** Names of {@linkcode SCRIPTS}. */
export type ScriptName = keyof typeof SCRIPTS;
