/**
 * The distributed ledger (spec/enforcement.md §8): every operation runs inside ONE Lua script, so
 * the check and the hold are one atomic step for every client of the Redis server, on any host.
 * Operations on one root that a process asks for in the same event-loop turn share one script
 * call, which runs them one after another, each exactly as if alone. The script runs exactly the
 * algorithm of MemoryLedger (ledger.ts header, `decideAmounts`, `resolveActual`).
 *
 * Key layout. `P` is the key prefix (default `allowance:`), `R` the root link id. Every key of a
 * chain carries the hash tag `{R}`, so a chain's keys live in one Redis Cluster slot and a script
 * may touch all of them:
 *
 *   P{R}:a      HASH  the root's accounts: field `s:<account>` spent, `h:<account>` held (absent = 0).
 *   P{R}:x      ZSET  held reservations, scored by expiresAt (epoch ms); members with equal scores
 *                     sort by id, which is MemoryLedger's (expiresAt, id) expiry order, except that
 *                     Redis compares UTF-8 bytes where JS compares UTF-16 units: the two differ
 *                     only between ids with characters U+E000–U+FFFF and ids with characters
 *                     beyond U+FFFF at the same place. The enforcer's ids are ASCII.
 *   P{R}:h      HASH  held reservations' records, by id.
 *   P{R}:l      HASH  line sets, by digest (SHA-256 of the JSON, base64url): the JSON array
 *                     [account, kind (1 tokens, 2 usdMicros, 3 risk, 4 requests), cap (-1 = none), …].
 *                     A line set is stored once per root, not once per reservation.
 *   P{R}:c:<n>  HASH  closed reservations' records (committed, released or expired), by id, for
 *                     generation n = floor(server time in ms / retentionMs). The hash expires when
 *                     generation n + 1 ends, so a record is kept at least `retentionMs` (default
 *                     24 h) after it closed and at most twice that, for idempotent commit and
 *                     release and for late commits; then it is forgotten (`unknown`). A record
 *                     changed again (a late commit of an expired one) goes to the current
 *                     generation, which is read first. Generations follow the Redis server's
 *                     clock, which every client shares.
 *
 * A held reservation has no TTL: the next operation on its root after its expiry closes it. A
 * record is binary (big-endian): its status byte (1 held, 2 committed, 3 released, 4 expired);
 * held and expired: the four reserved amounts as doubles, then its line set's digest; committed:
 * a late byte, the reserved and the charged amounts. A batch reads the records it needs with one
 * HMGET on the held hash (and, for ids not held, one on each of the two latest generations), and
 * writes them back once at its end.
 *
 * This is layout 2. Layout 1 (development builds before 0.1.0 was released) kept each
 * reservation in a hash of its own, P{R}:r:<id>, which this script does not read: a Redis holding
 * layout-1 holds must be drained (every hold committed, released or expired) before the upgrade,
 * or those holds stay held. Accounts are the same in both.
 *
 * The script declares the root's four fixed keys in KEYS. It derives the generation keys; they
 * carry the same hash tag, so they are always in the slot the script runs on. Accounts, line sets
 * and expiry sets are never deleted (as in MemoryLedger): spent must outlive every reservation. A
 * root whose tokens have all expired can have its keys deleted by the operator.
 *
 * Numbers. Lua numbers are doubles: exact for the integers we use (≤ 2^53 − 1). Operations reach
 * the script as doubles in a binary header, records hold doubles. How a Lua number passed to a
 * command becomes a string is not Lua's "%.14g" on the Redis we test (7.0 writes 10^15 in full),
 * but we do not rely on the version: a number of 10^14 or more that a script writes goes through
 * `string.format("%d")` (a 64-bit integer conversion); a smaller one has at most 14 digits, exact
 * either way, and skips the call. Numbers come back as integer replies, which are exact.
 */
import { createHash } from "node:crypto";
import { Redis, type Cluster } from "ioredis";
import {
  LINE_KINDS,
  checkBalancesArgs,
  checkCommitArgs,
  checkReleaseArgs,
  checkReserveOp,
  rootOfReservation,
  totalTooLarge,
  type Amounts,
  type BalancesOutcome,
  type ChargedLine,
  type CommitOutcome,
  type Ledger,
  type LedgerLine,
  type LineKind,
  type ReleaseOutcome,
  type ReserveOp,
  type ReserveOutcome,
} from "./ledger.js";

export interface RedisLedgerOptions {
  /** Prefix of every key (before the `{root}` hash tag); must not contain `{` or `}`. Default `allowance:`. */
  readonly keyPrefix?: string;
  /**
   * How long a closed reservation is remembered, for idempotent commit and release and for late
   * commits: at least this long after it closed, at most twice, by the Redis server's clock.
   * Default 24 hours.
   */
  readonly retentionMs?: number;
  /** Whether `close()` also closes the connection. Default false: the caller owns it. */
  readonly closeConnection?: boolean;
}

