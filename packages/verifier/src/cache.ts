/**
 * The verified-prefix cache (spec/presentation.md §7). Many sub-agents under one orchestrator
 * present chains that share their first links; a verifier that has checked a prefix once only
 * needs to check the new links. Entries are keyed by a SHA-256 that commits to the root kid and to
 * every byte (payload and signature) of every link in the prefix, and each entry keeps its full
 * key, which the verifier compares on every hit, so a cache that returns entries stored under other
 * keys (say, one keyed by a truncated hash) cannot make it accept anything. Entries are trusted
 * state: a cache that others can write must not be shared with a verifier. Per-call checks (clock, revocation, audience) never come
 * from the cache.
 */
import { bytesKey, equalBytes } from "@allowance/core/format";
import { checkedInteger, shown } from "./inputs.js";
import type { VerifiedLink } from "./verify.js";

export interface PrefixEntry {
  /** The full prefix key this entry was stored under. */
  readonly key: Uint8Array;
  /** The root kid the prefix starts from. */
  readonly rootKid: string;
  /** The prefix's links, fully checked except for per-call conditions. */
  readonly links: readonly VerifiedLink[];
}

export interface PrefixCache {
  get(key: Uint8Array): PrefixEntry | undefined;
  set(entry: PrefixEntry): void;
  readonly size: number;
  clear(): void;
}

/** A bounded LRU cache. */
export class LruPrefixCache implements PrefixCache {
  readonly #entries = new Map<string, PrefixEntry>();
  readonly maxEntries: number;
  hits = 0;
  misses = 0;

  constructor(maxEntries?: number) {
    this.maxEntries = checkedInteger(maxEntries, "maxEntries", 10_000, Number.MAX_SAFE_INTEGER, 1);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Returns the entry only if its stored key equals `key` in full. */
  get(key: Uint8Array): PrefixEntry | undefined {
    const name = mapKey(key);
    const entry = this.#entries.get(name);
    if (entry === undefined || !equalBytes(entry.key, key)) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.#entries.delete(name);
    this.#entries.set(name, entry);
    return entry;
  }

  set(entry: PrefixEntry): void {
    const name = mapKey(entry.key);
    this.#entries.delete(name);
    if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done !== true) this.#entries.delete(oldest.value);
    }
    this.#entries.set(name, entry);
  }

  clear(): void {
    this.#entries.clear();
  }
}

function mapKey(key: Uint8Array): string {
  if (!(key instanceof Uint8Array)) throw new TypeError(`"key" expected bytes, got ${shown(key)}`);
  return bytesKey(key);
}
