/**
 * A guard for an MCP server on Streamable HTTP (spec/presentation.md §12): Protected Resource
 * Metadata, challenges, proof of possession on every request (an RFC 9449 DPoP proof or an
 * Allowance presentation), and every `tools/call` checked against the grant before the server
 * sees it. The MCP server itself is the official SDK's, unchanged: the guard hands it the request,
 * the already-parsed body it checked (and, for a body-bound presentation, hashed), and `req.auth`
 * (the SDK's `AuthInfo`).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import {
  AllowanceError,
  checkArguments,
  formatToken,
  type Ed25519Backend,
  type ErrorCode,
  type Limits,
  type Token,
  type TrustedRoots,
} from "@allowance/core";
import { AUDIENCE, TOKEN_PREFIX, thumbprint, toolAllowed } from "@allowance/core/format";
import {
  DEFAULT_PRESENTATION_MAX_AGE_SECONDS,
  DEFAULT_SKEW_SECONDS,
  MemoryReplayCache,
  PRESENTATION_PREFIX,
  createVerifier,
  verifyPresentation,
  type PresentationClaims,
  type ReplayCache,
  type RequestBodySource,
  type RevocationCheck,
  type VerifiedChain,
} from "@allowance/verifier";
import { verifyDpopProof, type DpopClaims } from "./dpop.js";
import {
  WELL_KNOWN_PATH,
  dpopAlgorithms,
  metadataUrl,
  quoted,
  type ProtectedResourceMetadata,
} from "./metadata.js";

/**
 * The guard's refusals of a tool call, beside the verifier's error codes: the enforcer's names for
 * the same decisions (spec/enforcement.md §2, spec/arguments.md §6.3).
 */
export const MCP_DENIAL_CODES = Object.freeze([
  "TOOL_NOT_ALLOWED",
  "ARGUMENT_NOT_ALLOWED",
] as const);
export type McpDenialCode = (typeof MCP_DENIAL_CODES)[number];

export interface McpGuardOptions {
  /**
   * The MCP endpoint's URL, e.g. `https://mcp.example.com/mcp`: the metadata's `resource`, the
   * audience tokens and presentations must name, and the URL DPoP proofs must name (`htu`).
   * https, or http on a loopback host; no query, no fragment, no user info.
   */
  readonly resource: string;
  /** The issuers of grants, named in the metadata's `authorization_servers` (at least one). */
  readonly authorizationServers: readonly string[];
  /** The trusted root keys every grant must chain to. */
  readonly roots: TrustedRoots;
  readonly resourceName?: string;
  /** Tool names or patterns to list as `scopes_supported`. */
  readonly scopesSupported?: readonly string[];
  readonly revocations?: RevocationCheck;
  /** One cache for both proof forms; default a `MemoryReplayCache` of this guard's own. */
  readonly replay?: ReplayCache;
  /** Clock difference tolerated for tokens and proofs, 0 to 3600; default 60. */
  readonly skewSeconds?: number;
  /** How long a proof stays usable after its `iat`, 0 to 3600; default 60. */
  readonly maxAgeSeconds?: number;
  readonly limits?: Partial<Limits>;
  readonly backend?: Ed25519Backend;
  /** Entries in the verified-prefix cache (spec/presentation.md §7); default 10,000. */
  readonly cacheSize?: number;
  /**
   * The clock, epoch milliseconds, read once per request; default `Date.now`. An answer that is
   * not an integer from 10^11 to 2^53 − 1 fails the request as a server error (500).
   */
  readonly now?: () => number;
  /**
   * The largest request body read, in bytes; default 4 MiB (the SDK's own limit). Past it a
   * body-bound presentation is refused (401 `ERR_PRESENTATION`), any other request 413.
   */
  readonly maxBodyBytes?: number;
  /**
   * Refuse every request whose proof does not bind its body (spec/presentation.md §3.4, §12.7):
   * a presentation without `bh`, and every DPoP proof, which binds no body; default false, as the
   * verifier's middleware. A presentation that binds its body is checked against it either way.
   */
  readonly requireBodyBinding?: boolean;
  /** Told of every server error (a failing replay cache, a throwing `serve`), for logging. */
  readonly onError?: (error: unknown) => void;
  /**
   * Loose, by name: also accept a token whose effective grant states no `aud` (valid at every
   * endpoint, spec/format.md §12.5). By default such a token is refused with `ERR_AUDIENCE`: the
   * MCP authorization specification requires a token issued for this resource (spec/presentation.md
   * §12.3 step 2).
   */
  readonly acceptTokensWithoutAud?: boolean;
}

