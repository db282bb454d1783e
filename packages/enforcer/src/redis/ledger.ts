/**
 * The distributed ledger (spec/enforcement.md §8): every operation runs inside ONE Lua script
 * (ledger.lua), so the check and the hold are one atomic step for every client of the Redis server,
 * on any host. Operations on one root that a process asks for in the same event-loop turn share
 * one script call, which runs them one after another, each exactly as if alone. The script states
 * rule.ts's rule in Lua; the ledger vectors run on it directly. How operations and replies travel
 * is wire.ts. The script runs as a function library (FCALL) on Redis 7 and later, by EVALSHA
 * elsewhere (`#call`).
 *
 * Key layout. `P` is the key prefix (default `allowance:`), `R` the root link id. Every key of a
 * chain carries the hash tag `{R}`, so a chain's keys live in one Redis Cluster slot and a script
 * may touch all of them:
 *
 *   P{R}:a      HASH  the root's accounts: field `s:<account>` spent, `h:<account>` held (absent = 0);
 *                     a rate window's account per bucket of the server's time, `<account>@<bucket>`.
 *   P{R}:x      ZSET  held reservations, scored by expiresAt (epoch ms); members with equal scores
 *                     sort by id, which is the rule's (expiresAt, id) expiry order, except that
 *                     Redis compares UTF-8 bytes where JS compares UTF-16 units: the two differ
 *                     only between ids with characters U+E000–U+FFFF and ids with characters
 *                     beyond U+FFFF at the same place. The enforcer's ids are ASCII.
 *   P{R}:h      HASH  held reservations' records, by id.
 *   P{R}:l      HASH  line sets, by digest (wire.ts `lineSetOf`). A line set is stored once per
 *                     root, not once per reservation.
 *   P{R}:c:<n>  HASH  closed reservations' records (committed, released or expired), by id, for
 *                     generation n = floor(server time in ms / retentionMs). The hash expires when
 *                     generation n + 1 ends, so a record is kept at least `retentionMs` (default
 *                     24 h) after it closed and at most twice that, for idempotent commit and
 *                     release and for late commits; then it is forgotten (`unknown`). A record
 *                     changed again (a late commit of an expired one) goes to the current
 *                     generation, which is read first. Generations follow the Redis server's
 *                     clock, which every client shares.
 *   P{R}:r      STRING the root's receipt head (spec/receipts.md §2): the sequence number and
 *                     entry of its latest receipted commit (ledger.lua), derived by the script
 *                     from the closed-record base, so in the same slot.
 *   P{R}:w      ZSET  the root's rate-window bucket accounts, `<account>@<bucket>`, scored by the
 *                     bucket's end: an account that ended `retentionMs` ago and holds nothing is
 *                     deleted from P{R}:a (ledger.lua `pruneBuckets`, spec/enforcement.md §3.5).
 *
 * Time (spec/enforcement.md §3.8): the script runs each operation at the Redis server's `TIME`,
 * read once per call, so that every client's holds expire and rate windows turn on one clock; the
 * client sends its own clock with a reserve, which is refused (ERR_CLOCK_SKEW) when further from
 * the server's than `maxClockSkewMs`. A `now` option (tests) sends its time with every operation.
 *
 * A held reservation has no TTL: the next operation on its root after its expiry closes it. A
 * batch reads the records it needs with one HMGET on the held hash (and, for ids not held, one on
 * each of the two latest generations), and writes them back once at its end.
 *
 * This is layout 6: a held or expired record ends with the time of its reserve, its hold's expiry
 * and its bound (§3.11). A record that carries more — its reserve's fingerprint
 * (spec/enforcement.md §3.10), the lines its commit listed — has a full form (its status plus
 * RECORD_FULL, ledger.lua `encodeFull`; layout 5 gave it to every bounded hold too, and is read).
 * In layout 4 a held or expired record ends with the time of its reserve (its windows'
 * buckets), and a line set with a window's line carries the windows. Layout 3 records and sets,
 * which have neither, are read as they are. Layout 2 (0.1.0) stored line sets without their lines' link and field; their
 * holds keep working, and a commit's crossed lines get the link and field from the account names
 * (legacy-lines.ts). Layout 1 (development builds before 0.1.0) kept each reservation in a hash of
 * its own, P{R}:r:<id>, which the script does not read: a Redis holding layout-1 holds must be
 * drained (every hold committed, released or expired) before the upgrade, or those holds stay
 * held. Accounts are the same in every layout.
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
import { randomBytes } from "node:crypto";
import { Redis, type Cluster } from "ioredis";
import { AllowanceError } from "@allowance/core";
import {
  checkBalancesArgs,
  checkCommitArgs,
  checkExtendArgs,
  checkReleaseArgs,
  checkReserveOp,
  checkKnownOptions,
  checkedBoolean,
  integerOption,
  checkedClockOptions,
  checkedRoot,
  checkSettleArgs,
  checkedTime,
  rootOfReservation,
  type AccountRef,
  type Amounts,
  type BalancesOutcome,
  type CommitOptions,
  type CommitOutcome,
  type ExtendOutcome,
  type Ledger,
  type LedgerClockOptions,
  type LedgerLine,
  type ReleaseOutcome,
  type ReserveOp,
  type ReserveOutcome,
  type SettleOutcome,
} from "../ledger.js";
import { LEDGER_FUNCTION, LEDGER_LIBRARY, LEDGER_LUA } from "./ledger-lua.js";
import {
  EPOCH_FIELD,
  RECONCILED,
  ReplyReader,
  SCRIPT_KEYS,
  decodeBalances,
  decodeCommit,
  decodeExtend,
  decodeRelease,
  decodeReserve,
  decodeSettle,
  encodeBalances,
  encodeCommit,
  encodeExtend,
  encodeRelease,
  encodeReserve,
  encodeSettle,
  epochArg,
  lineSetOf,
  readHeader,
  scriptArgs,
  setLineSet,
  setSettleLineSet,
  type LineSet,
} from "./wire.js";

export interface RedisLedgerOptions extends LedgerClockOptions {
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
  /**
   * What the ledger requires of the server's persistence (spec/enforcement.md §8.1). `verify`
   * (default): before its first operation (or in `connect`), it reads `CONFIG GET appendonly` and
   * `maxmemory-policy` of the server (every primary of a cluster) and refuses, with
   * ERR_LEDGER_NOT_DURABLE, unless appendonly is `yes` and the policy is `noeviction`.
   * `ensured-elsewhere`: the caller states that the provider keeps AOF on and evicts nothing (a
   * hosted Redis that blocks CONFIG). `not-needed`: the caller accepts losing acknowledged spend
   * on a restart or an eviction (tests, throwaway budgets). Either way, lost state is still
   * detected by the epoch marker.
   */
  readonly durability?: RedisDurability;
}

