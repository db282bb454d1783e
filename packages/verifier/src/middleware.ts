/**
 * Tool-endpoint middleware (spec/presentation.md §8) for the Fetch API and for Node's `http`
 * (and so Express-style `(req, res, next)`).
 *
 * Request:   `Authorization: Allowance <alwp1_… presentation>` (or `<alw1_… token>` when
 *            presentations are not required).
 * Rejection: 401 (or 403 when the token is valid but not for this endpoint) with
 *            `WWW-Authenticate: Allowance realm="<audience>", error="<code>"` and an RFC 9457
 *            `application/problem+json` body `{ type, title, status, code, linkIndex, detail }`.
 *            With the `toolCall` option, the request's tool calls are then checked against the
 *            grant's `tools` and `args` (§8.4): 403 TOOL_NOT_ALLOWED or ARGUMENT_NOT_ALLOWED.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  AllowanceError,
  type ArgumentConstraint,
  type ArgumentDenialReason,
  type ErrorCode,
} from "@allowance/core";
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
  checkToolCalls,
  encoded,
  jsonToolCall,
  readCapped,
  readToolCalls,
  type ToolCall,
  type ToolCallCode,
  type ToolCallExtractor,
  type ToolCallRefusal,
  type ToolCallSource,
} from "./tool-calls.js";
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
   * with ERR_PRESENTATION. Bodies are read only for presentations that bind one, and for tool
   * calls (413 BODY_TOO_LARGE past it).
   */
  readonly maxBodyBytes?: number;
  /**
   * Check the request's tool calls against the grant's `tools` and `args` (spec/presentation.md
   * §8.4), after the credential: `"json"` for a body `{ "tool": …, "arguments": … }`, or a
   * function that finds the calls in the body read as strict JSON. Every request's body is then
   * read (at most `maxBodyBytes`).
   */
  readonly toolCall?: "json" | ToolCallExtractor;
}

/** What a handler learns about an authorized request. */
export interface AllowanceContext {
  readonly chain: VerifiedChain;
  /** Present when the request carried a presentation. */
  readonly presentation?: PresentationClaims;
  /** With the `toolCall` option: the request's tool calls, checked against the grant, in order. */
  readonly toolCalls?: readonly ToolCall[];
}

export interface Rejection {
  readonly status: 400 | 401 | 403 | 413 | 415;
  /** The credential's error; absent when the credential verified and its tool calls were refused. */
  readonly error?: AllowanceError;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: ProblemBody;
}

export interface ProblemBody {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: ErrorCode | ToolCallCode;
  readonly linkIndex: number | null;
  readonly detail: string;
  /** For TOOL_NOT_ALLOWED and ARGUMENT_NOT_ALLOWED (§8.4): the id of the link at `linkIndex`. */
  readonly linkId?: string | null;
  /** For TOOL_NOT_ALLOWED and ARGUMENT_NOT_ALLOWED: the tool called. */
  readonly tool?: string;
  /** For ARGUMENT_NOT_ALLOWED, as spec/arguments.md §6.3 names the refusal. */
  readonly pattern?: string | null;
  readonly reason?: ArgumentDenialReason;
  readonly argument?: string | null;
  readonly constraint?: ArgumentConstraint | null;
}

export type AuthorizeResult =
  | { readonly ok: true; readonly context: AllowanceContext }
  | { readonly ok: false; readonly rejection: Rejection };

/** The transport-neutral check both middlewares use. */
export interface Authorizer {
  /**
   * The credential, then (with the `toolCall` option) the request's tool calls, read from
   * `toolCalls`, which that option requires (a TypeError without it: nothing goes unchecked).
   */
  authorize(
    authorization: string | null | undefined,
    method: string,
    path: string,
    body?: () => RequestBody | Promise<RequestBody>,
    toolCalls?: ToolCallSource,
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
  "toolCall",
]);

