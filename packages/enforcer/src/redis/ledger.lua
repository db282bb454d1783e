-- The Redis ledger's script (spec/enforcement.md §3, §8): one call runs a batch of operations on
-- one root, each exactly as if it ran alone, in order. It restates the rule of rule.ts (decide,
-- charge, sweep, thresholds) in Lua; the ledger vectors (spec/vectors/ledger) run on it directly.
--
-- The numbers of the wire protocol are named here (OP_RESERVE, RESERVE_NUMBERS, RESERVE_HELD,
-- STATUS_HELD, KIND_TOKENS, …) and defined in wire.ts; scripts/embed-lua.ts writes each value in
-- place of its name and the whole into ledger-lua.ts.
--
-- KEYS: the expiry set, the accounts hash, the held records hash, the line sets hash.
-- ARGV: the closed-record key base `P{R}:c:`, retention ms, the largest clock skew a reserve's
-- caller may have (ms), the client's epoch ("k:<epoch>" when it knows the root's, else
-- "n:<a new one>"), the number of line sets given, each as its digest and JSON, then every
-- operation in one binary string (wire.ts).
--
-- Time (spec/enforcement.md §3.8): an operation runs at the time it gives (tests and vectors), or,
-- given -1, at the server's TIME, read once per call: expiry and rate-window buckets follow one
-- clock whichever client asks.
-- Returns one binary string: REPLY_OK and the root's epoch, then each operation's reply in turn
-- (see each function); or REPLY_LOST and why, when the root's state was lost (below). Every
-- redis.call, argument, string and table costs about a microsecond in Redis's Lua, so the script
-- reads each hash once per batch, writes it once at its end, and carries numbers as doubles,
-- never as text, both ways.
-- Library functions, taken by each call (begin): a function library is loaded without them.
local pack, unpackBytes, byte, sub
-- The call's keys and arguments, and the keys of the receipt head and of the window buckets
-- (begin sets them).
local xkey, akey, hkey, lkey, cbase, retention, maxSkew, rkey, wkey

-- Each operation's numbers: how many, and their struct format.
local NUMBERS = {
  [OP_RESERVE] = RESERVE_NUMBERS,
  [OP_COMMIT] = COMMIT_NUMBERS,
  [OP_RELEASE] = RELEASE_NUMBERS,
  [OP_BALANCES] = BALANCES_NUMBERS,
  [OP_SETTLE] = SETTLE_NUMBERS,
  [OP_EXTEND] = EXTEND_NUMBERS,
}
local formats
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
local value, read, loadedOrder
-- The line sets whose fields (and debt fields) this call has loaded, and those it held on.
local loadedSets, debtLoadedSets, usedSets
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
  if not loadedSets[set] then
    need(set.fields)
    loadedSets[set] = true
  end
end

-- The settled debt of a line set's accounts (field d:<account>), loaded only by the operations that
-- read it (a reserve with debt limits, a settle): most reserves never do.
local function touchDebt(set)
  if not debtLoadedSets[set] then
    need(set.df)
    debtLoadedSets[set] = true
  end
end