// One script runs a batch of operations on one root, each exactly as if it ran alone, in order.
// KEYS: the expiry set, the accounts hash, the held records hash, the line sets hash.
// ARGV: the closed-record key base `P{R}:c:`, retention ms, the number of line sets given, each as
// its digest and JSON, then every operation in one binary string, each as a letter, doubles, and
// one text (a 32-bit length, then UTF-8):
//   r now expiresAt tokens usdMicros risk requests minTokens minUsdMicros lineSet   id  (reserve;
//     a minimum of -1 means none, lineSet indexes the sets given)
//   c now tokens usdMicros risk requests   id   (commit; a negative amount means "as reserved")
//   l now                                  id   (release)
//   b now                                  JSON array of account names   (balances)
// Returns one binary string: each operation's reply in turn (see each function). Every
// redis.call, argument, string and table costs about a microsecond in Redis's Lua, so the script
// reads each hash once per batch, writes it once at its end, and carries numbers as doubles,
// never as text, both ways.
const BATCH = `
local xkey, akey, hkey, lkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local cbase, retention = ARGV[1], tonumber(ARGV[2])
local pack, unpackBytes, byte, sub = struct.pack, struct.unpack, string.byte, string.sub
-- Below 10^14 a number has at most 14 digits, which every conversion writes exactly: no format call.
local function int(n)
  if n < 1e14 and n > -1e14 then return n end
  return string.format('%d', n)
end
local function num(v) if v then return tonumber(v) end return 0 end
local MAX_AMOUNT = 9007199254740991
-- A time as a sorted-set score: any double, written so that Redis reads back the same double
-- ("%.17g" round-trips; infinities by name). int() would wrap a time at or past 2^63 ms.
local function score(t)
  if t < 1e14 and t > -1e14 and t == math.floor(t) then return t end
  if t == math.huge then return '+inf' end
  if t == -math.huge then return '-inf' end
  return string.format('%.17g', t)
end
-- Ids and keys go to a command in chunks: Lua's unpack has a stack limit.
local CHUNK = 1000
local function chunked(command, key, list)
  local all = {}
  for first = 1, #list, CHUNK do
    local part = redis.call(command, key, unpack(list, first, math.min(first + CHUNK - 1, #list)))
    if type(part) == 'table' then for _, v in ipairs(part) do all[#all + 1] = v end end
  end
  return all
end

-- The batch's view of the accounts hash: value[field], loaded on first need; at the end, every
-- field whose value differs from the one read (read[field]) is written back.
local value, read, loadedOrder = {}, {}, {}
local function need(fields)
  local missing = nil
  for i = 1, #fields do
    local f = fields[i]
    if value[f] == nil then
      missing = missing or {}
      missing[#missing + 1] = f
      value[f] = 0
    end
  end
  if missing then
    local v = chunked('HMGET', akey, missing)
    for i, f in ipairs(missing) do
      local n = num(v[i])
      value[f], read[f] = n, n
      loadedOrder[#loadedOrder + 1] = f
    end
  end
end
-- Loads every field of a line set, once per batch: the loops below then read and write value[]
-- directly (a function call per line costs more than the line's arithmetic).
local function touch(set)
  if not set.loaded then
    need(set.fields)
    set.loaded = true
  end
end

-- Line sets by digest: n lines, each with account, kind (1-4), cap (number, or false), and its
-- spent and held fields. The JSON form is [account, kind, cap (-1 = none), …].
local sets = {}
local function parseSet(digest, json)
  local flat = cjson.decode(json)
  local set = { digest = digest, json = json, n = #flat / 3, account = {}, kind = {}, cap = {}, sf = {}, hf = {}, fields = {}, low = {}, high = {} }
  for i = 1, set.n do
    local account, cap = flat[3 * i - 2], flat[3 * i]
    set.account[i], set.kind[i] = account, flat[3 * i - 1]
    set.sf[i], set.hf[i] = 's:' .. account, 'h:' .. account
    set.fields[2 * i - 1], set.fields[2 * i] = set.sf[i], set.hf[i]
    if cap >= 0 then
      -- The lowest and highest threshold marks: a commit can cross one only if its spent ends at
      -- or above the lowest and started below the highest.
      set.cap[i], set.low[i], set.high[i] = cap, cap * 50 / 100, cap * 100 / 100
    else
      set.cap[i] = false
    end
  end
  sets[digest] = set
  return set
end
local function setOf(digest)
  local set = sets[digest]
  if set then return set end
  local json = redis.call('HGET', lkey, digest)
  if not json then error('allowance: line set ' .. digest .. ' is missing from ' .. lkey) end
  return parseSet(digest, json)
end

-- Reservation records. st: 1 held, 2 committed, 3 released, 4 expired. Binary, big-endian:
--   held, expired: st (byte), amounts (4 doubles), then the line set's digest
--   committed:     st, late (byte), reserved (4 doubles), charged (4 doubles)
--   released:      st
-- Doubles hold every safe integer exactly.
local function decode(s)
  local st = byte(s, 1)
  if st == 1 or st == 4 then
    local t, u, r, q = unpackBytes('>dddd', s, 2)
    return { st = st, a = { t, u, r, q }, set = sub(s, 34) }
  elseif st == 2 then
    local late, t, u, r, q, ct, cu, cr, cq = unpackBytes('>Bdddddddd', s, 2)
    return { st = st, late = late, a = { t, u, r, q }, c = { ct, cu, cr, cq } }
  end
  return { st = st }
end
local function encode(x)
  local a = x.a
  if x.st == 1 or x.st == 4 then return pack('>Bdddd', x.st, a[1], a[2], a[3], a[4]) .. x.set end
  if x.st == 2 then
    local c = x.c
    return pack('>BBdddddddd', 2, x.late, a[1], a[2], a[3], a[4], c[1], c[2], c[3], c[4])
  end
  return pack('>B', x.st)
end

-- Closed records live in one hash per generation of "retention" ms of the server's clock,
-- P{R}:c:<n>, which expires when the generation after it ends: a record is kept at least
-- "retention" ms after it closed, at most twice that. The server's clock, read once per batch,
-- so that clients whose clocks differ agree on the generation.
local gen, genEnds = nil, nil
local function generation()
  if gen == nil then
    local t = redis.call('TIME')
    local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    gen = math.floor(ms / retention)
    genEnds = (gen + 2) * retention - ms
  end
  return gen
end

-- rec[id]: the record (false: no such reservation), read at most once per batch. stored[id]: its
-- record is in the held hash and its id in the expiry set as the batch starts (it was held).
local rec, stored = {}, {}
-- Changes to the expiry set, written before a sweep reads it and at the end: "added" holds the
-- reservations made in this batch and still held (id -> expiresAt), "removed" the ids closed in
-- this batch that are in the set; inX[id] says an id is in the set.
local added, removed, inX = {}, {}, {}
-- Records of ids not known yet: held ones from the held hash, then closed ones from the latest two
-- generations.
local function load(ids)
  local missing = {}
  for _, id in ipairs(ids) do
    if rec[id] == nil then missing[#missing + 1] = id end
  end
  if #missing == 0 then return end
  local v = chunked('HMGET', hkey, missing)
  local closedIds = {}
  for i, id in ipairs(missing) do
    if v[i] then
      rec[id], stored[id], inX[id] = decode(v[i]), true, true
    elseif rec[id] == nil then
      rec[id] = false
      closedIds[#closedIds + 1] = id
    end
  end
  -- Not held: closed in this generation or the one before, or unknown. A record is only ever
  -- rewritten from expired to committed (a late commit), so a committed or released copy wins
  -- over an expired one whichever generation holds it, even if the server's clock stepped back.
  if #closedIds == 0 then return end
  local g = generation()
  local newer = chunked('HMGET', cbase .. g, closedIds)
  local older = chunked('HMGET', cbase .. (g - 1), closedIds)
  for i, id in ipairs(closedIds) do
    local a, b = newer[i], older[i]
    if a and b then
      local x, y = decode(a), decode(b)
      if x.st == 4 and y.st ~= 4 then rec[id] = y else rec[id] = x end
    elseif a then
      rec[id] = decode(a)
    elseif b then
      rec[id] = decode(b)
    end
  end
end

local function writeX()
  local args = {}
  for id, at in pairs(added) do
    args[#args + 1] = score(at)
    args[#args + 1] = id
    inX[id] = true
  end
  added = {}
  if #args > 0 then chunked('ZADD', xkey, args) end
  local ids = {}
  for id in pairs(removed) do ids[#ids + 1] = id end
  removed = {}
  if #ids > 0 then chunked('ZREM', xkey, ids) end
end
-- made: ids reserved in this batch, in order; closed: ids closed in this batch, in order.
local made, closed, isClosed = {}, {}, {}
local function close(id)
  if not isClosed[id] then
    isClosed[id] = true
    closed[#closed + 1] = id
  end
  if added[id] then added[id] = nil
  elseif inX[id] then
    removed[id] = true
    inX[id] = nil
  end
end

local function unhold(set, amounts)
  touch(set)
  local kinds, hf = set.kind, set.hf
  for i = 1, set.n do
    local amount = amounts[kinds[i]]
    if amount ~= 0 then value[hf[i]] = value[hf[i]] - amount end
  end
end

-- A lower bound on the earliest expiry of a held reservation (nil: unknown), so that most sweeps
-- cost no call.
local earliest = nil
local NO_IDS = {}

-- The reply: one binary string, its pieces appended in operation order (see the client's decoder).
local reply = {}
local NO_IDS_BLOB = pack('>I4', 0)
-- The ids a sweep expired: their count, then each as a 16-bit length and its bytes.
local function emitIds(ids)
  if #ids == 0 then
    reply[#reply + 1] = NO_IDS_BLOB
    return
  end
  reply[#reply + 1] = pack('>I4', #ids)
  for _, id in ipairs(ids) do reply[#reply + 1] = pack('>I4c0', #id, id) end
end
-- Releases this root's holds with expiresAt <= now, in (expiresAt, id) order; returns their ids.
local function sweep(now)
  if earliest == nil then
    local first = redis.call('ZRANGE', xkey, 0, 0, 'WITHSCORES')
    if #first == 0 then earliest = math.huge else earliest = tonumber(first[2]) end
    for _, at in pairs(added) do
      if at < earliest then earliest = at end
    end
  end
  if now < earliest then return NO_IDS end
  earliest = nil
  writeX()
  local ids = redis.call('ZRANGEBYSCORE', xkey, '-inf', score(now))
  if #ids == 0 then return ids end
  load(ids)
  local expired = {}
  for _, id in ipairs(ids) do
    local x = rec[id]
    inX[id] = nil
    -- Every id in the set has its record; one without (written by something else) is dropped.
    if x and x.st == 1 then
      unhold(setOf(x.set), x.a)
      x.st = 4
      close(id)
      expired[#expired + 1] = id
    end
  end
  redis.call('ZREMRANGEBYSCORE', xkey, '-inf', score(now))
  return expired
end

-- 1 amounts×4 | 0 line (0-based) available | 2 (the id is in use); then the expired ids.
-- "available" is reused by every reserve of the batch: a table costs about a microsecond.
local available = {}
local function reserve(id, now, expiresAt, amounts, minTokens, minUsd, set)
  local expired = sweep(now)
  if rec[id] then
    reply[#reply + 1] = pack('>B', 2)
    return emitIds(expired)
  end
  touch(set)
  local n, kinds, caps, sf, hf = set.n, set.kind, set.cap, set.sf, set.hf
  -- decideAmounts (ledger.ts), line for line; a minimum of -1 means none.
  local final = amounts
  if minTokens < 0 and minUsd < 0 then
    -- Nothing to lower: one pass, the first line the amount does not fit denies.
    for i = 1, n do
      local cap = caps[i]
      if cap then
        local amount = amounts[kinds[i]]
        if amount > 0 then
          local left = cap - value[sf[i]] - value[hf[i]]
          if amount > left then
            reply[#reply + 1] = pack('>Bdd', 0, i - 1, left)
            return emitIds(expired)
          end
        end
      end
    end
  else
    for i = 1, n do
      if caps[i] then available[i] = caps[i] - value[sf[i]] - value[hf[i]] else available[i] = math.huge end
    end
    final = { amounts[1], amounts[2], amounts[3], amounts[4] }
    for kind = 1, 2 do
      local minimum = minTokens
      if kind == 2 then minimum = minUsd end
      if minimum >= 0 then
        local least = math.huge
        for i = 1, n do
          if kinds[i] == kind and caps[i] then least = math.min(least, available[i]) end
        end
        local lowered = math.min(amounts[kind], math.max(0, least))
        if lowered >= minimum then final[kind] = lowered end
      end
    end
    for i = 1, n do
      local amount = final[kinds[i]]
      if amount > 0 and amount > available[i] then
        reply[#reply + 1] = pack('>Bdd', 0, i - 1, available[i])
        return emitIds(expired)
      end
    end
  end
  -- A total past 2^53 - 1 would be rounded: refused (3, the line, the total), as in ledger.ts.
  for i = 1, n do
    local amount = final[kinds[i]]
    if amount ~= 0 then
      local total = value[sf[i]] + value[hf[i]] + amount
      if total > MAX_AMOUNT then
        reply[#reply + 1] = pack('>Bdd', 3, i - 1, total)
        return emitIds(expired)
      end
    end
  end
  for i = 1, n do
    local amount = final[kinds[i]]
    if amount ~= 0 then value[hf[i]] = value[hf[i]] + amount end
  end
  set.used = true
  rec[id] = { st = 1, a = final, set = set.digest }
  made[#made + 1] = id
  added[id] = expiresAt
  if earliest ~= nil and expiresAt < earliest then earliest = expiresAt end
  reply[#reply + 1] = pack('>Bdddd', 1, final[1], final[2], final[3], final[4])
  emitIds(expired)
end

-- crossedThreshold (ledger.ts): whether spent went over 50, 80 or 100% of the cap.
-- Written out: a table literal per call costs more than the three comparisons.
local function crossed(cap, before, after)
  if cap <= 0 or after <= before then return false end
  local mark = cap * 50 / 100
  if before < mark and after >= mark then return true end
  mark = cap * 80 / 100
  if before < mark and after >= mark then return true end
  mark = cap * 100 / 100
  return before < mark and after >= mark
end

local NO_LINES = {}
-- 0 (unknown) | 2 (released) | 1 already late reserved×4 charged×4, the count of capped lines that
-- crossed a threshold and each as account, kind, cap, before, after; then the expired ids.
local function commit(id, now, actual)
  local expired = sweep(now)
  if rec[id] == nil then load({ id }) end
  local x = rec[id]
  if not x or x.st == 3 then
    if x then reply[#reply + 1] = pack('>B', 2) else reply[#reply + 1] = pack('>B', 0) end
    return emitIds(expired)
  end
  local a = x.a
  if x.st == 2 then
    local c = x.c
    reply[#reply + 1] = pack('>BBBddddddddI4', 1, 1, x.late, a[1], a[2], a[3], a[4], c[1], c[2], c[3], c[4], 0)
    return emitIds(expired)
  end
  local late = x.st == 4
  -- resolveActual (ledger.ts): a negative amount means "as reserved".
  local charged = {}
  for kind = 1, 4 do
    if actual[kind] < 0 then charged[kind] = a[kind] else charged[kind] = actual[kind] end
  end
  local set = setOf(x.set)
  touch(set)
  local kinds, caps, sf, hf, low, high = set.kind, set.cap, set.sf, set.hf, set.low, set.high
  -- Refused before any account changes (3, the account, the total): a spent past 2^53 - 1 would
  -- be rounded. Each account appears once in a line set (ledger.ts checkedLines).
  for i = 1, set.n do
    local amount = charged[kinds[i]]
    if amount ~= 0 and value[sf[i]] + amount > MAX_AMOUNT then
      local account = set.account[i]
      reply[#reply + 1] = pack('>BI4c0d', 3, #account, account, value[sf[i]] + amount)
      return emitIds(expired)
    end
  end
  local out = NO_LINES
  -- Line by line, as MemoryLedger does: a line's "before" sees the lines charged before it.
  for i = 1, set.n do
    local kind = kinds[i]
    if not late then
      local held = a[kind]
      if held ~= 0 then value[hf[i]] = value[hf[i]] - held end
    end
    local amount = charged[kind]
    if amount ~= 0 then
      local f = sf[i]
      local before = value[f]
      local after = before + amount
      value[f] = after
      if caps[i] and after >= low[i] and before < high[i] and crossed(caps[i], before, after) then
        if out == NO_LINES then out = {} end
        local account = set.account[i]
        out[#out + 1] = pack('>I4c0Bddd', #account, account, kind, caps[i], before, after)
      end
    end
  end
  x.st, x.c, x.set = 2, charged, nil
  if late then x.late = 1 else x.late = 0 end
  close(id)
  reply[#reply + 1] = pack('>BBBddddddddI4', 1, 0, x.late, a[1], a[2], a[3], a[4], charged[1], charged[2], charged[3], charged[4], #out)
  for _, line in ipairs(out) do reply[#reply + 1] = line end
  emitIds(expired)
end

-- status (0 unknown, else the record's: 2 committed, 3 released, 4 expired) already; then the
-- expired ids.
local function release(id, now)
  local expired = sweep(now)
  if rec[id] == nil then load({ id }) end
  local x = rec[id]
  if not x or x.st ~= 1 then
    if x then reply[#reply + 1] = pack('>BB', x.st, 1) else reply[#reply + 1] = pack('>BB', 0, 0) end
    return emitIds(expired)
  end
  unhold(setOf(x.set), x.a)
  x.st, x.a, x.set = 3, nil, nil
  close(id)
  reply[#reply + 1] = pack('>BB', 3, 0)
  emitIds(expired)
end

-- the count of accounts, spent and held of each; then the expired ids.
local function balances(now, accounts)
  local expired = sweep(now)
  local fields = {}
  for _, account in ipairs(accounts) do
    fields[#fields + 1] = 's:' .. account
    fields[#fields + 1] = 'h:' .. account
  end
  need(fields)
  reply[#reply + 1] = pack('>I4', #accounts)
  for _, f in ipairs(fields) do reply[#reply + 1] = pack('>d', value[f]) end
  emitIds(expired)
end

-- The line sets given with the batch, then the operations, all in the last argument.
local p = 4
local given = {}
for s = 1, tonumber(ARGV[3]) do
  given[s] = sets[ARGV[p]] or parseSet(ARGV[p], ARGV[p + 1])
  p = p + 2
end
local ops = ARGV[p]
-- First the ids of every operation, to read their records at once; each operation's numbers
-- start at at[k].
local codes, at, opIds, ids = {}, {}, {}, {}
local q, k = 1, 0
while q <= #ops do
  k = k + 1
  local code = byte(ops, q)
  codes[k], at[k] = code, q + 1
  if code == 114 then q = q + 73 elseif code == 99 then q = q + 41 else q = q + 9 end
  local id
  id, q = unpackBytes('>I4c0', ops, q)
  opIds[k] = id
  if code ~= 98 then ids[#ids + 1] = id end
end
load(ids)
for i = 1, k do
  local code, h, id = codes[i], at[i], opIds[i]
  if code == 114 then -- r: now, expiresAt, amounts×4, minimum tokens, minimum usdMicros, line set
    local now, expiresAt, t, u, r, c, minT, minU, s = unpackBytes('>ddddddddd', ops, h)
    reserve(id, now, expiresAt, { t, u, r, c }, minT, minU, given[s])
  elseif code == 99 then -- c: now, actual×4
    local now, t, u, r, c = unpackBytes('>ddddd', ops, h)
    commit(id, now, { t, u, r, c })
  elseif code == 108 then -- l: now
    release(id, (unpackBytes('>d', ops, h)))
  else -- b: now; then a JSON array of account names
    balances((unpackBytes('>d', ops, h)), cjson.decode(id))
  end
end

-- Write back: accounts, line sets used, held records, closed records, the expiry set.
local changed = {}
for _, f in ipairs(loadedOrder) do
  local v = value[f]
  if v ~= read[f] then
    changed[#changed + 1] = f
    changed[#changed + 1] = int(v)
  end
end
if #changed > 0 then chunked('HSET', akey, changed) end
local setArgs = {}
for _, set in pairs(given) do
  if set.used then
    setArgs[#setArgs + 1] = set.digest
    setArgs[#setArgs + 1] = set.json
  end
end
if #setArgs > 0 then redis.call('HSET', lkey, unpack(setArgs)) end
local held, gone = {}, {}
for _, id in ipairs(made) do
  local x = rec[id]
  if x.st == 1 then
    held[#held + 1] = id
    held[#held + 1] = encode(x)
  end
end
local done = {}
for _, id in ipairs(closed) do
  done[#done + 1] = id
  done[#done + 1] = encode(rec[id])
  if stored[id] then gone[#gone + 1] = id end
end
if #done > 0 then
  local ckey = cbase .. generation()
  chunked('HSET', ckey, done)
  redis.call('PEXPIRE', ckey, int(genEnds))
end
if #held > 0 then chunked('HSET', hkey, held) end
if #gone > 0 then chunked('HDEL', hkey, gone) end
writeX()
return table.concat(reply)
`;

