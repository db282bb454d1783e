/**
 * `@allowance/verifier/redis`: Redis-backed stores for the verifier (spec/presentation.md §5–6),
 * shared by every process and host that talks to one Redis: a replay cache for presentations and a
 * revocation store. A subpath of its own: ioredis is an optional peer dependency, needed only here,
 * and a tool endpoint gets replay protection across hosts without installing the enforcer.
 */
import type { Cluster, Redis } from "ioredis";
import { AllowanceError } from "@allowance/core";
import { shown } from "./inputs.js";
import { checkedReplayId, type ReplayCache } from "./replay.js";
import { revocationUnavailable, type RevocationStore } from "./revocation.js";

/**
 * The longest a replay record may live, in ms: 2^53 − 1, the most Redis takes as `PX` once its
 * own clock is added, and the most a number holds exactly (spec/presentation.md §6.5).
 */
const MAX_REPLAY_TTL_MS = Number.MAX_SAFE_INTEGER;
/** The longest `reloadIntervalMs`: a lost revocation reaches the mirror within it (as the file store, §6.3). */
const MAX_RELOAD_INTERVAL_MS = 3_600_000;

export interface RedisReplayCacheOptions {
  /** Prefix of every key. Default `allowance:replay:`. */
  readonly keyPrefix?: string;
}

/** An options object with only the names the store knows: a misspelt option would keep its default. */
function checkedOptions<T extends object>(
  value: T | undefined,
  known: readonly string[],
): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new TypeError(`"options" expected an object, got ${shown(value)}`);
  for (const name of Object.keys(value)) {
    if (!known.includes(name))
      throw new TypeError(
        `"options" has no option named ${JSON.stringify(name)} (known: ${known.join(", ")})`,
      );
  }
  return value;
}

/** An optional string option; `allowEmpty` only where an empty string means something (a key prefix). */
function checkedString(
  value: unknown,
  name: string,
  fallback: string,
  allowEmpty: boolean,
): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || (!allowEmpty && value === "")) {
    throw new TypeError(
      `"${name}" expected a ${allowEmpty ? "" : "non-empty "}string, got ${shown(value)}`,
    );
  }
  return value;
}

/** Epoch seconds as `claim` takes them (spec/presentation.md §5.4): an integer from 0 to 2^53 − 1. */
function checkedSeconds(value: number, name: string): number {
  if (typeof value !== "number")
    throw new TypeError(`"${name}" expected an integer of epoch seconds, got ${shown(value)}`);
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RangeError(
      `"${name}" expected an integer of epoch seconds from 0 to 2^53 - 1, got ${shown(value)}`,
    );
  return value;
}

function checkedClient(redis: Redis | Cluster, methods: readonly string[]): void {
  const target = redis as unknown as Record<string, unknown> | null;
  if (
    typeof target !== "object" ||
    target === null ||
    methods.some((m) => typeof target[m] !== "function")
  ) {
    throw new TypeError(`"redis" expected an ioredis client, got ${shown(redis)}`);
  }
}

/**
 * One `SET key 1 NX PX ttl` per claim: the test and the record are one atomic step across every
 * client. The entry lives `expiresAt − now` by the Redis clock (spec/presentation.md §5.1). A Redis
 * error is thrown, never turned into `true`.
 */
export class RedisReplayCache implements ReplayCache {
  readonly #redis: Redis | Cluster;
  readonly #prefix: string;

  constructor(redis: Redis | Cluster, options?: RedisReplayCacheOptions) {
    checkedClient(redis, ["set", "exists"]);
    const checked = checkedOptions(options, ["keyPrefix"]);
    this.#redis = redis;
    this.#prefix = checkedString(checked.keyPrefix, "keyPrefix", "allowance:replay:", true);
  }

