/**
 * A loopback imitation of the OpenAI (chat completions, responses, legacy completions,
 * embeddings), Anthropic (messages) and Gemini (generateContent, streamGenerateContent in SSE and
 * JSON-array form, embedContent) APIs, routed by path suffix so Azure deployment paths, Gemini's
 * OpenAI base and compatible servers' bases answer too: their JSON shapes, their stream event
 * sequences, their error bodies, 429s with retry-after, and scripted faults (a hanging stream, a
 * server cut, a malformed chunk). It records every request it receives and every byte of every
 * stream it sends.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { afterEach, beforeEach } from "vitest";
import type { GrantFields } from "@allowance/core";
import { Enforcer } from "@allowance/enforcer";
import { wrapFetch, type MeteredFetch, type WrapFetchOptions } from "@allowance/meter";
import type { VerifiedChain } from "@allowance/verifier";
import { LoopbackServer } from "../../../test/support/http.js";
import { Clock, family } from "../../../test/support/ledger-suite.js";

export interface Received {
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage["headers"];
  readonly body: Record<string, unknown>;
}

/** What the mock reports as usage (Anthropic's input excludes cache tokens; OpenAI's includes cached). */
export interface MockUsage {
  input: number;
  output: number;
  cached: number;
  cacheWrite: number;
}

/** A scripted answer for the next request, instead of the normal one. */
export type Scripted =
  | { readonly kind: "error"; readonly status: number; readonly retryAfter?: number }
  /** Sends the first `events` events of a stream, then hangs until the client goes away. */
  | { readonly kind: "hang"; readonly events: number }
  /** A stream that ends without its usage events. */
  | { readonly kind: "no-usage" }
  /** Sends the first `events` events, then destroys the connection (a server cut). */
  | { readonly kind: "cut"; readonly events: number }
  /** Sends a malformed event (`data: {"broken`) before event number `at` (the event count: after all of them). */
  | { readonly kind: "malformed"; readonly at: number };

export class MockLlm extends LoopbackServer {
  readonly received: Received[] = [];
  /** Every request body as the text received. */
  readonly receivedText: string[] = [];
  /** Per stream: every byte written, in order. */
  readonly streamed: Buffer[] = [];
  usage: MockUsage = { input: 1234, output: 567, cached: 0, cacheWrite: 0 };
  /** When set, the usage reported for each request (a mock that bills from what it received). */
  usageFor: ((path: string, body: Record<string, unknown>) => MockUsage) | undefined;
  readonly script: Scripted[] = [];
  /** Resolves when a hanging stream's client has gone away. */
  closedHanging: Promise<void> = Promise.resolve();