/** The values of RedisLedgerOptions.durability. */
export const REDIS_DURABILITY = Object.freeze([
  "verify",
  "ensured-elsewhere",
  "not-needed",
] as const);
export type RedisDurability = (typeof REDIS_DURABILITY)[number];

/** Epochs remembered per ledger at most; beyond, the oldest roots are forgotten (detection then starts anew). */
const MAX_EPOCHS = 100_000;

type BatchScript = {
  allowanceLedgerBuffer(...keysThenArgs: (string | Buffer)[]): Promise<Buffer>;
};

const NONE: readonly string[] = Object.freeze([]);
/** Operations sent in one script call at most; more wait for the next. */
const MAX_BATCH = 32;

interface Waiting {
  /** Reads the operation's part of the reply: its outcome, or the Error to refuse it with. */
  decode(reader: ReplyReader): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** Operations on one root waiting to be sent together. */
interface Batch {
  /** `P{root}:`, the start of every key of the root. */
  readonly base: string;
  readonly ops: Buffer[];
  /** The line sets the batch's reserves use, each with its 1-based number in the call. */
  readonly sets: Map<LineSet, number>;
  /** Their digests and JSON, in number order. */
  readonly setArgs: string[];
  readonly waiting: Waiting[];
}

export class RedisLedger implements Ledger {
  readonly name = "redis";
  readonly receipts = true;
  readonly #redis: Redis | Cluster;
  readonly #script: BatchScript;
  readonly #prefix: string;
  readonly #retention: string;
  readonly #closeConnection: boolean;
  /** A clock given for tests: its time goes with every operation. Undefined: the server's TIME. */
  readonly #clock: (() => number) | undefined;
  readonly #maxClockSkewMs: number;
  readonly #lineSets = new WeakMap<readonly LedgerLine[], LineSet>();
  /** Operations waiting to be sent, by root; sent when the event loop turns, or when full. */
  readonly #batches = new Map<string, Batch>();
  #flushScheduled = false;
  /** Set once the server's persistence was found durable (or the caller vouched for it). */
  #durable: boolean;
  /** The check in flight, shared by the batches that wait for it. */
  #durableCheck: Promise<void> | undefined;
  /** The epoch marker of each root as this ledger last saw it (spec/enforcement.md §8.1). */
  readonly #epochs = new Map<string, string>();
  /** How the script is called: decided by the first call's probe (`#call`). */
  #mode: "function" | "eval" | undefined;
  /** The probe, or the library's load, in flight: shared by the calls that wait for it. */
  #probing: Promise<void> | undefined;
  #loading: Promise<void> | undefined;

