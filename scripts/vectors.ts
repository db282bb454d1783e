/**
 * The conformance vectors of spec/vectors/, built by code so that they can be regenerated and
 * compared (test/vectors.test.ts fails if a committed vector no longer matches what this builds).
 * Keys and nonces are derived from fixed labels, and Ed25519 is deterministic: the output is stable.
 */
import {
  attenuate,
  effectiveToJSON,
  exportJwks,
  formatToken,
  keyPairFromSeed,
  linkIds,
  mint,
  trustedRoots,
  type EffectiveGrantJSON,
  type GrantFields,
  type Jwks,
  type KeyPair,
  type Link,
  type LinkGrant,
  type Token,
} from "@allowance/core";
import {
  encodeCanonical,
  encodePayload,
  encodeToken,
  parentDigest,
  sha256,
  signingInput,
  TOKEN_PREFIX,
  toBase64url,
  type CborValue,
} from "@allowance/core/format";
import { nodeBackend } from "@allowance/core/node";
import { verify } from "@allowance/verifier";
import { argumentChainCases } from "./argument-vectors.js";

export type VectorExpectation =
  | { valid: true; grant: EffectiveGrantJSON; linkIds: string[] }
  | { valid: false; code: string; linkIndex: number | null };

export interface Vector {
  name: string;
  description: string;
  roots: Jwks;
  now: number;
  skew: number;
  audience?: string;
  revoked?: string[];
  token: string;
  expected: VectorExpectation;
}

export const NOW = 1_800_000_000;
const HOUR = 3600;
const DAY = 24 * HOUR;
const USD = 1_000_000;

const text = (s: string) => new TextEncoder().encode(s);

async function key(label: string): Promise<KeyPair> {
  return keyPairFromSeed(sha256(text(`allowance-vectors/key/${label}`)));
}

function nonce(vector: string, index: number): Uint8Array {
  return sha256(text(`allowance-vectors/nonce/${vector}/${index}`)).subarray(0, 8);
}

interface Step {
  readonly holder: string;
  readonly grant: GrantFields;
}

/** A chain built with mint and attenuate, so every link is a correct one. */
async function chain(
  name: string,
  rootLabel: string,
  steps: readonly Step[],
): Promise<{ token: Token; keys: KeyPair[] }> {
  const root = await key(rootLabel);
  const keys = await Promise.all(steps.map((s) => key(s.holder)));
  const [first, ...rest] = steps;
  if (first === undefined) throw new Error("a chain needs a root step");
  let token = mint({
    rootKey: root,
    holder: (keys[0] as KeyPair).publicKey,
    grant: first.grant,
    nonce: nonce(name, 0),
  });
  rest.forEach((step, i) => {
    token = attenuate(token, {
      holderKey: keys[i] as KeyPair,
      holder: (keys[i + 1] as KeyPair).publicKey,
      grant: step.grant,
      nonce: nonce(name, i + 1),
    });
  });
  return { token, keys: [root, ...keys] };
}

/** Appends a link built by hand: any payload bytes, signed by any key, bypassing every check. */
function appendRaw(token: Token, signer: KeyPair, payload: Uint8Array): Token {
  const last = token.links[token.links.length - 1];
  const digest = last === undefined ? token.rootKid : parentDigest(last);
  const link: Link = {
    payload,
    signature: nodeBackend.sign(signer.privateKey, signingInput(digest, payload)),
  };
  return { rootKid: token.rootKid, links: [...token.links, link] };
}

function rawGrant(
  sub: KeyPair | Uint8Array,
  name: string,
  index: number,
  fields: GrantFields,
): Uint8Array {
  const grant: LinkGrant = {
    ...fields,
    sub: sub instanceof Uint8Array ? sub : sub.publicKey,
    nonce: nonce(name, index),
  };
  return encodePayload(grant);
}

