/**
 * What `verify` returns is deep-frozen and registered: nothing it reaches can be edited afterwards,
 * and only the object it returned passes `isVerifiedChain`. Freezing goes member by member
 * (src/verified.ts); these tests walk every key instead, so a member the freezing misses fails here.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  attenuate,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type GrantFields,
  type KeyPair,
  type Token,
} from "@allowance/core";
import { nodeBackend } from "@allowance/core/node";
import {
  LruPrefixCache,
  createVerifier,
  isVerifiedChain,
  verify,
  type PrefixCache,
  type PrefixEntry,
  type VerifiedChain,
} from "@allowance/verifier";
import { CHAIN_MEMBERS, GRANT_MEMBERS, LINK_MEMBERS } from "../src/verified.js";

const NOW = 1_800_000_000;

let keys: KeyPair[] = [];
beforeAll(async () => {
  keys = await Promise.all([0, 1, 2, 3].map(() => generateKeyPair()));
});

/** Every object reachable from `value` that is not frozen, by path; typed arrays cannot be frozen. */
function unfrozen(value: unknown, path = "chain", seen = new Set<object>()): string[] {
  if (typeof value !== "object" || value === null || ArrayBuffer.isView(value)) return [];
  if (seen.has(value)) return [];
  seen.add(value);
  const found = Object.isFrozen(value) ? [] : [path];
  for (const key of Reflect.ownKeys(value)) {
    const member = (value as Record<PropertyKey, unknown>)[key];
    found.push(...unfrozen(member, `${path}.${String(key)}`, seen));
  }
  return found;
}

/** A root stating every field, a child restating them (narrowing nothing), a child stating none. */
function chain(label: string, args: boolean): Token {
  const root: GrantFields = {
    exp: NOW + 3600,
    nbf: NOW - 60,
    depth: 5,
    tokens: 1_000_000,
    usdMicros: 5_000_000,
    providers: [{ name: "openai", tokens: 500_000, usdMicros: 4_000_000 }, { name: "anthropic" }],
    models: ["gpt-4o", "claude-sonnet"],
    tools: ["search.*", "email.send"],
    risk: 10,
    rate: [{ seconds: 60, requests: 10, usdMicros: 1_000_000 }],
    aud: ["https://tools.example/search"],
    label,
    ...(args
      ? {
          args: [
            {
              tool: "email.send",
              constraints: [
                { name: "to", kind: "emailDomain", domains: ["example.com"] },
                { name: "priority", kind: "oneOf", values: ["low", "high", 3, true] },
                { name: "size", kind: "range", min: 1, max: 100 },
              ],
            },
          ],
        }
      : {}),
  };
  let token = mint({ rootKey: keys[0]!, holder: publicKeyOf(keys[1]!), grant: root });
  const { depth: _depth, ...restated } = root;
  token = attenuate(token, {
    holderKey: keys[1]!,
    holder: publicKeyOf(keys[2]!),
    grant: { ...restated, depth: 3, rate: [{ seconds: 3600, tokens: 100_000 }] },
  });
  return attenuate(token, { holderKey: keys[2]!, holder: publicKeyOf(keys[3]!), grant: {} });
}

const options = () => ({ roots: trustedRoots([keys[0]!]), now: () => NOW * 1000 });