  /**
   * The arguments are checked as the memory cache checks them (spec/presentation.md §5.4): a NaN,
   * fractional or negative time would give Redis a TTL it rounds, refuses or reads as "expired".
   */
  async claim(id: string, expiresAt: number, now: number): Promise<boolean> {
    checkedReplayId(id);
    checkedSeconds(expiresAt, "expiresAt");
    checkedSeconds(now, "now");
    const key = this.#prefix + id;
    const ttlMs = (expiresAt - now) * 1000;
    // Past 2^53 − 1 ms the TTL is no longer exact, and Redis refuses it once it adds its clock.
    if (ttlMs > MAX_REPLAY_TTL_MS) {
      throw new RangeError(
        `"expiresAt" expected at most ${Math.floor(MAX_REPLAY_TTL_MS / 1000)} seconds after "now", got ${shown(expiresAt)} (now ${now})`,
      );
    }
    // Already expired: nothing to record, but an unexpired earlier claim still wins.
    if (ttlMs <= 0) return (await this.#redis.exists(key)) === 0;
    return (await this.#redis.set(key, "1", "PX", ttlMs, "NX")) === "OK";
  }
}

export interface RedisRevocationStoreOptions {
  /** The Redis SET of revoked link ids. Default `allowance:revoked`. */
  readonly key?: string;
  /** The pub/sub channel `revoke` announces on. Default: the key followed by `:events`. */
  readonly channel?: string;
  /**
   * How often the whole set is reloaded, in whole ms from 0 to 3,600,000. Default 30,000; 0 turns
   * the periodic reload off (announcements and reconnects still update the mirror).
   */
  readonly reloadIntervalMs?: number;
}

const LINK_ID = /^[A-Za-z0-9_-]{43}$/;

/**
 * Revoked link ids in a Redis SET, mirrored in memory because `verify` asks `has` synchronously.
 * The mirror is loaded by `open`, then kept current by a pub/sub channel on which every `revoke`
 * (SADD, then PUBLISH) is announced, and by a full reload every `reloadIntervalMs`. Pub/sub does
 * not redeliver: a message lost while the subscriber was disconnected is caught by the reload
 * that follows the reconnect, otherwise by the next periodic reload — so the mirror lags the SET by
 * at most the reload interval, and only when a message was lost. Ids are never dropped from the
 * mirror by a reload: a SET that was emptied by mistake does not un-revoke anything here.
 */
export class RedisRevocationStore implements RevocationStore {
  readonly key: string;
  readonly channel: string;
  readonly #redis: Redis | Cluster;
  readonly #subscriber: Redis | Cluster;
  readonly #revoked = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #lastError: AllowanceError | undefined;
  #closed = false;

  /** The last reload's error (ERR_REVOCATION_UNAVAILABLE), if it failed; the mirror keeps what it had. Read-only. */
  get lastError(): AllowanceError | undefined {
    return this.#lastError;
  }

  private constructor(redis: Redis | Cluster, key: string, channel: string) {
    this.#redis = redis;
    this.key = key;
    this.channel = channel;
    // A connection in subscriber mode can run no other command, so the store uses its own.
    this.#subscriber = redis.isCluster
      ? (redis as Cluster).duplicate()
      : (redis as Redis).duplicate();
  }

  /** Loads the set, subscribes to the channel and starts the periodic reload. */
  static async open(
    redis: Redis | Cluster,
    options?: RedisRevocationStoreOptions,
  ): Promise<RedisRevocationStore> {
    // Checked before any connection is made, as the file store checks its interval (spec/presentation.md §6.3, §6.4).
    checkedClient(redis, ["smembers", "sadd", "publish", "duplicate"]);
    const checked = checkedOptions(options, ["key", "channel", "reloadIntervalMs"]);
    const key = checkedString(checked.key, "key", "allowance:revoked", false);
    const channel = checkedString(checked.channel, "channel", `${key}:events`, false);
    const interval = checkedInterval(checked.reloadIntervalMs);
    const store = new RedisRevocationStore(redis, key, channel);
    try {
      store.#subscriber.on("message", (channel: string, message: string) => {
        if (channel === store.channel && LINK_ID.test(message)) store.#revoked.add(message);
      });
      // Subscribe before the first load, so no revocation falls between the two.
      await store.#subscriber.subscribe(store.channel);
      // After a reconnect (ioredis resubscribes by itself), messages may have been missed meanwhile.
      store.#subscriber.on("ready", () => void store.reload().catch(() => undefined));
      await store.reload();
    } catch (error) {
      store.#subscriber.disconnect();
      throw unavailable(`cannot open the revocation set ${key}`, error);
    }
    if (interval > 0) {
      store.#timer = setInterval(() => void store.reload().catch(() => undefined), interval);
      store.#timer.unref();
    }
    return store;
  }

