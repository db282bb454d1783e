/**
 * The client side: a `fetch` that proves possession on every request, for the MCP SDK's
 * `StreamableHTTPClientTransport` (its `fetch` option) or any HTTP client that takes a fetch.
 */
import { formatToken, type KeyPair, type Token } from "@allowance/core";
import { present } from "@allowance/verifier";
import { createDpopProof, knownOptions } from "./dpop.js";

export type ProofScheme = "DPoP" | "Allowance";

export interface ProofFetchOptions {
  /** The token whose leaf `holderKey` holds. */
  readonly token: Token | string;
  readonly holderKey: KeyPair;
  /** `DPoP` (default): `Authorization: DPoP <token>` and a `DPoP` proof; `Allowance`: a presentation. */
  readonly scheme?: ProofScheme;
  /** The endpoint's audience for presentations; default the request URL without query. */
  readonly audience?: string;
  /**
   * Bind each presentation to its request's body (`bh`, spec/presentation.md §3.4), so that a
   * captured one cannot carry other tool arguments; default true with the Allowance scheme. A
   * DPoP proof binds no body: true with the DPoP scheme is a TypeError.
   */
  readonly bindBody?: boolean;
  readonly fetch?: typeof globalThis.fetch;
  /** The clock, epoch milliseconds; default `Date.now`. */
  readonly now?: () => number;
}

/** A fetch that adds a fresh proof (one-time id, this method, this URL) to every request. */
export function proofFetch(options: ProofFetchOptions): typeof globalThis.fetch {
  knownOptions(options, ["token", "holderKey", "scheme", "audience", "bindBody", "fetch", "now"]);
  const { holderKey, scheme = "DPoP", audience, now = Date.now } = options;
  if (scheme !== "DPoP" && scheme !== "Allowance")
    throw new TypeError(`"scheme" expected "DPoP" or "Allowance", got ${String(scheme)}`);
  if (typeof now !== "function") throw new TypeError('"now" expected a function');
  const { bindBody = scheme === "Allowance" } = options;
  if (typeof bindBody !== "boolean")
    throw new TypeError(`"bindBody" expected a boolean, got ${typeof bindBody}`);
  if (bindBody && scheme === "DPoP")
    throw new TypeError('"bindBody" needs the Allowance scheme: a DPoP proof binds no body');
  const token = typeof options.token === "string" ? options.token : formatToken(options.token);
  const inner = options.fetch ?? globalThis.fetch;
  return async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const headers = new Headers(request.headers);
    if (scheme === "DPoP") {
      headers.set("authorization", `DPoP ${token}`);
      headers.set(
        "dpop",
        await createDpopProof(holderKey, {
          method: request.method,
          url,
          accessToken: token,
          nowMs: now(),
        }),
      );
    } else {
      // The bytes sent, read from a copy: the request still carries them (an absent body is empty).
      const body = bindBody ? new Uint8Array(await request.clone().arrayBuffer()) : undefined;
      const presentation = present(token, holderKey, {
        aud: audience ?? url.origin + url.pathname,
        method: request.method,
        path: url.pathname,
        now: () => new Date(now()).getTime(),
        ...(body === undefined ? {} : { body }),
      });
      headers.set("authorization", `Allowance ${presentation}`);
    }
    return inner(new Request(request, { headers }));
  };
}