const full: GrantFields = {
  exp: NOW + 30 * DAY,
  nbf: NOW - DAY,
  depth: 5,
  tokens: 10_000_000,
  usdMicros: 500 * USD,
  providers: [
    { name: "openai", tokens: 5_000_000, usdMicros: 200 * USD },
    { name: "anthropic", usdMicros: 300 * USD },
    { name: "video", usdMicros: 50 * USD },
    { name: "search" },
  ],
  models: ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "claude-haiku-4"],
  tools: ["search.*", "email.send", "files.read", "calendar.*"],
  risk: 100,
  rate: [
    { seconds: HOUR, tokens: 1_000_000 },
    { seconds: 60, requests: 60 },
  ],
  aud: ["https://tools.example/search", "https://tools.example/email", "https://gateway.example"],
  label: "org-42",
};

interface Case {
  readonly name: string;
  readonly description: string;
  readonly token: Token;
  readonly roots: readonly KeyPair[];
  readonly now?: number;
  readonly skew?: number;
  readonly audience?: string;
  readonly revoked?: readonly string[];
}

export async function buildVectors(): Promise<Vector[]> {
  const cases: Case[] = [];
  const root = await key("root");
  const otherRoot = await key("other-root");
  const add = async (
    name: string,
    description: string,
    steps: Step[],
    extra: Partial<Case> = {},
  ) => {
    const { token } = await chain(name, "root", steps);
    cases.push({ name, description, token, roots: [root], ...extra });
  };

  // ---- valid chains ----
  await add("valid-root-minimal", "A root link stating only exp: everything else unrestricted.", [
    { holder: "a", grant: { exp: NOW + DAY } },
  ]);
  await add("valid-root-every-field", "A root link stating every field.", [
    { holder: "a", grant: full },
  ]);
  await add("valid-two-usd", "A child narrows the dollar budget.", [
    { holder: "a", grant: { exp: NOW + DAY, usdMicros: 10 * USD } },
    { holder: "b", grant: { usdMicros: 2 * USD } },
  ]);
  await add(
    "valid-providers-caps",
    "Providers narrowed to a subset; per-provider caps lowered and inherited.",
    [
      { holder: "a", grant: full },
      {
        holder: "b",
        grant: {
          providers: [
            { name: "openai", tokens: 1_000_000 },
            { name: "video", usdMicros: 10 * USD },
          ],
        },
      },
      { holder: "c", grant: { providers: [{ name: "openai" }] } },
    ],
  );
  await add(
    "valid-tools-patterns",
    "Tool patterns narrowed: prefix.* to a deeper prefix, then to one name.",
    [
      { holder: "a", grant: { exp: NOW + DAY, tools: ["*"] } },
      { holder: "b", grant: { tools: ["search.*", "email.send"] } },
      { holder: "c", grant: { tools: ["search.web.*"] } },
      { holder: "d", grant: { tools: ["search.web.news"] } },
    ],
  );
  await add("valid-models", "Models narrowed to a subset.", [
    { holder: "a", grant: full },
    { holder: "b", grant: { models: ["claude-sonnet-4", "gpt-4o-mini"] } },
  ]);
  await add(
    "valid-audience",
    "aud narrowed; the verifier's audience is in it.",
    [
      { holder: "a", grant: full },
      { holder: "b", grant: { aud: ["https://tools.example/search"] } },
    ],
    { audience: "https://tools.example/search" },
  );
  await add(
    "valid-rate-union",
    "Each link adds a rate window; the effective grant enforces all of them.",
    [
      { holder: "a", grant: { exp: NOW + DAY, rate: [{ seconds: DAY, usdMicros: 20 * USD }] } },
      { holder: "b", grant: { rate: [{ seconds: HOUR, tokens: 100_000 }] } },
      {
        holder: "c",
        grant: {
          rate: [
            { seconds: 60, requests: 10 },
            { seconds: 1, requests: 2 },
          ],
        },
      },
    ],
  );
  await add(
    "valid-depth-inherited",
    "depth 2 on the root; children inherit depth minus one down to 0.",
    [
      { holder: "a", grant: { exp: NOW + DAY, depth: 2 } },
      { holder: "b", grant: {} },
      { holder: "c", grant: {} },
    ],
  );
  await add("valid-nbf-raised", "A child raises nbf; both are in the past.", [
    { holder: "a", grant: { exp: NOW + DAY, nbf: NOW - HOUR } },
    { holder: "b", grant: { nbf: NOW - 60 } },
  ]);
  await add("valid-six-links", "Six links, each narrowing several fields.", [
    { holder: "a", grant: full },
    { holder: "b", grant: { usdMicros: 400 * USD, tokens: 8_000_000, exp: NOW + 20 * DAY } },
    {
      holder: "c",
      grant: {
        providers: [{ name: "openai" }, { name: "anthropic", usdMicros: 100 * USD }],
        risk: 50,
      },
    },
    {
      holder: "d",
      grant: { tools: ["search.*", "email.send"], models: ["gpt-4o", "claude-sonnet-4"], depth: 2 },
    },
    {
      holder: "e",
      grant: {
        usdMicros: 10 * USD,
        aud: ["https://gateway.example"],
        rate: [{ seconds: 60, tokens: 10_000 }],
      },
    },
    {
      holder: "f",
      grant: {
        usdMicros: 1 * USD,
        tokens: 100_000,
        risk: 5,
        exp: NOW + HOUR,
        label: "sub-agent-f",
      },
    },
  ]);
  await add(
    "valid-label",
    "The leaf's label replaces the inherited one; labels constrain nothing.",
    [
      { holder: "a", grant: { exp: NOW + DAY, label: "run-42" } },
      { holder: "b", grant: {} },
      { holder: "c", grant: { label: "run-42/researcher" } },
    ],
  );
  await add(
    "valid-large-amounts",
    "Amounts beyond 2^32 use 8-byte CBOR integers ($1,000,000 = 10^12 micro-dollars).",
    [
      { holder: "a", grant: { exp: NOW + DAY, usdMicros: 1_000_000 * USD, tokens: 2 ** 40 } },
      { holder: "b", grant: { usdMicros: 999_999 * USD, tokens: 2 ** 33 } },
    ],
  );
  await add(
    "valid-equal-values",
    "A child may restate its parent's values unchanged, but for depth, which it states one less.",
    [
      { holder: "a", grant: full },
      { holder: "b", grant: { ...full, depth: 4, rate: [] } },
    ],
  );
  await add(
    "valid-rate-order",
    "Rate windows in the order of their encodings: fewer entries first, then seconds, then the " +
      "next key before its value (tokens 1000 before requests 1 at 60 s).",
    [
      {
        holder: "a",
        grant: {
          exp: NOW + DAY,
          rate: [
            { seconds: 60, requests: 1 },
            { seconds: 3600, requests: 1 },
            { seconds: 60, tokens: 1000 },
            { seconds: 30, requests: 5 },
            { seconds: 1, tokens: 10, requests: 1 },
          ],
        },
      },
    ],
  );
  await add(
    "valid-rate-restated",
    "A child's window equal to an inherited one (same seconds, same amounts) is not added again; " +
      "one that differs in an amount, or states a 0 where the other states nothing, is.",
    [
      {
        holder: "a",
        grant: {
          exp: NOW + DAY,
          rate: [
            { seconds: 60, requests: 60 },
            { seconds: 3600, tokens: 1000 },
          ],
        },
      },
      {
        holder: "b",
        grant: {
          rate: [
            { seconds: 60, requests: 60 },
            { seconds: 60, requests: 30 },
            { seconds: 60, tokens: 0, requests: 60 },
          ],
        },
      },
    ],
  );
  await add(
    "valid-bom-label",
    "A label that starts with a byte order mark (U+FEFF) keeps it: a BOM is an ordinary character.",
    [
      { holder: "a", grant: { exp: NOW + DAY, label: "\ufeffrun-42" } },
      { holder: "b", grant: {} },
    ],
  );
  await add(
    "valid-providers-added",
    "An unrestricted root; a child introduces a provider allow-list.",
    [
      { holder: "a", grant: { exp: NOW + DAY } },
      { holder: "b", grant: { providers: [{ name: "anthropic", tokens: 50_000 }] } },
    ],
  );
  await add("valid-risk", "Risk points narrowed twice.", [
    { holder: "a", grant: { exp: NOW + DAY, risk: 100 } },
    { holder: "b", grant: { risk: 30, tools: ["email.send"] } },
    { holder: "c", grant: { risk: 10 } },
  ]);
  await add(
    "valid-skew",
    "The leaf expired 30 s ago; a 60 s skew still accepts it.",
    [
      { holder: "a", grant: { exp: NOW + DAY } },
      { holder: "b", grant: { exp: NOW - 30 } },
    ],
    { skew: 60 },
  );
  await add(
    "valid-five-link-story",
    "The benchmark story: a root and four attenuations of budget, providers and expiry.",
    [
      {
        holder: "a",
        grant: {
          exp: NOW + 7 * DAY,
          usdMicros: 100 * USD,
          providers: [{ name: "openai" }, { name: "anthropic" }, { name: "google" }],
        },
      },
      {
        holder: "b",
        grant: {
          exp: NOW + 6 * DAY,
          usdMicros: 50 * USD,
          providers: [{ name: "openai" }, { name: "anthropic" }],
        },
      },
      {
        holder: "c",
        grant: {
          exp: NOW + 5 * DAY,
          usdMicros: 20 * USD,
          providers: [{ name: "openai" }, { name: "anthropic" }],
        },
      },
      {
        holder: "d",
        grant: { exp: NOW + 4 * DAY, usdMicros: 10 * USD, providers: [{ name: "anthropic" }] },
      },
      {
        holder: "e",
        grant: { exp: NOW + 3 * DAY, usdMicros: 5 * USD, providers: [{ name: "anthropic" }] },
      },
    ],
  );

  // ---- invalid tokens, at least one per error code ----
  const base = (
    await chain("base", "root", [
      {
        holder: "a",
        grant: { exp: NOW + DAY, usdMicros: 10 * USD, depth: 3, tools: ["search.*"] },
      },
      { holder: "b", grant: { usdMicros: 5 * USD } },
      { holder: "c", grant: { usdMicros: 1 * USD } },
    ])
  ).token;
  const [a, b, c] = [await key("a"), await key("b"), await key("c")];
  const bad = (
    name: string,
    description: string,
    token: Token | string,
    extra: Partial<Case> = {},
  ) => cases.push({ name, description, token: token as Token, roots: [root], ...extra });

  bad(
    "invalid-prefix",
    "The string form must start with alw1_.",
    "alw2_" + formatToken(base).slice(5),
  );
  bad(
    "invalid-base64",
    "The body must be base64url.",
    formatToken(base).slice(0, 40) + "+/" + formatToken(base).slice(42),
  );
  bad(
    "invalid-root-without-exp",
    "A root link that states no exp.",
    appendRaw(
      { rootKid: base.rootKid, links: [] },
      root,
      rawGrant(a, "root-without-exp", 0, { usdMicros: 1 }),
    ),
  );
  bad(
    "invalid-unknown-key",
    "A payload with a key the format does not define.",
    appendRaw(
      base,
      c,
      encodeCanonical(
        new Map<number, CborValue>([
          [1, a.publicKey],
          [2, nonce("unknown-key", 3)],
          [99, 1],
        ]),
      ),
    ),
  );
  bad(
    "invalid-unsorted-keys",
    "A payload whose map keys are out of order, correctly signed.",
    appendRaw(base, c, unsortedPayload(a.publicKey, nonce("unsorted", 3))),
  );
  bad(
    "invalid-non-shortest-int",
    "A payload with an integer not in shortest form, correctly signed.",
    appendRaw(base, c, nonShortestPayload(a.publicKey, nonce("non-shortest", 3))),
  );
  // spec/format.md §3.3: an array or map counting more items than bytes left is ERR_MALFORMED at
  // its head, before the walk reaches a float inside it (which alone is ERR_NON_CANONICAL).
  bad(
    "invalid-container-count-past-end",
    "The container's array counts 65,535 elements, more than bytes left; a float follows the root kid.",
    countPastEndContainer(base),
  );
  bad(
    "invalid-payload-count-past-end",
    "A payload map counting 255 pairs, more than bytes left, with a float as its nonce; signed.",
    appendRaw(
      base,
      c,
      concat([0xb8, 0xff, 0x01, 0x58, 0x20], a.publicKey, [0x02, 0xf9, 0x00, 0x00]),
    ),
  );
  bad(
    "invalid-unsorted-set",
    "A payload whose tools array is not in canonical order, correctly signed.",
    appendRaw(base, c, unsortedSetPayload(a.publicKey, nonce("unsorted-set", 3))),
  );
  bad(
    "invalid-list-limit",
    "A models list longer than the 64-entry limit, correctly signed.",
    appendRaw(
      base,
      c,
      rawGrant(a, "list-limit", 3, { models: Array.from({ length: 65 }, (_, i) => `m${i}`) }),
    ),
  );
  bad("invalid-unknown-root", "A valid chain from a root the verifier does not trust.", base, {
    roots: [otherRoot],
  });
  bad(
    "invalid-small-order-holder",
    "A link naming a small-order holder key.",
    appendRaw(
      base,
      c,
      rawGrant(
        new Uint8Array(32).fill(0).map((_, i) => (i === 0 ? 1 : 0)),
        "small-order",
        3,
        {},
      ),
    ),
  );
  bad(
    "invalid-signature-flipped",
    "The last byte of the leaf's signature flipped.",
    flipSignature(base, 2),
  );
  bad(
    "invalid-signature-malleated",
    "The leaf's S replaced by S + L (RFC 8032 malleation).",
    malleate(base, 2),
  );
  bad(
    "invalid-wrong-signer",
    "The third link signed by the root holder's key instead of b's.",
    appendRaw(
      { rootKid: base.rootKid, links: base.links.slice(0, 2) },
      a,
      rawGrant(c, "wrong-signer", 2, { usdMicros: 1 }),
    ),
  );
  bad("invalid-links-reordered", "Links 1 and 2 swapped.", {
    rootKid: base.rootKid,
    links: [base.links[0], base.links[2], base.links[1]] as Link[],
  });
  bad("invalid-link-dropped", "The middle link removed.", {
    rootKid: base.rootKid,
    links: [base.links[0], base.links[2]] as Link[],
  });
  bad("invalid-link-duplicated", "The middle link repeated.", {
    rootKid: base.rootKid,
    links: [base.links[0], base.links[1], base.links[1], base.links[2]] as Link[],
  });
  bad(
    "invalid-widened-usd",
    "A child with more dollars than its parent, correctly signed by the holder.",
    appendRaw(base, c, rawGrant(a, "widened-usd", 3, { usdMicros: 2 * USD })),
  );
  bad(
    "invalid-widened-tools",
    "A child with a tool outside its parent's patterns, correctly signed.",
    appendRaw(base, c, rawGrant(a, "widened-tools", 3, { tools: ["email.send"] })),
  );
  bad(
    "invalid-depth-exhausted",
    "A third link (index 2) under a chain whose depth ran out: root depth 1 allows link 1 only.",
    appendRaw(
      (
        await chain("depth", "root", [
          { holder: "a", grant: { exp: NOW + DAY, depth: 1 } },
          { holder: "b", grant: {} },
        ])
      ).token,
      b,
      rawGrant(c, "depth-exhausted", 2, {}),
    ),
  );
  bad(
    "invalid-expired-root",
    "The root expired an hour ago.",
    (
      await chain("expired-root", "root", [
        { holder: "a", grant: { exp: NOW - HOUR } },
        { holder: "b", grant: {} },
      ])
    ).token,
  );
  bad(
    "invalid-expired-middle",
    "The middle link expired; the root has not.",
    (
      await chain("expired-middle", "root", [
        { holder: "a", grant: { exp: NOW + DAY } },
        { holder: "b", grant: { exp: NOW - 1 } },
        { holder: "c", grant: {} },
      ])
    ).token,
    { skew: 0 },
  );
  bad(
    "invalid-not-yet-valid",
    "The leaf is valid only from tomorrow.",
    (
      await chain("nbf", "root", [
        { holder: "a", grant: { exp: NOW + 2 * DAY } },
        { holder: "b", grant: { nbf: NOW + DAY } },
      ])
    ).token,
  );
  bad(
    "invalid-audience",
    "The verifier's audience is not in the token's aud.",
    (
      await chain("audience", "root", [
        { holder: "a", grant: full },
        { holder: "b", grant: { aud: ["https://tools.example/search"] } },
      ])
    ).token,
    { audience: "https://tools.example/email" },
  );
  bad("invalid-revoked-ancestor", "The middle link is revoked, so the leaf is too.", base, {
    revoked: [linkIds(base)[1] as string],
  });
  bad("invalid-too-many-links", "33 links: more than the 32-link limit.", await longChain(33));
  bad(
    "invalid-depth-restated",
    "A child restating its parent's depth 5, correctly signed: depth must drop by at least one.",
    appendRaw(
      (
        await chain("depth-restated", "root", [
          { holder: "a", grant: { exp: NOW + DAY, depth: 5 } },
        ])
      ).token,
      a,
      rawGrant(b, "depth-restated", 1, { depth: 5 }),
    ),
  );
  bad(
    "invalid-rate-unsorted",
    "Two rate windows out of their encodings' order (requests before tokens), correctly signed.",
    appendRaw(
      base,
      c,
      encodeCanonical(
        new Map<number, CborValue>([
          [1, a.publicKey],
          [2, nonce("rate-unsorted", 3)],
          [
            12,
            [
              new Map<number, CborValue>([
                [1, 60],
                [4, 1],
              ]),
              new Map<number, CborValue>([
                [1, 60],
                [2, 1000],
              ]),
            ],
          ],
        ]),
      ),
    ),
  );
  bad(
    "invalid-long-container-non-canonical",
    "33 links in a container whose array head is not shortest: the CBOR walk comes before maxLinks.",
    nonShortestContainer(await longChain(33)),
  );
  bad(
    "invalid-payload-too-large",
    "Link 1 carries 4,097 bytes of payload and a signature of zeros: ERR_LIMIT before any signature.",
    {
      rootKid: base.rootKid,
      links: [
        base.links[0] as Link,
        { payload: new Uint8Array(4097).fill(0xa0), signature: new Uint8Array(64) },
      ],
    },
  );
  bad(
    "invalid-chars-non-ascii",
    "8,000 euro signs after the prefix: 8,005 characters but 24,005 UTF-8 bytes, over maxTokenChars.",
    "alw1_" + "€".repeat(8000),
  );

  // Chains whose links state args (spec/arguments.md), built in scripts/argument-vectors.ts.
  for (const item of await argumentChainCases()) cases.push(item);

  const vectors: Vector[] = [];
  for (const item of cases) {
    const tokenString = typeof item.token === "string" ? item.token : formatToken(item.token);
    const vector: Vector = {
      name: item.name,
      description: item.description,
      roots: exportJwks(item.roots),
      now: item.now ?? NOW,
      skew: item.skew ?? 0,
      ...(item.audience === undefined ? {} : { audience: item.audience }),
      ...(item.revoked === undefined ? {} : { revoked: [...item.revoked] }),
      token: tokenString,
      expected: evaluate(tokenString, item),
    };
    vectors.push(vector);
  }
  return vectors;
}