  /** Reads the whole set now and adds what the mirror lacks. */
  async reload(): Promise<void> {
    try {
      for (const id of await this.#redis.smembers(this.key)) this.#revoked.add(id);
      this.#lastError = undefined;
    } catch (error) {
      this.#lastError = unavailable(`cannot read the revocation set ${this.key}`, error);
      throw this.#lastError;
    }
  }

  has(linkId: string): boolean {
    // A lookup by anything but a string would answer "not revoked" for a mistake (§6.2).
    if (typeof linkId !== "string")
      throw new TypeError(`"linkId" expected a string, got ${shown(linkId)}`);
    // Closed, the mirror follows the set no more: its "not revoked" would be stale without a word.
    if (this.#closed)
      throw revocationUnavailable(
        `the revocation store of ${this.key} is closed: its mirror no longer follows the set`,
      );
    return this.#revoked.has(linkId);
  }

  /** SADD, then PUBLISH to every mirror; resolves once Redis has both. */
  async revoke(linkId: string): Promise<void> {
    if (typeof linkId !== "string" || !LINK_ID.test(linkId)) {
      throw new TypeError(
        `"linkId" expected a base64url SHA-256 link id (43 characters), got ${JSON.stringify(linkId)}`,
      );
    }
    try {
      await this.#redis.sadd(this.key, linkId);
    } catch (error) {
      throw unavailable(`cannot revoke: cannot add to ${this.key}`, error);
    }
    this.#revoked.add(linkId);
    try {
      await this.#redis.publish(this.channel, linkId);
    } catch (error) {
      throw unavailable(
        `revoked in ${this.key}, but not announced on ${this.channel}: other processes see it at their next reload`,
        error,
      );
    }
  }

  list(): readonly string[] {
    return [...this.#revoked];
  }

  /**
   * Stops the reload and closes the subscriber connection (not the one passed to `open`). `has`
   * then throws ERR_REVOCATION_UNAVAILABLE: a verifier still holding the store refuses tokens.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#subscriber.quit().catch(() => undefined);
  }
}

/**
 * `reloadIntervalMs`: a whole number of ms from 0 to MAX_RELOAD_INTERVAL_MS. A NaN would make
 * `setInterval` fire every millisecond, and so would anything past 2^31 − 1 ms (Node clamps it to 1).
 */
function checkedInterval(value: unknown): number {
  if (value === undefined) return 30_000;
  if (typeof value !== "number")
    throw new TypeError(`"reloadIntervalMs" expected an integer, got ${shown(value)}`);
  if (!Number.isInteger(value) || value < 0 || value > MAX_RELOAD_INTERVAL_MS) {
    throw new RangeError(
      `"reloadIntervalMs" expected an integer from 0 to ${MAX_RELOAD_INTERVAL_MS}, got ${shown(value)}`,
    );
  }
  return value;
}

/** A failure of the revocation set, typed (spec/presentation.md §6.4); one already typed as it is. */
function unavailable(message: string, cause: unknown): AllowanceError {
  return cause instanceof AllowanceError ? cause : revocationUnavailable(message, cause);
}
