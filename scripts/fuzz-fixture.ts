/** The fixed chains, keys and presentations that scripts/fuzz.ts mutates and the corpus test replays. */
import {
  attenuate,
  keyPairFromSeed,
  mint,
  parseToken,
  trustedRoots,
  type KeyPair,
  type Token,
  type TrustedRoots,
} from "@allowance/core";
import { encodeToken, sha256, toBase64url } from "@allowance/core/format";
import { present } from "@allowance/verifier";

export const FUZZ_NOW = 1_800_000_000;
export const FUZZ_AUD = "https://tools.example/search";

const text = (s: string) => new TextEncoder().encode(s);
const seedOf = (label: string) => sha256(text(`allowance-fuzz/${label}`));

export interface FuzzFixture {
  readonly roots: TrustedRoots;
  readonly tokens: readonly Token[];
  readonly presentations: readonly string[];
  /** Per token: the key that signs each link (the root for link 0, then each holder). */
  readonly signers: readonly (readonly KeyPair[])[];
  /** Every prefix of every chain, base64url of its binary form: the only tokens that may verify. */
  isGenuineToken(value: Uint8Array | string): boolean;
}

export async function fuzzFixture(): Promise<FuzzFixture> {
  const tokens: Token[] = [];
  const presentations: string[] = [];
  const rootKeys: KeyPair[] = [];
  const signers: KeyPair[][] = [];
  for (const length of [1, 2, 3, 5]) {
    const root = await keyPairFromSeed(seedOf(`root/${length}`));
    rootKeys.push(root);
    const keys = await Promise.all(
      Array.from({ length }, (_, i) => keyPairFromSeed(seedOf(`holder/${length}/${i}`))),
    );
    const nonce = (i: number) => seedOf(`nonce/${length}/${i}`).subarray(0, 8);
    let token = mint({
      rootKey: root,
      holder: (keys[0] as KeyPair).publicKey,
      nonce: nonce(0),
      grant: {
        exp: FUZZ_NOW + 86400,
        usdMicros: 5_000_000_000,
        tools: ["search.*", "mail.send"],
        aud: [FUZZ_AUD],
        providers: [{ name: "openai", usdMicros: 100 }, { name: "anthropic" }],
        rate: [{ seconds: 60, requests: 10 }],
      },
    });
    for (let i = 1; i < length; i++) {
      token = attenuate(token, {
        holderKey: keys[i - 1] as KeyPair,
        holder: (keys[i] as KeyPair).publicKey,
        nonce: nonce(i),
        grant: {
          usdMicros: 5_000_000_000 - i,
          label: `agent-${i}`,
          ...(i % 2 === 0 ? { tools: ["search.web"] } : {}),
        },
      });
    }
    tokens.push(token);
    signers.push([root, ...keys.slice(0, length - 1)]);
    presentations.push(
      present(token, keys[length - 1] as KeyPair, {
        aud: FUZZ_AUD,
        now: () => FUZZ_NOW * 1000,
        method: "POST",
        path: "/search",
        jti: seedOf(`jti/${length}`).subarray(0, 16),
      }),
    );
  }
  const genuine = new Set<string>();
  for (const token of tokens)
    for (let n = 1; n <= token.links.length; n++)
      genuine.add(
        toBase64url(encodeToken({ rootKid: token.rootKid, links: token.links.slice(0, n) })),
      );
  return {
    roots: trustedRoots(rootKeys),
    tokens,
    presentations,
    signers,
    isGenuineToken(value) {
      try {
        return genuine.has(toBase64url(encodeToken(parseToken(value))));
      } catch {
        return false;
      }
    },
  };
}