/** What the MCP server learns about an authorized request: `authInfo.extra.allowance`. */
export interface McpAllowance {
  readonly chain: VerifiedChain;
  readonly scheme: "DPoP" | "Allowance";
  /** The token, string form. */
  readonly token: string;
  /** The DPoP proof's claims, when the request carried one. */
  readonly dpop?: DpopClaims;
  /** The presentation's claims, when the request carried one. */
  readonly presentation?: PresentationClaims;
}

/** The head of a request, as the guard reads it. */
export interface McpRequestHead {
  readonly method: string;
  /** The path as routed: the raw request-target before `?` (Node), or the URL's pathname (Fetch). */
  readonly path: string;
  /** Every `Authorization` header value received (more than one is refused). */
  readonly authorization: readonly string[];
  /** Every `DPoP` header value received (exactly one is required with the DPoP scheme). */
  readonly dpop: readonly string[];
  /**
   * The request body, or a function reading it, called only for a presentation that binds one
   * (spec/presentation.md §3.4): without it such a presentation is refused.
   */
  readonly body?: RequestBodySource;
}

/** A response the guard answers itself. */
export interface McpAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  readonly body: string;
}

export type McpAuthentication =
  | { readonly ok: true; readonly allowance: McpAllowance; readonly authInfo: AuthInfo }
  | { readonly ok: false; readonly answer: McpAnswer };

/** Serves an authorized request with the SDK's Node transport: `transport.handleRequest(req, res, body)`. */
export type NodeServe = (
  req: IncomingMessage & { auth: AuthInfo },
  res: ServerResponse,
  body: unknown,
) => unknown;

/** Serves an authorized request with the SDK's web-standard transport: `transport.handleRequest(request, extra)`. */
export type FetchServe = (
  request: Request,
  extra: { readonly authInfo: AuthInfo; readonly parsedBody: unknown },
) => Response | Promise<Response>;

export interface McpGuard {
  readonly metadata: ProtectedResourceMetadata;
  /** Where the metadata is served (RFC 9728 §3.1); the root form is served too. */
  readonly metadataUrl: string;
  /** A Node `http` listener: metadata, refusals, and `serve` for every authorized request. */
  nodeListener(serve: NodeServe): RequestListener;
  /**
   * The same for the Fetch API (`WebStandardStreamableHTTPServerTransport`, Hono, Workers). A
   * `Request`'s URL is normalised before any handler sees it: `/x/../mcp` arrives as `/mcp`, so the
   * raw-path rule of spec/presentation.md §12.3 holds only where the raw path is known.
   */
  fetchHandler(serve: FetchServe): (request: Request) => Promise<Response>;
  /** Authenticates a request head (the transport-neutral first half of both handlers). */
  authenticate(head: McpRequestHead): Promise<McpAuthentication>;
  /** Checks the JSON-RPC messages of a body against the grant; an answer means refused. */
  checkMessages(allowance: McpAllowance, body: unknown): Promise<McpAnswer | undefined>;
}

