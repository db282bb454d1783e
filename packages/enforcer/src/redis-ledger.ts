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
 *   P{R}:x     ZSET  held reservations of the root, scored by expiresAt (epoch ms); members with
 *                    equal scores sort by id, which is exactly MemoryLedger's (expiresAt, id)
 *                    expiry order.
 *   P{R}:a     HASH  the root's accounts: field `s:<account>` spent, `h:<account>` held (absent = 0).
 *                    One hash, so a script reads every line with one HMGET and writes with one HSET.
 *   P{R}:r:<id> HASH a reservation: `st` held | committed | released | expired; `x` expiresAt;
 *                    `tokens` `usdMicros` `risk` `requests` the reserved amounts; `L` its lines as a
 *                    JSON array of strings [account, kind, cap ("" = none), …]; once committed,
 *                    `late` and `c.<kind>` the charged amounts. A closed reservation (committed,
 *                    released, expired) is kept for `retentionMs` (default 24 h) for idempotent
 *                    commit and release, then forgotten (`unknown`). A held one has no TTL: the
 *                    next operation on its root after its expiry closes it.
 *
 * The script declares the keys it is called for in KEYS (expiry set, accounts, reservations); the
 * reservations a sweep closes are reached through the expiry set and are not declared, but carry
 * the same hash tag, so they are always in the slot the script runs on. Accounts and expiry sets
 * are never deleted (as in MemoryLedger): spent must outlive every reservation.
 *
 * Numbers. Lua numbers are doubles: exact for the integers we use (≤ 2^53 − 1). How a Lua number
 * passed to a command becomes a string is not Lua's "%.14g" on the Redis we test (7.0 writes 10^15
 * in full), but we do not rely on the version: a number of 10^14 or more that a script writes goes
 * through `string.format("%d")` (a 64-bit integer conversion); a smaller one has at most 14 digits,
 * exact either way, and skips the call. Numbers come back as integer replies, which are exact.
 */
import { Redis, type Cluster } from "ioredis";
import { LINE_KINDS, rootOfReservation, type Amounts, type BalancesOutcome, type ChargedLine, type CommitOutcome, type Ledger, type LedgerLine, type LineKind, type ReleaseOutcome, type ReserveOp, type ReserveOutcome } from "./ledger.js";

export interface RedisLedgerOptions {
  /** Prefix of every key (before the `{root}` hash tag); must not contain `{` or `}`. Default `allowance:`. */
  readonly keyPrefix?: string;
  /** How long a closed reservation is remembered for idempotent commit/release. Default 24 hours. */
  readonly retentionMs?: number;
  /** Whether `close()` also closes the connection. Default false: the caller owns it. */
  readonly closeConnection?: boolean;
}