  count(path?: string): number {
    return path === undefined
      ? this.received.length
      : this.received.filter((r) => r.path === path).length;
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const path = (req.url ?? "/").split("?")[0] as string;
      let body: Record<string, unknown> = {};
      this.receivedText.push(Buffer.concat(chunks).toString("utf8"));
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
      } catch {
        /* recorded as {} */
      }
      this.received.push({
        path,
        query: new URLSearchParams((req.url ?? "").split("?")[1] ?? ""),
        headers: req.headers,
        body,
      });
      const scripted = this.script.shift();
      const provider = path.endsWith("/v1/messages") ? "anthropic" : "openai";
      if (scripted?.kind === "error")
        return errorReply(res, provider, scripted.status, scripted.retryAfter);
      const gemini = /\/models\/([^/:]+):(\w+)$/.exec(path);
      const model = gemini?.[1] ?? (typeof body.model === "string" ? body.model : "unknown");
      const u = this.usageFor?.(path, body) ?? { ...this.usage };
      const noUsage = scripted?.kind === "no-usage";
      if (gemini !== null) {
        const method = gemini[2];
        if (method === "generateContent")
          return json(res, geminiResponse(model, u, "Hello!", true));
        if (method === "embedContent") return json(res, { embedding: { values: [0.1, 0.2] } });
        if (method === "batchEmbedContents") return json(res, { embeddings: [{ values: [0.1] }] });
        if (method === "streamGenerateContent") {
          const chunks = geminiChunks(model, u, !noUsage);
          if (new URLSearchParams((req.url ?? "").split("?")[1] ?? "").get("alt") === "sse")
            return this.#stream(
              res,
              chunks.map((c) => `data: ${c}\r\n\r\n`),
              scripted,
            );
          return this.#stream(
            res,
            chunks.map(
              (c, i) => `${i === 0 ? "[" : ",\r\n"}${c}${i === chunks.length - 1 ? "]" : ""}`,
            ),
            scripted,
            "application/json; charset=UTF-8",
          );
        }
      }
      if (path.endsWith("/embeddings"))
        return json(res, {
          object: "list",
          data: [{ object: "embedding", index: 0, embedding: [0.1, 0.2] }],
          model,
          usage: { prompt_tokens: u.input, total_tokens: u.input },
        });
      if (path.endsWith("/completions") && !path.endsWith("/chat/completions")) {
        if (body.stream !== true) return json(res, legacyCompletion(model, u));
        const includeUsage =
          (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
        return this.#stream(res, legacyChunks(model, u, includeUsage && !noUsage), scripted);
      }
      if (path.endsWith("/chat/completions")) {
        if (body.stream !== true) return json(res, chatCompletion(model, u));
        const includeUsage =
          (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
        return this.#stream(
          res,
          chatChunks(model, u, includeUsage && scripted?.kind !== "no-usage"),
          scripted,
        );
      }
      if (path.endsWith("/responses")) {
        if (body.stream !== true) return json(res, responseObject(model, u, "completed"));
        return this.#stream(res, responseEvents(model, u, scripted?.kind !== "no-usage"), scripted);
      }
      if (path.endsWith("/v1/messages")) {
        if (body.stream !== true) return json(res, anthropicMessage(model, u));
        return this.#stream(
          res,
          anthropicEvents(model, u, scripted?.kind !== "no-usage"),
          scripted,
        );
      }
      if (path === "/v1/models")
        return json(res, {
          object: "list",
          data: [{ id: "gpt-4o-mini", object: "model", created: 1721172741, owned_by: "system" }],
        });
      return errorReply(res, provider, 404);
    });
  }

  #stream(
    res: ServerResponse,
    all: readonly string[],
    scripted: Scripted | undefined,
    contentType = "text/event-stream; charset=utf-8",
  ): void {
    res.writeHead(200, {
      "content-type": contentType,
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-request-id": "req_mock",
    });
    const sent: Buffer[] = [];
    const events =
      scripted?.kind === "malformed"
        ? [...all.slice(0, scripted.at), 'data: {"broken\n\n', ...all.slice(scripted.at)]
        : all;
    const limit =
      scripted?.kind === "hang" || scripted?.kind === "cut" ? scripted.events : events.length;
    let i = 0;
    const next = () => {
      if (i >= limit) {
        this.streamed.push(Buffer.concat(sent));
        if (scripted?.kind === "hang") return; // never ends; the client must go away
        if (scripted?.kind === "cut") {
          res.socket?.destroy();
          return;
        }
        res.end();
        return;
      }
      const bytes = Buffer.from(events[i++] as string, "utf8");
      sent.push(bytes);
      res.write(bytes);
      // Separate writes a moment apart, so the client sees separate chunks.
      setTimeout(next, 1);
    };
    if (scripted?.kind === "hang")
      this.closedHanging = new Promise((resolve) => res.on("close", () => resolve()));
    next();
  }
}

function json(res: ServerResponse, value: unknown, status = 200): void {
  res.writeHead(status, { "content-type": "application/json", "x-request-id": "req_mock" });
  res.end(JSON.stringify(value));
}

function errorReply(
  res: ServerResponse,
  provider: "openai" | "anthropic",
  status: number,
  retryAfter?: number,
): void {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-request-id": "req_mock",
  };
  if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter);
  res.writeHead(status, headers);
  if (provider === "anthropic") {
    const type =
      status === 429
        ? "rate_limit_error"
        : status === 529
          ? "overloaded_error"
          : status >= 500
            ? "api_error"
            : status === 404
              ? "not_found_error"
              : "invalid_request_error";
    res.end(
      JSON.stringify({
        type: "error",
        error: { type, message: `mock ${status}` },
        request_id: "req_mock",
      }),
    );
  } else {
    const type =
      status === 429 ? "requests" : status >= 500 ? "server_error" : "invalid_request_error";
    res.end(
      JSON.stringify({
        error: {
          message: `mock ${status}`,
          type,
          param: null,
          code: status === 429 ? "rate_limit_exceeded" : null,
        },
      }),
    );
  }
}

const CREATED = 1_760_000_000;

