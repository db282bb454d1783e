/**
 * Redis-backed stores for the verifier (spec/presentation.md §5–6), shared by every process and
 * host that talks to one Redis: a replay cache for presentations and a revocation store.
 */
import type { Cluster, Redis } from "ioredis";
import type { ReplayCache, RevocationStore } from "@allowance/verifier";

export interface RedisReplayCacheOptions {
  /** Prefix of every key. Default `allowance:replay:`. */
  readonly keyPrefix?: string;
}

/**
 * One `SET key 1 NX PX ttl` per claim: the test and the record are one atomic step across every
 * client. The entry lives `expiresAt − now` by the Redis clock (spec/presentation.md §5.1). A Redis
 * error is thrown, never turned into `true`.
 */
export class RedisReplayCache implements ReplayCache {
  readonly #redis: Redis | Cluster;
  readonly #prefix: string;

  constructor(redis: Redis | Cluster, options: RedisReplayCacheOptions = {}) {
    this.#redis = redis;
    this.#prefix = options.keyPrefix ?? "allowance:replay:";
  }

  async claim(id: string, expiresAt: number, now: number): Promise<boolean> {
    if (typeof id !== "string" || id.length === 0) throw new TypeError(`"id" expected a non-empty string, got ${JSON.stringify(id)}`);
    const key = this.#prefix + id;
    const ttlMs = Math.ceil((expiresAt - now) * 1000);
    if (!Number.isFinite(ttlMs)) throw new RangeError(`"expiresAt" and "now" expected epoch seconds, got ${expiresAt} and ${now}`);
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
  /** How often the whole set is reloaded, in ms. Default 30,000; 0 turns reloading off. */
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
  /** The last reload's error, if it failed; the mirror keeps what it had. */
  lastError: Error | undefined;

  private constructor(redis: Redis | Cluster, options: RedisRevocationStoreOptions) {
    this.#redis = redis;
    this.key = options.key ?? "allowance:revoked";
    this.channel = options.channel ?? `${this.key}:events`;
    // A connection in subscriber mode can run no other command, so the store uses its own.
    this.#subscriber = redis.isCluster ? (redis as Cluster).duplicate() : (redis as Redis).duplicate();
  }

  /** Loads the set, subscribes to the channel and starts the periodic reload. */
  static async open(redis: Redis | Cluster, options: RedisRevocationStoreOptions = {}): Promise<RedisRevocationStore> {
    const interval = options.reloadIntervalMs ?? 30_000;
    if (!Number.isSafeInteger(interval) || interval < 0) throw new RangeError(`"reloadIntervalMs" expected a non-negative integer, got ${interval}`);
    const store = new RedisRevocationStore(redis, options);
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
      throw error;
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
      this.lastError = undefined;
    } catch (error) {
      this.lastError = error instanceof Error ? error : new Error(String(error));
      throw this.lastError;
    }
  }

  has(linkId: string): boolean {
    return this.#revoked.has(linkId);
  }

  /** SADD, then PUBLISH to every mirror; resolves once Redis has both. */
  async revoke(linkId: string): Promise<void> {
    if (typeof linkId !== "string" || !LINK_ID.test(linkId)) {
      throw new TypeError(`"linkId" expected a base64url SHA-256 link id (43 characters), got ${JSON.stringify(linkId)}`);
    }
    await this.#redis.sadd(this.key, linkId);
    this.#revoked.add(linkId);
    await this.#redis.publish(this.channel, linkId);
  }

  list(): readonly string[] {
    return [...this.#revoked];
  }

  /** Stops the reload and closes the subscriber connection (not the one passed to `open`). */
  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#subscriber.quit().catch(() => undefined);
  }
}