// One script runs a batch of operations on one root, each exactly as if it ran alone, in order.
// KEYS: the expiry set, the accounts hash, then one key per operation (its reservation; the accounts
// hash again for `balances`). ARGV: the key base `P{R}:`, retention ms, the number of line sets,
// each as its count and then account, kind and cap ("" = none) per line, then the operations:
//   r id now expiresAt tokens usdMicros risk requests minTokens minUsdMicros lineSet   (reserve)
//   c id now tokens usdMicros risk requests   (commit; a negative amount means "as reserved")
//   l id now                                  (release)
//   b now count account…                      (balances)
// Returns one reply per operation (see each function). Account fields are read once per batch
// (one HMGET for the fields first needed by an operation) and written once at its end (one HSET):
// each redis.call costs about as much as the arithmetic of a whole line.
const BATCH = `
local xkey, akey = KEYS[1], KEYS[2]
local base, retention = ARGV[1], ARGV[2]
-- Below 10^14 a number has at most 14 digits, which every conversion writes exactly: no format call.
local function int(n)
  if n < 1e14 and n > -1e14 then return n end
  return string.format('%d', n)
end
local function num(v) if v then return tonumber(v) end return 0 end

-- The batch's view of the accounts hash: value[field], loaded on first need, written back at the end.
local value, dirty, dirtyOrder = {}, {}, {}
local function need(fields)
  local all = true
  for i = 1, #fields do
    if value[fields[i]] == nil then
      all = false
      break
    end
  end
  if all then return end
  local missing, seen = {}, {}
  for _, f in ipairs(fields) do
    if value[f] == nil and not seen[f] then
      seen[f] = true
      missing[#missing + 1] = f
    end
  end
  if #missing > 0 then
    local v = redis.call('HMGET', akey, unpack(missing))
    for i, f in ipairs(missing) do value[f] = num(v[i]) end
  end
end
local function put(f, v)
  value[f] = v
  if not dirty[f] then
    dirty[f] = true
    dirtyOrder[#dirtyOrder + 1] = f
  end
end

-- A line set: n lines with account, kind, cap (number or false), capText, spent and held fields.
local sets = {}
local function lineSet(flat)
  local set = { n = #flat / 3, kind = {}, cap = {}, capText = {}, sf = {}, hf = {}, capFields = {}, flat = flat }
  for i = 1, set.n do
    local account = flat[3 * i - 2]
    set.kind[i], set.capText[i] = flat[3 * i - 1], flat[3 * i]
    set.sf[i], set.hf[i] = 's:' .. account, 'h:' .. account
    if set.capText[i] ~= '' then
      set.cap[i] = tonumber(set.capText[i])
      set.capFields[#set.capFields + 1] = set.sf[i]
      set.capFields[#set.capFields + 1] = set.hf[i]
    else
      set.cap[i] = false
    end
  end
  return set
end
-- The line set a reservation stored (its L field), decoded once per batch.
local function storedSet(json)
  local set = sets[json]
  if not set then
    set = lineSet(cjson.decode(json))
    set.json = json
    sets[json] = set
  end
  return set
end

local function reservedOf(v, offset)
  return { tokens = tonumber(v[offset]), usdMicros = tonumber(v[offset + 1]), risk = tonumber(v[offset + 2]), requests = tonumber(v[offset + 3]) }
end
local function unhold(set, amounts)
  need(set.hf)
  for i = 1, set.n do
    local amount = amounts[set.kind[i]]
    if amount ~= 0 then put(set.hf[i], value[set.hf[i]] - amount) end
  end
end
-- A lower bound on the earliest expiry in the set (nil: unknown), so most sweeps cost no call.
local earliest = nil
local NO_IDS = {}
-- Releases this root's holds with expiresAt <= now, in (expiresAt, id) order; returns their ids.
local function sweep(now)
  if earliest == nil then
    local first = redis.call('ZRANGE', xkey, 0, 0, 'WITHSCORES')
    if #first == 0 then earliest = math.huge else earliest = tonumber(first[2]) end
  end
  if tonumber(now) < earliest then return NO_IDS end
  earliest = nil
  local ids = redis.call('ZRANGEBYSCORE', xkey, '-inf', now)
  if #ids == 0 then return ids end
  for _, id in ipairs(ids) do
    local rkey = base .. 'r:' .. id
    local v = redis.call('HMGET', rkey, 'L', 'tokens', 'usdMicros', 'risk', 'requests')
    unhold(storedSet(v[1]), reservedOf(v, 2))
    redis.call('HSET', rkey, 'st', 'expired')
    redis.call('PEXPIRE', rkey, retention)
  end
  redis.call('ZREMRANGEBYSCORE', xkey, '-inf', now)
  return ids
end

-- {1, amounts…, expired} | {0, line (0-based), available, expired} | {-1, expired} if the id is in use.
local function reserve(rkey, id, now, expiresAt, amounts, minimums, set)
  local expired = sweep(now)
  if redis.call('EXISTS', rkey) == 1 then return { -1, expired } end
  need(set.capFields)
  local available = {}
  for i = 1, set.n do
    if set.cap[i] then available[i] = set.cap[i] - value[set.sf[i]] - value[set.hf[i]] else available[i] = math.huge end
  end
  -- decideAmounts (ledger.ts), line for line.
  local final = { tokens = amounts.tokens, usdMicros = amounts.usdMicros, risk = amounts.risk, requests = amounts.requests }
  for _, kind in ipairs({ 'tokens', 'usdMicros' }) do
    if minimums[kind] ~= '' then
      local least = math.huge
      for i = 1, set.n do
        if set.kind[i] == kind and set.cap[i] then least = math.min(least, available[i]) end
      end
      local lowered = math.min(amounts[kind], math.max(0, least))
      if lowered >= tonumber(minimums[kind]) then final[kind] = lowered end
    end
  end
  for i = 1, set.n do
    local amount = final[set.kind[i]]
    if amount > 0 and amount > available[i] then return { 0, i - 1, available[i], expired } end
  end
  need(set.hf)
  for i = 1, set.n do
    local amount = final[set.kind[i]]
    if amount ~= 0 then put(set.hf[i], value[set.hf[i]] + amount) end
  end
  if not set.json then
    set.json = cjson.encode(set.flat)
    sets[set.json] = set
  end
  redis.call('HSET', rkey, 'st', 'held', 'x', expiresAt, 'tokens', int(final.tokens), 'usdMicros', int(final.usdMicros),
    'risk', int(final.risk), 'requests', int(final.requests), 'L', set.json)
  redis.call('ZADD', xkey, expiresAt, id)
  if earliest ~= nil then earliest = math.min(earliest, tonumber(expiresAt)) end
  return { 1, final.tokens, final.usdMicros, final.risk, final.requests, expired }
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

-- {status, expired} | {"committed", already, late, reserved×4, charged×4, lines, expired}, where
-- lines is a flat list of account, kind, cap, before, after for each capped line that crossed.
local function commit(rkey, id, now, actual)
  local expired = sweep(now)
  local v = redis.call('HMGET', rkey, 'st', 'L', 'tokens', 'usdMicros', 'risk', 'requests', 'late', 'c.tokens', 'c.usdMicros', 'c.risk', 'c.requests')
  local st = v[1]
  if not st then return { 'unknown', expired } end
  if st == 'released' then return { 'released', expired } end
  if st == 'committed' then
    return { 'committed', 1, tonumber(v[7]), tonumber(v[3]), tonumber(v[4]), tonumber(v[5]), tonumber(v[6]), tonumber(v[8]), tonumber(v[9]), tonumber(v[10]), tonumber(v[11]), {}, expired }
  end
  local late = st == 'expired'
  local reserved = reservedOf(v, 3)
  -- resolveActual (ledger.ts): a negative amount means "as reserved".
  local charged = {}
  for kind, amount in pairs(actual) do
    if amount < 0 then charged[kind] = reserved[kind] else charged[kind] = amount end
  end
  local set = storedSet(v[2])
  need(set.sf)
  if not late then need(set.hf) end
  local out = {}
  -- Line by line, as MemoryLedger does: a line's "before" sees the lines charged before it.
  for i = 1, set.n do
    local kind = set.kind[i]
    if not late and reserved[kind] ~= 0 then put(set.hf[i], value[set.hf[i]] - reserved[kind]) end
    local before = value[set.sf[i]]
    if charged[kind] ~= 0 then put(set.sf[i], before + charged[kind]) end
    if set.cap[i] and crossed(set.cap[i], before, before + charged[kind]) then
      out[#out + 1] = set.flat[3 * i - 2]
      out[#out + 1] = kind
      out[#out + 1] = set.capText[i]
      out[#out + 1] = before
      out[#out + 1] = before + charged[kind]
    end
  end
  if not late then redis.call('ZREM', xkey, id) end
  local lateFlag = 0
  if late then lateFlag = 1 end
  redis.call('HSET', rkey, 'st', 'committed', 'late', lateFlag, 'c.tokens', int(charged.tokens), 'c.usdMicros', int(charged.usdMicros),
    'c.risk', int(charged.risk), 'c.requests', int(charged.requests))
  redis.call('PEXPIRE', rkey, retention)
  return { 'committed', 0, lateFlag, reserved.tokens, reserved.usdMicros, reserved.risk, reserved.requests,
    charged.tokens, charged.usdMicros, charged.risk, charged.requests, out, expired }
end

-- {status, already, expired}
local function release(rkey, id, now)
  local expired = sweep(now)
  local v = redis.call('HMGET', rkey, 'st', 'L', 'tokens', 'usdMicros', 'risk', 'requests')
  local st = v[1]
  if not st then return { 'unknown', 0, expired } end
  if st ~= 'held' then return { st, 1, expired } end
  unhold(storedSet(v[2]), reservedOf(v, 3))
  redis.call('ZREM', xkey, id)
  redis.call('HSET', rkey, 'st', 'released')
  redis.call('PEXPIRE', rkey, retention)
  return { 'released', 0, expired }
end

-- {{spent, held} per account, flat; expired ids}
local function balances(now, accounts)
  local expired = sweep(now)
  local fields = {}
  for _, account in ipairs(accounts) do
    fields[#fields + 1] = 's:' .. account
    fields[#fields + 1] = 'h:' .. account
  end
  need(fields)
  local out = {}
  for i, f in ipairs(fields) do out[i] = value[f] end
  return { out, expired }
end

local p = 4
local given = {}
for s = 1, tonumber(ARGV[3]) do
  local n = tonumber(ARGV[p])
  local flat = {}
  for i = 1, 3 * n do flat[i] = ARGV[p + i] end
  given[s] = lineSet(flat)
  p = p + 1 + 3 * n
end
local replies, k = {}, 0
while p <= #ARGV do
  k = k + 1
  local kind, rkey = ARGV[p], KEYS[2 + k]
  if kind == 'r' then
    local amounts = { tokens = tonumber(ARGV[p + 4]), usdMicros = tonumber(ARGV[p + 5]), risk = tonumber(ARGV[p + 6]), requests = tonumber(ARGV[p + 7]) }
    replies[k] = reserve(rkey, ARGV[p + 1], ARGV[p + 2], ARGV[p + 3], amounts, { tokens = ARGV[p + 8], usdMicros = ARGV[p + 9] }, given[tonumber(ARGV[p + 10])])
    p = p + 11
  elseif kind == 'c' then
    local actual = { tokens = tonumber(ARGV[p + 3]), usdMicros = tonumber(ARGV[p + 4]), risk = tonumber(ARGV[p + 5]), requests = tonumber(ARGV[p + 6]) }
    replies[k] = commit(rkey, ARGV[p + 1], ARGV[p + 2], actual)
    p = p + 7
  elseif kind == 'l' then
    replies[k] = release(rkey, ARGV[p + 1], ARGV[p + 2])
    p = p + 3
  else
    local count = tonumber(ARGV[p + 2])
    local accounts = {}
    for i = 1, count do accounts[i] = ARGV[p + 2 + i] end
    replies[k] = balances(ARGV[p + 1], accounts)
    p = p + 3 + count
  end
end
if #dirtyOrder > 0 then
  local args = {}
  for _, f in ipairs(dirtyOrder) do
    args[#args + 1] = f
    args[#args + 1] = int(value[f])
  end
  redis.call('HSET', akey, unpack(args))
end
return replies
`;

