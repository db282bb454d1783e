/**
 * The fast payload decoder may only ever agree with the reference decoder: whatever it accepts,
 * the reference accepts with an identical grant (same fields, same property order, same bytes).
 * What it declines, the reference judges. These laws are what make it safe to put first.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, type LinkGrant, type Limits, type Token } from "@allowance/core";
import {
  decodeCanonical,
  encodeCanonical,
  encodePayload,
  encodeToken,
  resolveLimits,
  type CborValue,
} from "@allowance/core/format";
import { decodePayloadReference } from "../src/grant.js";
import { parseTokenReference } from "../src/token.js";
import { decodePayloadFast, parseTokenFast } from "../src/fast-decode.js";

/** Grant as comparable text, property order included; byte strings as hex. */
function snapshot(grant: LinkGrant | undefined): string {
  return JSON.stringify(grant, (_key, value: unknown) =>
    value instanceof Uint8Array ? `bytes:${Buffer.from(value).toString("hex")}` : value,
  );
}

function reference(payload: Uint8Array, limits: Limits): LinkGrant | undefined {
  try {
    return decodePayloadReference(payload, limits);
  } catch {
    return undefined;
  }
}

const amount = fc.oneof(
  fc.nat(30),
  fc.integer({ min: 20, max: 300 }),
  fc.integer({ min: 60_000, max: 70_000 }),
  fc.integer({ min: 2 ** 32 - 5, max: 2 ** 32 + 5 }),
  fc.constant(Number.MAX_SAFE_INTEGER),
);
const asciiText = (pattern: RegExp, maxLength: number) =>
  fc
    .string({ unit: fc.constantFrom(..."abz09_.-:*AZ!~".split("")), minLength: 1, maxLength })
    .filter((s) => pattern.test(s));
const providerName = asciiText(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 12);
const provider = fc.record(
  { name: providerName, tokens: amount, usdMicros: amount },
  { requiredKeys: ["name"] },
);
const rateWindow = fc
  .record(
    {
      seconds: fc.integer({ min: 1, max: 31_622_400 }),
      tokens: amount,
      usdMicros: amount,
      requests: amount,
    },
    { requiredKeys: ["seconds"] },
  )
  .filter((w) => w.tokens !== undefined || w.usdMicros !== undefined || w.requests !== undefined);
const label = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.constantFrom("", " ", "run 42", "\t", "é"),
);

/** Any valid link grant, every field optional, including the unusual (empty lists, unicode labels). */
const linkGrant: fc.Arbitrary<LinkGrant> = fc
  .record(
    {
      sub: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      nonce: fc.uint8Array({ minLength: 8, maxLength: 32 }),
      exp: amount,
      nbf: amount,
      depth: fc.integer({ min: 0, max: 255 }),
      tokens: amount,
      usdMicros: amount,
      providers: fc.uniqueArray(provider, { maxLength: 5, selector: (p) => p.name }),
      models: fc.uniqueArray(asciiText(/^[\x21-\x7e]{1,128}$/, 10), { maxLength: 4 }),
      tools: fc.uniqueArray(
        fc.constantFrom("*", "a", "a.*", "a.b", "search", "mail.send", "x:y", "Z-9"),
        { maxLength: 4 },
      ),
      risk: amount,
      rate: fc.uniqueArray(rateWindow, { maxLength: 3, selector: (w) => JSON.stringify(w) }),
      aud: fc.uniqueArray(asciiText(/^[\x21-\x7e]{1,256}$/, 10), { maxLength: 3 }),
      label,
    },
    { requiredKeys: ["sub", "nonce"] },
  )
  .map((g) => g as LinkGrant);

const limitsArbitrary = fc.oneof(
  fc.constant(DEFAULT_LIMITS),
  fc
    .record({
      maxListLength: fc.integer({ min: 1, max: 4 }),
      maxStringBytes: fc.integer({ min: 1, max: 12 }),
    })
    .map((l) => resolveLimits(l)),
);

