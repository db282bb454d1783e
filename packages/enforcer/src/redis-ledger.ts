/**
 * The distributed ledger (spec/enforcement.md §8): every operation is ONE Lua script, so the check
 * and the hold are one atomic step for every client of the Redis server, on any host. The scripts
 * run exactly the algorithm of MemoryLedger (ledger.ts header, `decideAmounts`, `resolveActual`).
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
 * Every script declares the keys it is called for in KEYS (reservation, expiry set, accounts); the
 * reservations a sweep closes are reached through the expiry set and are not declared, but carry
 * the same hash tag, so they are always in the slot the script runs on. Accounts and expiry sets
 * are never deleted (as in MemoryLedger): spent must outlive every reservation.
 *
 * Numbers. Lua numbers are doubles: exact for the integers we use (≤ 2^53 − 1), but Redis turns a
 * Lua number passed to a command into a string with "%.14g" (1e+15 for 10^15). So every number a
 * script writes goes through `string.format("%d")` (a 64-bit integer conversion), and numbers come
 * back as integer replies, which are exact.
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

// Shared by every script: ARGV[1] is the key base `P{R}:`, ARGV[2] now, ARGV[3] retention ms; KEYS
// hold the expiry set and the accounts hash. Counters are read with one HMGET and written with
// one HSET per script (each redis.call costs about as much as the arithmetic of a whole line).
const PRELUDE = `
local base, now, retention = ARGV[1], ARGV[2], ARGV[3]
local function int(n) return string.format('%d', n) end
local function num(v) if v then return tonumber(v) end return 0 end
-- The current values of the account fields named in order (distinct), by name.
local function load(akey, order)
  local values = {}
  if #order > 0 then
    local v = redis.call('HMGET', akey, unpack(order))
    for i, f in ipairs(order) do values[f] = num(v[i]) end
  end
  return values
end
local function store(akey, values, order)
  if #order == 0 then return end
  local args = {}
  for _, f in ipairs(order) do
    args[#args + 1] = f
    args[#args + 1] = int(values[f])
  end
  redis.call('HSET', akey, unpack(args))
end
-- Adds delta to field f of a pending change set (fields kept in first-seen order).
local function add(change, f, delta)
  if change.values[f] == nil then
    change.values[f] = 0
    change.order[#change.order + 1] = f
  end
  change.values[f] = change.values[f] + delta
end
local function apply(akey, change)
  local values = load(akey, change.order)
  for _, f in ipairs(change.order) do values[f] = values[f] + change.values[f] end
  store(akey, values, change.order)
end
local function reserved(rkey)
  local v = redis.call('HMGET', rkey, 'L', 'tokens', 'usdMicros', 'risk', 'requests')
  return { v[1], { tokens = v[2], usdMicros = v[3], risk = v[4], requests = v[5] } }
end
-- Returns a reservation's holds into a change set.
local function unhold(change, r)
  local lines = cjson.decode(r[1])
  for i = 1, #lines, 3 do
    local amount = tonumber(r[2][lines[i + 1]])
    if amount ~= 0 then add(change, 'h:' .. lines[i], -amount) end
  end
end
-- Releases this root's holds with expiresAt <= now, in (expiresAt, id) order; returns their ids.
local function sweep(xkey, akey)
  local ids = redis.call('ZRANGEBYSCORE', xkey, '-inf', now)
  if #ids == 0 then return ids end
  local change = { values = {}, order = {} }
  for _, id in ipairs(ids) do
    local rkey = base .. 'r:' .. id
    unhold(change, reserved(rkey))
    redis.call('HSET', rkey, 'st', 'expired')
    redis.call('PEXPIRE', rkey, retention)
  end
  redis.call('ZREMRANGEBYSCORE', xkey, '-inf', now)
  apply(akey, change)
  return ids
end
`;

// KEYS: reservation, expiry set, accounts. ARGV after the prelude's three: id, expiresAt, the four
// amounts, the tokens and usdMicros minimums ("" = none), then account, kind and cap ("" = none)
// per line. Returns {1, amounts…, expired} | {0, line (0-based), available, expired} | {-1,
// expired} when the id is in use.
const RESERVE = `${PRELUDE}
local id, expiresAt = ARGV[4], ARGV[5]
local expired = sweep(KEYS[2], KEYS[3])
if redis.call('EXISTS', KEYS[1]) == 1 then return { -1, expired } end
local amounts = { tokens = tonumber(ARGV[6]), usdMicros = tonumber(ARGV[7]), risk = tonumber(ARGV[8]), requests = tonumber(ARGV[9]) }
local minimums = { tokens = ARGV[10], usdMicros = ARGV[11] }
local n = (#ARGV - 11) / 3
local accounts, kinds, caps, spentField, heldField = {}, {}, {}, {}, {}
local reads = { values = {}, order = {} }
for i = 1, n do
  accounts[i], kinds[i], caps[i] = ARGV[9 + 3 * i], ARGV[10 + 3 * i], ARGV[11 + 3 * i]
  spentField[i], heldField[i] = 's:' .. accounts[i], 'h:' .. accounts[i]
  if caps[i] ~= '' then
    add(reads, spentField[i], 0)
    add(reads, heldField[i], 0)
  end
end
local balances = load(KEYS[3], reads.order)
local available = {}
for i = 1, n do
  if caps[i] == '' then
    available[i] = math.huge
  else
    available[i] = tonumber(caps[i]) - balances[spentField[i]] - balances[heldField[i]]
  end
end
-- decideAmounts (ledger.ts), line for line.
local final = { tokens = amounts.tokens, usdMicros = amounts.usdMicros, risk = amounts.risk, requests = amounts.requests }
for _, kind in ipairs({ 'tokens', 'usdMicros' }) do
  if minimums[kind] ~= '' then
    local least = math.huge
    for i = 1, n do
      if kinds[i] == kind and caps[i] ~= '' then least = math.min(least, available[i]) end
    end
    local lowered = math.min(amounts[kind], math.max(0, least))
    if lowered >= tonumber(minimums[kind]) then final[kind] = lowered end
  end
end
for i = 1, n do
  local amount = final[kinds[i]]
  if amount > 0 and amount > available[i] then return { 0, i - 1, available[i], expired } end
end
local holds = { values = {}, order = {} }
local lines = {}
for i = 1, n do
  local amount = final[kinds[i]]
  if amount ~= 0 then add(holds, heldField[i], amount) end
  lines[#lines + 1] = accounts[i]
  lines[#lines + 1] = kinds[i]
  lines[#lines + 1] = caps[i]
end
apply(KEYS[3], holds)
redis.call('HSET', KEYS[1], 'st', 'held', 'x', expiresAt, 'tokens', int(final.tokens), 'usdMicros', int(final.usdMicros),
  'risk', int(final.risk), 'requests', int(final.requests), 'L', cjson.encode(lines))
redis.call('ZADD', KEYS[2], expiresAt, id)
return { 1, final.tokens, final.usdMicros, final.risk, final.requests, expired }
`;

// KEYS: reservation, expiry set, accounts. ARGV after the prelude: id, then the four actual
// amounts. Returns {status, expired} | {"committed", already, late, reserved×4, charged×4, lines,
// expired} where lines is a flat list of account, kind, cap, before, after for each capped line.
const COMMIT = `${PRELUDE}
local id = ARGV[4]
local expired = sweep(KEYS[2], KEYS[3])
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return { 'unknown', expired } end
if st == 'released' then return { 'released', expired } end
local kinds = { 'tokens', 'usdMicros', 'risk', 'requests' }
if st == 'committed' then
  local v = redis.call('HMGET', KEYS[1], 'late', 'tokens', 'usdMicros', 'risk', 'requests', 'c.tokens', 'c.usdMicros', 'c.risk', 'c.requests')
  return { 'committed', 1, tonumber(v[1]), tonumber(v[2]), tonumber(v[3]), tonumber(v[4]), tonumber(v[5]), tonumber(v[6]), tonumber(v[7]), tonumber(v[8]), tonumber(v[9]), {}, expired }
end
local late = st == 'expired'
local r = reserved(KEYS[1])
-- resolveActual (ledger.ts): a negative amount means "as reserved".
local charged = {}
for j, kind in ipairs(kinds) do
  local actual = tonumber(ARGV[4 + j])
  if actual < 0 then charged[kind] = tonumber(r[2][kind]) else charged[kind] = actual end
end
local lines = cjson.decode(r[1])
local touched = { values = {}, order = {} }
local spentField, heldField = {}, {}
for i = 1, #lines, 3 do
  spentField[i], heldField[i] = 's:' .. lines[i], 'h:' .. lines[i]
  add(touched, spentField[i], 0)
  if not late then add(touched, heldField[i], 0) end
end
local values = load(KEYS[3], touched.order)
local out = {}
-- Line by line, as MemoryLedger does: a line's "before" sees the lines charged before it.
for i = 1, #lines, 3 do
  local kind = lines[i + 1]
  if not late then values[heldField[i]] = values[heldField[i]] - tonumber(r[2][kind]) end
  local before = values[spentField[i]]
  values[spentField[i]] = before + charged[kind]
  if lines[i + 2] ~= '' then
    out[#out + 1] = lines[i]
    out[#out + 1] = kind
    out[#out + 1] = lines[i + 2]
    out[#out + 1] = before
    out[#out + 1] = before + charged[kind]
  end
end
store(KEYS[3], values, touched.order)
if not late then redis.call('ZREM', KEYS[2], id) end
local lateFlag = 0
if late then lateFlag = 1 end
redis.call('HSET', KEYS[1], 'st', 'committed', 'late', lateFlag, 'c.tokens', int(charged.tokens), 'c.usdMicros', int(charged.usdMicros),
  'c.risk', int(charged.risk), 'c.requests', int(charged.requests))
redis.call('PEXPIRE', KEYS[1], retention)
return { 'committed', 0, lateFlag, tonumber(r[2].tokens), tonumber(r[2].usdMicros), tonumber(r[2].risk), tonumber(r[2].requests),
  charged.tokens, charged.usdMicros, charged.risk, charged.requests, out, expired }
`;

// KEYS: reservation, expiry set, accounts. ARGV after the prelude: id. Returns {status, already, expired}.
const RELEASE = `${PRELUDE}
local id = ARGV[4]
local expired = sweep(KEYS[2], KEYS[3])
local st = redis.call('HGET', KEYS[1], 'st')
if not st then return { 'unknown', 0, expired } end
if st ~= 'held' then return { st, 1, expired } end
local change = { values = {}, order = {} }
unhold(change, reserved(KEYS[1]))
apply(KEYS[3], change)
redis.call('ZREM', KEYS[2], id)
redis.call('HSET', KEYS[1], 'st', 'released')
redis.call('PEXPIRE', KEYS[1], retention)
return { 'released', 0, expired }
`;

// KEYS: expiry set, accounts. ARGV after the prelude: the account names. Returns {{spent, held}
// per account, flat; expired ids}.
const BALANCES = `${PRELUDE}
local expired = sweep(KEYS[1], KEYS[2])
local out = {}
if #ARGV > 3 then
  local fields = {}
  for i = 4, #ARGV do
    fields[#fields + 1] = 's:' .. ARGV[i]
    fields[#fields + 1] = 'h:' .. ARGV[i]
  end
  for i, v in ipairs(redis.call('HMGET', KEYS[2], unpack(fields))) do out[i] = num(v) end
end
return { out, expired }
`;

const COMMANDS = {
  allowanceReserve: { lua: RESERVE, numberOfKeys: 3 },
  allowanceCommit: { lua: COMMIT, numberOfKeys: 3 },
  allowanceRelease: { lua: RELEASE, numberOfKeys: 3 },
  allowanceBalances: { lua: BALANCES, numberOfKeys: 2 },
} as const;

type Reply = (string | number | Reply)[];
type Scripts = Record<keyof typeof COMMANDS, (...keysThenArgs: string[]) => Promise<Reply>>;

const NONE: readonly string[] = Object.freeze([]);

export class RedisLedger implements Ledger {
  readonly name = "redis";
  readonly #redis: Redis | Cluster;
  readonly #scripts: Scripts;
  readonly #prefix: string;
  readonly #retention: string;
  readonly #closeConnection: boolean;
  /** The ARGV tail (account, kind, cap per line) of a lines array seen before. */
  readonly #lineArgs = new WeakMap<readonly LedgerLine[], readonly string[]>();

  /** Scripts are registered on `redis` (defineCommand: EVALSHA, loading the script on NOSCRIPT). */
  constructor(redis: Redis | Cluster, options: RedisLedgerOptions = {}) {
    const prefix = options.keyPrefix ?? "allowance:";
    if (typeof prefix !== "string" || /[{}]/.test(prefix)) throw new TypeError(`"keyPrefix" must not contain { or }, got ${JSON.stringify(prefix)}`);
    const retention = options.retentionMs ?? 86_400_000;
    if (!Number.isSafeInteger(retention) || retention < 1) throw new RangeError(`"retentionMs" expected a positive integer, got ${retention}`);
    this.#redis = redis;
    this.#prefix = prefix;
    this.#retention = String(retention);
    this.#closeConnection = options.closeConnection ?? false;
    for (const [name, definition] of Object.entries(COMMANDS)) {
      if (!(name in redis)) redis.defineCommand(name, definition);
    }
    this.#scripts = redis as unknown as Scripts;
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
    const reply = await this.#scripts.allowanceReserve(`${base}r:${op.id}`, `${base}x`, `${base}a`, base, String(op.now), this.#retention, op.id, String(op.expiresAt), ...amounts, ...minimums, ...this.#argsOf(op.lines));
    const code = reply[0] as number;
    const expired = ids(reply[reply.length - 1]);
    if (code === -1) throw new Error(`reservation id ${op.id} is already in use`);
    if (code === 0) return { ok: false, line: reply[1] as number, available: reply[2] as number, expired };
    return { ok: true, amounts: { tokens: reply[1] as number, usdMicros: reply[2] as number, risk: reply[3] as number, requests: reply[4] as number }, expired };
  }

  async commit(id: string, actual: Amounts, now: number): Promise<CommitOutcome> {
    const base = this.#base(rootOfReservation(id));
    if (base === undefined) return { status: "unknown", expired: NONE };
    const args = LINE_KINDS.map((kind) => integer(actual[kind], `actual.${kind}`, true, true));
    const reply = await this.#scripts.allowanceCommit(`${base}r:${id}`, `${base}x`, `${base}a`, base, String(now), this.#retention, id, ...args);
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
    const base = this.#base(rootOfReservation(id));
    if (base === undefined) return { status: "unknown", already: false, expired: NONE };
    const reply = await this.#scripts.allowanceRelease(`${base}r:${id}`, `${base}x`, `${base}a`, base, String(now), this.#retention, id);
    return { status: reply[0] as ReleaseOutcome["status"], already: reply[1] === 1, expired: ids(reply[2]) };
  }

  async balances(root: string, accounts: readonly string[], now: number): Promise<BalancesOutcome> {
    const base = this.#base(root);
    // No reservation or spend can exist under a root that cannot be a hash tag.
    if (base === undefined) return { balances: new Map(accounts.map((name) => [name, { spent: 0, held: 0 }])), expired: NONE };
    const reply = await this.#scripts.allowanceBalances(`${base}x`, `${base}a`, base, String(now), this.#retention, ...accounts);
    const values = reply[0] as number[];
    return { balances: new Map(accounts.map((name, i) => [name, { spent: values[2 * i] as number, held: values[2 * i + 1] as number }])), expired: ids(reply[1]) };
  }

  async close(): Promise<void> {
    if (this.#closeConnection) await this.#redis.quit();
  }

  /** `P{root}:`, or undefined for a root that cannot be a hash tag (no reservation can have it). */
  #base(root: string): string | undefined {
    if (root === "" || root.includes("{") || root.includes("}")) return undefined;
    return `${this.#prefix}{${root}}:`;
  }

  #argsOf(lines: readonly LedgerLine[]): readonly string[] {
    let args = this.#lineArgs.get(lines);
    if (args === undefined) {
      args = lines.flatMap((line) => [line.account, line.kind, line.cap === null ? "" : integer(line.cap, "cap", true)]);
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