/** What this implementation says of a vector: the generator records it, the tests re-check it. */
export function evaluate(
  token: string,
  item: {
    roots: readonly KeyPair[] | Jwks;
    now?: number;
    skew?: number;
    audience?: string;
    revoked?: readonly string[];
  },
): VectorExpectation {
  const roots = Array.isArray(item.roots) ? trustedRoots(item.roots as KeyPair[]) : undefined;
  if (roots === undefined) throw new TypeError("evaluate takes key pairs");
  return evaluateWith(token, {
    roots,
    now: item.now ?? NOW,
    skew: item.skew ?? 0,
    audience: item.audience,
    revoked: item.revoked,
  });
}

export function evaluateWith(
  token: string,
  o: {
    roots: ReturnType<typeof trustedRoots>;
    now: number;
    skew: number;
    audience?: string | undefined;
    revoked?: readonly string[] | undefined;
  },
): VectorExpectation {
  try {
    const chain = verify(token, {
      roots: o.roots,
      now: () => o.now * 1000,
      skewSeconds: o.skew,
      ...(o.audience === undefined ? {} : { audience: o.audience }),
      ...(o.revoked === undefined ? {} : { revocations: new Set(o.revoked) }),
    });
    return {
      valid: true,
      grant: JSON.parse(JSON.stringify(effectiveToJSON(chain.grant))) as EffectiveGrantJSON,
      linkIds: [...chain.linkIds],
    };
  } catch (error) {
    const e = error as { code?: string; linkIndex?: number };
    if (typeof e.code !== "string") throw error;
    return { valid: false, code: e.code, linkIndex: e.linkIndex ?? null };
  }
}

