/**
 * Run-time proof that a chain came from `verify`. The `VerifiedChain` brand only exists for the
 * type checker: a copied or hand-built object satisfies it after one cast. These sets are the
 * check that holds at run time. They are module-private: only this package adds to them, and only
 * results of a verification that passed; nothing is ever removed (WeakSets let results be
 * collected with their objects).
 *
 * Everything a registered object holds is frozen first, so a registered chain cannot be edited
 * afterwards (raising a cap on a verified chain would otherwise pass the check). Byte arrays (keys,
 * the token's payloads) cannot be frozen in JavaScript; nothing that decides an amount reads them.
 */
import type { VerifiedChain, VerifiedLink } from "./verify.js";

const chains = new WeakSet<object>();
const links = new WeakSet<object>();

/** Freezes `value` and every plain object and array it holds (typed arrays are left as they are). */
export function deepFreeze<T>(value: T): T {
  if (
    value === null ||
    typeof value !== "object" ||
    ArrayBuffer.isView(value) ||
    Object.isFrozen(value)
  )
    return value;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  return value;
}

export function registerLink(link: VerifiedLink): VerifiedLink {
  links.add(deepFreeze(link));
  return link;
}

export function registerChain(chain: VerifiedChain): VerifiedChain {
  chains.add(deepFreeze(chain));
  return chain;
}

/** Whether `link` is a link this package verified (a prefix cache may hand back anything). */
export function isVerifiedLink(link: unknown): link is VerifiedLink {
  return typeof link === "object" && link !== null && links.has(link);
}

/**
 * Whether `value` is a chain that `verify` (or a `Verifier`) of this copy of
 * `@allowance/verifier` returned. A copy of a verified chain, a chain edited after verification, or
 * an object built by hand is not. Two installed copies of the package keep separate records: an
 * application must use one.
 */
export function isVerifiedChain(value: unknown): value is VerifiedChain {
  return typeof value === "object" && value !== null && chains.has(value);
}