const OPTIONS: ReadonlySet<string> = new Set([
  "resource",
  "authorizationServers",
  "roots",
  "resourceName",
  "scopesSupported",
  "revocations",
  "replay",
  "skewSeconds",
  "maxAgeSeconds",
  "limits",
  "backend",
  "cacheSize",
  "now",
  "maxBodyBytes",
  "requireBodyBinding",
  "onError",
  "acceptTokensWithoutAud",
]);
const MAX_WINDOW_SECONDS = 3600;
const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;
const AUTHORIZATION = /^([A-Za-z][A-Za-z0-9-]*) +(\S+) *$/;

/** Where a credential failed, which decides the OAuth error of the DPoP challenge (RFC 9449 §7.1). */
type Stage = "absent" | "token" | "proof";

export function createMcpGuard(options: McpGuardOptions): McpGuard {
  if (typeof options !== "object" || options === null)
    throw new TypeError(`"options" expected an object, got ${shown(options)}`);
  for (const name of Object.keys(options))
    if (!OPTIONS.has(name)) throw new TypeError(`unknown option "${name}"`);
  const resource = checkedUrl(options.resource, "resource");
  if (!AUDIENCE.test(options.resource))
    throw new RangeError('"resource" must be 1 to 256 printable ASCII characters, no space');
  const audience = options.resource;
  if (!Array.isArray(options.authorizationServers) || options.authorizationServers.length === 0)
    throw new TypeError('"authorizationServers" expected a non-empty array of issuer URLs');
  options.authorizationServers.forEach((issuer, i) =>
    checkedUrl(issuer, `authorizationServers[${i}]`),
  );
  if (options.resourceName !== undefined && typeof options.resourceName !== "string")
    throw new TypeError(`"resourceName" expected a string, got ${shown(options.resourceName)}`);
  if (
    options.scopesSupported !== undefined &&
    (!Array.isArray(options.scopesSupported) ||
      !options.scopesSupported.every(
        (s) => typeof s === "string" && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s),
      ))
  )
    throw new TypeError('"scopesSupported" expected an array of scope tokens (RFC 6749 §3.3)');
  const skewSeconds = checkedInteger(
    options.skewSeconds,
    "skewSeconds",
    DEFAULT_SKEW_SECONDS,
    MAX_WINDOW_SECONDS,
  );
  const maxAgeSeconds = checkedInteger(
    options.maxAgeSeconds,
    "maxAgeSeconds",
    DEFAULT_PRESENTATION_MAX_AGE_SECONDS,
    MAX_WINDOW_SECONDS,
  );
  const maxBodyBytes = checkedInteger(
    options.maxBodyBytes,
    "maxBodyBytes",
    DEFAULT_MAX_BODY_BYTES,
    2 ** 31 - 1,
    1,
  );
  const clock = checkedFunction(options.now, "now") ?? Date.now;
  const given = checkedFunction(options.onError, "onError");
  /** The operator's onError: one that throws must not keep the 500 from being written. */
  const onError = (error: unknown): void => {
    try {
      given?.(error);
    } catch {
      // Nothing to report it to: the request is still answered.
    }
  };
  // A default for undefined only: null, like any other non-boolean, is a TypeError.
  const { requireBodyBinding = false } = options;
  if (typeof requireBodyBinding !== "boolean")
    throw new TypeError(
      `"requireBodyBinding" expected a boolean, got ${shown(requireBodyBinding)}`,
    );
  // The schemes a request may use: a DPoP proof binds no body, so it cannot meet a required binding.
  const accepted: readonly ("DPoP" | "Allowance")[] = requireBodyBinding
    ? ["Allowance"]
    : ["DPoP", "Allowance"];
  const { acceptTokensWithoutAud = false } = options;
  if (typeof acceptTokensWithoutAud !== "boolean")
    throw new TypeError(
      `"acceptTokensWithoutAud" expected a boolean, got ${shown(acceptTokensWithoutAud)}`,
    );
  // A default for undefined only: null in place of a shared cache would be a per-process one.
  const replay = options.replay === undefined ? new MemoryReplayCache() : options.replay;
  if (replay === null || typeof (replay as Partial<ReplayCache>).claim !== "function")
    throw new TypeError('"replay" expected a replay cache (an object with a claim method)');
  const { revocations, roots } = options;
  const fixed = {
    roots,
    skewSeconds,
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.backend === undefined ? {} : { backend: options.backend }),
  };
  // Checks roots, limits, backend, cache size and revocations now, at start-up.
  const verifier = createVerifier({
    ...fixed,
    ...(options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize }),
    ...(revocations === undefined ? {} : { revocations }),
  });

  const wellKnown = metadataUrl(resource);
  const metadata: ProtectedResourceMetadata = Object.freeze({
    resource: audience,
    authorization_servers: Object.freeze([...options.authorizationServers]),
    bearer_methods_supported: Object.freeze(["header"] as const),
    dpop_signing_alg_values_supported: Object.freeze(dpopAlgorithms().split(" ")),
    dpop_bound_access_tokens_required: true,
    ...(options.scopesSupported === undefined
      ? {}
      : { scopes_supported: Object.freeze([...options.scopesSupported]) }),
    ...(options.resourceName === undefined ? {} : { resource_name: options.resourceName }),
    allowance_root_kids: Object.freeze([...roots.keys()]),
  });
  const metadataBody = JSON.stringify(metadata);

  /** The current time, checked: a clock answering garbage fails the request as a server error. */
  function nowSeconds(): number {
    const ms: unknown = clock();
    if (typeof ms !== "number")
      throw new TypeError(`"now()" expected milliseconds, got ${shown(ms)}`);
    // The verifier's rule for a clock (spec/format.md §8): an integer from 10^11 (1973) to 2^53 − 1,
    // so that seconds passed by mistake are refused rather than read as 1970.
    if (!Number.isSafeInteger(ms) || ms < 1e11)
      throw new RangeError(`"now()" expected epoch milliseconds, got ${shown(ms)}`);
    return Math.floor(ms / 1000);
  }

  function challenges(
    stage: Stage,
    error: { code: string; message: string; oauth?: string; scope?: string } | undefined,
    schemes: readonly ("DPoP" | "Allowance")[] = accepted,
  ): string[] {
    const common = `resource_metadata=${quoted(wellKnown.href)}`;
    const oauth =
      error?.oauth ??
      (stage === "absent" ? undefined : stage === "proof" ? "invalid_dpop_proof" : "invalid_token");
    const scope = error?.scope === undefined ? "" : `, scope=${quoted(error.scope)}`;
    const out: string[] = [];
    if (schemes.includes("DPoP"))
      out.push(
        `DPoP algs=${quoted(dpopAlgorithms())}, ${common}` +
          (oauth === undefined || error === undefined
            ? ""
            : `, error=${quoted(oauth)}, error_description=${quoted(error.message)}`) +
          scope,
      );
    if (schemes.includes("Allowance"))
      out.push(
        `Allowance realm=${quoted(audience)}, ${common}` +
          (error === undefined || stage === "absent"
            ? ""
            : `, error=${quoted(error.code)}, error_description=${quoted(error.message)}`) +
          scope,
      );
    return out;
  }

  function problem(
    status: number,
    code: ErrorCode | McpDenialCode,
    detail: string,
    headers: Record<string, string | readonly string[]>,
    extra: Record<string, unknown> = {},
  ): McpAnswer {
    return {
      status,
      headers: {
        "content-type": "application/problem+json",
        "cache-control": "no-store",
        ...headers,
      },
      body: JSON.stringify({
        type: `urn:allowance:error:${code}`,
        title: status === 403 ? "Not granted" : "Credential rejected",
        status,
        code,
        detail,
        ...extra,
      }),
    };
  }

  function refuse(error: AllowanceError, stage: Stage): McpAnswer {
    // Every credential failure is 401, ERR_AUDIENCE included: the MCP authorization spec asks 401
    // for a token not valid here, and keeps 403 for a valid token that lacks a permission.
    return problem(
      401,
      error.code,
      error.message,
      { "www-authenticate": challenges(stage, { code: error.code, message: error.message }) },
      { linkIndex: error.linkIndex ?? null },
    );
  }

  /**
   * The token's chain (spec/format.md §8) at this resource: its effective `aud`, when present,
   * must list the resource (the verifier's check), and must be present unless the guard was told
   * otherwise by name: a grant naming no endpoint was not issued for this one.
   */
  function verifyToken(token: Token | string, at: () => number): VerifiedChain {
    const chain = verifier.verify(token, { now: at, audience });
    if (chain.grant.aud === undefined && !acceptTokensWithoutAud)
      throw new AllowanceError(
        "ERR_AUDIENCE",
        `the token names no audience: this resource accepts only grants whose aud lists ${audience.slice(0, 128)}`,
        { field: "aud" },
      );
    return chain;
  }

  async function authenticate(head: McpRequestHead): Promise<McpAuthentication> {
    const seconds = nowSeconds();
    // Every check of this request runs at this one second, whatever the clock says meanwhile.
    const at = () => seconds * 1000;
    let stage: Stage = "absent";
    try {
      if (head.authorization.length === 0)
        throw new AllowanceError(
          "ERR_NO_CREDENTIALS",
          "send Authorization: DPoP <token> with a DPoP proof, or Authorization: Allowance <presentation>",
        );
      stage = "token";
      if (head.authorization.length > 1)
        throw new AllowanceError(
          "ERR_NO_CREDENTIALS",
          "send one Authorization header, not several",
        );
      const match = AUTHORIZATION.exec(head.authorization[0] as string);
      const scheme = match?.[1]?.toLowerCase();
      const credential = match?.[2] as string;
      if (scheme === "dpop") {
        // Refused before any work: no DPoP proof can pass here (spec/presentation.md §12.7).
        if (requireBodyBinding)
          throw new AllowanceError(
            "ERR_PRESENTATION",
            "this endpoint requires a presentation bound to the request body (Authorization: Allowance): a DPoP proof binds no body",
          );
        if (!credential.startsWith(TOKEN_PREFIX))
          throw new AllowanceError(
            "ERR_MALFORMED",
            `a DPoP access token here is an Allowance token (${TOKEN_PREFIX}…)`,
          );
        const chain = verifyToken(credential, at);
        stage = "proof";
        if (head.dpop.length !== 1)
          throw new AllowanceError(
            "ERR_PRESENTATION",
            "send exactly one DPoP header with the proof",
          );
        const dpop = await verifyDpopProof({
          proof: head.dpop[0] as string,
          accessToken: credential,
          method: head.method,
          url: resource,
          holder: chain.holder,
          nowSeconds: seconds,
          skewSeconds,
          maxAgeSeconds,
          replay,
        });
        return authenticated({ chain, scheme: "DPoP", token: credential, dpop });
      }
      if (scheme === "allowance") {
        if (!credential.startsWith(PRESENTATION_PREFIX))
          throw new AllowanceError(
            credential.startsWith(TOKEN_PREFIX) ? "ERR_PRESENTATION" : "ERR_MALFORMED",
            "this endpoint requires proof of possession: a presentation (alwp1_…), not a bare token",
          );
        if (head.dpop.length > 0)
          throw new AllowanceError(
            "ERR_PRESENTATION",
            "a DPoP proof goes with Authorization: DPoP",
          );
        const { chain, claims } = await verifyPresentation(credential, {
          ...fixed,
          audience,
          method: head.method,
          path: head.path,
          now: at,
          maxAgeSeconds,
          replay,
          ...(revocations === undefined ? {} : { revocations }),
          // Read only if the presentation binds the body (§4 step 8b), after its signature.
          ...(head.body === undefined ? {} : { body: head.body }),
          requireBodyBinding,
          verifyToken: (token) => verifyToken(token, at),
        }).catch((error: unknown) => {
          if (error instanceof AllowanceError && PROOF_CODES.has(error.code)) stage = "proof";
          throw error;
        });
        return authenticated({
          chain,
          scheme: "Allowance",
          token: formatToken(chain.token),
          presentation: claims,
        });
      }
      throw new AllowanceError(
        "ERR_NO_CREDENTIALS",
        "the Authorization scheme must be DPoP (with a DPoP proof) or Allowance: bearer tokens are not accepted",
      );
    } catch (error) {
      if (!(error instanceof AllowanceError)) throw error;
      return { ok: false, answer: refuse(error, stage) };
    }
  }

  function authenticated(allowance: McpAllowance): McpAuthentication {
    const { chain } = allowance;
    const authInfo: AuthInfo = {
      token: allowance.token,
      clientId: thumbprint(chain.holder),
      scopes: [...(chain.grant.tools ?? ["*"])],
      expiresAt: chain.grant.exp,
      resource: new URL(resource.href),
      extra: { allowance },
    };
    return { ok: true, allowance, authInfo };
  }

  /**
   * Every `tools/call` of the body (one message or a batch) against the grant: the tool name
   * against `tools`, then its arguments against `args` (spec/arguments.md §6). The first refusal
   * refuses the whole request, so no call of a batch runs unless all may.
   */
  async function checkMessages(
    allowance: McpAllowance,
    body: unknown,
  ): Promise<McpAnswer | undefined> {
    const { chain } = allowance;
    const scheme = [allowance.scheme];
    for (const message of Array.isArray(body) ? body : [body]) {
      if (!isRecord(message) || message.method !== "tools/call") continue;
      const { params } = message;
      if (!isRecord(params) || typeof params.name !== "string")
        return jsonRpcError(
          400,
          -32602,
          "Invalid params: tools/call needs a string name",
          message.id,
        );
      const tool = params.name;
      if (!toolAllowed(chain.grant.tools, tool)) {
        const detail = `the grant does not allow the tool ${tool.slice(0, 128)}`;
        return denial("TOOL_NOT_ALLOWED", detail, { tool }, tool, scheme);
      }
      // The very object the SDK will run the tool with (it takes the parsed body as is).
      const refused = checkArguments(chain.grant.args, tool, params.arguments);
      if (refused !== null) {
        // The link whose args were in force: the last one stating args (spec/arguments.md §6.3).
        const linkIndex = chain.links.findLastIndex((link) => link.grant.args !== undefined);
        return denial(
          "ARGUMENT_NOT_ALLOWED",
          refused.message,
          { tool, argument: refused.argument, reason: refused.reason, linkIndex },
          undefined,
          scheme,
        );
      }
    }
    return undefined;
  }

  function denial(
    code: McpDenialCode,
    detail: string,
    extra: Record<string, unknown>,
    scope: string | undefined,
    schemes: readonly ("DPoP" | "Allowance")[],
  ): McpAnswer {
    const challenge = challenges(
      "token",
      {
        code,
        message: detail,
        oauth: "insufficient_scope",
        ...(scope === undefined ? {} : { scope }),
      },
      schemes,
    );
    return problem(403, code, detail, { "www-authenticate": challenge }, extra);
  }

  /** Metadata, 404 and 405 for a path that is not the MCP endpoint; undefined for the endpoint. */
  function route(method: string, path: string): McpAnswer | undefined {
    if (path === resource.pathname) return undefined;
    if (path === wellKnown.pathname || path === WELL_KNOWN_PATH) {
      if (method !== "GET" && method !== "HEAD")
        return { status: 405, headers: { allow: "GET, HEAD" }, body: "" };
      return {
        status: 200,
        headers: { "content-type": "application/json", "access-control-allow-origin": "*" },
        body: method === "HEAD" ? "" : metadataBody,
      };
    }
    return problem(404, "ERR_MALFORMED", "no MCP endpoint here", {});
  }

  /**
   * The body for a presentation's binding (spec/presentation.md §3.4): every byte received, or a
   * refusal past `maxBodyBytes`, as the verifier's middleware refuses it (§8.1).
   */
  function boundBody(read: () => Promise<Buffer | undefined>): () => Promise<Uint8Array> {
    return async () => {
      const bytes = await read();
      if (bytes === undefined)
        throw new AllowanceError(
          "ERR_PRESENTATION",
          `the request body is longer than ${maxBodyBytes} bytes, the most read to check a binding`,
        );
      return bytes;
    };
  }

  function parseBody(
    bytes: Buffer,
  ): { ok: true; body: unknown } | { ok: false; answer: McpAnswer } {
    try {
      return { ok: true, body: JSON.parse(bytes.toString("utf8")) as unknown };
    } catch {
      return { ok: false, answer: jsonRpcError(400, -32700, "Parse error: Invalid JSON") };
    }
  }

  return {
    metadata,
    metadataUrl: wellKnown.href,
    authenticate,
    checkMessages,
    nodeListener(serve) {
      if (typeof serve !== "function") throw new TypeError('"serve" expected a function');
      return (req, res) => {
        handleNode(req, res, serve).catch((error: unknown) => {
          onError(error);
          if (res.headersSent) res.destroy();
          else
            write(res, {
              status: 500,
              headers: { "content-type": "application/json" },
              body: '{"error":"server error"}',
            });
        });
      };
    },
    fetchHandler(serve) {
      if (typeof serve !== "function") throw new TypeError('"serve" expected a function');
      return async (request) => {
        try {
          const path = new URL(request.url).pathname;
          const routed = route(request.method, path);
          if (routed !== undefined) return toResponse(routed);
          // Read once, for a binding and the tool calls alike: the bytes hashed are the bytes parsed.
          const read = once(() => readFetchBody(request, maxBodyBytes));
          const result = await authenticate({
            method: request.method,
            path,
            authorization: headerValues(request.headers.get("authorization")),
            dpop: headerValues(request.headers.get("dpop")),
            body: boundBody(read),
          });
          if (!result.ok) return toResponse(result.answer);
          let body: unknown;
          if (request.method === "POST") {
            const bytes = await read();
            if (bytes === undefined) return toResponse(tooLarge(maxBodyBytes));
            const parsed = parseBody(bytes);
            if (!parsed.ok) return toResponse(parsed.answer);
            body = parsed.body;
            const refused = await checkMessages(result.allowance, body);
            if (refused !== undefined) return toResponse(refused);
          }
          return await serve(request, { authInfo: result.authInfo, parsedBody: body });
        } catch (error) {
          onError(error);
          return Response.json({ error: "server error" }, { status: 500 });
        }
      };
    },
  };

  async function handleNode(
    req: IncomingMessage,
    res: ServerResponse,
    serve: NodeServe,
  ): Promise<void> {
    const method = req.method ?? "GET";
    // The request-target as sent, up to "?" (spec/presentation.md §8.1): "/mcp/../mcp" is not "/mcp".
    const path = (req.url ?? "/").split("?", 1)[0] as string;
    const routed = route(method, path);
    if (routed !== undefined) return write(res, routed);
    // Read once, for a binding and the tool calls alike: the bytes hashed are the bytes parsed.
    let cut = false;
    const read = once(async () => {
      const bytes = await readNodeBody(req, maxBodyBytes);
      cut = bytes === undefined;
      return bytes;
    });
    const result = await authenticate({
      method,
      path,
      authorization: req.headersDistinct.authorization ?? [],
      dpop: req.headersDistinct.dpop ?? [],
      body: boundBody(read),
    });
    // The rest of a body read in part stays unread: the connection cannot carry another request.
    if (!result.ok) {
      if (cut) res.setHeader("connection", "close");
      return write(res, result.answer);
    }
    let body: unknown;
    if (method === "POST") {
      const bytes = await read();
      if (bytes === undefined) {
        res.setHeader("connection", "close");
        return write(res, tooLarge(maxBodyBytes));
      }
      const parsed = parseBody(bytes);
      if (!parsed.ok) return write(res, parsed.answer);
      body = parsed.body;
      const refused = await checkMessages(result.allowance, body);
      if (refused !== undefined) return write(res, refused);
    }
    const authorized = req as IncomingMessage & { auth: AuthInfo };
    authorized.auth = result.authInfo;
    await serve(authorized, res, body);
  }
}