function unsortedPayload(sub: Uint8Array, n: Uint8Array): Uint8Array {
  // {2: nonce, 1: sub}: the same map as the canonical {1: sub, 2: nonce}, keys out of order.
  return concat([0xa2, 0x02, 0x48], n, [0x01, 0x58, 0x20], sub);
}

function nonShortestPayload(sub: Uint8Array, n: Uint8Array): Uint8Array {
  // {1: sub, 2: nonce, 7: 5} with 5 written as 0x18 0x05 instead of 0x05.
  return concat([0xa3, 0x01, 0x58, 0x20], sub, [0x02, 0x48], n, [0x07, 0x18, 0x05]);
}

function unsortedSetPayload(sub: Uint8Array, n: Uint8Array): Uint8Array {
  // {1: sub, 2: nonce, 10: ["search.web", "search.*"]}: longer string first, out of canonical order.
  const long = text("search.web");
  const short = text("search.*");
  return concat(
    [0xa3, 0x01, 0x58, 0x20],
    sub,
    [0x02, 0x48],
    n,
    [0x0a, 0x82, 0x60 + long.length],
    long,
    [0x60 + short.length],
    short,
  );
}

/** The container's array head counting 65,535 elements, and a float after the root kid. */
function countPastEndContainer(token: Token): string {
  const bytes = encodeToken(token);
  if (bytes[0] !== 0x84 || bytes[1] !== 0x58) throw new Error("expected a root kid and 3 links");
  const kidEnd = 2 + 1 + 32;
  return (
    TOKEN_PREFIX +
    toBase64url(
      concat(
        [0x99, 0xff, 0xff],
        bytes.subarray(1, kidEnd),
        [0xf9, 0x00, 0x00],
        bytes.subarray(kidEnd),
      ),
    )
  );
}

