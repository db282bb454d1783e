/**
 * Run-time proof that a chain came from `verify`. The `VerifiedChain` brand only exists for the
 * type checker: a copied or hand-built object satisfies it after one cast. These sets are the
 * check that holds at run time. They are module-private: only this package adds to them, and only
 * results of a verification that passed; nothing is ever removed (WeakSets let results be
 * collected with their objects). A link is recorded only when it goes into a prefix cache, the one
 * place a link comes back from outside; a WeakSet entry for every link of every chain was work for
 * the collector with no reader.
 *
 * Everything a registered object holds is frozen first, so a registered chain cannot be edited
 * afterwards (raising a cap on a verified chain would otherwise pass the check). Byte arrays (keys,
 * the token's payloads) cannot be frozen in JavaScript; nothing that decides an amount reads them.
 */
import type { EffectiveGrant, LinkGrant, Token } from "@allowance/core";
import type { VerifiedChain, VerifiedLink } from "./verify.js";

const chains = new WeakSet<object>();
const links = new WeakSet<object>();

/** Freezes `value` and every plain object and array it holds (typed arrays are left as they are). */
function deepFreeze<T>(value: T): T {
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

/*
 * What each member of a verified link and chain holds, and so how the functions below freeze it.
 * They freeze by member rather than by walking every key (`deepFreeze`), which cost twice as much
 * per link. Each table is checked against its type both ways: a member added to a grant, a link or
 * a chain does not compile until it is placed here, and then handled below. test/verified.test.ts
 * walks every object a verified chain reaches and checks that it is frozen.
 */
type Holds =
  | "a primitive"
  | "bytes"
  | "strings"
  | "records of primitives"
  | "a grant"
  | "rules"
  | "the token"
  | "registered links";

export const GRANT_MEMBERS = {
  sub: "bytes",
  nonce: "bytes",
  holder: "bytes",
  exp: "a primitive",
  nbf: "a primitive",
  depth: "a primitive",
  tokens: "a primitive",
  usdMicros: "a primitive",
  risk: "a primitive",
  label: "a primitive",
  providers: "records of primitives",
  rate: "records of primitives",
  models: "strings",
  tools: "strings",
  aud: "strings",
  args: "rules",
} as const satisfies Record<keyof LinkGrant | keyof EffectiveGrant, Holds>;

export const LINK_MEMBERS = {
  index: "a primitive",
  id: "a primitive",
  grant: "a grant",
  effective: "a grant",
} as const satisfies Record<keyof VerifiedLink, Holds>;

export const CHAIN_MEMBERS = {
  token: "the token",
  rootKid: "a primitive",
  links: "registered links",
  // The leaf's effective grant: the same object as the last link's, frozen with it.
  grant: "a grant",
  linkIds: "strings",
  holder: "bytes",
} as const satisfies Record<Exclude<keyof VerifiedChain, symbol>, Holds>;

/** A list of strings, or of objects whose members are primitives or bytes. */
function freezeList(list: readonly unknown[]): void {
  if (Object.isFrozen(list)) return;
  Object.freeze(list);
  for (const item of list) if (typeof item === "object" && item !== null) Object.freeze(item);
}

/** Freezes a grant by GRANT_MEMBERS. Lists a grant shares with its parent are frozen already. */
function freezeGrant(grant: LinkGrant | EffectiveGrant): void {
  Object.freeze(grant);
  if (grant.providers !== undefined) freezeList(grant.providers);
  if (grant.rate !== undefined) freezeList(grant.rate);
  if (grant.models !== undefined) freezeList(grant.models);
  if (grant.tools !== undefined) freezeList(grant.tools);
  if (grant.aud !== undefined) freezeList(grant.aud);
  // Nested several levels deep, and rarely present: walked key by key.
  if (grant.args !== undefined) deepFreeze(grant.args);
}

function freezeToken(token: Token): void {
  Object.freeze(token);
  freezeList(token.links);
}

/** A link that passed every check, frozen: the only way `verify` makes one. */
export function freezeLink(link: VerifiedLink): VerifiedLink {
  Object.freeze(link);
  freezeGrant(link.grant);
  freezeGrant(link.effective);
  return link;
}

/** Records a link from `freezeLink` as verified, before it goes into a prefix cache. */
export function registerLink(link: VerifiedLink): void {
  links.add(link);
}

/** Records a chain of links from `freezeLink` as verified; its grant is the leaf's, frozen with it. */
export function registerChain(chain: VerifiedChain): VerifiedChain {
  Object.freeze(chain);
  freezeToken(chain.token);
  Object.freeze(chain.links);
  Object.freeze(chain.linkIds);
  chains.add(chain);
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
