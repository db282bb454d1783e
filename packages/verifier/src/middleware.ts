/**
 * Tool-endpoint middleware (spec/presentation.md §8) for the Fetch API and for Node's `http`
 * (and so Express-style `(req, res, next)`).
 *
 * Request:   `Authorization: Allowance <alwp1_… presentation>` (or `<alw1_… token>` when
 *            presentations are not required).
 * Rejection: 401 (or 403 when the token is valid but not for this endpoint) with
 *            `WWW-Authenticate: Allowance realm="<audience>", error="<code>"` and an RFC 9457
 *            `application/problem+json` body `{ type, title, status, code, linkIndex, detail }`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { AllowanceError, type ErrorCode } from "@allowance/core";
import { TOKEN_PREFIX } from "@allowance/core/format";
import {
  PRESENTATION_PREFIX,
  verifyPresentation,
  type PresentationClaims,
  type RequestBody,
} from "./presentation.js";
import {
  MAX_PRESENTATION_MAX_AGE_SECONDS,
  checkedClock,
  checkedInteger,
  checkedKnownOptions,
  checkedMethods,
  checkedOptions,
  optionNames,
  readClock,
  shown,
} from "./inputs.js";
import type { ReplayCache } from "./replay.js";
import {
  createVerifier,
  type RevocationCheck,
  type VerifiedChain,
  type Verifier,
  type VerifierOptions,
} from "./verify.js";

export const AUTH_SCHEME = "Allowance";

export interface AuthorizeOptions extends VerifierOptions {
  /** This endpoint's audience: presentations must name it, and tokens restricting `aud` must list it. */
  readonly audience: string;
  /** Require proof of possession (default true). When false, a bare token is accepted too. */
  readonly requirePresentation?: boolean;
  readonly revocations?: RevocationCheck;
  readonly replay?: ReplayCache;
  /** Whole seconds a presentation stays usable after it is made, 0 to 3600. Default 60. */
  readonly maxAgeSeconds?: number;
  /**
   * The clock: a function returning epoch milliseconds, as `Date.now` (the default) does, read
   * once per request. A clock that answers anything but an integer from 10^11 (1973) to
   * 2^53 − 1 fails the request as a server error: nothing is served.
   */
  readonly now?: () => number;
  /**
   * Refuse presentations that do not bind the request body (spec/presentation.md §3.4); default
   * false. A presentation that binds one is always checked against the body received.
   */
  readonly requireBodyBinding?: boolean;
  /**
   * The most bytes of a body read to check a binding (default 4 MiB); a longer body is refused
   * with ERR_PRESENTATION. Bodies are read only for presentations that bind one.
   */
  readonly maxBodyBytes?: number;
}

/** What a handler learns about an authorized request. */
export interface AllowanceContext {
  readonly chain: VerifiedChain;
  /** Present when the request carried a presentation. */
  readonly presentation?: PresentationClaims;
}

export interface Rejection {
  readonly status: 401 | 403;
  readonly error: AllowanceError;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: ProblemBody;
}

export interface ProblemBody {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ErrorCode;
  readonly linkIndex: number | null;
  readonly detail: string;
}

export type AuthorizeResult =
  | { readonly ok: true; readonly context: AllowanceContext }
  | { readonly ok: false; readonly rejection: Rejection };

/** The transport-neutral check both middlewares use. */
export interface Authorizer {
  authorize(
    authorization: string | null | undefined,
    method: string,
    path: string,
    body?: () => RequestBody | Promise<RequestBody>,
  ): Promise<AuthorizeResult>;
  readonly verifier: Verifier;
}

/**
 * The members of the options (spec/presentation.md §8.1): any other is a TypeError, a misspelt one
 * would keep its default.
 */
const AUTHORIZE_OPTIONS = optionNames<AuthorizeOptions>()([
  "audience",
  "requirePresentation",
  "roots",
  "skewSeconds",
  "limits",
  "backend",
  "cacheSize",
  "cache",
  "revocations",
  "replay",
  "maxAgeSeconds",
  "now",
  "requireBodyBinding",
  "maxBodyBytes",
]);