describe("a verified chain", () => {
  it("states every member the freezing knows of, so that the walks below reach each of them", () => {
    const verified = verify(chain("plain", true), options());
    const grantMembers = new Set(
      verified.links.flatMap((link) => [
        ...Object.keys(link.grant),
        ...Object.keys(link.effective),
      ]),
    );
    expect([...grantMembers].sort()).toEqual(Object.keys(GRANT_MEMBERS).sort());
    expect(Object.keys(verified.links[0]!).sort()).toEqual(Object.keys(LINK_MEMBERS).sort());
    expect(Object.keys(verified).sort()).toEqual(Object.keys(CHAIN_MEMBERS).sort());
  });

  it("law: everything it reaches is frozen, decoded by either decoder, verified whole or from a cached prefix", () => {
    fc.assert(
      fc.property(
        // ASCII labels take the one-pass decoder; any other text, the reference decoder.
        fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("run 42", "é", "运行", "")),
        fc.boolean(),
        fc.constantFrom("string", "bytes", "token"),
        (label, args, form) => {
          const token = chain(label, args);
          const input =
            form === "string"
              ? formatToken(token)
              : form === "bytes"
                ? Buffer.from(formatToken(token).slice(5), "base64url")
                : token;
          const verifier = createVerifier({ roots: trustedRoots([keys[0]!]) });
          const results: VerifiedChain[] = [
            verify(input, options()),
            // The first call fills the prefix cache; the second is served from it.
            verifier.verify(input, { now: () => NOW * 1000 }),
            verifier.verify(input, { now: () => NOW * 1000 }),
          ];
          for (const result of results) {
            expect(unfrozen(result)).toEqual([]);
            expect(isVerifiedChain(result)).toBe(true);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it("cannot have a cap raised, and a copy with a raised cap is not a verified chain", () => {
    const verified = verify(chain("caps", false), options());
    const leaf = verified.links[2]!;
    expect(() => {
      (verified.grant as { usdMicros: number }).usdMicros = 10 ** 12;
    }).toThrow(TypeError);
    expect(() => {
      (leaf.effective.providers![0] as { usdMicros: number }).usdMicros = 10 ** 12;
    }).toThrow(TypeError);
    expect(() => {
      (verified.links as VerifiedChain["links"][number][]).pop();
    }).toThrow(TypeError);
    expect(verified.grant.usdMicros).toBe(5_000_000);
    const copy = { ...verified, grant: { ...verified.grant, usdMicros: 10 ** 12 } };
    expect(isVerifiedChain(copy)).toBe(false);
    expect(isVerifiedChain({ ...verified })).toBe(false);
    expect(isVerifiedChain(verified)).toBe(true);
  });

  it("is served from a prefix cache only for links a verifier stored there, never for copies", () => {
    const token = chain("cache", false);
    let equations = 0;
    const backend = {
      ...nodeBackend,
      verifyEquation: (key: Uint8Array, message: Uint8Array, signature: Uint8Array) => {
        equations++;
        return nodeBackend.verifyEquation(key, message, signature);
      },
    };
    const roots = trustedRoots([keys[0]!]);
    const at = { now: () => NOW * 1000 };
    // Entries stored by a verifier: the next call checks no signature at all.
    const stored: PrefixEntry[] = [];
    const inner = new LruPrefixCache();
    const recording: PrefixCache = {
      get: (key) => inner.get(key),
      set: (entry) => {
        stored.push(entry);
        inner.set(entry);
      },
      get size() {
        return inner.size;
      },
      clear: () => inner.clear(),
    };
    const honest = createVerifier({ roots, backend, cache: recording });
    const truth = honest.verify(token, at);
    equations = 0;
    honest.verify(token, at);
    expect(equations).toBe(0);
    // The same keys answered with copies (one with a raised cap) or with the links of a chain
    // that `verify` returned without a cache: every signature is checked again, and the caps are
    // the token's.
    const plain = verify(token, { ...at, roots });
    for (const links of [
      (entry: PrefixEntry) =>
        entry.links.map((link) => ({
          ...link,
          effective: { ...link.effective, usdMicros: 10 ** 12 },
        })),
      (entry: PrefixEntry) => plain.links.slice(0, entry.links.length),
    ]) {
      const forged: PrefixCache = {
        get: (key) => {
          const entry = stored.find((e) => Buffer.from(e.key).equals(key));
          return entry && { ...entry, links: links(entry) };
        },
        set: () => undefined,
        size: 0,
        clear: () => undefined,
      };
      equations = 0;
      const result = createVerifier({ roots, backend, cache: forged }).verify(token, at);
      expect(equations).toBe(3);
      expect(result.grant).toEqual(truth.grant);
      expect(isVerifiedChain(result)).toBe(true);
    }
  });
});