/** Codes a presentation's own checks raise (spec/presentation.md §4 steps 3–10), not its token's. */
const PROOF_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "ERR_PRESENTATION",
  "ERR_STALE",
  "ERR_REPLAY",
]);

function jsonRpcError(
  status: number,
  code: number,
  message: string,
  id: unknown = null,
): McpAnswer {
  return {
    status,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: typeof id === "string" || typeof id === "number" ? id : null,
      error: { code, message },
    }),
  };
}

function tooLarge(maxBodyBytes: number): McpAnswer {
  return jsonRpcError(413, -32000, `Request body larger than ${maxBodyBytes} bytes`);
}

function write(res: ServerResponse, answer: McpAnswer): void {
  res.writeHead(answer.status, answer.headers as Record<string, string | string[]>);
  res.end(answer.body);
}

function toResponse(answer: McpAnswer): Response {
  const headers = new Headers();
  for (const [name, value] of Object.entries(answer.headers))
    for (const one of typeof value === "string" ? [value] : value) headers.append(name, one);
  return new Response(answer.body === "" ? null : answer.body, { status: answer.status, headers });
}

/** A Fetch header value as a list: absent is none. (Fetch joins repeated headers with ", ".) */
function headerValues(value: string | null): readonly string[] {
  return value === null ? [] : [value];
}

