/** Verifying a 5-link chain against the floor: five raw node:crypto Ed25519 verifications. */
import { createPublicKey, sign, verify as rawVerify, generateKeyPairSync } from "node:crypto";
import { attenuate, encodeToken, formatToken, generateKeyPair, mint, publicKeyOf, trustedRoots, type Token, type TrustedRoots } from "@allowance/core";
import { LruPrefixCache, createVerifier, verify, type PrefixCache, type Verifier } from "@allowance/verifier";
import { measure, table, type BenchFigure } from "./harness.js";

const USD = 1_000_000;

/** The benchmark story: a root grant and 4 attenuations, each narrowing budget, providers and expiry. */
export async function fiveLinkStory(now: number) {
  const keys = await Promise.all([0, 1, 2, 3, 4, 5].map(() => generateKeyPair()));
  const [root, ...holders] = keys as [(typeof keys)[number], ...typeof keys];
  const providers = ["openai", "anthropic", "google", "mistral", "cohere"];
  let token: Token = mint({
    rootKey: root,
    holder: publicKeyOf(holders[0]!),
    grant: { exp: now + 7 * 86400, usdMicros: 100 * USD, providers: providers.map((name) => ({ name })) },
  });
  for (let i = 1; i < 5; i++) {
    token = attenuate(token, {
      holderKey: holders[i - 1]!,
      holder: publicKeyOf(holders[i]!),
      grant: { exp: now + (7 - i) * 86400, usdMicros: (100 * USD) >> i, providers: providers.slice(0, 5 - i).map((name) => ({ name })) },
    });
  }
  // keys: the root, then each link's holder (keys[i + 1] holds link i), for benchmarks that re-sign.
  return { token, roots: trustedRoots([root]), keys };
}

/**
 * A verifier whose cache holds the chain's 4-link prefix but never the whole chain: every call
 * pays for exactly one new link, as when a new sub-agent presents a chain under a known orchestrator.
 */
export function warmVerifier(roots: TrustedRoots, token: string, now: number): Verifier {
  const inner = new LruPrefixCache();
  const prefixOnly: PrefixCache = {
    get: (key) => inner.get(key),
    set: (entry) => (entry.links.length <= 4 ? inner.set(entry) : undefined),
    get size() {
      return inner.size;
    },
    clear: () => inner.clear(),
  };
  const verifier = createVerifier({ roots, cache: prefixOnly });
  verifier.verify(token, { now });
  return verifier;
}

export interface VerifyBench {
  readonly figures: BenchFigure[];
  readonly ratio: number;
  readonly cachedRatio: number;
  readonly bytes: number;
  readonly chars: number;
}

export async function benchVerify(): Promise<VerifyBench> {
  const now = Math.floor(Date.now() / 1000);
  const { token, roots } = await fiveLinkStory(now);
  const text = formatToken(token);

  // The floor: 5 verifications of ~200-byte messages with cached KeyObjects.
  const raw = Array.from({ length: 5 }, (_, i) => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const message = Buffer.alloc(200, i);
    return { key: createPublicKey(publicKey.export({ format: "pem", type: "spki" })), message, signature: sign(null, message, privateKey) };
  });
  const cached = warmVerifier(roots, text, now);

  const [one] = raw;
  const figures = measure([
    {
      name: "5 raw node:crypto verifies (floor)",
      run: () => {
        for (const r of raw) if (!rawVerify(null, r.message, r.key, r.signature)) throw new Error("floor failed");
      },
    },
    { name: "allowance verify, 5 links (string)", run: () => verify(text, { roots, now }) },
    {
      name: "1 raw node:crypto verify",
      run: () => {
        if (!rawVerify(null, one!.message, one!.key, one!.signature)) throw new Error("floor failed");
      },
    },
    { name: "allowance verify, 4-link prefix cached", run: () => cached.verify(text, { now }) },
    // Many short rounds: a burst from a neighbour on a shared machine then lands on every case alike.
  ], { rounds: 61, minRoundMillis: 15 });
  const micros = figures.map((f) => f.micros);
  return {
    figures,
    ratio: micros[1]! / micros[0]!,
    cachedRatio: micros[3]! / micros[2]!,
    bytes: encodeToken(token).length,
    chars: text.length,
  };
}

export function report(result: VerifyBench): string {
  const f = result.figures;
  const floorOf = (i: number) => (i < 2 ? f[0] : f[2])!.micros;
  return [
    table(
      ["case", "median µs", "× its floor"],
      f.map((figure, i) => [figure.name, figure.micros.toFixed(1), (figure.micros / floorOf(i)).toFixed(3)]),
    ),
    "",
    `5-link token: ${result.bytes} bytes binary, ${result.chars} characters as a string`,
  ].join("\n");
}