const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export function createAuthorizer(options: AuthorizeOptions): Authorizer {
  checkedKnownOptions(checkedOptions(options, "options", false), "options", AUTHORIZE_OPTIONS);
  if (typeof options.audience !== "string" || options.audience.length === 0) {
    throw new TypeError('"audience" is required: the endpoint must know its own name');
  }
  const {
    audience,
    requirePresentation = true,
    revocations,
    replay,
    maxAgeSeconds,
    now,
    requireBodyBinding = false,
    maxBodyBytes,
    ...verifierOptions
  } = options;
  // What the presentation check takes besides the verifier's own: not the cache, which is the verifier's.
  const { cacheSize: _cacheSize, cache: _cache, ...presentationOptions } = verifierOptions;
  // Checked once here, so a bad option fails at start-up, not on the first request.
  if (typeof requirePresentation !== "boolean")
    throw new TypeError(
      `"requirePresentation" expected a boolean, got ${shown(requirePresentation)}`,
    );
  checkedInteger(maxAgeSeconds, "maxAgeSeconds", 0, MAX_PRESENTATION_MAX_AGE_SECONDS);
  checkedInteger(maxBodyBytes, "maxBodyBytes", DEFAULT_MAX_BODY_BYTES, Number.MAX_SAFE_INTEGER);
  if (typeof requireBodyBinding !== "boolean")
    throw new TypeError(
      `"requireBodyBinding" expected a boolean, got ${shown(requireBodyBinding)}`,
    );
  checkedMethods(revocations, "revocations", ["has"]);
  checkedMethods(replay, "replay", ["claim"]);
  const clock = checkedClock(now);
  const verifier = createVerifier(verifierOptions);
  return {
    verifier,
    async authorize(authorization, method, path, body) {
      // Read and checked first: a clock answering garbage (NaN, seconds, a Date) throws a
      // TypeError or RangeError, which is a server error (spec/presentation.md §8.2), never a pass.
      // Every check of this request then runs at this one second.
      const at = readClock(clock);
      const atClock = () => at * 1000;
      try {
        const credential = readCredential(authorization);
        if (credential.startsWith(PRESENTATION_PREFIX)) {
          const { chain, claims } = await verifyPresentation(credential, {
            ...presentationOptions,
            audience,
            method,
            path,
            now: atClock,
            ...(revocations === undefined ? {} : { revocations }),
            ...(replay === undefined ? {} : { replay }),
            ...(maxAgeSeconds === undefined ? {} : { maxAgeSeconds }),
            ...(body === undefined ? {} : { body }),
            requireBodyBinding,
            // Only what varies per call: roots, skew, limits and backend are the verifier's already.
            verifyToken: (token, o) =>
              verifier.verify(token, {
                now: o.now ?? atClock,
                audience,
                ...(o.revocations === undefined ? {} : { revocations: o.revocations }),
              }),
          });
          return { ok: true, context: { chain, presentation: claims } };
        }
        if (requirePresentation || requireBodyBinding || !credential.startsWith(TOKEN_PREFIX)) {
          throw new AllowanceError(
            credential.startsWith(TOKEN_PREFIX) ? "ERR_PRESENTATION" : "ERR_MALFORMED",
            credential.startsWith(TOKEN_PREFIX)
              ? "this endpoint requires a presentation (proof of possession), not a bare token"
              : "the credential is neither a presentation nor a token",
          );
        }
        const chain = verifier.verify(credential, {
          now: atClock,
          audience,
          ...(revocations === undefined ? {} : { revocations }),
        });
        return { ok: true, context: { chain } };
      } catch (error) {
        if (!(error instanceof AllowanceError)) throw error;
        return { ok: false, rejection: reject(error, audience) };
      }
    },
  };
}

function readCredential(authorization: string | null | undefined): string {
  if (authorization === null || authorization === undefined || authorization === "") {
    throw new AllowanceError(
      "ERR_NO_CREDENTIALS",
      `send "Authorization: ${AUTH_SCHEME} <presentation>"`,
    );
  }
  const match = /^([A-Za-z][A-Za-z0-9-]*) +(\S+) *$/.exec(authorization);
  // RFC 9110 §11.1: the scheme name is case-insensitive.
  if (match === null || match[1]?.toLowerCase() !== AUTH_SCHEME.toLowerCase()) {
    throw new AllowanceError(
      "ERR_NO_CREDENTIALS",
      `the Authorization scheme must be ${AUTH_SCHEME}`,
    );
  }
  return match[2] as string;
}

