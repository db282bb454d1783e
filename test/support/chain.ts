/** Shared fixtures for cross-package tests: keys and a chain built with the public API. */
import {
  attenuate,
  generateKeyPair,
  mint,
  publicKeyOf,
  trustedRoots,
  type GrantFields,
  type KeyPair,
  type Token,
  type TrustedRoots,
} from "@allowance/core";

export const NOW = 1_800_000_000;
export const USD = 1_000_000;

export interface Fixture {
  readonly root: KeyPair;
  readonly holders: readonly KeyPair[];
  readonly token: Token;
  readonly roots: TrustedRoots;
  readonly leaf: KeyPair;
}

/** A chain of `grants.length` links; link i is held by holders[i]. */
export async function buildChain(grants: readonly GrantFields[]): Promise<Fixture> {
  const root = await generateKeyPair();
  const holders = await Promise.all(grants.map(() => generateKeyPair()));
  let token = mint({
    rootKey: root,
    holder: publicKeyOf(holders[0] as KeyPair),
    grant: grants[0] as GrantFields,
  });
  for (let i = 1; i < grants.length; i++) {
    token = attenuate(token, {
      holderKey: holders[i - 1] as KeyPair,
      holder: publicKeyOf(holders[i] as KeyPair),
      grant: grants[i] as GrantFields,
    });
  }
  return {
    root,
    holders,
    token,
    roots: trustedRoots([root]),
    leaf: holders[holders.length - 1] as KeyPair,
  };
}

/** The five-link story used by the benchmarks and the attack suite. */
export function fiveLinkGrants(now = NOW): GrantFields[] {
  const providers = ["openai", "anthropic", "google", "mistral", "cohere"];
  return [0, 1, 2, 3, 4].map((i) => ({
    exp: now + (7 - i) * 86400,
    usdMicros: (100 * USD) >> i,
    providers: providers.slice(0, 5 - i).map((name) => ({ name })),
    ...(i === 0
      ? {
          aud: ["https://tools.example/search", "https://tools.example/email"],
          tools: ["search.*", "email.send"],
        }
      : {}),
  }));
}
