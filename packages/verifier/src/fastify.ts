/**
 * `@allowance/verifier/fastify`: the tool-endpoint middleware of spec/presentation.md §8 for
 * Fastify. A subpath of its own, so that Fastify is an optional peer dependency, needed only here.
 *
 * ```ts
 * // every route of `app` (or of the plugin scope it is registered in)
 * await app.register(allowancePlugin, { roots, audience: "https://tools.example/search" });
 * // or one route
 * app.post("/search", { onRequest: allowanceHook(options) }, (request) => request.allowance);
 * ```
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { createAuthorizer, type AllowanceContext, type AuthorizeOptions } from "./middleware.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The verified context, set by `allowancePlugin` or `allowanceHook` before the handler runs. */
    allowance?: AllowanceContext;
  }
}

/** An `onRequest` hook: refuses with the 401/403 problem response, or sets `request.allowance`. */
export type AllowanceHook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/**
 * A Fastify `onRequest` hook for one route or scope. It runs before the body is read, so a refused
 * request costs no body parsing. Options are those of `createAuthorizer`, checked now.
 */
export function allowanceHook(options: AuthorizeOptions): AllowanceHook {
  const authorizer = createAuthorizer(options);
  return async (request, reply) => {
    // The request-target as it arrived, up to "?", as the Node middleware (spec/presentation.md
    // §8.1): Fastify's router matches the raw target too, so no normalisation here.
    const path = (request.raw.url ?? "/").split("?", 1)[0] as string;
    const result = await authorizer.authorize(
      request.raw.headers.authorization,
      request.raw.method ?? "GET",
      path,
    );
    if (result.ok) {
      request.allowance = result.context;
      return;
    }
    // An exception (a failing replay cache, a clock answering garbage) is not caught: Fastify
    // answers 500 and the handler does not run (spec/presentation.md §8.2).
    // Bytes, not a string: Fastify would append "; charset=utf-8" to the spec's content type.
    await reply
      .code(result.rejection.status)
      .headers(result.rejection.headers)
      .send(Buffer.from(JSON.stringify(result.rejection.body)));
  };
}

/**
 * A Fastify plugin that puts `allowanceHook` on every route of the instance it is registered on
 * (and of its children). It is not encapsulated (as `fastify-plugin` would mark it): registered
 * on the root, it guards routes the application adds beside it, not only routes added inside it,
 * so a plugin registered and routes declared next to it are never left unguarded.
 */
export const allowancePlugin: FastifyPluginAsync<AuthorizeOptions> = Object.assign(
  async function allowancePlugin(
    ...[app, options]: Parameters<FastifyPluginAsync<AuthorizeOptions>>
  ): Promise<void> {
    const hook = allowanceHook(options);
    if (!app.hasRequestDecorator("allowance")) app.decorateRequest("allowance", undefined);
    app.addHook("onRequest", hook);
  },
  {
    [Symbol.for("skip-override")]: true,
    [Symbol.for("fastify.display-name")]: "@allowance/verifier/fastify",
  },
);

export type { AllowanceContext, AuthorizeOptions } from "./middleware.js";