const FORBIDDEN: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["ERR_AUDIENCE"]);

function reject(error: AllowanceError, audience: string): Rejection {
  const status = FORBIDDEN.has(error.code) ? 403 : 401;
  const body: ProblemBody = {
    type: `urn:allowance:error:${error.code}`,
    title: status === 403 ? "Credential not valid for this endpoint" : "Credential rejected",
    status,
    code: error.code,
    linkIndex: error.linkIndex ?? null,
    detail: error.message,
  };
  return {
    status,
    error,
    body,
    headers: {
      "content-type": "application/problem+json",
      "cache-control": "no-store",
      "www-authenticate": `${AUTH_SCHEME} realm="${quoted(audience)}", error="${error.code}", error_description="${quoted(error.message)}"`,
    },
  };
}

/** Keeps a header quoted-string safe: printable ASCII without quote or backslash. */
function quoted(text: string): string {
  return text.replace(/[^\x20-\x7e]|["\\]/g, "").slice(0, 200);
}

export function rejectionResponse(rejection: Rejection): Response {
  return new Response(JSON.stringify(rejection.body), {
    status: rejection.status,
    headers: rejection.headers,
  });
}

export type FetchHandler = (
  request: Request,
  context: AllowanceContext,
) => Response | Promise<Response>;

/**
 * Wraps a Fetch API handler (Request → Response): the handler runs only for authorized requests
 * and receives the verified context.
 */
export function withAllowance(
  handler: FetchHandler,
  options: AuthorizeOptions,
): (request: Request) => Promise<Response> {
  const authorizer = createAuthorizer(options);
  const maxBodyBytes = checkedInteger(
    options.maxBodyBytes,
    "maxBodyBytes",
    DEFAULT_MAX_BODY_BYTES,
    Number.MAX_SAFE_INTEGER,
  );
  return async (request) => {
    const result = await authorizer.authorize(
      request.headers.get("authorization"),
      request.method,
      new URL(request.url).pathname,
      // A copy is read, so the handler still gets the body.
      () => readBody(request.clone().body, maxBodyBytes),
    );
    return result.ok ? handler(request, result.context) : rejectionResponse(result.rejection);
  };
}

/** Node `http` / Express-style middleware; the context is set on `req.allowance`. */
export type NodeMiddleware = (
  req: IncomingMessage & { allowance?: AllowanceContext },
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

export function allowanceMiddleware(options: AuthorizeOptions): NodeMiddleware {
  const authorizer = createAuthorizer(options);
  return (req, res, next) => {
    // The request-target as sent, as the router sees it (spec/presentation.md §8.1): normalising
    // ("/a/../b", "/a/%2e%2e/b" or "//b" to "/b") would check another path than the one served.
    const path = (req.url ?? "/").split("?", 1)[0] as string;
    // The stream is the next handler's to read: a body binding is checked against `req.rawBody`,
    // which a raw-body parser placed before this middleware provides (spec/presentation.md §8.1).
    const raw: unknown = (req as { rawBody?: unknown }).rawBody;
    const body = () => {
      if (raw instanceof Uint8Array) return raw;
      throw new AllowanceError(
        "ERR_PRESENTATION",
        "the presentation binds the request body, and req.rawBody holds no bytes to check it",
      );
    };
    authorizer.authorize(req.headers.authorization, req.method ?? "GET", path, body).then(
      (result) => {
        if (result.ok) {
          req.allowance = result.context;
          next();
          return;
        }
        res.writeHead(result.rejection.status, result.rejection.headers);
        res.end(JSON.stringify(result.rejection.body));
      },
      (error: unknown) => next(error),
    );
  };
}

/** The bytes of a body stream, at most `max` of them (else ERR_PRESENTATION); none for no body. */
async function readBody(
  stream: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<Uint8Array> {
  if (stream === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      // Not awaited: the copy is one branch of a tee, whose cancel settles only with the other's.
      reader.cancel().catch(() => undefined);
      throw new AllowanceError(
        "ERR_PRESENTATION",
        `the request body is longer than ${max} bytes, the most read to check a binding`,
      );
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