type Arg = string | Buffer;
type BatchScript = { allowanceBatchBuffer(...keysThenArgs: Arg[]): Promise<Buffer> };

const NONE: readonly string[] = Object.freeze([]);
const NO_LINES: readonly ChargedLine[] = Object.freeze([]);
/** Operations sent in one script call at most; more wait for the next. */
const MAX_BATCH = 32;
/** Kind numbers in the script's line sets are LINE_KINDS' indexes plus one; and back. */
const KIND_OF_NUMBER: readonly LineKind[] = ["tokens", "tokens", "usdMicros", "risk", "requests"];
/** The script's record statuses (release replies). */
const STATUS_OF_NUMBER: readonly ReleaseOutcome["status"][] = [
  "unknown",
  "unknown",
  "committed",
  "released",
  "expired",
];

/** A lines array in the script's form: its JSON and that JSON's digest. */
interface LineSet {
  readonly digest: string;
  readonly json: string;
}

/** Reads the script's binary reply, in order (big-endian, as Lua's struct.pack writes it). */
class ReplyReader {
  #at = 0;
  constructor(readonly buffer: Buffer) {}
  byte(): number {
    return this.buffer.readUInt8(this.#at++);
  }
  double(): number {
    const value = this.buffer.readDoubleBE(this.#at);
    this.#at += 8;
    return value;
  }
  count(): number {
    const value = this.buffer.readUInt32BE(this.#at);
    this.#at += 4;
    return value;
  }
  text(): string {
    const length = this.count();
    if (this.#at + length > this.buffer.length)
      throw new RangeError("the ledger script's reply ended early");
    const text = this.buffer.toString("utf8", this.#at, this.#at + length);
    this.#at += length;
    return text;
  }
  /** The ids a sweep expired, which end every operation's reply. */
  expired(): readonly string[] {
    const n = this.count();
    if (n === 0) return NONE;
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(this.text());
    return ids;
  }
}

interface Waiting {
  /** Reads the operation's part of the reply: its outcome, or the Error to refuse it with. */
  decode(reader: ReplyReader): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** Operations on one root waiting to be sent together. */
interface Batch {
  readonly keys: readonly string[];
  readonly closedBase: string;
  readonly ops: Buffer[];
  readonly sets: Map<LineSet, number>;
  readonly setArgs: string[];
  readonly waiting: Waiting[];
}

export class RedisLedger implements Ledger {
  readonly name = "redis";
  readonly #redis: Redis | Cluster;
  readonly #script: BatchScript;
  readonly #prefix: string;
  readonly #retention: string;
  readonly #closeConnection: boolean;
  readonly #lineSets = new WeakMap<readonly LedgerLine[], LineSet>();
  /** Operations waiting to be sent, by root; sent when the event loop turns, or when full. */
  readonly #batches = new Map<string, Batch>();
  #flushScheduled = false;

  /** The script is registered on `redis` (defineCommand: EVALSHA, loading the script on NOSCRIPT). */
  constructor(redis: Redis | Cluster, options: RedisLedgerOptions = {}) {
    const prefix = options.keyPrefix ?? "allowance:";
    if (typeof prefix !== "string" || /[{}]/.test(prefix))
      throw new TypeError(`"keyPrefix" must not contain { or }, got ${JSON.stringify(prefix)}`);
    const retention = options.retentionMs ?? 86_400_000;
    if (!Number.isSafeInteger(retention) || retention < 1)
      throw new RangeError(`"retentionMs" expected a positive integer, got ${retention}`);
    this.#redis = redis;
    this.#prefix = prefix;
    this.#retention = String(retention);
    this.#closeConnection = options.closeConnection ?? false;
    // ioredis also defines allowanceBatchBuffer, which returns the reply as a Buffer.
    if (!("allowanceBatchBuffer" in redis))
      redis.defineCommand("allowanceBatch", { lua: BATCH, numberOfKeys: 4 });
    this.#script = redis as unknown as BatchScript;
  }

  /** Connects to `url` (`redis://host:port/db`); the ledger owns the connection and closes it on `close()`. */
  static async connect(
    url: string,
    options: Omit<RedisLedgerOptions, "closeConnection"> = {},
  ): Promise<RedisLedger> {
    const redis = new Redis(url, { lazyConnect: true });
    try {
      await redis.connect();
    } catch (error) {
      redis.disconnect();
      throw error;
    }
    return new RedisLedger(redis, { ...options, closeConnection: true });
  }

  reserve(op: ReserveOp): Promise<ReserveOutcome> {
    try {
      checkReserveOp(op);
      const a = op.amounts;
      const header = opBuffer(114, 72, op.id); // r
      header.writeDoubleBE(op.now, 1);
      header.writeDoubleBE(op.expiresAt, 9);
      header.writeDoubleBE(a.tokens, 17);
      header.writeDoubleBE(a.usdMicros, 25);
      header.writeDoubleBE(a.risk, 33);
      header.writeDoubleBE(a.requests, 41);
      // -1 for no minimum.
      header.writeDoubleBE(op.minimums?.tokens ?? -1, 49);
      header.writeDoubleBE(op.minimums?.usdMicros ?? -1, 57);
      const lineSet = this.#lineSetOf(op.lines);
      return this.#submit(
        op.root,
        (batch) => {
          let set = batch.sets.get(lineSet);
          if (set === undefined) {
            set = batch.sets.size + 1;
            batch.sets.set(lineSet, set);
            batch.setArgs.push(lineSet.digest, lineSet.json);
          }
          header.writeDoubleBE(set, 65);
          batch.ops.push(header);
        },
        (reply): ReserveOutcome | Error => {
          const code = reply.byte();
          if (code === 2) {
            reply.expired();
            return new Error(`reservation id ${op.id} is already in use`);
          }
          if (code === 0) {
            const line = reply.double();
            const available = reply.double();
            return { ok: false, line, available, expired: reply.expired() };
          }
          if (code === 3) {
            const line = reply.double();
            const total = reply.double();
            reply.expired();
            return totalTooLarge(op.lines[line]?.account ?? "?", total);
          }
          const amounts = {
            tokens: reply.double(),
            usdMicros: reply.double(),
            risk: reply.double(),
            requests: reply.double(),
          };
          return { ok: true, amounts, expired: reply.expired() };
        },
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  commit(id: string, actual: Amounts, now: number): Promise<CommitOutcome> {
    try {
      checkCommitArgs(id, actual, now);
      const root = rootOfReservation(id);
      if (this.#base(root) === undefined)
        return Promise.resolve({ status: "unknown", expired: NONE });
      const header = opBuffer(99, 40, id); // c
      header.writeDoubleBE(now, 1);
      header.writeDoubleBE(actual.tokens, 9);
      header.writeDoubleBE(actual.usdMicros, 17);
      header.writeDoubleBE(actual.risk, 25);
      header.writeDoubleBE(actual.requests, 33);
      return this.#submit(root, (batch) => batch.ops.push(header), decodeCommit);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  release(id: string, now: number): Promise<ReleaseOutcome> {
    try {
      checkReleaseArgs(id, now);
      const root = rootOfReservation(id);
      if (this.#base(root) === undefined)
        return Promise.resolve({ status: "unknown", already: false, expired: NONE });
      const header = opBuffer(108, 8, id); // l
      header.writeDoubleBE(now, 1);
      return this.#submit(
        root,
        (batch) => batch.ops.push(header),
        (reply): ReleaseOutcome => {
          const status = STATUS_OF_NUMBER[reply.byte()] ?? "unknown";
          const already = reply.byte() === 1;
          return { status, already, expired: reply.expired() };
        },
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async balances(root: string, accounts: readonly string[], now: number): Promise<BalancesOutcome> {
    checkBalancesArgs(root, accounts, now);
    const header = opBuffer(98, 8, JSON.stringify(accounts)); // b
    header.writeDoubleBE(now, 1);
    return this.#submit(
      root,
      (batch) => batch.ops.push(header),
      (reply): BalancesOutcome => {
        const n = reply.count();
        const balances = new Map<string, { spent: number; held: number }>();
        for (let i = 0; i < n; i++) {
          const spent = reply.double();
          balances.set(accounts[i] as string, { spent, held: reply.double() });
        }
        return { balances, expired: reply.expired() };
      },
    );
  }

  async close(): Promise<void> {
    // Operations already asked for are sent before the connection closes.
    const pending = [...this.#batches.keys()].map((root) => this.#flush(root));
    await Promise.allSettled(pending);
    if (this.#closeConnection) await this.#redis.quit();
  }

  /**
   * Queues one operation on `root` (`add` puts it in the batch, `decode` reads its part of the
   * reply). Operations on one root asked for before the event loop next turns go to Redis as one
   * script call, run in the order they were asked for, each exactly as if alone: batching saves
   * Redis the per-call work (script start, reading and writing the root's hashes), which is most
   * of the cost of one operation.
   */
  #submit<T>(
    root: string,
    add: (batch: Batch) => void,
    decode: (reply: ReplyReader) => T | Error,
  ): Promise<T> {
    let batch = this.#batches.get(root);
    if (batch === undefined) {
      const base = this.#base(root) as string;
      batch = {
        keys: [`${base}x`, `${base}a`, `${base}h`, `${base}l`],
        closedBase: `${base}c:`,
        ops: [],
        sets: new Map(),
        setArgs: [],
        waiting: [],
      };
      this.#batches.set(root, batch);
    }
    add(batch);
    const result = new Promise<T>((resolve, reject) =>
      (batch as Batch).waiting.push({
        decode,
        resolve: resolve as (value: unknown) => void,
        reject,
      }),
    );
    if (batch.waiting.length >= MAX_BATCH) void this.#flush(root);
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        for (const pending of [...this.#batches.keys()]) void this.#flush(pending);
      });
    }
    return result;
  }

  async #flush(root: string): Promise<void> {
    const batch = this.#batches.get(root);
    if (batch === undefined) return;
    this.#batches.delete(root);
    let reply: ReplyReader;
    try {
      const ops = batch.ops.length === 1 ? (batch.ops[0] as Buffer) : Buffer.concat(batch.ops);
      reply = new ReplyReader(
        await this.#script.allowanceBatchBuffer(
          ...batch.keys,
          batch.closedBase,
          this.#retention,
          String(batch.sets.size),
          ...batch.setArgs,
          ops,
        ),
      );
    } catch (error) {
      for (const waiting of batch.waiting) waiting.reject(error);
      return;
    }
    // Each operation reads its part of the reply in turn. A reply that cannot be read (not this
    // script's) refuses the operation and every one after it, whose parts can no longer be found.
    let broken: unknown = undefined;
    for (const waiting of batch.waiting) {
      if (broken !== undefined) {
        waiting.reject(broken);
        continue;
      }
      try {
        const outcome = waiting.decode(reply);
        if (outcome instanceof Error) waiting.reject(outcome);
        else waiting.resolve(outcome);
      } catch (error) {
        waiting.reject(error);
        broken = error;
      }
    }
  }

  /** `P{root}:`, or undefined for a root that cannot be a hash tag (no reservation can have it). */
  #base(root: string): string | undefined {
    if (root === "" || root.includes("{") || root.includes("}")) return undefined;
    return `${this.#prefix}{${root}}:`;
  }

  #lineSetOf(lines: readonly LedgerLine[]): LineSet {
    let set = this.#lineSets.get(lines);
    if (set === undefined) {
      const flat: (string | number)[] = [];
      // Checked by checkReserveOp.
      for (const line of lines)
        flat.push(
          line.account,
          LINE_KINDS.indexOf(line.kind) + 1,
          line.cap === null ? -1 : line.cap,
        );
      const json = JSON.stringify(flat);
      set = { digest: createHash("sha256").update(json).digest("base64url"), json };
      this.#lineSets.set(lines, set);
    }
    return set;
  }
}

/**
 * One operation for the script: its letter, room for `numbers` bytes of doubles (written by the
 * caller from offset 1), then `text` as a 32-bit length and its UTF-8 bytes.
 */
function opBuffer(letter: number, numbers: number, text: string): Buffer {
  const length = Buffer.byteLength(text);
  const buffer = Buffer.allocUnsafe(1 + numbers + 4 + length);
  buffer[0] = letter;
  buffer.writeUInt32BE(length, 1 + numbers);
  buffer.write(text, 5 + numbers, "utf8");
  return buffer;
}

function decodeCommit(reply: ReplyReader): CommitOutcome | RangeError {
  const status = reply.byte();
  if (status === 3) {
    const account = reply.text();
    const total = reply.double();
    reply.expired();
    return totalTooLarge(account, total);
  }
  if (status !== 1)
    return { status: status === 2 ? "released" : "unknown", expired: reply.expired() };
  const already = reply.byte() === 1;
  const late = reply.byte() === 1;
  const reserved = {
    tokens: reply.double(),
    usdMicros: reply.double(),
    risk: reply.double(),
    requests: reply.double(),
  };
  const charged = {
    tokens: reply.double(),
    usdMicros: reply.double(),
    risk: reply.double(),
    requests: reply.double(),
  };
  const n = reply.count();
  let lines = NO_LINES;
  if (n > 0) {
    const crossed: ChargedLine[] = [];
    for (let i = 0; i < n; i++) {
      const account = reply.text();
      const kind = KIND_OF_NUMBER[reply.byte()] ?? "tokens";
      const cap = reply.double();
      const before = reply.double();
      crossed.push({ account, kind, cap, before, after: reply.double() });
    }
    lines = crossed;
  }
  return { status: "committed", already, late, reserved, charged, lines, expired: reply.expired() };
}
