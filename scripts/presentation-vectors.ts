/** Presentation vectors for spec/vectors/presentations/, built like the token vectors (fixed keys, ids). */
import {
  attenuate,
  exportJwks,
  keyPairFromSeed,
  mint,
  trustedRoots,
  type KeyPair,
  type Jwks,
  type Token,
} from "@allowance/core";
import { sha256 } from "@allowance/core/format";
import {
  MemoryReplayCache,
  present,
  verifyPresentation,
  type PresentOptions,
} from "@allowance/verifier";

export interface PresentationVector {
  name: string;
  description: string;
  roots: Jwks;
  now: number;
  skew: number;
  maxAge: number;
  audience: string;
  method?: string;
  path?: string;
  /** The request body the endpoint received (UTF-8 text), for body-bound presentations. */
  body?: string;
  /** The endpoint refuses presentations that do not bind the body. */
  requireBodyBinding?: boolean;
  presentation: string;
  /** How many times the presentation is verified against one replay cache; `expected` is for the last. */
  uses: number;
  expected:
    | { valid: true; holder: string; claims: Record<string, unknown> }
    | { valid: false; code: string };
}

const NOW = 1_800_000_000;
const AUD = "https://tools.example/search";
const text = (s: string) => new TextEncoder().encode(s);
const key = (label: string) => keyPairFromSeed(sha256(text(`allowance-vectors/key/${label}`)));
const jti = (label: string) => sha256(text(`allowance-vectors/jti/${label}`)).subarray(0, 16);