/** Small edits of a payload: each one either breaks it or yields another (maybe valid) payload. */
const mutation = fc.oneof(
  fc.record({
    kind: fc.constant("flip" as const),
    at: fc.nat(),
    mask: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function mutate(payload: Uint8Array, edits: readonly Mutation[]): Uint8Array {
  let bytes = [...payload];
  for (const edit of edits) {
    const at = edit.at % (bytes.length + 1);
    if (edit.kind === "flip" && at < bytes.length) bytes[at] = (bytes[at] as number) ^ edit.mask;
    if (edit.kind === "set" && at < bytes.length) bytes[at] = edit.byte;
    if (edit.kind === "insert") bytes.splice(at, 0, edit.byte);
    if (edit.kind === "delete") bytes.splice(at, 1);
    if (edit.kind === "truncate") bytes = bytes.slice(0, at);
  }
  return Uint8Array.from(bytes);
}

describe("the fast payload decoder", () => {
  it("decodes every valid grant exactly as the reference does, and vouches for every printable-ASCII one", () => {
    fc.assert(
      fc.property(linkGrant, (grant) => {
        const payload = encodePayload(grant);
        const fast = decodePayloadFast(payload, DEFAULT_LIMITS);
        const expected = decodePayloadReference(payload, DEFAULT_LIMITS);
        if (fast !== undefined) expect(snapshot(fast)).toBe(snapshot(expected));
        if (grant.label === undefined || /^[\x20-\x7e]*$/.test(grant.label))
          expect(fast).toBeDefined();
      }),
      { numRuns: 2000 },
    );
  });

  it("accepts nothing the reference refuses, and differs in nothing it accepts, under any edits and limits", () => {
    let fastAccepted = 0;
    let fastDeclined = 0;
    fc.assert(
      fc.property(
        linkGrant,
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        limitsArbitrary,
        (grant, edits, limits) => {
          const payload = mutate(encodePayload(grant), edits);
          const fast = decodePayloadFast(payload, limits);
          if (fast === undefined) {
            fastDeclined++;
            return;
          }
          fastAccepted++;
          expect(snapshot(fast)).toBe(snapshot(reference(payload, limits)));
        },
      ),
      { numRuns: 6000 },
    );
    // Both sides of the law were exercised: edits that still decode (a changed nonce byte or
    // amount) and edits that do not.
    expect(fastAccepted).toBeGreaterThan(100);
    expect(fastDeclined).toBeGreaterThan(500);
  });

  it("accepts nothing the reference refuses when a field holds a value of another shape", () => {
    const anyValue: fc.Arbitrary<CborValue> = fc.letrec<{ value: CborValue }>((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        amount,
        fc.string({ maxLength: 6 }),
        fc.uint8Array({ maxLength: 33 }),
        fc.array(tie("value"), { maxLength: 3 }),
        fc
          .array(fc.tuple(fc.oneof(fc.nat(15), fc.string({ maxLength: 4 })), tie("value")), {
            maxLength: 3,
          })
          .map((entries) => new Map(entries) as CborValue),
      ),
    })).value;
    fc.assert(
      fc.property(
        linkGrant,
        fc.integer({ min: 1, max: 16 }),
        anyValue,
        limitsArbitrary,
        (grant, key, value, limits) => {
          const map = decodeCanonical(encodePayload(grant)) as Map<number, CborValue>;
          map.set(key, value);
          const payload = encodeCanonical(map);
          const fast = decodePayloadFast(payload, limits);
          if (fast !== undefined) expect(snapshot(fast)).toBe(snapshot(reference(payload, limits)));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("declines empty input, a lone map head, and trailing bytes", () => {
    const valid = encodePayload({
      sub: new Uint8Array(32).fill(9),
      nonce: new Uint8Array(8),
      exp: 5,
    });
    expect(decodePayloadFast(valid, DEFAULT_LIMITS)).toBeDefined();
    for (const payload of [
      new Uint8Array(),
      Uint8Array.of(0xa2),
      Uint8Array.from([...valid, 0x00]),
      valid.subarray(0, valid.length - 1),
    ]) {
      expect(decodePayloadFast(payload, DEFAULT_LIMITS)).toBeUndefined();
    }
  });
});

/** A token's parts as comparable text. */
function tokenSnapshot(token: Token | undefined): string {
  if (token === undefined) return "refused";
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  return JSON.stringify([
    hex(token.rootKid),
    ...token.links.map((l) => [hex(l.payload), hex(l.signature)]),
  ]);
}

function referenceToken(bytes: Uint8Array, limits: Limits): Token | undefined {
  try {
    return parseTokenReference(bytes, limits);
  } catch {
    return undefined;
  }
}

/** Container-shaped bytes: a root kid and links whose parts are random (sizes near the rules). */
const containerArbitrary = fc.record({
  rootKid: fc.uint8Array({ minLength: 31, maxLength: 33 }),
  links: fc.array(
    fc.record({
      payload: fc.uint8Array({ maxLength: 40 }),
      signature: fc.uint8Array({ minLength: 63, maxLength: 65 }),
    }),
    { minLength: 0, maxLength: 4 },
  ),
});

const validContainer = fc.record({
  rootKid: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  links: fc.array(
    fc.record({
      payload: fc.uint8Array({ maxLength: 40 }),
      signature: fc.uint8Array({ minLength: 64, maxLength: 64 }),
    }),
    {
      minLength: 1,
      maxLength: 4,
    },
  ),
});

describe("the fast token parser", () => {
  it("parses every well-formed container exactly as the reference does", () => {
    fc.assert(
      fc.property(containerArbitrary, limitsArbitrary, (token, limits) => {
        const bytes = encodeToken(token);
        const fast = parseTokenFast(bytes, limits);
        const expected = referenceToken(bytes, limits);
        if (fast !== undefined) expect(tokenSnapshot(fast)).toBe(tokenSnapshot(expected));
        else if (expected !== undefined) {
          // It may decline only what it need not vouch for; a plain container within limits is not that.
          expect(
            token.links.length > 0 &&
              token.rootKid.length === 32 &&
              token.links.every((l) => l.signature.length === 64),
          ).toBe(false);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("accepts nothing the reference refuses, and differs in nothing it accepts, under any edits", () => {
    let fastAccepted = 0;
    fc.assert(
      fc.property(
        validContainer,
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        limitsArbitrary,
        (token, edits, limits) => {
          const bytes = mutate(encodeToken(token), edits);
          const fast = parseTokenFast(bytes, limits);
          if (fast === undefined) return;
          fastAccepted++;
          expect(tokenSnapshot(fast)).toBe(tokenSnapshot(referenceToken(bytes, limits)));
        },
      ),
      { numRuns: 6000 },
    );
    expect(fastAccepted).toBeGreaterThan(100);
  });
});
