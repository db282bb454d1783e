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
 *
 * With the `toolCall` option (spec/presentation.md §8.4) the plugin checks the credential and the
 * request's tool calls in a `preParsing` hook instead, which reads the body before Fastify parses
 * it and hands Fastify the very bytes it checked.
 */
import { Readable } from "node:stream";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { checkedInteger } from "./inputs.js";
import {
  DEFAULT_MAX_BODY_BYTES,
  authorizationOf,
  boundBody,
  createAuthorizer,
  type AllowanceContext,
  type AuthorizeOptions,
  type AuthorizeResult,
} from "./middleware.js";
import { readNodeCapped } from "./tool-calls.js";

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
  if (typeof options === "object" && options !== null && options.toolCall !== undefined)
    throw new TypeError(
      'an onRequest hook cannot read the body: with "toolCall", register allowancePlugin, which checks tool calls in a preParsing hook',
    );
  const authorizer = createAuthorizer(options);
  return async (request, reply) => {
    // The request-target as it arrived, up to "?", as the Node middleware (spec/presentation.md
    // §8.1): Fastify's router matches the raw target too, so no normalisation here.
    const path = (request.raw.url ?? "/").split("?", 1)[0] as string;
    const result = await authorizer.authorize(
      authorizationOf(request.raw),
      request.raw.method ?? "GET",
      path,
    );
    if (result.ok) {
      request.allowance = result.context;
      return;
    }
    // An exception (a failing replay cache, a clock answering garbage) is not caught: Fastify
    // answers 500 and the handler does not run (spec/presentation.md §8.2).
    await sendRejection(reply, result);
  };
}

async function sendRejection(
  reply: FastifyReply,
  result: Extract<AuthorizeResult, { ok: false }>,
): Promise<void> {
  // Bytes, not a string: Fastify would append "; charset=utf-8" to the spec's content type.
  await reply
    .code(result.rejection.status)
    .headers(result.rejection.headers)
    .send(Buffer.from(JSON.stringify(result.rejection.body)));
}

/** A `preParsing` hook (spec/presentation.md §8.4): the credential, then the body's tool calls. */
type ToolCallHook = (
  request: FastifyRequest,
  reply: FastifyReply,
  payload: NodeJS.ReadableStream,
) => Promise<NodeJS.ReadableStream | undefined>;

function toolCallHook(options: AuthorizeOptions): ToolCallHook {
  const authorizer = createAuthorizer(options);
  const maxBodyBytes = checkedInteger(
    options.maxBodyBytes,
    "maxBodyBytes",
    DEFAULT_MAX_BODY_BYTES,
    Number.MAX_SAFE_INTEGER,
  );
  return async (request, reply, payload) => {
    const path = (request.raw.url ?? "/").split("?", 1)[0] as string;
    let read: Promise<Uint8Array> | undefined;
    const body = () => (read ??= readNodeCapped(payload, maxBodyBytes));
    const result = await authorizer.authorize(
      authorizationOf(request.raw),
      request.raw.method ?? "GET",
      path,
      async () => {
        const encoding = request.raw.headers["content-encoding"];
        return boundBody(await body(), maxBodyBytes, encoding);
      },
      {
        header: (name) => {
          const value = request.raw.headers[name.toLowerCase()];
          return Array.isArray(value) ? value.join(", ") : value;
        },
        body,
      },
    );
    if (!result.ok) {
      await sendRejection(reply, result);
      return undefined;
    }
    request.allowance = result.context;
    // Fastify parses the bytes that were checked, not a second reading of the request.
    return read === undefined ? payload : Readable.from([Buffer.from(await read)]);
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
    if (!app.hasRequestDecorator("allowance")) app.decorateRequest("allowance", undefined);
    if (typeof options === "object" && options !== null && options.toolCall !== undefined)
      app.addHook("preParsing", toolCallHook(options));
    else app.addHook("onRequest", allowanceHook(options));
  },
  {
    [Symbol.for("skip-override")]: true,
    [Symbol.for("fastify.display-name")]: "@allowance/verifier/fastify",
  },
);

export type { AllowanceContext, AuthorizeOptions } from "./middleware.js";