/** A read that runs at most once, its answer shared by every caller. */
function once<T>(read: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => (pending ??= read());
}

/** The body's bytes, or undefined past `limit` bytes (then the rest is not read). */
function readNodeBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

async function readFetchBody(request: Request, limit: number): Promise<Buffer | undefined> {
  if (request.body === null) return Buffer.alloc(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkedUrl(value: unknown, name: string): URL {
  if (typeof value !== "string")
    throw new TypeError(`"${name}" expected a URL string, got ${shown(value)}`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`"${name}" expected an absolute URL, got ${shown(value)}`);
  }
  const loopback = ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback))
    throw new RangeError(
      `"${name}" must be https (http only on a loopback host), got ${shown(value)}`,
    );
  if (url.search !== "" || url.hash !== "" || value.includes("#") || value.includes("?"))
    throw new RangeError(`"${name}" must have no query and no fragment, got ${shown(value)}`);
  if (url.username !== "" || url.password !== "")
    throw new RangeError(`"${name}" must have no user info`);
  // One spelling only: the string is compared exactly as an audience, so it must be what the URL
  // parser makes of it (a root resource may leave out its "/").
  if (url.href !== value && url.href !== `${value}/`)
    throw new RangeError(`"${name}" must be written as ${url.href}, got ${shown(value)}`);
  return url;
}

function checkedInteger(
  value: unknown,
  name: string,
  fallback: number,
  max: number,
  min = 0,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number")
    throw new TypeError(`"${name}" expected an integer, got ${shown(value)}`);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(
      `"${name}" expected an integer from ${min} to ${max}, got ${shown(value)}`,
    );
  return value;
}

function checkedFunction<T>(value: T | undefined, name: string): T | undefined {
  if (value !== undefined && typeof value !== "function")
    throw new TypeError(`"${name}" expected a function, got ${shown(value)}`);
  return value;
}

function shown(value: unknown): string {
  if (typeof value === "string")
    return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (
    typeof value === "number" ||
    typeof value === "boolean" ||
    value === null ||
    value === undefined
  )
    return String(value);
  return Array.isArray(value) ? "an array" : typeof value;
}