type Reply = (string | number | Reply)[];
type BatchScript = { allowanceBatch(numberOfKeys: number, ...keysThenArgs: string[]): Promise<Reply[]> };

const NONE: readonly string[] = Object.freeze([]);
/** Operations sent in one script call at most; more wait for the next. */
const MAX_BATCH = 16;

/** Operations on one root waiting to be sent together. */
interface Batch {
  readonly base: string;
  readonly keys: string[];
  readonly ops: string[];
  readonly sets: Map<readonly LedgerLine[], number>;
  readonly setArgs: string[];
  readonly waiting: { resolve(reply: Reply): void; reject(error: unknown): void }[];
}

export class RedisLedger implements Ledger {
  readonly name = "redis";
  readonly #redis: Redis | Cluster;
  readonly #script: BatchScript;
  readonly #prefix: string;
  readonly #retention: string;
  readonly #closeConnection: boolean;
  /** The ARGV form (count, then account, kind, cap per line) of a lines array seen before. */
  readonly #lineArgs = new WeakMap<readonly LedgerLine[], readonly string[]>();
  /** Operations waiting to be sent, by root; sent when the event loop turns, or when full. */
  readonly #batches = new Map<string, Batch>();
  #flushScheduled = false;

  /** The script is registered on `redis` (defineCommand: EVALSHA, loading the script on NOSCRIPT). */
  constructor(redis: Redis | Cluster, options: RedisLedgerOptions = {}) {
    const prefix = options.keyPrefix ?? "allowance:";
    if (typeof prefix !== "string" || /[{}]/.test(prefix)) throw new TypeError(`"keyPrefix" must not contain { or }, got ${JSON.stringify(prefix)}`);
    const retention = options.retentionMs ?? 86_400_000;
    if (!Number.isSafeInteger(retention) || retention < 1) throw new RangeError(`"retentionMs" expected a positive integer, got ${retention}`);
    this.#redis = redis;
    this.#prefix = prefix;
    this.#retention = String(retention);
    this.#closeConnection = options.closeConnection ?? false;
    // No numberOfKeys: a batch declares as many keys as it has operations, plus two.
    if (!("allowanceBatch" in redis)) redis.defineCommand("allowanceBatch", { lua: BATCH });
    this.#script = redis as unknown as BatchScript;
  }

