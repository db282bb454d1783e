/** Verifying a 5-link chain against the floor: five raw node:crypto Ed25519 verifications. */
import { createPublicKey, sign, verify as rawVerify, generateKeyPairSync } from "node:crypto";
import { attenuate, encodeToken, formatToken, generateKeyPair, mint, publicKeyOf, trustedRoots, type Token } from "@allowance/core";
import { verify } from "@allowance/verifier";
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
  return { token, roots: trustedRoots([root]) };
}

export interface VerifyBench {
  readonly figures: BenchFigure[];
  readonly ratio: number;
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
  const figures = measure([
    {
      name: "5 raw node:crypto verifies (floor)",
      run: () => {
        for (const r of raw) if (!rawVerify(null, r.message, r.key, r.signature)) throw new Error("floor failed");
      },
    },
    { name: "allowance verify, 5 links (string)", run: () => verify(text, { roots, now }) },
  ]);
  const floor = (figures[0] as BenchFigure).micros;
  const ours = (figures[1] as BenchFigure).micros;
  return { figures, ratio: ours / floor, bytes: encodeToken(token).length, chars: text.length };
}

export function report(result: VerifyBench): string {
  const floor = (result.figures[0] as BenchFigure).micros;
  return [
    table(
      ["case", "median µs", "× floor"],
      result.figures.map((f) => [f.name, f.micros.toFixed(1), (f.micros / floor).toFixed(3)]),
    ),
    "",
    `5-link token: ${result.bytes} bytes binary, ${result.chars} characters as a string`,
  ].join("\n");
}
