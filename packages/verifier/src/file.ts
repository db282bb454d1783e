/**
 * `@allowance/verifier/file`: revoked link ids in a JSON file shared by the processes of one host
 * (spec/presentation.md §6.3). A subpath of its own because it needs Node's file system, which the
 * rest of the verifier does not.
 */
import { randomUUID } from "node:crypto";
import {
  closeSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { AllowanceError } from "@allowance/core";
import {
  MAX_CHECK_INTERVAL_MS,
  checkedInteger,
  checkedKnownOptions,
  checkedOptions,
  shown,
} from "./inputs.js";
import {
  LINK_ID,
  assertLinkId,
  assertLookup,
  revocationUnavailable as unavailable,
  type RevocationStore,
} from "./revocation.js";

/**
 * The file's content: exactly `{"version": 1, "revoked": [link ids]}`; anything else is an
 * ERR_REVOCATION_UNAVAILABLE.
 */
function parseFile(text: string): readonly string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw unavailable("a revocation file is not JSON", error);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw unavailable('a revocation file holds {"version":1,"revoked":[...]}');
  for (const key of Object.keys(value))
    if (key !== "version" && key !== "revoked")
      throw unavailable(`a revocation file has no member ${JSON.stringify(key)}`);
  const { version, revoked } = value as { version?: unknown; revoked?: unknown };
  if (version !== 1) throw unavailable(`revocation file version ${shown(version)}, expected 1`);
  if (!Array.isArray(revoked)) throw unavailable('"revoked" must be an array of link ids');
  for (const [i, id] of revoked.entries())
    if (typeof id !== "string" || !LINK_ID.test(id))
      throw unavailable(`"revoked.${i}" is not a link id: ${shown(id)}`);
  return revoked as string[];
}

export interface FileRevocationStoreOptions {
  /**
   * How often, at most, `has` looks at the file's modification time, in whole milliseconds from 0
   * to 3,600,000 (a revocation takes effect within it). Default 250 ms.
   */
  readonly checkIntervalMs?: number;
}

/**
 * Revoked ids in a JSON file `{"version":1,"revoked":[...]}`, shared by processes on one host.
 * Writes go to a temporary file renamed into place, so readers never see half a file. If the
 * file becomes unreadable or invalid, the last good list stays in force and `lastError` (code
 * ERR_REVOCATION_UNAVAILABLE) says why: a broken file never un-revokes anything. Until the store
 * has read the file once (a missing file reads as an empty list), it knows no list at all, and
 * `has` throws that error, so verification refuses every token rather than accept one the file
 * meant to revoke. `revoke` throws that code when it cannot read, lock or write the file.
 */
export class FileRevocationStore implements RevocationStore {
  readonly path: string;
  readonly #interval: number;
  #revoked = new Set<string>();
  #mtimeMs = -1;
  #size = -1;
  #checkedAt = 0;
  /** Whether the file was ever read (or found missing): until then there is no list to answer from. */
  #read = false;
  #lastError: AllowanceError | undefined;

  /** The last read's error (ERR_REVOCATION_UNAVAILABLE), if it failed; read-only. */
  get lastError(): AllowanceError | undefined {
    return this.#lastError;
  }