  /** Connects to `url` (`redis://host:port/db`); the ledger owns the connection and closes it on `close()`. */
  static async connect(url: string, options: Omit<RedisLedgerOptions, "closeConnection"> = {}): Promise<RedisLedger> {
    const redis = new Redis(url, { lazyConnect: true });
    try {
      await redis.connect();
    } catch (error) {
      redis.disconnect();
      throw error;
    }
    return new RedisLedger(redis, { ...options, closeConnection: true });
  }

  async reserve(op: ReserveOp): Promise<ReserveOutcome> {
    const base = this.#base(op.root);
    if (base === undefined || rootOfReservation(op.id) !== op.root) throw new TypeError(`"id" must start with the root link id and a dot, got ${JSON.stringify(op.id)}`);
    const amounts = LINE_KINDS.map((kind) => integer(op.amounts[kind], `amounts.${kind}`, false));
    const minimums = (["tokens", "usdMicros"] as const).map((kind) => {
      const minimum = op.minimums?.[kind];
      return minimum === undefined ? "" : integer(minimum, `minimums.${kind}`, true);
    });
    const lineArgs = this.#argsOf(op.lines);
    const reply = await this.#submit(op.root, base, `${base}r:${op.id}`, (batch) => {
      let set = batch.sets.get(op.lines);
      if (set === undefined) {
        set = batch.sets.size + 1;
        batch.sets.set(op.lines, set);
        batch.setArgs.push(...lineArgs);
      }
      return ["r", op.id, String(op.now), String(op.expiresAt), ...amounts, ...minimums, String(set)];
    });
    const code = reply[0] as number;
    const expired = ids(reply[reply.length - 1]);
    if (code === -1) throw new Error(`reservation id ${op.id} is already in use`);
    if (code === 0) return { ok: false, line: reply[1] as number, available: reply[2] as number, expired };
    return { ok: true, amounts: { tokens: reply[1] as number, usdMicros: reply[2] as number, risk: reply[3] as number, requests: reply[4] as number }, expired };
  }

  async commit(id: string, actual: Amounts, now: number): Promise<CommitOutcome> {
    const root = rootOfReservation(id);
    const base = this.#base(root);
    if (base === undefined) return { status: "unknown", expired: NONE };
    const amounts = LINE_KINDS.map((kind) => integer(actual[kind], `actual.${kind}`, true, true));
    const reply = await this.#submit(root, base, `${base}r:${id}`, () => ["c", id, String(now), ...amounts]);
    const expired = ids(reply[reply.length - 1]);
    const status = reply[0] as "committed" | "released" | "unknown";
    if (status !== "committed") return { status, expired };
    const n = (i: number) => reply[i] as number;
    const flat = reply[11] as Reply;
    const lines: ChargedLine[] = [];
    for (let i = 0; i < flat.length; i += 5) {
      const cap = flat[i + 2] as string;
      lines.push({ account: flat[i] as string, kind: flat[i + 1] as LineKind, cap: cap === "" ? null : Number(cap), before: flat[i + 3] as number, after: flat[i + 4] as number });
    }
    return {
      status,
      already: n(1) === 1,
      late: n(2) === 1,
      reserved: { tokens: n(3), usdMicros: n(4), risk: n(5), requests: n(6) },
      charged: { tokens: n(7), usdMicros: n(8), risk: n(9), requests: n(10) },
      lines,
      expired,
    };
  }

  async release(id: string, now: number): Promise<ReleaseOutcome> {
    const root = rootOfReservation(id);
    const base = this.#base(root);
    if (base === undefined) return { status: "unknown", already: false, expired: NONE };
    const reply = await this.#submit(root, base, `${base}r:${id}`, () => ["l", id, String(now)]);
    return { status: reply[0] as ReleaseOutcome["status"], already: reply[1] === 1, expired: ids(reply[2]) };
  }

  async balances(root: string, accounts: readonly string[], now: number): Promise<BalancesOutcome> {
    const base = this.#base(root);
    // No reservation or spend can exist under a root that cannot be a hash tag.
    if (base === undefined) return { balances: new Map(accounts.map((name) => [name, { spent: 0, held: 0 }])), expired: NONE };
    const reply = await this.#submit(root, base, `${base}a`, () => ["b", String(now), String(accounts.length), ...accounts]);
    const values = reply[0] as number[];
    return { balances: new Map(accounts.map((name, i) => [name, { spent: values[2 * i] as number, held: values[2 * i + 1] as number }])), expired: ids(reply[1]) };
  }

  async close(): Promise<void> {
    // Operations already asked for are sent before the connection closes.
    const pending = [...this.#batches.keys()].map((root) => this.#flush(root));
    await Promise.allSettled(pending);
    if (this.#closeConnection) await this.#redis.quit();
  }

  /**
   * Queues one operation on `root`. Operations on one root asked for before the event loop next
   * turns go to Redis as one script call, run in the order they were asked for, each exactly as
   * if alone: batching saves Redis the per-call work (script start, reading and writing the
   * accounts hash), which is most of the cost of one operation.
   */
  #submit(root: string, base: string, key: string, args: (batch: Batch) => string[]): Promise<Reply> {
    let batch = this.#batches.get(root);
    if (batch === undefined) {
      batch = { base, keys: [`${base}x`, `${base}a`], ops: [], sets: new Map(), setArgs: [], waiting: [] };
      this.#batches.set(root, batch);
    }
    batch.keys.push(key);
    batch.ops.push(...args(batch));
    const reply = new Promise<Reply>((resolve, reject) => (batch as Batch).waiting.push({ resolve, reject }));
    if (batch.waiting.length >= MAX_BATCH) void this.#flush(root);
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        for (const pending of [...this.#batches.keys()]) void this.#flush(pending);
      });
    }
    return reply;
  }

  async #flush(root: string): Promise<void> {
    const batch = this.#batches.get(root);
    if (batch === undefined) return;
    this.#batches.delete(root);
    try {
      const replies = await this.#script.allowanceBatch(batch.keys.length, ...batch.keys, batch.base, this.#retention, String(batch.sets.size), ...batch.setArgs, ...batch.ops);
      batch.waiting.forEach((waiting, i) => waiting.resolve(replies[i] as Reply));
    } catch (error) {
      for (const waiting of batch.waiting) waiting.reject(error);
    }
  }

  /** `P{root}:`, or undefined for a root that cannot be a hash tag (no reservation can have it). */
  #base(root: string): string | undefined {
    if (root === "" || root.includes("{") || root.includes("}")) return undefined;
    return `${this.#prefix}{${root}}:`;
  }

  #argsOf(lines: readonly LedgerLine[]): readonly string[] {
    let args = this.#lineArgs.get(lines);
    if (args === undefined) {
      args = [String(lines.length), ...lines.flatMap((line) => [line.account, line.kind, line.cap === null ? "" : integer(line.cap, "cap", true)])];
      this.#lineArgs.set(lines, args);
    }
    return args;
  }
}

/** A safe integer as the decimal string Lua will read exactly. */
function integer(value: number, name: string, allowNegative: boolean, negativeMeansReserved = false): string {
  if (!Number.isSafeInteger(value) || (value < 0 && !allowNegative)) throw new RangeError(`"${name}" expected ${allowNegative ? "a" : "a non-negative"} safe integer, got ${value}`);
  return negativeMeansReserved && value < 0 ? "-1" : String(value);
}

function ids(reply: string | number | Reply | undefined): readonly string[] {
  return Array.isArray(reply) && reply.length > 0 ? (reply as string[]) : NONE;
}