function openaiUsage(u: MockUsage) {
  return {
    prompt_tokens: u.input,
    completion_tokens: u.output,
    total_tokens: u.input + u.output,
    prompt_tokens_details: { cached_tokens: u.cached, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

function chatCompletion(model: string, u: MockUsage) {
  return {
    id: "chatcmpl-mock1",
    object: "chat.completion",
    created: CREATED,
    model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: "Hello there.", refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: "stop",
      },
    ],
    usage: openaiUsage(u),
    service_tier: "default",
    system_fingerprint: "fp_mock",
  };
}

function chatChunks(model: string, u: MockUsage, includeUsage: boolean): string[] {
  const base = {
    id: "chatcmpl-mock2",
    object: "chat.completion.chunk",
    created: CREATED,
    model,
    service_tier: "default",
    system_fingerprint: "fp_mock",
  };
  const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const chunks: unknown[] = [
    chunk({ role: "assistant", content: "", refusal: null }, null),
    chunk({ content: "Hello" }, null),
    chunk({ content: " there" }, null),
    chunk({ content: ", ünïcode ✓." }, null),
    chunk({}, "stop"),
  ];
  if (includeUsage) chunks.push({ ...base, choices: [], usage: openaiUsage(u) });
  return [...chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`), "data: [DONE]\n\n"];
}

function responseObject(model: string, u: MockUsage, status: "in_progress" | "completed") {
  const done = status === "completed";
  return {
    id: "resp_mock",
    object: "response",
    created_at: CREATED,
    status,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model,
    output: done
      ? [
          {
            type: "message",
            id: "msg_mock",
            status: "completed",
            role: "assistant",
            content: [{ type: "output_text", text: "Hi there.", annotations: [] }],
          },
        ]
      : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    store: true,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
    top_p: 1,
    truncation: "disabled",
    usage: done
      ? {
          input_tokens: u.input,
          input_tokens_details: { cached_tokens: u.cached },
          output_tokens: u.output,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: u.input + u.output,
        }
      : null,
    metadata: {},
  };
}

function responseEvents(model: string, u: MockUsage, withUsage: boolean): string[] {
  const events: [string, Record<string, unknown>][] = [
    ["response.created", { response: responseObject(model, u, "in_progress") }],
    ["response.in_progress", { response: responseObject(model, u, "in_progress") }],
    [
      "response.output_item.added",
      {
        output_index: 0,
        item: {
          id: "msg_mock",
          type: "message",
          status: "in_progress",
          content: [],
          role: "assistant",
        },
      },
    ],
    [
      "response.content_part.added",
      {
        item_id: "msg_mock",
        output_index: 0,
        content_index: 0,
        part: { type: "output_text", annotations: [], text: "" },
      },
    ],
    [
      "response.output_text.delta",
      { item_id: "msg_mock", output_index: 0, content_index: 0, delta: "Hi" },
    ],
    [
      "response.output_text.delta",
      { item_id: "msg_mock", output_index: 0, content_index: 0, delta: " there." },
    ],
    [
      "response.output_text.done",
      { item_id: "msg_mock", output_index: 0, content_index: 0, text: "Hi there." },
    ],
  ];
  if (withUsage)
    events.push(["response.completed", { response: responseObject(model, u, "completed") }]);
  return events.map(
    ([type, data], i) =>
      `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: i, ...data })}\n\n`,
  );
}

function legacyCompletion(model: string, u: MockUsage) {
  return {
    id: "cmpl-mock",
    object: "text_completion",
    created: CREATED,
    model,
    choices: [{ text: "Hello there.", index: 0, logprobs: null, finish_reason: "stop" }],
    usage: openaiUsage(u),
  };
}

function legacyChunks(model: string, u: MockUsage, includeUsage: boolean): string[] {
  const chunk = (text: string, finish: string | null) => ({
    id: "cmpl-mock2",
    object: "text_completion",
    created: CREATED,
    model,
    choices: [{ text, index: 0, logprobs: null, finish_reason: finish }],
  });
  const chunks: unknown[] = [
    chunk("Hello", null),
    chunk(" there", null),
    chunk(", ünïcode ✓.", null),
    chunk("", "stop"),
  ];
  if (includeUsage)
    chunks.push({
      id: "cmpl-mock2",
      object: "text_completion",
      created: CREATED,
      model,
      choices: [],
      usage: openaiUsage(u),
    });
  return [...chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`), "data: [DONE]\n\n"];
}

function geminiUsage(u: MockUsage) {
  return {
    promptTokenCount: u.input + u.cached,
    candidatesTokenCount: u.output,
    totalTokenCount: u.input + u.cached + u.output,
    ...(u.cached > 0 ? { cachedContentTokenCount: u.cached } : {}),
  };
}

function geminiResponse(model: string, u: MockUsage, text: string, final: boolean) {
  return {
    candidates: [
      {
        content: { parts: [{ text }], role: "model" },
        ...(final ? { finishReason: "STOP" } : {}),
        index: 0,
      },
    ],
    usageMetadata: final
      ? geminiUsage(u)
      : { promptTokenCount: u.input + u.cached, totalTokenCount: u.input + u.cached },
    modelVersion: model,
    responseId: "resp-mock",
  };
}