/** The string form with the container's array head written in 3 bytes instead of the shortest 2. */
function nonShortestContainer(token: Token): string {
  const bytes = encodeToken(token);
  if (bytes[0] !== 0x98) throw new Error("expected an array of 24 to 255 elements");
  return TOKEN_PREFIX + toBase64url(concat([0x99, 0x00], bytes.subarray(1)));
}

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const part of parts) out.push(...part);
  return Uint8Array.from(out);
}

function flipSignature(token: Token, index: number): Token {
  const links = token.links.map((l, i) => {
    if (i !== index) return l;
    const signature = Uint8Array.from(l.signature);
    signature[63] = (signature[63] as number) ^ 0x01;
    return { payload: l.payload, signature };
  });
  return { rootKid: token.rootKid, links };
}

/** S + L: still a solution of the verification equation, so only the S < L check stops it. */
function malleate(token: Token, index: number): Token {
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  const links = token.links.map((l, i) => {
    if (i !== index) return l;
    let s = 0n;
    for (let j = 63; j >= 32; j--) s = (s << 8n) | BigInt(l.signature[j] as number);
    s += L;
    const signature = Uint8Array.from(l.signature);
    for (let j = 32; j < 64; j++) {
      signature[j] = Number(s & 0xffn);
      s >>= 8n;
    }
    return { payload: l.payload, signature };
  });
  return { rootKid: token.rootKid, links };
}

async function longChain(count: number): Promise<Token> {
  const root = await key("root");
  let token: Token = {
    rootKid: (await chain("long", "root", [{ holder: "long-0", grant: { exp: NOW + DAY } }])).token
      .rootKid,
    links: [],
  };
  let signer = root;
  for (let i = 0; i < count; i++) {
    const holder = await key(`long-${i}`);
    token = appendRaw(
      token,
      signer,
      rawGrant(holder, "long", i, i === 0 ? { exp: NOW + DAY } : {}),
    );
    signer = holder;
  }
  return token;
}

export { toBase64url };
