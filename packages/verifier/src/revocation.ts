/**
 * Revocation stores (spec/presentation.md §6). Revoking a link id rejects every chain that
 * contains that link, so revoking a link revokes all of its descendants. `verify` asks `has`
 * synchronously, so every store answers from memory. The file store, which needs Node's file
 * system, is `@allowance/verifier/file`; the Redis store is `@allowance/verifier/redis`.
 */
import { AllowanceError } from "@allowance/core";
import { shown } from "./inputs.js";
import type { RevocationCheck } from "./verify.js";

export interface RevocationStore extends RevocationCheck {
  has(linkId: string): boolean;
  revoke(linkId: string): void | Promise<void>;
  list(): readonly string[];
}

/** A link id: base64url of 32 bytes (spec/format.md §5.3). */
export const LINK_ID = /^[A-Za-z0-9_-]{43}$/;

/** A lookup by anything but a string would answer "not revoked" for a mistake. */
export function assertLookup(linkId: unknown): void {
  if (typeof linkId !== "string")
    throw new TypeError(`"linkId" expected a string, got ${shown(linkId)}`);
}

export function assertLinkId(linkId: string): void {
  if (typeof linkId !== "string" || !LINK_ID.test(linkId)) {
    throw new TypeError(
      `"linkId" expected a base64url SHA-256 link id (43 characters), got ${JSON.stringify(linkId)}`,
    );
  }
}

export class MemoryRevocationStore implements RevocationStore {
  readonly #revoked = new Set<string>();

  constructor(linkIds: Iterable<string> = []) {
    const ids = linkIds as Partial<Iterable<string>> | null;
    if (typeof ids !== "object" || ids === null || typeof ids[Symbol.iterator] !== "function")
      throw new TypeError(`"linkIds" expected an iterable of link ids, got ${shown(linkIds)}`);
    for (const id of linkIds) this.revoke(id);
  }
  has(linkId: string): boolean {
    assertLookup(linkId);
    return this.#revoked.has(linkId);
  }
  revoke(linkId: string): void {
    assertLinkId(linkId);
    this.#revoked.add(linkId);
  }
  list(): readonly string[] {
    return [...this.#revoked];
  }
}

/**
 * A store's list could not be read or written (spec/presentation.md §6.3, §6.4): a coded error,
 * with `cause`'s message kept in the message (AllowanceError carries no `cause`), so a system or
 * Redis error still says which call failed and why.
 */
export function revocationUnavailable(message: string, cause?: unknown): AllowanceError {
  const because =
    cause === undefined ? "" : `: ${cause instanceof Error ? cause.message : String(cause)}`;
  return new AllowanceError("ERR_REVOCATION_UNAVAILABLE", message + because);
}