export async function buildPresentationVectors(): Promise<PresentationVector[]> {
  const [root, a, b, stranger] = (await Promise.all(["root", "a", "b", "stranger"].map(key))) as [
    KeyPair,
    KeyPair,
    KeyPair,
    KeyPair,
  ];
  const nonce = (i: number) =>
    sha256(text(`allowance-vectors/nonce/presentation/${i}`)).subarray(0, 8);
  let token: Token = mint({
    rootKey: root,
    holder: a.publicKey,
    grant: { exp: NOW + 3600, aud: [AUD, "https://tools.example/email"] },
    nonce: nonce(0),
  });
  token = attenuate(token, {
    holderKey: a,
    holder: b.publicKey,
    grant: { usdMicros: 1_000_000 },
    nonce: nonce(1),
  });
  const roots = trustedRoots([root]);
  const vectors: PresentationVector[] = [];
  const add = async (
    name: string,
    description: string,
    signer: KeyPair,
    opts: Omit<PresentOptions, "jti">,
    check: {
      method?: string;
      path?: string;
      now?: number;
      uses?: number;
      audience?: string;
      body?: string;
      requireBodyBinding?: boolean;
    } = {},
  ) => {
    const presentation = present(token, signer, { ...opts, jti: jti(name) });
    const base = {
      name,
      description,
      roots: exportJwks([root]),
      now: check.now ?? NOW,
      skew: 60,
      maxAge: 60,
      audience: check.audience ?? AUD,
      ...(check.method === undefined ? {} : { method: check.method }),
      ...(check.path === undefined ? {} : { path: check.path }),
      ...(check.body === undefined ? {} : { body: check.body }),
      ...(check.requireBodyBinding === undefined
        ? {}
        : { requireBodyBinding: check.requireBodyBinding }),
      presentation,
      uses: check.uses ?? 1,
    };
    vectors.push({ ...base, expected: await evaluatePresentation(base, roots) });
  };
  await add(
    "valid-bound",
    "Bound to method and path; verified once.",
    b,
    { aud: AUD, method: "POST", path: "/search", now: () => NOW * 1000 },
    { method: "POST", path: "/search" },
  );
  await add(
    "valid-unbound",
    "No method or path bound: valid for any request to the audience.",
    b,
    { aud: AUD, now: () => (NOW - 30) * 1000 },
    { method: "GET", path: "/anything" },
  );
  await add(
    "invalid-replay",
    "The same presentation verified twice.",
    b,
    { aud: AUD, now: () => NOW * 1000 },
    { uses: 2 },
  );
  await add("invalid-not-holder", "Signed by the parent holder, not the leaf holder.", a, {
    aud: AUD,
    now: () => NOW * 1000,
  });
  await add("invalid-stranger", "Signed by a key unrelated to the token.", stranger, {
    aud: AUD,
    now: () => NOW * 1000,
  });
  await add("invalid-audience", "Made for another endpoint that the token also allows.", b, {
    aud: "https://tools.example/email",
    now: () => NOW * 1000,
  });
  await add(
    "invalid-method",
    "Bound to GET, presented with POST.",
    b,
    { aud: AUD, method: "GET", now: () => NOW * 1000 },
    { method: "POST" },
  );
  await add(
    "invalid-path",
    "Bound to /admin, presented at /search.",
    b,
    { aud: AUD, path: "/admin", now: () => NOW * 1000 },
    { path: "/search" },
  );
  await add("invalid-stale", "Issued 121 s before the verifier's clock (maxAge 60, skew 60).", b, {
    aud: AUD,
    now: () => (NOW - 121) * 1000,
  });
  await add("invalid-future", "Issued 61 s after the verifier's clock (skew 60).", b, {
    aud: AUD,
    now: () => (NOW + 61) * 1000,
  });
  await add(
    "invalid-token-expired",
    "A valid presentation of an expired token.",
    b,
    { aud: AUD, now: () => (NOW + 7200) * 1000 },
    { now: NOW + 7200 },
  );
  await add(
    "valid-method-case",
    "Bound to POST, presented with the method post: the request's method is upper-cased.",
    b,
    { aud: AUD, method: "POST", now: () => NOW * 1000 },
    { method: "post" },
  );
  await add(
    "invalid-unicode-method",
    "Bound to POST, presented with poſt (long s): upper-casing is ASCII only, so it stays poſT.",
    b,
    { aud: AUD, method: "POST", now: () => NOW * 1000 },
    { method: "poſt" },
  );
  const body = '{"query":"allowance","limit":10}';
  await add(
    "valid-body-bound",
    "Bound to the request body (bh, the SHA-256 of its bytes); verified with that body.",
    b,
    { aud: AUD, method: "POST", path: "/search", body, now: () => NOW * 1000 },
    { method: "POST", path: "/search", body },
  );
  await add(
    "invalid-body-other",
    "Bound to one body, presented with another (other arguments): ERR_PRESENTATION.",
    b,
    { aud: AUD, method: "POST", path: "/search", body, now: () => NOW * 1000 },
    { method: "POST", path: "/search", body: '{"query":"allowance","limit":1000}' },
  );
  await add(
    "invalid-body-required",
    "Not bound to a body, at an endpoint that requires the binding: ERR_PRESENTATION.",
    b,
    { aud: AUD, method: "POST", path: "/search", now: () => NOW * 1000 },
    { method: "POST", path: "/search", body, requireBodyBinding: true },
  );
  // Not a presentation at all: 8,176 characters but 24,516 UTF-8 bytes, over maxTokenChars + 512.
  const long = {
    name: "invalid-length-non-ascii",
    description:
      "8,170 euro signs after the prefix: within the limit in characters, not in UTF-8 bytes.",
    roots: exportJwks([root]),
    now: NOW,
    skew: 60,
    maxAge: 60,
    audience: AUD,
    presentation: "alwp1_" + "€".repeat(8170),
    uses: 1,
  };
  vectors.push({ ...long, expected: await evaluatePresentation(long, roots) });
  return vectors;
}

export async function evaluatePresentation(
  v: Omit<PresentationVector, "expected" | "name" | "description" | "roots">,
  roots: ReturnType<typeof trustedRoots>,
): Promise<PresentationVector["expected"]> {
  const replay = new MemoryReplayCache();
  let result: PresentationVector["expected"] = { valid: false, code: "none" };
  for (let i = 0; i < v.uses; i++) {
    try {
      const verified = await verifyPresentation(v.presentation, {
        roots,
        audience: v.audience,
        now: () => v.now * 1000,
        skewSeconds: v.skew,
        maxAgeSeconds: v.maxAge,
        replay,
        ...(v.method === undefined ? {} : { method: v.method }),
        ...(v.path === undefined ? {} : { path: v.path }),
        ...(v.body === undefined ? {} : { body: v.body }),
        ...(v.requireBodyBinding === undefined ? {} : { requireBodyBinding: v.requireBodyBinding }),
      });
      result = {
        valid: true,
        holder: Buffer.from(verified.chain.holder).toString("base64url"),
        claims: { ...verified.claims },
      };
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code !== "string") throw error;
      result = { valid: false, code };
    }
  }
  return result;
}
