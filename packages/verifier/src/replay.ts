/**
 * Replay caches for presentations (spec/presentation.md §5). `claim` records a one-time id until
 * `expiresAt` and answers whether this was its first use. A Redis-backed cache lives in
 * @allowance/enforcer beside the Redis ledger.
 */
import { checkedInteger, checkedKnownOptions, checkedOptions, shown } from "./inputs.js";

export interface ReplayCache {
  /**
   * True if `id` was not seen before (and is now recorded until `expiresAtSeconds`); false if it is
   * recorded with a later expiry than `nowSeconds`. Both times are epoch seconds, as `iat`.
   */
  claim(id: string, expiresAtSeconds: number, nowSeconds: number): boolean | Promise<boolean>;
}

export interface MemoryReplayCacheOptions {
  /** Most ids held at once. When full of unexpired ids, new presentations are refused (fail closed). */
  readonly maxEntries?: number;
}

/** An in-process replay cache. Entries leave when they expire; it never forgets an unexpired id. */
export class MemoryReplayCache implements ReplayCache {
  readonly #seen = new Map<string, number>();
  readonly #maxEntries: number;
  #sweptAt = Number.NEGATIVE_INFINITY;

  constructor(options?: MemoryReplayCacheOptions) {
    const checked = checkedKnownOptions(
      checkedOptions(options, "options", true),
      "options",
      new Set(["maxEntries"]),
    );
    this.#maxEntries = checkedInteger(
      checked.maxEntries,
      "maxEntries",
      1_000_000,
      Number.MAX_SAFE_INTEGER,
      1,
    );
  }

  get size(): number {
    return this.#seen.size;
  }

  claim(id: string, expiresAtSeconds: number, nowSeconds: number): boolean {
    checkedReplayId(id);
    checkedInteger(expiresAtSeconds, "expiresAtSeconds", 0, Number.MAX_SAFE_INTEGER);
    // A NaN `now` would make every recorded id look expired, and so replayable.
    checkedInteger(nowSeconds, "nowSeconds", 0, Number.MAX_SAFE_INTEGER);
    const known = this.#seen.get(id);
    if (known !== undefined && known > nowSeconds) return false;
    // A full cache is swept at most once a second, so a flood cannot make every claim O(n).
    if (this.#seen.size >= this.#maxEntries && nowSeconds > this.#sweptAt) {
      this.#sweptAt = nowSeconds;
      this.#sweep(nowSeconds);
    }
    // Forgetting an unexpired id would let it be replayed, so a full cache refuses instead.
    if (this.#seen.size >= this.#maxEntries) return false;
    this.#seen.delete(id);
    this.#seen.set(id, expiresAtSeconds);
    return true;
  }

  #sweep(nowSeconds: number): void {
    for (const [id, expiresAt] of this.#seen) if (expiresAt <= nowSeconds) this.#seen.delete(id);
  }
}

/** A replay cache's id, for every cache: an empty id is no one-time id at all. */
export function checkedReplayId(id: unknown): void {
  if (typeof id !== "string" || id.length === 0)
    throw new TypeError(`"id" expected a non-empty string, got ${shown(id)}`);
}