  constructor(path: string, options?: FileRevocationStoreOptions) {
    // A NUL byte is no file name: every read would fail, and the store would refuse every token.
    if (typeof path !== "string" || path === "" || path.includes("\0"))
      throw new TypeError(`"path" expected a file path, got ${shown(path)}`);
    this.path = path;
    // A NaN interval would make `has` never look at the file again: no revocation would take effect.
    const checked = checkedKnownOptions(
      checkedOptions(options, "options", true),
      "options",
      new Set(["checkIntervalMs"]),
    );
    this.#interval = checkedInteger(
      checked.checkIntervalMs,
      "checkIntervalMs",
      250,
      MAX_CHECK_INTERVAL_MS,
    );
    this.reload();
  }

  /** Reads the file now. A missing file is an empty list. */
  reload(): void {
    this.#checkedAt = performance.now();
    let stat;
    try {
      stat = statSync(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        this.#mtimeMs = 0;
        this.#size = 0;
        this.#read = true;
        this.#lastError = undefined;
        return;
      }
      this.#lastError = unavailable(`cannot read ${this.path}`, error);
      return;
    }
    if (stat.mtimeMs === this.#mtimeMs && stat.size === this.#size) return;
    try {
      const revoked = parseFile(readFileSync(this.path, "utf8"));
      this.#revoked = new Set([...this.#revoked, ...revoked]);
      this.#mtimeMs = stat.mtimeMs;
      this.#size = stat.size;
      this.#read = true;
      this.#lastError = undefined;
    } catch (error) {
      this.#lastError =
        error instanceof AllowanceError ? error : unavailable(`cannot read ${this.path}`, error);
    }
  }

  has(linkId: string): boolean {
    assertLookup(linkId);
    // A monotonic clock: with the wall clock set back an hour, the file went unread for an hour.
    if (performance.now() - this.#checkedAt >= this.#interval) this.reload();
    if (!this.#read) throw this.#lastError ?? unavailable(`${this.path} has not been read`);
    return this.#revoked.has(linkId);
  }

  /** Adds an id to the file. Writers on one host take a lock file, so no revocation is lost. */
  revoke(linkId: string): void {
    assertLinkId(linkId);
    withLock(`${this.path}.lock`, () => {
      this.#mtimeMs = -1;
      this.reload();
      if (this.#lastError !== undefined)
        throw unavailable(`cannot revoke: ${this.path} is unreadable: ${this.#lastError.message}`);
      this.#revoked.add(linkId);
      const temporary = `${this.path}.${process.pid}.tmp`;
      try {
        writeFileSync(
          temporary,
          JSON.stringify({ version: 1, revoked: [...this.#revoked] }, null, 2) + "\n",
          { mode: 0o644 },
        );
        renameSync(temporary, this.path);
      } catch (error) {
        // The id stays revoked in this process (ids are never removed from memory), but not for
        // the others: the caller must hear that the file was not written.
        removeQuietly(temporary);
        throw unavailable(`cannot revoke: cannot write ${this.path}`, error);
      }
      this.#mtimeMs = -1;
    });
  }

  list(): readonly string[] {
    this.reload();
    return [...this.#revoked];
  }
}

const LOCK_STALE_MS = 10_000;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Runs `action` holding the lock file `lockPath` (created exclusively, holding a token of ours). A
 * lock older than any write could take belongs to a crashed writer and is broken (breakIfStale).
 * Releasing removes the lock only if it still holds our token: a writer slower than the stale time
 * finds its lock broken, and must not remove the next holder's.
 */
function withLock(lockPath: string, action: () => void): void {
  const deadline = Date.now() + 2 * LOCK_STALE_MS;
  const token = `${process.pid}.${randomUUID()}`;
  for (;;) {
    try {
      const fd = openSync(lockPath, "wx");
      try {
        writeSync(fd, token);
      } finally {
        closeSync(fd);
      }
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST")
        throw unavailable(`cannot revoke: cannot create ${lockPath}`, error);
    }
    try {
      breakIfStale(lockPath);
    } catch (error) {
      throw unavailable(`cannot revoke: cannot break the stale ${lockPath}`, error);
    }
    if (Date.now() > deadline) throw unavailable(`timed out waiting for ${lockPath}`);
    Atomics.wait(sleeper, 0, 0, 5);
  }
  let done = false;
  try {
    action();
    done = true;
  } finally {
    try {
      if (readIfPresent(lockPath) === token) removeIfPresent(lockPath);
    } catch (error) {
      // The action's own error, if any, says more; a lock left behind is broken once stale.
      if (done) throw unavailable(`revoked, but cannot remove ${lockPath}`, error);
    }
  }
}

/**
 * Removes `lockPath` if it is stale. Two waiters that both saw the same stale lock must not both
 * remove it: the second would remove the lock the first had just taken, and two writers would then
 * each write their own list, one losing the other's revocation. So breaking takes a second lock,
 * and under it looks again: a lock taken since is fresh, and stays.
 */
function breakIfStale(lockPath: string): void {
  if (!isStale(lockPath)) return;
  const breaker = `${lockPath}.break`;
  try {
    closeSync(openSync(breaker, "wx"));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    // Another waiter is breaking it. A breaker this old was left by a crash between its few
    // system calls: remove it, and the next waiter tries again.
    if (isStale(breaker)) removeIfPresent(breaker);
    return;
  }
  try {
    if (isStale(lockPath)) removeIfPresent(lockPath);
  } finally {
    removeIfPresent(breaker);
  }
}

function isStale(path: string): boolean {
  const stat = statSync(path, { throwIfNoEntry: false });
  return stat !== undefined && Date.now() - stat.mtimeMs > LOCK_STALE_MS;
}

function readIfPresent(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Best effort: a temporary file left by a failed write is garbage, never read. */
function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {
    // A directory or a file we may not remove: leave it.
  }
}

function removeIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}