  /** The script is registered on `redis` (defineCommand: EVALSHA, loading the script on NOSCRIPT). */
  constructor(redis: Redis | Cluster, options: RedisLedgerOptions = {}) {
    checkKnownOptions(
      options,
      ["keyPrefix", "retentionMs", "closeConnection", "durability"],
      "redis",
    );
    // null is not "the default": only an option left out is.
    const prefix = options.keyPrefix === undefined ? "allowance:" : options.keyPrefix;
    if (typeof prefix !== "string" || /[{}]/.test(prefix))
      throw new TypeError(`"keyPrefix" must not contain { or }, got ${JSON.stringify(prefix)}`);
    const retention = integerOption(options.retentionMs, "retentionMs", 86_400_000, 1);
    // The server's TIME unless a clock is given: checkedClockOptions' Date.now is not taken.
    const { maxClockSkewMs } = checkedClockOptions({ ...options, now: Date.now });
    if (options.now !== undefined) checkedClockOptions(options);
    this.#clock = options.now;
    this.#maxClockSkewMs = maxClockSkewMs;
    this.#redis = redis;
    this.#prefix = prefix;
    this.#retention = String(retention);
    // A string "false" would otherwise quit a connection its caller still uses.
    this.#closeConnection = checkedBoolean(options.closeConnection, "closeConnection");
    // Only an absent option takes the default: null is a mistake, not "no preference".
    const durability = options.durability === undefined ? "verify" : options.durability;
    if (typeof durability !== "string" || !REDIS_DURABILITY.includes(durability))
      throw new TypeError(
        `"durability" expected "verify", "ensured-elsewhere" or "not-needed", got ${JSON.stringify(durability)}`,
      );
    this.#durable = durability !== "verify";
    // ioredis also defines allowanceLedgerBuffer, which returns the reply as a Buffer.
    if (!("allowanceLedgerBuffer" in redis))
      redis.defineCommand("allowanceLedger", { lua: LEDGER_LUA, numberOfKeys: SCRIPT_KEYS });
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
      const ledger = new RedisLedger(redis, { ...options, closeConnection: true });
      // At start, not at the first spend: a server that may lose money refuses the process.
      await ledger.checkDurability();
      return ledger;
    } catch (error) {
      redis.disconnect();
      throw error;
    }
  }