-- Line sets by digest: n lines, each with account, kind (KIND_*), cap (number, or false), and its
-- spent and held fields. The JSON form is [account, kind, cap (-1 = none), …, meta]: the last
-- element (absent in layout 2) carries each line's link and field for the client, and the script
-- only hands the JSON back. A digest is the SHA-256 of its JSON, so a parsed set stays right for
-- as long as it is kept: the function library (scripts/ledger-lua.ts) keeps up to MAX_SETS across
-- calls; the script run by EVAL parses its sets anew on each call.
local MAX_SETS = 1000
local sets, setCount = {}, 0
local function parseSet(digest, json)
  if setCount >= MAX_SETS then sets, setCount = {}, 0 end
  local flat = cjson.decode(json)
  local set = { digest = digest, json = json, n = math.floor(#flat / 3), account = {}, kind = {}, cap = {}, sf = {}, hf = {}, df = {}, fields = {}, low = {}, high = {} }
  -- After the link meta, a set with rate windows' lines has each line's window in ms (0: none).
  local windows = flat[3 * set.n + 2]
  if type(windows) == 'table' then
    set.win = {}
    for i = 1, set.n do
      if windows[i] > 0 then set.win[i] = windows[i] else set.win[i] = false end
    end
  end
  for i = 1, set.n do
    local account, cap = flat[3 * i - 2], flat[3 * i]
    set.account[i], set.kind[i] = account, flat[3 * i - 1]
    set.sf[i], set.hf[i], set.df[i] = 's:' .. account, 'h:' .. account, 'd:' .. account
    set.fields[2 * i - 1], set.fields[2 * i] = set.sf[i], set.hf[i]
    if cap >= 0 then
      -- The lowest and highest threshold marks: a commit can cross one only if its spent ends at
      -- or above the lowest and started below the highest.
      set.cap[i], set.low[i], set.high[i] = cap, cap * 50 / 100, cap * 100 / 100
    else
      set.cap[i] = false
    end
  end
  -- The link meta (layout 3 on): the JSON of each line's [linkIndex, linkId, field]; receipts
  -- name the link ids from it (linksOf).
  if type(flat[3 * set.n + 1]) == 'string' then set.meta = flat[3 * set.n + 1] end
  sets[digest] = set
  setCount = setCount + 1
  return set
end
local function setOf(digest)
  local set = sets[digest]
  if set then return set end
  local json = redis.call('HGET', lkey, digest)
  if not json then error('allowance: line set ' .. digest .. ' is missing from ' .. lkey) end
  return parseSet(digest, json)
end
-- rule.ts accountKey: a set's lines at time "at", where a window's line is its account at the
-- bucket floor(at / window), "<account>@<bucket>"; a set without windows is itself. The bound copy
-- shares the set's lines, with its own fields, loaded on their own; bound copies last one call.
-- Each window's account it binds is noted in "windowed" (name, then its bucket's end), for
-- retention (pruneBuckets).
local bounds, windowed
local function bind(set, at)
  if not set.win then return set end
  local byKey = bounds[set]
  if not byKey then
    byKey = {}
    bounds[set] = byKey
  end
  local buckets = {}
  for i = 1, set.n do
    if set.win[i] then buckets[#buckets + 1] = int(math.floor(at / set.win[i])) end
  end
  local key = table.concat(buckets, ',')
  local bound = byKey[key]
  if bound then return bound end
  bound = { base = set, digest = set.digest, json = set.json, n = set.n, account = set.account, kind = set.kind, cap = set.cap, low = set.low, high = set.high, sf = {}, hf = {}, df = {}, fields = {} }
  for i = 1, set.n do
    local account = set.account[i]
    if set.win[i] then
      local bucket = math.floor(at / set.win[i])
      account = account .. '@' .. int(bucket)
      windowed[#windowed + 1] = account
      windowed[#windowed + 1] = (bucket + 1) * set.win[i]
    end
    bound.sf[i], bound.hf[i], bound.df[i] = 's:' .. account, 'h:' .. account, 'd:' .. account
    bound.fields[2 * i - 1], bound.fields[2 * i] = bound.sf[i], bound.hf[i]
  end
  byKey[key] = bound
  return bound
end

-- A time or bound as stored (-1: none).
local function orNil(v) if v >= 0 then return v end return nil end

-- Reservation records, binary, big-endian:
--   held, expired: status (byte), amounts (4 doubles), the line set's digest, then the time of
--                  its reserve, the hold's expiry and its bound (3 doubles, -1: none; layout 6),
--                  or the time of its reserve alone (layout 4), or nothing (layout 3)
--   committed:     status, late (byte), reserved (4 doubles), charged (4 doubles)
--   released:      status
-- Doubles hold every safe integer exactly. A record that carries more — its reserve's fingerprint
-- (spec/enforcement.md §3.10), the lines a commit listed (§7.2) — has the full form instead
-- (layout 5): status + RECORD_FULL, amounts (4 doubles), the reserve's
-- time, the hold's expiry and its bound (doubles, -1: none), the line set's digest and the
-- fingerprint (each a 32-bit length and its bytes, empty: none); committed, then late (byte),
-- charged (4 doubles), the count of lines its commit listed, each as index, before and after (3
-- doubles), and its receipt's entry and the one before (each a 32-bit length and its bytes).
local function decodeFull(s)
  local st = byte(s, 1) - RECORD_FULL
  local t, u, r, q, at, e, na, digest, fp, p = unpackBytes('>dddddddI4c0I4c0', s, 2)
  if #digest == 0 then digest = nil end
  if #fp == 0 then fp = nil end
  -- Built with every field it may have (decode says why).
  local x = { st = st, a = { t, u, r, q }, at = orNil(at), e = orNil(e), na = orNil(na), set = digest, fp = fp, late = nil, c = nil, out = nil, rc = nil }
  if st == STATUS_COMMITTED then
    local late, ct, cu, cr, cq, n
    late, ct, cu, cr, cq, n, p = unpackBytes('>BddddI4', s, p)
    x.late, x.c = late, { ct, cu, cr, cq }
    if n > 0 then
      x.out = {}
      for i = 1, n do
        x.out[i] = sub(s, p, p + 23)
        p = p + 24
      end
    end
    local entry, prev = unpackBytes('>I4c0I4c0', s, p)
    if #entry > 0 then x.rc = { entry = entry, prev = prev } end
  end
  return x
end
local function encodeFull(x)
  local a, digest, fp = x.a, x.set or '', x.fp or ''
  local s = pack('>BdddddddI4c0I4c0', x.st + RECORD_FULL, a[1], a[2], a[3], a[4], x.at or -1, x.e or -1, x.na or -1, #digest, digest, #fp, fp)
  if x.st ~= STATUS_COMMITTED then return s end
  local c, out, rc = x.c, x.out or {}, x.rc or { entry = '', prev = '' }
  return s .. pack('>BddddI4', x.late, c[1], c[2], c[3], c[4], #out) .. table.concat(out) .. pack('>I4c0I4c0', #rc.entry, rc.entry, #rc.prev, rc.prev)
end
-- A held or expired record's length before its times, and the formats that read it whole.
local HELD_BASE = 33 + DIGEST_LENGTH
local HELD_TIMES = '>ddddc' .. DIGEST_LENGTH .. 'ddd'
local HELD_AT = '>ddddc' .. DIGEST_LENGTH .. 'd'
local function decode(s)
  local st = byte(s, 1)
  if st > RECORD_FULL then return decodeFull(s) end
  if st == STATUS_HELD or st == STATUS_EXPIRED then
    -- One unpack and one table, built with every field it may have: a field added later would
    -- make Lua grow the table, which costs more than the rest of the decode.
    local n = #s
    if n == HELD_BASE + 24 then
      local t, u, r, q, digest, at, e, na = unpackBytes(HELD_TIMES, s, 2)
      return { st = st, a = { t, u, r, q }, set = digest, at = orNil(at), e = orNil(e), na = orNil(na) }
    end
    -- Layout 4 (the time of its reserve, for its windows' buckets) and layout 3 (none).
    local t, u, r, q, digest, at = nil, nil, nil, nil, nil, nil
    if n >= HELD_BASE + 8 then
      t, u, r, q, digest, at = unpackBytes(HELD_AT, s, 2)
    else
      t, u, r, q = unpackBytes('>dddd', s, 2)
      digest = sub(s, 34, HELD_BASE)
    end
    return { st = st, a = { t, u, r, q }, set = digest, at = at, e = nil, na = nil }
  elseif st == STATUS_COMMITTED then
    local late, t, u, r, q, ct, cu, cr, cq = unpackBytes('>Bdddddddd', s, 2)
    local x = { st = st, late = late, a = { t, u, r, q }, c = { ct, cu, cr, cq } }
    -- A receipted commit's entry and the one before (empty: none), after the 66 bytes above.
    if #s > 66 then
      local entry, prev = unpackBytes('>I4c0I4c0', s, 67)
      x.rc = { entry = entry, prev = prev }
    end
    return x
  end
  return { st = st }
end
local function encode(x)
  -- The full form only where it carries something: most records stay small.
  if x.fp or x.out then return encodeFull(x) end
  local a = x.a
  if x.st == STATUS_HELD or x.st == STATUS_EXPIRED then
    if x.e or x.na then
      return pack('>Bddddc0ddd', x.st, a[1], a[2], a[3], a[4], x.set, x.at or -1, x.e or -1, x.na or -1)
    end
    if x.at then return pack('>Bddddc0d', x.st, a[1], a[2], a[3], a[4], x.set, x.at) end
    return pack('>Bddddc0', x.st, a[1], a[2], a[3], a[4], x.set)
  end
  if x.st == STATUS_COMMITTED then
    local c = x.c
    local s = pack('>BBdddddddd', x.st, x.late, a[1], a[2], a[3], a[4], c[1], c[2], c[3], c[4])
    if x.rc then s = s .. pack('>I4c0I4c0', #x.rc.entry, x.rc.entry, #x.rc.prev, x.rc.prev) end
    return s
  end
  return pack('>B', x.st)
end

-- Closed records live in one hash per generation of "retention" ms of the server's clock,
-- P{R}:c:<n>, which expires when the generation after it ends: a record is kept at least
-- "retention" ms after it closed, at most twice that. The server's clock, read once per batch,
-- so that clients whose clocks differ agree on the generation.
local serverMs
local function serverTime()
  if serverMs == nil then
    local t = redis.call('TIME')
    -- Whole milliseconds, as Date.now gives the other ledgers: a time then goes to ZADD and
    -- ZRANGEBYSCORE as a plain number, never through string.format.
    serverMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return serverMs
end
-- An operation's time: the one it gives, or (-1) the server's.
local latest
local function timeOf(given)
  local t = given
  if t < 0 then t = serverTime() end
  if latest == nil or t > latest then latest = t end
  return t
end
local gen, genEnds
local function generation()
  if gen == nil then
    local ms = math.floor(serverTime())
    gen = math.floor(ms / retention)
    genEnds = (gen + 2) * retention - ms
  end
  return gen
end

-- rec[id]: the record (false: no such reservation), read at most once per batch. stored[id]: its
-- record is in the held hash and its id in the expiry set as the batch starts (it was held).
local rec, stored
-- Changes to the expiry set, written before a sweep reads it and at the end: "added" holds the
-- reservations made in this batch and still held (id -> expiresAt), "removed" the ids closed in
-- this batch that are in the set; inX[id] says an id is in the set.
local added, removed, inX
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
      if x.st == STATUS_EXPIRED and y.st ~= STATUS_EXPIRED then rec[id] = y else rec[id] = x end
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
local made, closed, isClosed
local function close(id)
  if not isClosed[id] then
    isClosed[id] = true
    closed[#closed + 1] = id
  end
  -- A hold made in this batch is only in "added"; an extended one is in the set as well.
  added[id] = nil
  if inX[id] then
    removed[id] = true
    inX[id] = nil
  end
end

-- rule.ts unhold: every line's held shrinks by its kind's amount.
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
local earliest
local NO_IDS = {}

-- The reply: one binary string, its pieces appended in operation order (wire.ts decoders).
local reply
local NO_IDS_BLOB = '\0\0\0\0'
-- The ids a sweep expired: their count, then each as a 32-bit length and its bytes.
local function emitIds(ids)
  if #ids == 0 then
    reply[#reply + 1] = NO_IDS_BLOB
    return
  end
  reply[#reply + 1] = pack('>I4', #ids)
  for _, id in ipairs(ids) do reply[#reply + 1] = pack('>I4c0', #id, id) end
end

-- rule.ts due/isDue/expiresBefore: releases this root's holds with expiresAt <= now, in
-- (expiresAt, id) order (the sorted set's order: ids of equal score by their bytes); returns
-- their ids.
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
    if x and x.st == STATUS_HELD then
      unhold(bind(setOf(x.set), x.at), x.a)
      x.st = STATUS_EXPIRED
      close(id)
      expired[#expired + 1] = id
    end
  end
  redis.call('ZREMRANGEBYSCORE', xkey, '-inf', score(now))
  return expired
end

-- rule.ts decide, step 3: tokens and micro-dollars lowered to the least available on their kind's
-- capped lines, where the minimum (-1: none) allows.
local function lowered(set, amounts, minTokens, minUsd)
  local n, kinds, caps, sf, hf = set.n, set.kind, set.cap, set.sf, set.hf
  local final = { amounts[1], amounts[2], amounts[3], amounts[4] }
  for kind = KIND_TOKENS, KIND_USD_MICROS do
    local minimum = minTokens
    if kind == KIND_USD_MICROS then minimum = minUsd end
    if minimum >= 0 then
      local least = math.huge
      for i = 1, n do
        if kinds[i] == kind and caps[i] then least = math.min(least, caps[i] - value[sf[i]] - value[hf[i]]) end
      end
      local amount = math.min(amounts[kind], math.max(0, least))
      if amount >= minimum then final[kind] = amount end
    end
  end
  return final
end

-- rule.ts decide, step 4 and the total check: nil when the amounts fit; else the reply code, the
-- 0-based line and its available amount (denied) or the total (too large).
local function refusal(set, final)
  local n, kinds, caps, sf, hf = set.n, set.kind, set.cap, set.sf, set.hf
  local tooLarge = nil
  for i = 1, n do
    local amount = final[kinds[i]]
    if amount > 0 then
      local cap = caps[i]
      if cap then
        local left = cap - value[sf[i]] - value[hf[i]]
        if amount > left then return RESERVE_DENIED, i - 1, left end
      elseif tooLarge == nil and value[sf[i]] + value[hf[i]] + amount > MAX_AMOUNT then
        tooLarge = i
      end
    end
  end
  if tooLarge then
    return RESERVE_TOO_LARGE, tooLarge - 1, value[sf[tooLarge]] + value[hf[tooLarge]] + final[kinds[tooLarge]]
  end
  return nil
end

-- rule.ts denyIfBlocked: nil when no capped line's outstanding debt (spent - cap - settled) is past
-- its kind's limit (-1: none); else the first such line (0-based), its available amount, its debt.
local function blocked(set, limits)
  local n, kinds, caps, sf, hf, df = set.n, set.kind, set.cap, set.sf, set.hf, set.df
  for i = 1, n do
    local cap, limit = caps[i], limits[kinds[i]]
    if cap and limit >= 0 then
      local debt = value[sf[i]] - cap - value[df[i]]
      if debt > limit then return i - 1, cap - value[sf[i]] - value[hf[i]], debt end
    end
  end
  return nil
end

-- rule.ts holdAnyway's total check: nil when the amounts asked can be held on every line (capped
-- or not) without passing 2^53 - 1; else the 0-based line and the total.
local function tooLargeAnyway(set, amounts)
  local n, kinds, sf, hf = set.n, set.kind, set.sf, set.hf
  for i = 1, n do
    local amount = amounts[kinds[i]]
    if amount > 0 and value[sf[i]] + value[hf[i]] + amount > MAX_AMOUNT then
      return i - 1, value[sf[i]] + value[hf[i]] + amount
    end
  end
  return nil
end

-- RESERVE_HELD amounts×4 | RESERVE_DENIED line available debt | RESERVE_TOO_LARGE line total |
-- RESERVE_IN_USE | (shadow) RESERVE_SHADOW_DENIED amounts×4 line available debt |
-- RESERVE_SHADOW_LOWERED amounts×4 lowered×4 | RESERVE_SKEWED; then the expired ids (the caller
-- adds the reserve's time). A debt of -1: not the overage policy's denial. rule.ts clockSkewOf
-- first: a caller whose clock (clientNow, -1: not given) is more than maxSkew from the ledger's is
-- refused before anything changes.
-- A reserve of an id already in use (rule.ts answerRepeatedReserve): RESERVE_REPEATED with the
-- first reserve's amounts×4 and its hold's expiry when its fingerprint is this one's, else
-- refused (RESERVE_OTHER_REQUEST when both have one, RESERVE_IN_USE otherwise).
local function repeated(x, fp)
  if fp and x.fp == fp then
    local a = x.a
    return pack('>Bddddd', RESERVE_REPEATED, a[1], a[2], a[3], a[4], x.e)
  elseif fp and x.fp then
    return pack('>B', RESERVE_OTHER_REQUEST)
  end
  return pack('>B', RESERVE_IN_USE)
end

local function reserve(id, now, ttlMs, amounts, minTokens, minUsd, given, shadow, clientNow, limits, fp, notAfter)
  if clientNow >= 0 and math.abs(clientNow - now) > maxSkew then
    reply[#reply + 1] = pack('>B', RESERVE_SKEWED)
    return emitIds(NO_IDS)
  end
  local expired = sweep(now)
  local set = bind(given, now)
  if rec[id] then
    reply[#reply + 1] = repeated(rec[id], fp)
    return emitIds(expired)
  end
  touch(set)
  local final = amounts
  local code, line, number, debt = nil, nil, nil, -1
  if limits then
    touchDebt(set)
    line, number, debt = blocked(set, limits)
    if line then code = RESERVE_DENIED else debt = -1 end
  end
  if not code then
    if minTokens >= 0 or minUsd >= 0 then final = lowered(set, amounts, minTokens, minUsd) end
    code, line, number = refusal(set, final)
  end
  -- rule.ts holdAnyway: a shadow reserve holds the amounts asked, whatever the rule decided.
  local head = RESERVE_HELD
  if shadow and code ~= RESERVE_TOO_LARGE then
    local wouldBe = nil
    if code == RESERVE_DENIED then
      wouldBe = pack('>Bddddddd', RESERVE_SHADOW_DENIED, amounts[1], amounts[2], amounts[3], amounts[4], line, number, debt)
    elseif final[1] ~= amounts[1] or final[2] ~= amounts[2] or final[3] ~= amounts[3] or final[4] ~= amounts[4] then
      wouldBe = pack('>Bdddddddd', RESERVE_SHADOW_LOWERED, amounts[1], amounts[2], amounts[3], amounts[4], final[1], final[2], final[3], final[4])
    end
    if wouldBe then
      local bad, total = tooLargeAnyway(set, amounts)
      if bad then
        reply[#reply + 1] = pack('>Bdd', RESERVE_TOO_LARGE, bad, total)
        return emitIds(expired)
      end
      code, final, head = nil, amounts, wouldBe
    end
  end
  if code == RESERVE_DENIED then
    reply[#reply + 1] = pack('>Bddd', code, line, number, debt)
    return emitIds(expired)
  elseif code then
    reply[#reply + 1] = pack('>Bdd', code, line, number)
    return emitIds(expired)
  end
  -- rule.ts hold.
  local kinds, hf = set.kind, set.hf
  for i = 1, set.n do
    local amount = final[kinds[i]]
    if amount ~= 0 then value[hf[i]] = value[hf[i]] + amount end
  end
  usedSets[given] = true
  -- rule.ts holdEnd: never past the end of the chain (notAfter, -1: none).
  local expiresAt = now + ttlMs
  if notAfter >= 0 and notAfter < expiresAt then expiresAt = notAfter end
  rec[id] = { st = STATUS_HELD, a = final, set = set.digest, at = now, e = expiresAt, fp = fp }
  if notAfter >= 0 then rec[id].na = notAfter end
  made[#made + 1] = id
  added[id] = expiresAt
  if earliest ~= nil and expiresAt < earliest then earliest = expiresAt end
  if head == RESERVE_HELD then
    reply[#reply + 1] = pack('>Bdddd', RESERVE_HELD, final[1], final[2], final[3], final[4])
  else
    reply[#reply + 1] = head
  end
  emitIds(expired)
end

-- rule.ts thresholdsCrossed, as a yes or no: whether spent went over 50, 80 or 100% of the cap.
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

-- Receipts (spec/receipts.md §2). The root's receipt head, P{R}:r (from the closed-record base,
-- so in the same slot): the sequence number and entry of its latest receipted commit, read at
-- most once per call and written at each receipted commit. An entry travels and is kept as
-- seq, atMs, charged×4 (doubles), late (byte), the reservation id and the link ids (each a 32-bit
-- length and its bytes, after a 32-bit count for the links); its root is the script's.
local headSeq, headEntry
local function head()
  if headSeq == nil then
    local blob = redis.call('GET', rkey)
    if blob then
      headSeq = unpackBytes('>d', blob)
      headEntry = sub(blob, 9)
    else
      headSeq, headEntry = 0, ''
    end
  end
  return headSeq, headEntry
end
-- rule.ts nextReceipt's link ids: each line's link id, each once, in line order, from the set's
-- link meta; a set stored by layout 2 has none, and its accounts start with "<link id>|".
local function linksOf(set)
  local base = set.base or set
  if base.links then return base.links end
  local links, seen = {}, {}
  local add = function(id)
    if not seen[id] then
      seen[id] = true
      links[#links + 1] = id
    end
  end
  if base.meta then
    for _, m in ipairs(cjson.decode(base.meta)) do add(m[2]) end
  else
    for i = 1, base.n do add(string.match(base.account[i], '^(.-)|') or base.account[i]) end
  end
  base.links = links
  return links
end
-- rule.ts nextReceipt: the root's next sequence number, this commit's entry, and the one before.
local function nextReceipt(id, set, charged, late, now)
  local seq, prev = head()
  seq = seq + 1
  local parts = { pack('>ddddddB', seq, math.floor(now), charged[1], charged[2], charged[3], charged[4], late), pack('>I4c0', #id, id) }
  local links = linksOf(set)
  parts[#parts + 1] = pack('>I4', #links)
  for _, l in ipairs(links) do parts[#parts + 1] = pack('>I4c0', #l, l) end
  local entry = table.concat(parts)
  headSeq, headEntry = seq, entry
  redis.call('SET', rkey, pack('>d', seq) .. entry)
  return { entry = entry, prev = prev }
end
-- A commit's receipt in its reply: 0, or 1 then the entry and the one before (empty: none).
local function emitReceipt(rc)
  if rc then
    reply[#reply + 1] = pack('>BI4c0I4c0', 1, #rc.entry, rc.entry, #rc.prev, rc.prev)
  else
    reply[#reply + 1] = pack('>B', 0)
  end
end

local NO_OUT = {}
-- rule.ts charge: the reply of a charged commit, or nil after the reply of a refused one (a
-- spent past 2^53 - 1 would be rounded: COMMIT_TOO_LARGE, the account, the total, before any
-- account changes; each account appears once in a line set, ledger.ts checkedLines).
local function charge(x, actual, late)
  local a = x.a
  -- A negative amount means "as reserved".
  local charged = {}
  for kind = 1, 4 do
    if actual[kind] < 0 then charged[kind] = a[kind] else charged[kind] = actual[kind] end
  end
  local set = bind(setOf(x.set), x.at)
  touch(set)
  local kinds, caps, sf, hf, low, high = set.kind, set.cap, set.sf, set.hf, set.low, set.high
  for i = 1, set.n do
    local amount = charged[kinds[i]]
    if amount ~= 0 and value[sf[i]] + amount > MAX_AMOUNT then
      local account = set.account[i]
      reply[#reply + 1] = pack('>BI4c0d', COMMIT_TOO_LARGE, #account, account, value[sf[i]] + amount)
      return nil
    end
  end
  local out = NO_OUT
  -- Line by line: a line's "before" sees the lines charged before it.
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
        if out == NO_OUT then out = {} end
        out[#out + 1] = pack('>ddd', i - 1, before, after)
      end
    end
  end
  return charged, out, set
end

-- COMMIT_UNKNOWN | COMMIT_RELEASED | COMMIT_TOO_LARGE account total | COMMIT_DONE already late
-- reserved×4 charged×4, the count of capped lines that crossed a threshold and, if any, the line
-- set's JSON and each line as index, before, after; then the expired ids.
local function commit(id, now, actual, receipt)
  local expired = sweep(now)
  if rec[id] == nil then load({ id }) end
  local x = rec[id]
  if not x or x.st == STATUS_RELEASED then
    if x then reply[#reply + 1] = pack('>B', COMMIT_RELEASED) else reply[#reply + 1] = pack('>B', COMMIT_UNKNOWN) end
    return emitIds(expired)
  end
  local a = x.a
  if x.st == STATUS_COMMITTED then
    -- The first commit's outcome, the lines it listed included (spec/enforcement.md §7.2).
    local c, out = x.c, x.out or NO_OUT
    reply[#reply + 1] = pack('>BBBddddddddI4', COMMIT_DONE, 1, x.late, a[1], a[2], a[3], a[4], c[1], c[2], c[3], c[4], #out)
    if #out > 0 then
      local json = setOf(x.set).json
      reply[#reply + 1] = pack('>I4c0', #json, json)
      for _, line in ipairs(out) do reply[#reply + 1] = line end
    end
    emitReceipt(x.rc)
    return emitIds(expired)
  end
  local late = x.st == STATUS_EXPIRED
  local charged, out, set = charge(x, actual, late)
  if not charged then return emitIds(expired) end
  x.st, x.c, x.na = STATUS_COMMITTED, charged, nil
  -- Kept with the lines it listed, for a repeated commit; else the record needs no line set.
  if #out > 0 then x.out = out else x.set = nil end
  if late then x.late = 1 else x.late = 0 end
  if receipt then x.rc = nextReceipt(id, set, charged, x.late, now) end
  close(id)
  reply[#reply + 1] = pack('>BBBddddddddI4', COMMIT_DONE, 0, x.late, a[1], a[2], a[3], a[4], charged[1], charged[2], charged[3], charged[4], #out)
  if #out > 0 then
    reply[#reply + 1] = pack('>I4c0', #set.json, set.json)
    for _, line in ipairs(out) do reply[#reply + 1] = line end
  end
  emitReceipt(x.rc)
  emitIds(expired)
end

-- status (STATUS_UNKNOWN, else the record's: STATUS_COMMITTED, STATUS_RELEASED, STATUS_EXPIRED)
-- already; then the expired ids.
local function release(id, now)
  local expired = sweep(now)
  if rec[id] == nil then load({ id }) end
  local x = rec[id]
  if not x or x.st ~= STATUS_HELD then
    if x then reply[#reply + 1] = pack('>BB', x.st, 1) else reply[#reply + 1] = pack('>BB', STATUS_UNKNOWN, 0) end
    return emitIds(expired)
  end
  unhold(bind(setOf(x.set), x.at), x.a)
  x.st, x.set, x.na = STATUS_RELEASED, nil, nil
  -- A fingerprinted reservation keeps what a repeated reserve answers (§3.10).
  if not x.fp then x.a = nil end
  close(id)
  reply[#reply + 1] = pack('>BB', STATUS_RELEASED, 0)
  emitIds(expired)
end

-- rule.ts extendedExpiry: STATUS_HELD and the hold's expiry now, moved to now + ttlMs but never
-- past its bound (na) nor earlier than it was; else the status (STATUS_UNKNOWN, or the record's),
-- unchanged; then the expired ids. The sweep runs first: a hold due now has expired.
local rewritten, isRewritten
local function extend(id, now, ttlMs)
  local expired = sweep(now)
  if rec[id] == nil then load({ id }) end
  local x = rec[id]
  if not x or x.st ~= STATUS_HELD then
    if x then reply[#reply + 1] = pack('>B', x.st) else reply[#reply + 1] = pack('>B', STATUS_UNKNOWN) end
    return emitIds(expired)
  end
  -- The expiry set holds every held reservation's expiry; a record, only a full one's.
  local current = added[id] or x.e
  if current == nil then current = tonumber(redis.call('ZSCORE', xkey, id)) or -1 end
  local target = now + ttlMs
  if x.na and x.na < target then target = x.na end
  if target > current then
    current = target
    x.e, added[id] = target, target
    if stored[id] and not isRewritten[id] then
      isRewritten[id] = true
      rewritten[#rewritten + 1] = id
    end
  end
  reply[#reply + 1] = pack('>Bd', STATUS_HELD, current)
  emitIds(expired)
end

-- rule.ts settleDebt: the count of capped lines whose outstanding debt was settled, each as its
-- 0-based index, the amount and its spent; then the expired ids. A window's line is its bucket at
-- "now".
local function settle(now, given)
  local expired = sweep(now)
  local set = bind(given, now)
  touch(set)
  touchDebt(set)
  local out = {}
  local caps, sf, df = set.cap, set.sf, set.df
  for i = 1, set.n do
    local cap = caps[i]
    if cap then
      local debt = value[sf[i]] - cap - value[df[i]]
      if debt > 0 then
        value[df[i]] = value[df[i]] + debt
        out[#out + 1] = pack('>ddd', i - 1, debt, value[sf[i]])
      end
    end
  end
  reply[#reply + 1] = pack('>I4', #out)
  for _, part in ipairs(out) do reply[#reply + 1] = part end
  emitIds(expired)
end

-- the count of accounts, spent, held and settled of each; then the expired ids (the caller adds
-- the time). An account is its name, or a rate window's [name, window ms]: its bucket at "now" is
-- read.
local function balances(now, accounts)
  local expired = sweep(now)
  local fields = {}
  for _, account in ipairs(accounts) do
    if type(account) == 'table' then
      account = account[1] .. '@' .. int(math.floor(now / account[2]))
    end
    fields[#fields + 1] = 's:' .. account
    fields[#fields + 1] = 'h:' .. account
    fields[#fields + 1] = 'd:' .. account
  end
  need(fields)
  reply[#reply + 1] = pack('>I4', #accounts)
  for _, f in ipairs(fields) do reply[#reply + 1] = pack('>d', value[f]) end
  emitIds(expired)
end

-- Retention of rate windows' buckets (spec/enforcement.md §3.5, rule.ts forgetBefore): P{R}:w
-- holds every window's account a call bound, by its bucket's end. A bucket account that ended at
-- least "retention" ms before the call's latest time and holds nothing is forgotten (its spent,
-- held and debt fields), PRUNE_BATCH a call; one still holding is looked at again a retention
-- later. An account this call touched is left for a later call.
local PRUNE_BATCH = 100
local function pruneBuckets()
  local args = { 'NX' }
  for i = 1, #windowed, 2 do
    args[#args + 1] = windowed[i + 1]
    args[#args + 1] = windowed[i]
  end
  redis.call('ZADD', wkey, unpack(args))
  local due = redis.call('ZRANGEBYSCORE', wkey, '-inf', score(latest - retention), 'LIMIT', 0, PRUNE_BATCH)
  if #due == 0 then return end
  local heldFields = {}
  for i, name in ipairs(due) do heldFields[i] = 'h:' .. name end
  local held = chunked('HMGET', akey, heldFields)
  local forget, fields, later = {}, {}, {}
  for i, name in ipairs(due) do
    if value['s:' .. name] == nil and num(held[i]) == 0 then
      forget[#forget + 1] = name
      fields[#fields + 1] = 's:' .. name
      fields[#fields + 1] = 'h:' .. name
      fields[#fields + 1] = 'd:' .. name
    else
      later[#later + 1] = score(latest)
      later[#later + 1] = name
    end
  end
  if #fields > 0 then chunked('HDEL', akey, fields) end
  if #forget > 0 then chunked('ZREM', wkey, forget) end
  if #later > 0 then chunked('ZADD', wkey, later) end
end

-- A call's start: its keys and arguments, every piece of per-call state anew, and the root's
-- epoch check. Returns the marker and the epoch to propose, or, for a lost root, its reply.
local function begin(keys, args)
  pack, unpackBytes, byte, sub = struct.pack, struct.unpack, string.byte, string.sub
  if not formats then
    formats = {}
    for code, n in pairs(NUMBERS) do formats[code] = '>' .. string.rep('d', n) end
  end
  xkey, akey, hkey, lkey = keys[1], keys[2], keys[3], keys[4]
  cbase, retention, maxSkew = args[1], tonumber(args[2]), tonumber(args[3])
  rkey = sub(cbase, 1, -3) .. 'r'
  wkey = sub(cbase, 1, -3) .. 'w'
  value, read, loadedOrder = {}, {}, {}
  loadedSets, debtLoadedSets, usedSets, bounds, windowed = {}, {}, {}, {}, {}
  serverMs, gen, genEnds, earliest, headSeq, headEntry, latest = nil, nil, nil, nil, nil, nil, nil
  rec, stored, added, removed, inX = {}, {}, {}, {}, {}
  made, closed, isClosed, rewritten, isRewritten = {}, {}, {}, {}, {}
  reply = {}
  -- The root's epoch marker (spec/enforcement.md §8.1): the field EPOCH_FIELD of the accounts hash,
  -- written with the root's first balances or holds, so that balances and marker live and die as one
  -- key, and remembered by each client that sees it. Balances without a marker, holds without
  -- balances, or a client's epoch that the root no longer has mean the root's keys were lost (a
  -- restart without persistence, an eviction): every operation is refused until an operator
  -- reconciles the root, which writes a marker starting RECONCILED that every client then takes as
  -- the root's epoch.
  local marker = redis.call('HGET', akey, EPOCH_FIELD)
  local known, proposal = nil, nil
  if sub(args[4], 1, 2) == 'k:' then known = sub(args[4], 3) else proposal = sub(args[4], 3) end
  local lost = nil
  if marker then
    if known and known ~= marker and sub(marker, 1, #RECONCILED) ~= RECONCILED then
      lost = 'its epoch marker is not the one this client saw'
    end
  elseif known then
    lost = 'its epoch marker, which this client saw, is gone'
  elseif redis.call('EXISTS', akey) == 1 then
    lost = 'it has balances but no epoch marker'
  elseif redis.call('EXISTS', hkey) == 1 then
    lost = 'it has holds but no balances'
  end
  if lost then return nil, nil, pack('>BI4c0', REPLY_LOST, #lost, lost) end
  return marker, proposal, nil
end

-- The operations of a call, in order, on the line sets given with it; returns those sets.
local function perform(args)
  -- The line sets given with the batch, then the operations, all in the last argument.
  local p = 6
  local given = {}
  for s = 1, tonumber(args[5]) do
    given[s] = sets[args[p]] or parseSet(args[p], args[p + 1])
    p = p + 2
  end
  local ops = args[p]
  -- First the ids of every operation, to read their records at once; each operation's numbers
  -- start at at[k].
  local codes, at, opIds, ids, fps = {}, {}, {}, {}, {}
  local q, k = 1, 0
  while q <= #ops do
    k = k + 1
    local code = byte(ops, q)
    local n = NUMBERS[code]
    if not n then error('allowance: unknown operation ' .. tostring(code)) end
    codes[k], at[k] = code, q + 1
    q = q + 1 + 8 * n
    local id
    id, q = unpackBytes('>I4c0', ops, q)
    opIds[k] = id
    -- A reserve's second text: its fingerprint (empty: none).
    if code == OP_RESERVE then
      local fp
      fp, q = unpackBytes('>I4c0', ops, q)
      if #fp > 0 then fps[k] = fp end
    end
    if code ~= OP_BALANCES and code ~= OP_SETTLE then ids[#ids + 1] = id end
  end
  load(ids)
  for i = 1, k do
    local code, h, id = codes[i], at[i], opIds[i]
    -- Each operation's time first: the one it gives, or (-1) the server's (timeOf).
    if code == OP_RESERVE then -- now, ttlMs, amounts×4, minimums×2, line set, shadow, the caller's clock, debt limits×4, notAfter
      local now, ttlMs, t, u, r, c, minT, minU, s, shadow, clientNow, dt, du, dr, dc, notAfter = unpackBytes(formats[code], ops, h)
      now = timeOf(now)
      local limits = nil
      if dt >= 0 or du >= 0 or dr >= 0 or dc >= 0 then limits = { dt, du, dr, dc } end
      reserve(id, now, ttlMs, { t, u, r, c }, minT, minU, given[s], shadow == 1, clientNow, limits, fps[i], notAfter)
      reply[#reply + 1] = pack('>d', now)
    elseif code == OP_COMMIT then -- now, actual×4, receipt
      local now, t, u, r, c, receipt = unpackBytes(formats[code], ops, h)
      commit(id, timeOf(now), { t, u, r, c }, receipt == 1)
    elseif code == OP_RELEASE then -- now
      release(id, timeOf((unpackBytes(formats[code], ops, h))))
    elseif code == OP_EXTEND then -- now, ttlMs
      local now, ttlMs = unpackBytes(formats[code], ops, h)
      extend(id, timeOf(now), ttlMs)
    elseif code == OP_SETTLE then -- now, line set
      local now, s = unpackBytes(formats[code], ops, h)
      settle(timeOf(now), given[s])
    else -- balances: now; the text is a JSON array of accounts
      local now = timeOf((unpackBytes(formats[code], ops, h)))
      balances(now, cjson.decode(id))
      reply[#reply + 1] = pack('>d', now)
    end
  end
  return given
end

-- A call's end: everything it changed, written back; then the reply.
local function finish(given, marker, proposal)
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
    if usedSets[set] then
      setArgs[#setArgs + 1] = set.digest
      setArgs[#setArgs + 1] = set.json
    end
  end
  if #setArgs > 0 then redis.call('HSET', lkey, unpack(setArgs)) end
  -- Holds made in this batch, and holds stored before it and extended in it, still held.
  local held, gone = {}, {}
  for _, ids in ipairs({ made, rewritten }) do
    for _, id in ipairs(ids) do
      local x = rec[id]
      if x.st == STATUS_HELD then
        held[#held + 1] = id
        held[#held + 1] = encode(x)
      end
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
  if #windowed > 0 then pruneBuckets() end
  -- The marker, with the root's first balances or holds (a hold of zero amounts changes no balance).
  local epoch = marker or ''
  if not marker and (#changed > 0 or #made > 0) then
    redis.call('HSET', akey, EPOCH_FIELD, proposal)
    epoch = proposal
  end
  return pack('>BI4c0', REPLY_OK, #epoch, epoch) .. table.concat(reply)
end

-- One call, with KEYS and ARGV as the head of this file says. The script that EVAL runs ends by
-- returning run(KEYS, ARGV); the function library registers run (scripts/ledger-lua.ts).
local function run(keys, args)
  local marker, proposal, lostReply = begin(keys, args)
  if lostReply then return lostReply end
  return finish(perform(args), marker, proposal)
end
