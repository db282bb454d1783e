/** Verifying a 5-link chain against the floor: five raw node:crypto Ed25519 verifications. */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  sign,
  verify as rawVerify,
} from "node:crypto";
import {
  attenuate,
  formatToken,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type Token,
  type TrustedRoots,
} from "@allowance/core";
import { encodeToken } from "@allowance/core/format";
import { nodeBackend } from "@allowance/core/node";
import {
  LruPrefixCache,
  createVerifier,
  verify,
  type PrefixCache,
  type Verifier,
} from "@allowance/verifier";
import { measure, measurePaired, table, type BenchFigure } from "./harness.js";

const USD = 1_000_000;

/** The benchmark story: a root grant and 4 attenuations, each narrowing budget, providers and expiry. */
export async function fiveLinkStory(now: number) {
  const keys = await Promise.all([0, 1, 2, 3, 4, 5].map(() => generateKeyPair()));
  const [root, ...holders] = keys as [(typeof keys)[number], ...typeof keys];
  const providers = ["openai", "anthropic", "google", "mistral", "cohere"];
  let token: Token = mint({
    rootKey: root,
    holder: publicKeyOf(holders[0]!),
    grant: {
      exp: now + 7 * 86400,
      usdMicros: 100 * USD,
      providers: providers.map((name) => ({ name })),
    },
  });
  for (let i = 1; i < 5; i++) {
    token = attenuate(token, {
      holderKey: holders[i - 1]!,
      holder: publicKeyOf(holders[i]!),
      grant: {
        exp: now + (7 - i) * 86400,
        usdMicros: (100 * USD) >> i,
        providers: providers.slice(0, 5 - i).map((name) => ({ name })),
      },
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
  verifier.verify(token, { now: () => now * 1000 });
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
    return {
      key: createPublicKey(publicKey.export({ format: "pem", type: "spki" })),
      message,
      signature: sign(null, message, privateKey),
    };
  });
  const cached = warmVerifier(roots, text, now);

  const [one] = raw;
  const figures = measure(
    [
      {
        name: "5 raw node:crypto verifies (floor)",
        run: () => {
          for (const r of raw)
            if (!rawVerify(null, r.message, r.key, r.signature)) throw new Error("floor failed");
        },
      },
      {
        name: "allowance verify, 5 links (string)",
        run: () => verify(text, { roots, now: () => now * 1000 }),
      },
      {
        name: "1 raw node:crypto verify",
        run: () => {
          if (!rawVerify(null, one!.message, one!.key, one!.signature))
            throw new Error("floor failed");
        },
      },
      {
        name: "allowance verify, 4-link prefix cached",
        run: () => cached.verify(text, { now: () => now * 1000 }),
      },
      // Many short rounds: a burst from a neighbour on a shared machine then lands on every case alike.
    ],
    { rounds: 61, minRoundMillis: 15 },
  );
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
      f.map((figure, i) => [
        figure.name,
        figure.micros.toFixed(1),
        (figure.micros / floorOf(i)).toFixed(3),
      ]),
    ),
    "",
    `5-link token: ${result.bytes} bytes binary, ${result.chars} characters as a string`,
  ].join("\n");
}

export interface ColdKeysBench {
  readonly figures: BenchFigure[];
  /**
   * Cold chain verify over the floor "5 × (cheapest import + verify)": the median of per-round
   * ratios, the floor run just before and after each round (`measurePaired`).
   */
  readonly ratio: number;
  /** Signing with a never-seen private key over "cheapest private import + sign". */
  readonly signRatio: number;
  readonly chains: number;
}

/**
 * Chains whose keys this process has never seen: `chains` distinct 5-link chains (5 signer keys
 * each, more than the backend's key cache holds) verified in rotation, against the floor of
 * importing 5 fresh public keys the cheapest way node:crypto offers (a JWK) and verifying once
 * with each.
 */
export async function benchColdKeys(chains = 2048): Promise<ColdKeysBench> {
  const now = Math.floor(Date.now() / 1000);
  const stories: { text: string; roots: TrustedRoots }[] = [];
  for (let i = 0; i < chains; i++) {
    const { token, roots } = await fiveLinkStory(now);
    stories.push({ text: formatToken(token), roots });
  }
  const floor = Array.from({ length: chains * 5 }, (_, i) => {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const message = Buffer.alloc(200, i);
    const jwk = publicKey.export({ format: "jwk" });
    return { x: jwk.x as string, message, signature: sign(null, message, privateKey) };
  });
  // Fresh seed arrays: the backend caches private keys per array, so each is a cold import.
  const seeds = Array.from({ length: 4096 }, () => new Uint8Array(randomBytes(32)));
  const signed = Buffer.alloc(200, 7);
  let s = 0;
  let f = 0;
  let p = 0;
  let q = 0;
  const [verifyPair, signPair] = measurePaired([
    {
      floor: {
        name: "5 × (JWK public-key import + raw verify), keys never seen (floor)",
        run: () => {
          for (let k = 0; k < 5; k++) {
            const r = floor[f++ % floor.length]!;
            const key = createPublicKey({
              key: { kty: "OKP", crv: "Ed25519", x: r.x },
              format: "jwk",
            });
            if (!rawVerify(null, r.message, key, r.signature)) throw new Error("floor failed");
          }
        },
      },
      subject: {
        name: "allowance verify, 5 links, keys never seen",
        run: () => {
          const story = stories[s++ % stories.length]!;
          verify(story.text, { roots: story.roots, now: () => now * 1000 });
        },
      },
    },
    {
      floor: {
        name: "JWK private-key import + raw sign, key never seen (floor)",
        run: () => {
          const d = Buffer.from(seeds[p++ % seeds.length]!).toString("base64url");
          sign(
            null,
            signed,
            createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", d, x: "" }, format: "jwk" }),
          );
        },
      },
      subject: {
        name: "allowance node backend sign, key never seen",
        run: () => nodeBackend.sign(Uint8Array.from(seeds[q++ % seeds.length]!), signed),
      },
    },
  ]);
  return {
    figures: [verifyPair!.floor, verifyPair!.subject, signPair!.floor, signPair!.subject],
    ratio: verifyPair!.ratio,
    signRatio: signPair!.ratio,
    chains,
  };
}

export function coldKeysReport(result: ColdKeysBench): string {
  const ratios = [1, result.ratio, 1, result.signRatio];
  return table(
    ["case", "median µs", "× its floor"],
    result.figures.map((figure, i) => [
      figure.name,
      figure.micros.toFixed(1),
      (ratios[i] as number).toFixed(3),
    ]),
  );
}