/** The most bytes of a body read by default: 4 MiB (spec/presentation.md §8.1). */
export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

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
    toolCall,
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
  const maxBytes = checkedInteger(
    maxBodyBytes,
    "maxBodyBytes",
    DEFAULT_MAX_BODY_BYTES,
    Number.MAX_SAFE_INTEGER,
  );
  if (toolCall !== undefined && toolCall !== "json" && typeof toolCall !== "function")
    throw new TypeError(
      `"toolCall" expected "json" or a function finding the tool calls in a body, got ${shown(toolCall)}`,
    );
  const extractor: ToolCallExtractor | undefined = toolCall === "json" ? jsonToolCall : toolCall;
  if (typeof requireBodyBinding !== "boolean")
    throw new TypeError(
      `"requireBodyBinding" expected a boolean, got ${shown(requireBodyBinding)}`,
    );
  checkedMethods(revocations, "revocations", ["has"]);
  checkedMethods(replay, "replay", ["claim"]);
  const clock = checkedClock(now);
  const verifier = createVerifier(verifierOptions);
  const authorized = async (
    context: AllowanceContext,
    method: string,
    path: string,
    source: ToolCallSource | undefined,
  ): Promise<AuthorizeResult> => {
    if (extractor === undefined) return { ok: true, context };
    if (source === undefined)
      throw new TypeError(
        'the "toolCall" option needs the request: pass a ToolCallSource to authorize()',
      );
    const read = await readToolCalls(source, extractor, method, path, maxBytes);
    const refused = "calls" in read ? checkToolCalls(context.chain, read.calls) : read;
    if (refused !== undefined) return { ok: false, rejection: refuse(refused, audience) };
    return {
      ok: true,
      context: { ...context, toolCalls: (read as { calls: readonly ToolCall[] }).calls },
    };
  };
  return {
    verifier,
    async authorize(authorization, method, path, body, toolCalls) {
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
          return authorized({ chain, presentation: claims }, method, path, toolCalls);
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
        return authorized({ chain }, method, path, toolCalls);
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

/** The problem response of a refused tool call (§8.4), in the shape of §8.2. */
function refuse(refusal: ToolCallRefusal, audience: string): Rejection {
  const { status, code, detail, linkIndex } = refusal;
  const body: ProblemBody = {
    type: `urn:allowance:error:${code}`,
    title: status === 403 ? "Tool call not allowed by the grant" : "Tool call not checked",
    status,
    code,
    linkIndex,
    detail,
    ...(status === 403 ? { linkId: refusal.linkId, ...refusal.extra } : {}),
  };
  return {
    status,
    body,
    headers: {
      "content-type": "application/problem+json",
      "cache-control": "no-store",
      "www-authenticate": `${AUTH_SCHEME} realm="${quoted(audience)}", error="${code}", error_description="${quoted(detail)}"`,
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
  // Checked now: a handler that is no function would fail only on the first authorized request.
  if (typeof handler !== "function")
    throw new TypeError(`"handler" expected a function (request, context), got ${shown(handler)}`);
  const authorizer = createAuthorizer(options);
  const maxBodyBytes = checkedInteger(
    options.maxBodyBytes,
    "maxBodyBytes",
    DEFAULT_MAX_BODY_BYTES,
    Number.MAX_SAFE_INTEGER,
  );
  return async (request) => {
    // A copy is read, once, for the binding and the tool calls alike: the handler still gets the body.
    let read: Promise<Uint8Array> | undefined;
    const bytes = () => (read ??= readCapped(request.clone().body, maxBodyBytes));
    const result = await authorizer.authorize(
      request.headers.get("authorization"),
      request.method,
      new URL(request.url).pathname,
      async () => boundBody(await bytes(), maxBodyBytes, request.headers.get("content-encoding")),
      { header: (name) => request.headers.get(name) ?? undefined, body: bytes },
    );
    return result.ok ? handler(request, result.context) : rejectionResponse(result.rejection);
  };
}

/**
 * The Authorization header as received: Node keeps only the first of two, so every value is read
 * from the raw headers, and two or more are joined, which the credential's syntax refuses (two
 * credentials: ERR_NO_CREDENTIALS, spec/presentation.md §8.1), as the Fetch API's join is.
 */
export function authorizationOf(req: IncomingMessage): string | undefined {
  const raw = req.rawHeaders;
  let found: string[] | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2)
    if ((raw[i] as string).toLowerCase() === "authorization")
      (found ??= []).push(raw[i + 1] as string);
  if (found === undefined) return req.headers.authorization;
  return found.join(", ");
}

/**
 * The body a presentation's `bh` is checked against (spec/presentation.md §3.4): at most `max`
 * bytes, and sent without a Content-Encoding. The hash is of the body with any encoding removed,
 * which these wrappers do not do: an encoded body is refused as such, rather than as a body that
 * differs from the one the presentation binds.
 */
export function boundBody(
  bytes: Uint8Array,
  max: number,
  encoding?: string | readonly string[] | null,
): Uint8Array {
  if (encoded(encoding))
    throw new AllowanceError(
      "ERR_PRESENTATION",
      `the presentation binds the request body, which came with Content-Encoding ${JSON.stringify(encoding)}: send it without one (the binding is checked on the body as it is, spec/presentation.md §3.4)`,
    );
  if (bytes.length > max)
    throw new AllowanceError(
      "ERR_PRESENTATION",
      `the request body is longer than ${max} bytes, the most read to check a binding`,
    );
  return bytes;
}

/** Node `http` / Express-style middleware; the context is set on `req.allowance`. */
export type NodeMiddleware = (
  req: IncomingMessage & { allowance?: AllowanceContext },
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

export function allowanceMiddleware(options: AuthorizeOptions): NodeMiddleware {
  const authorizer = createAuthorizer(options);
  const maxBytes = checkedInteger(
    options.maxBodyBytes,
    "maxBodyBytes",
    DEFAULT_MAX_BODY_BYTES,
    Number.MAX_SAFE_INTEGER,
  );
  const header = (req: IncomingMessage, name: string): string | undefined => {
    const value = req.headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(", ") : value;
  };
  return (req, res, next) => {
    // The request-target as sent (spec/presentation.md §8.1): normalising ("/a/../b",
    // "/a/%2e%2e/b" or "//b" to "/b") would check another path than the one served. Express
    // shortens req.url under a mount (app.use("/api", …)); originalUrl is the target as sent.
    const original = (req as { originalUrl?: unknown }).originalUrl;
    const target = typeof original === "string" ? original : (req.url ?? "/");
    const path = target.split("?", 1)[0] as string;
    // The stream is the next handler's to read: a body binding is checked against `req.rawBody`,
    // which a raw-body parser placed before this middleware provides (spec/presentation.md §8.1).
    const raw: unknown = (req as { rawBody?: unknown }).rawBody;
    const body = () => {
      if (raw instanceof Uint8Array) return boundBody(raw, maxBytes);
      throw new AllowanceError(
        "ERR_PRESENTATION",
        "the presentation binds the request body, and req.rawBody holds no bytes to check it",
      );
    };
    // Tool calls are read from the same `req.rawBody`; without it, a request that has a body (or
    // may have one: HTTP/2 needs no Content-Length) is refused, never checked as empty.
    const toolCalls: ToolCallSource = {
      header: (name) => header(req, name),
      body: () => {
        if (raw instanceof Uint8Array) return raw;
        const length = req.headers["content-length"];
        const none =
          length === "0" ||
          (length === undefined &&
            req.headers["transfer-encoding"] === undefined &&
            req.httpVersionMajor < 2);
        return none ? new Uint8Array(0) : undefined;
      },
    };
    authorizer.authorize(authorizationOf(req), req.method ?? "GET", path, body, toolCalls).then(
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