/** Gemini stream chunks (JSON texts): the prompt count on each, the full usage on the last, with its finishReason. */
function geminiChunks(model: string, u: MockUsage, withUsage: boolean): string[] {
  const parts = ["Hello", ", ünïcode ✓!"];
  return parts.map((text, i) => {
    const chunk = geminiResponse(model, u, text, i === parts.length - 1);
    if (!withUsage) delete (chunk as { usageMetadata?: unknown }).usageMetadata;
    return JSON.stringify(chunk);
  });
}

function anthropicUsage(u: MockUsage, output: number) {
  return {
    input_tokens: u.input,
    cache_creation_input_tokens: u.cacheWrite,
    cache_read_input_tokens: u.cached,
    output_tokens: output,
    service_tier: "standard",
  };
}

function anthropicMessage(model: string, u: MockUsage) {
  return {
    id: "msg_01Mock",
    type: "message",
    role: "assistant",
    model,
    content: [{ type: "text", text: "Hello!" }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: anthropicUsage(u, u.output),
  };
}

function anthropicEvents(model: string, u: MockUsage, withUsage: boolean): string[] {
  const events: [string, unknown][] = [
    [
      "message_start",
      {
        type: "message_start",
        message: {
          id: "msg_01Mock",
          type: "message",
          role: "assistant",
          model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: anthropicUsage(u, 1),
        },
      },
    ],
    [
      "content_block_start",
      { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
    ],
    ["ping", { type: "ping" }],
    [
      "content_block_delta",
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: "Hello" } },
    ],
    [
      "content_block_delta",
      {
        type: "content_block_delta",
        index: 0,
        delta: { type: "text_delta", text: ", ünïcode ✓!" },
      },
    ],
    ["content_block_stop", { type: "content_block_stop", index: 0 }],
    [
      "message_delta",
      {
        type: "message_delta",
        delta: { stop_reason: "end_turn", stop_sequence: null },
        usage: { output_tokens: u.output },
      },
    ],
    ["message_stop", { type: "message_stop" }],
  ];
  const kept = withUsage
    ? events
    : events.filter(([name]) => name !== "message_start" && name !== "message_delta");
  return kept.map(([name, data]) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}

// ---------------------------------------------------------------------------------------------
// A metered fetch over a fresh chain and enforcer.

export interface Metered {
  readonly clock: Clock;
  readonly chain: VerifiedChain;
  readonly enforcer: Enforcer;
  readonly fetch: MeteredFetch;
  /** Spent and held tokens and micro-dollars on one link (default: the leaf). */
  ledger(
    linkIndex?: number,
  ): Promise<{ tokens: number; usdMicros: number; heldTokens: number; heldUsdMicros: number }>;
}

/** A root grant (generous unless given), one child under it, and a metered fetch for the child. */
export async function metered(
  grants: { parent?: GrantFields; child?: GrantFields } = {},
  options: Partial<Omit<WrapFetchOptions, "enforcer" | "chain">> & { inner?: typeof fetch } = {},
): Promise<Metered> {
  const clock = new Clock();
  const { children } = await family(
    grants.parent ?? { tokens: 100_000_000, usdMicros: 100_000_000, label: "team" },
    [grants.child ?? { label: "agent" }],
  );
  const chain = children[0] as VerifiedChain;
  const enforcer = new Enforcer({ now: clock.now });
  const { inner, ...rest } = options;
  const fetch = wrapFetch(inner ?? globalThis.fetch, { enforcer, chain, ...rest });
  return {
    clock,
    chain,
    enforcer,
    fetch,
    async ledger(linkIndex = chain.links.length - 1) {
      const limits = (await enforcer.remaining(chain)).links[linkIndex]?.limits ?? [];
      const tokens = limits.find((l) => l.field === "tokens");
      const usd = limits.find((l) => l.field === "usdMicros");
      return {
        tokens: tokens?.spent ?? 0,
        usdMicros: usd?.spent ?? 0,
        heldTokens: tokens?.held ?? 0,
        heldUsdMicros: usd?.held ?? 0,
      };
    },
  };
}

/** POSTs JSON through `fetch`. */
export function post(
  fetch: typeof globalThis.fetch,
  url: string,
  body: unknown,
  init: RequestInit = {},
): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer sk-test" },
    body: JSON.stringify(body),
    ...init,
  });
}

/** Reads a body to the end, keeping the chunks as they came. */
export async function readAll(response: Response): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

/** ceil(tokens × perMTok / 1e6), computed independently of the library (BigInt). */
export function cost(tokens: number, perMTok: number): number {
  return Number((BigInt(tokens) * BigInt(perMTok) + 999_999n) / 1_000_000n);
}

/** Starts a fresh MockLlm before each test of the calling file, hands it to `use`, and closes it after. */
export function mockLlmPerTest(use: (mock: MockLlm) => void): void {
  let current: MockLlm | undefined;
  beforeEach(async () => {
    current = await new MockLlm().start();
    use(current);
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
}