  /**
   * Reads the server's persistence and eviction policy (every primary of a cluster) and throws
   * ERR_LEDGER_NOT_DURABLE unless appendonly is `yes` and maxmemory-policy is `noeviction`
   * (spec/enforcement.md §8.1); the ledger's first operation does it too. Does nothing when the
   * `durability` option says it is ensured elsewhere or not needed. A failure to reach the server
   * is thrown as it is and checked again next time.
   */
  async checkDurability(): Promise<void> {
    if (this.#durable) return;
    this.#durableCheck ??= this.#verifyDurability().finally(() => {
      this.#durableCheck = undefined;
    });
    await this.#durableCheck;
  }

  async #verifyDurability(): Promise<void> {
    const servers = this.#primaries();
    if (servers.length === 0)
      throw new AllowanceError("ERR_LEDGER_NOT_DURABLE", "the Redis cluster has no primary");
    for (const server of servers) {
      let config: Record<string, string>;
      try {
        const answer = (await server.call(
          "CONFIG",
          "GET",
          "appendonly",
          "maxmemory-policy",
        )) as string[];
        config = {};
        for (let i = 0; i + 1 < answer.length; i += 2)
          config[answer[i] as string] = answer[i + 1] as string;
      } catch (error) {
        if (!(error instanceof Error) || !/ERR|NOPERM|unknown command/i.test(error.message))
          throw error;
        throw new AllowanceError(
          "ERR_LEDGER_NOT_DURABLE",
          `the Redis server refused CONFIG GET (${error.message}), so the ledger cannot see whether it persists what it acknowledges: if the provider keeps AOF on and evicts nothing, say so with durability: "ensured-elsewhere"`,
        );
      }
      const where = "options" in server ? `${server.options.host}:${server.options.port}` : "";
      if (config.appendonly !== "yes")
        throw new AllowanceError(
          "ERR_LEDGER_NOT_DURABLE",
          `the Redis server ${where} runs with appendonly ${config.appendonly ?? "(unknown)"}: a restart would lose every acknowledged spend since its last snapshot, and budgets would show as unspent; turn AOF on (appendonly yes), or pass durability: "not-needed" to accept that`,
        );
      if (config["maxmemory-policy"] !== "noeviction")
        throw new AllowanceError(
          "ERR_LEDGER_NOT_DURABLE",
          `the Redis server ${where} runs with maxmemory-policy ${config["maxmemory-policy"] ?? "(unknown)"}, which may evict ledger keys (the closed-record generations carry a TTL, so volatile-* policies evict them too, and a late commit is then not charged); use noeviction, or pass durability: "not-needed" to accept that`,
        );
    }
    this.#durable = true;
  }

  /**
   * The operator's answer to lost state (ERR_LEDGER_STATE, spec/enforcement.md §8.1): accepts the
   * root's keys as they now are and writes a new epoch marker, which every client of the root then
   * takes as its epoch. Call it once the loss is understood (budgets spent beyond what the ledger
   * now shows may need revoking or restoring by hand); until then, every operation on the root is
   * refused. Also the way to adopt a root written before epoch markers existed.
   */
  async reconcile(root: string): Promise<void> {
    const base = this.#base(checkedRoot(root)) as string;
    const marker = `${RECONCILED}${randomBytes(12).toString("base64url")}`;
    await this.#redis.hset(`${base}a`, EPOCH_FIELD, marker);
    this.#epochs.delete(root);
  }

  reserve(op: ReserveOp): Promise<ReserveOutcome> {
    try {
      checkReserveOp(op);
      const encoded = encodeReserve(op.now === undefined ? { ...op, ...this.#given() } : op);
      const lineSet = this.#lineSetOf(op.lines);
      return this.#submit(
        op.root,
        (batch) => {
          setLineSet(encoded, numberOf(batch, lineSet));
          batch.ops.push(encoded);
        },
        (reply) => decodeReserve(reply, op, this.#maxClockSkewMs),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  commit(
    id: string,
    actual: Amounts,
    now?: number,
    options?: CommitOptions,
  ): Promise<CommitOutcome> {
    try {
      checkCommitArgs(id, actual, now, options);
      const root = rootOfReservation(id);
      if (this.#base(root) === undefined)
        return Promise.resolve({ status: "unknown", expired: NONE });
      const encoded = encodeCommit(id, actual, now ?? this.#given().now, options);
      return this.#submit(
        root,
        (batch) => batch.ops.push(encoded),
        (reply) => decodeCommit(reply, root),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  release(id: string, now?: number): Promise<ReleaseOutcome> {
    try {
      checkReleaseArgs(id, now);
      const root = rootOfReservation(id);
      if (this.#base(root) === undefined)
        return Promise.resolve({ status: "unknown", already: false, expired: NONE });
      const encoded = encodeRelease(id, now ?? this.#given().now);
      return this.#submit(root, (batch) => batch.ops.push(encoded), decodeRelease);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  extend(id: string, ttlMs: number, now?: number): Promise<ExtendOutcome> {
    try {
      checkExtendArgs(id, ttlMs, now);
      const root = rootOfReservation(id);
      if (this.#base(root) === undefined)
        return Promise.resolve({ status: "unknown", expired: NONE });
      const encoded = encodeExtend(id, ttlMs, now ?? this.#given().now);
      return this.#submit(root, (batch) => batch.ops.push(encoded), decodeExtend);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async balances(
    root: string,
    accounts: readonly AccountRef[],
    now?: number,
  ): Promise<BalancesOutcome> {
    checkBalancesArgs(root, accounts, now);
    const encoded = encodeBalances(accounts, now ?? this.#given().now);
    return this.#submit(
      root,
      (batch) => batch.ops.push(encoded),
      (reply) => decodeBalances(reply, accounts),
    );
  }

  /** Settles the outstanding debt of these lines (spec/enforcement.md §3.9), in the root's script. */
  settle(root: string, lines: readonly LedgerLine[], now?: number): Promise<SettleOutcome> {
    try {
      checkSettleArgs(root, lines, now);
      const encoded = encodeSettle(now ?? this.#given().now);
      const lineSet = this.#lineSetOf(lines);
      return this.#submit(
        root,
        (batch) => {
          setSettleLineSet(encoded, numberOf(batch, lineSet));
          batch.ops.push(encoded);
        },
        (reply) => decodeSettle(reply, lines),
      );
    } catch (error) {
      return Promise.reject(error);
    }
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
    const batch = this.#batchOf(root);
    add(batch);
    const result = new Promise<T>((resolve, reject) =>
      batch.waiting.push({ decode, resolve: resolve as (value: unknown) => void, reject }),
    );
    this.#schedule(root, batch);
    return result;
  }

  #batchOf(root: string): Batch {
    let batch = this.#batches.get(root);
    if (batch === undefined) {
      const base = this.#base(root) as string;
      batch = { base, ops: [], sets: new Map(), setArgs: [], waiting: [] };
      this.#batches.set(root, batch);
    }
    return batch;
  }

  /** Sends a full batch now; otherwise every batch once the event loop turns. */
  #schedule(root: string, batch: Batch): void {
    if (batch.waiting.length >= MAX_BATCH) void this.#flush(root);
    else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => {
        this.#flushScheduled = false;
        for (const pending of [...this.#batches.keys()]) void this.#flush(pending);
      });
    }
  }

  async #flush(root: string): Promise<void> {
    const batch = this.#batches.get(root);
    if (batch === undefined) return;
    this.#batches.delete(root);
    let reply: ReplyReader;
    try {
      if (!this.#durable) await this.checkDurability();
      const ops = batch.ops.length === 1 ? (batch.ops[0] as Buffer) : Buffer.concat(batch.ops);
      const epoch = epochArg(this.#epochs.get(root), freshEpoch);
      reply = new ReplyReader(
        await this.#call(
          scriptArgs(
            batch.base,
            this.#retention,
            String(this.#maxClockSkewMs),
            epoch,
            batch.setArgs,
            ops,
          ),
        ),
      );
      const header = readHeader(reply);
      if ("lost" in header)
        throw new AllowanceError(
          "ERR_LEDGER_STATE",
          `the ledger state of root ${root} was lost: ${header.lost} (a Redis restart without persistence, or an eviction); every operation on it is refused until an operator reconciles it (RedisLedger.reconcile)`,
        );
      if (header.epoch !== "") this.#remember(root, header.epoch);
    } catch (error) {
      const refusal = scriptRefusal(error);
      for (const waiting of batch.waiting) waiting.reject(refusal);
      return;
    }
    settle(batch.waiting, reply);
  }

  /**
   * Runs the script once on `keysThenArgs`: as the function of the library (FCALL, Redis 7 and
   * later), which makes its functions and parses its line sets once rather than on every call;
   * or by EVALSHA where the server has no functions, refuses them to this user, or answers
   * FUNCTION LOAD in any other way. Which one is decided once, by a call that runs no operation
   * (`#probe`), so that whatever a server answers there, no batch is ever sent twice. After that,
   * only "Function not found" (the library was flushed; the call did not run) loads it again and
   * sends the batch again.
   */
  async #call(keysThenArgs: (string | Buffer)[]): Promise<Buffer> {
    if (this.#mode === undefined) {
      this.#probing ??= this.#probe().finally(() => {
        this.#probing = undefined;
      });
      await this.#probing;
    }
    if (this.#mode === "eval") return this.#script.allowanceLedgerBuffer(...keysThenArgs);
    try {
      return await this.#fcall(keysThenArgs);
    } catch (error) {
      if (!isFunctionMissing(error)) throw error;
      await this.#load();
      return await this.#fcall(keysThenArgs);
    }
  }

  /**
   * Decides `#mode`: the library's function is called with no operation on keys no root has (it
   * reads them and writes nothing), after loading the library if the server lacks it. Any answer
   * of the server other than success means EVALSHA; a failure to reach it decides nothing.
   */
  async #probe(): Promise<void> {
    const probe = scriptArgs(
      `${this.#prefix}{probe}:`,
      this.#retention,
      String(this.#maxClockSkewMs),
      epochArg(undefined, () => "probe"),
      [],
      Buffer.alloc(0),
    );
    try {
      try {
        await this.#fcall(probe);
      } catch (error) {
        if (!isFunctionMissing(error)) throw error;
        await this.#load();
        await this.#fcall(probe);
      }
      this.#mode = "function";
    } catch (error) {
      if (!isServerAnswer(error)) throw error;
      this.#mode = "eval";
    }
  }

  /** Loads the library, once for every call that found it missing at the same time. */
  #load(): Promise<void> {
    this.#loading ??= this.#loadLibrary().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  #fcall(keysThenArgs: (string | Buffer)[]): Promise<Buffer> {
    return this.#redis.callBuffer(
      "FCALL",
      LEDGER_FUNCTION,
      String(SCRIPT_KEYS),
      ...keysThenArgs,
    ) as Promise<Buffer>;
  }

  /** The server, or every primary of a cluster: where settings are read and the library loaded. */
  #primaries(): Redis[] {
    return "nodes" in this.#redis ? this.#redis.nodes("master") : [this.#redis];
  }

  /** Loads the library on the server, or on every primary of a cluster; one already there is kept. */
  async #loadLibrary(): Promise<void> {
    const servers = this.#primaries();
    for (const server of servers) {
      try {
        await server.call("FUNCTION", "LOAD", LEDGER_LIBRARY);
      } catch (error) {
        if (!(error instanceof Error && /already exists/i.test(error.message))) throw error;
      }
    }
  }

  #remember(root: string, epoch: string): void {
    if (this.#epochs.get(root) === epoch) return;
    if (this.#epochs.size >= MAX_EPOCHS)
      this.#epochs.delete(this.#epochs.keys().next().value as string);
    this.#epochs.set(root, epoch);
  }

  /** The time a `now` option gives an operation; none (the server's TIME) without one. */
  #given(): { readonly now?: number } {
    return this.#clock === undefined ? {} : { now: checkedTime(this.#clock(), "now()") };
  }

  /** `P{root}:`, or undefined for a root that cannot be a hash tag (no reservation can have it). */
  #base(root: string): string | undefined {
    if (root === "" || root.includes("{") || root.includes("}")) return undefined;
    return `${this.#prefix}{${root}}:`;
  }

  #lineSetOf(lines: readonly LedgerLine[]): LineSet {
    let set = this.#lineSets.get(lines);
    if (set === undefined) {
      set = lineSetOf(lines);
      this.#lineSets.set(lines, set);
    }
    return set;
  }
}

/**
 * An error the script raised itself (its messages start "allowance: "): stored state it cannot
 * read, such as a hold whose line set is gone from P{R}:l. Every operation of the call is refused
 * with ERR_LEDGER_STATE; balances and records are written only at a call's end, so none changed
 * (what Redis keeps of a script that raised is at most expiry-set entries, which a sweep drops
 * without their records, or a receipt head moved past a commit not stored: a gap that
 * verifyReceipts reports). Other errors (the connection, the server) are passed on as they are.
 */
function scriptRefusal(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const at = error.message.indexOf("allowance: ");
  if (at < 0) return error;
  return new AllowanceError(
    "ERR_LEDGER_STATE",
    `the ledger script refused the call: ${error.message.slice(at + "allowance: ".length)}`,
  );
}

/** Whether an FCALL failed, before running, because the server has no such function (yet). */
function isFunctionMissing(error: unknown): boolean {
  return error instanceof Error && /^ERR Function not found/i.test(error.message);
}

/**
 * Whether an error is the server's answer (an unknown command before Redis 7, an ACL's NOPERM, a
 * provider's own refusal), not a failure to reach it.
 */
function isServerAnswer(error: unknown): boolean {
  return error instanceof Error && error.name === "ReplyError";
}

/** A new epoch for a root this ledger has not seen: unique enough never to meet another. */
function freshEpoch(): string {
  return randomBytes(12).toString("base64url");
}

/** A line set's number in a batch's call, adding it to the sets sent with the call if new. */
function numberOf(batch: Batch, lineSet: LineSet): number {
  let set = batch.sets.get(lineSet);
  if (set === undefined) {
    set = batch.sets.size + 1;
    batch.sets.set(lineSet, set);
    batch.setArgs.push(lineSet.digest, lineSet.json);
  }
  return set;
}

/**
 * Each operation reads its part of the reply in turn. A reply that cannot be read (not this
 * script's) refuses the operation and every one after it, whose parts can no longer be found.
 */
function settle(waiting: readonly Waiting[], reply: ReplyReader): void {
  let broken: unknown = undefined;
  for (const w of waiting) {
    if (broken !== undefined) {
      w.reject(broken);
      continue;
    }
    try {
      const outcome = w.decode(reply);
      if (outcome instanceof Error) w.reject(outcome);
      else w.resolve(outcome);
    } catch (error) {
      w.reject(error);
      broken = error;
    }
  }
}
