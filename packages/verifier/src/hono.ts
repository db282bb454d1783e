/**
 * `@allowance/verifier/hono`: the tool-endpoint middleware of spec/presentation.md §8 for Hono.
 * A subpath of its own, so that Hono is an optional peer dependency, needed only here.
 *
 * ```ts
 * const app = new Hono<AllowanceEnv>();
 * app.use("/search/*", allowance({ roots, audience: "https://tools.example/search" }));
 * app.post("/search/web", (c) => c.json({ left: c.get("allowance").chain.grant.usdMicros }));
 * ```
 */
import type { MiddlewareHandler } from "hono";
import { checkedInteger } from "./inputs.js";
import {
  DEFAULT_MAX_BODY_BYTES,
  boundBody,
  createAuthorizer,
  rejectionResponse,
  type AllowanceContext,
  type AuthorizeOptions,
} from "./middleware.js";
import { readCapped } from "./tool-calls.js";

/** The Hono environment the middleware sets: `c.get("allowance")` in every handler after it. */
export interface AllowanceEnv {
  Variables: { allowance: AllowanceContext };
}

/**
 * Hono middleware: the next handler runs only for an authorized request, and reads the verified
 * context with `c.get("allowance")`; a refused request is answered here with the 401/403 problem
 * response of spec/presentation.md §8.2. Options are those of `createAuthorizer`, checked now.
 */
export function allowance(options: AuthorizeOptions): MiddlewareHandler<AllowanceEnv> {
  const authorizer = createAuthorizer(options);
  const maxBodyBytes = checkedInteger(
    options.maxBodyBytes,
    "maxBodyBytes",
    DEFAULT_MAX_BODY_BYTES,
    Number.MAX_SAFE_INTEGER,
  );
  return async (c, next) => {
    // The parsed pathname, as the Fetch wrapper (spec/presentation.md §8.1): what a client sending
    // with fetch binds. Hono routes on that path percent-decoded, so a presentation bound to the
    // decoded form of an encoded request path is refused, never the other way round.
    // A copy is read, once, for a body binding and the tool calls (spec/presentation.md §8.4)
    // alike: the handler still gets the body.
    let read: Promise<Uint8Array> | undefined;
    const bytes = () => (read ??= readCapped(c.req.raw.clone().body, maxBodyBytes));
    const result = await authorizer.authorize(
      c.req.header("authorization"),
      c.req.method,
      new URL(c.req.url).pathname,
      async () => boundBody(await bytes(), maxBodyBytes, c.req.header("content-encoding")),
      { header: (name) => c.req.header(name), body: bytes },
    );
    if (!result.ok) return rejectionResponse(result.rejection);
    c.set("allowance", result.context);
    await next();
    return undefined;
  };
}

export type { AllowanceContext, AuthorizeOptions } from "./middleware.js";
