/**
 * Provider adapters: how wrapFetch recognises an LLM endpoint, estimates a request, lowers its
 * maximum output, and reads the usage the provider reports. Built in: OpenAI chat completions and
 * responses, Anthropic messages. Others plug in through the same interface.
 *
 * Input estimate (the same heuristic for every built-in adapter; only the reservation uses it, the
 * commit charges what the provider reports):
 *
 *   inputTokens = ceil(C / 4) + 4 × M + 3 + 1000 × B
 *
 * C: characters of every string in the messages (or `input`), the system prompt or instructions,
 * plus the JSON length of tool definitions; M: the number of messages (4 tokens of framing each,
 * 3 to prime the reply); B: binary parts (a `data` field or a `data:` URL: images, audio, files),
 * counted as a flat 1,000 tokens each instead of by their base64 length.
 *
 * Output estimate: the request's own maximum (`max_completion_tokens` / `max_tokens` times `n`,
 * `max_output_tokens`, `max_tokens`), else `defaultMaxOutputTokens` (wrapFetch: 4096). A request
 * without a maximum may produce more than that; the commit then charges the real usage and the
 * enforcer reports an overrun.
 */
import type { TokenUsage } from "./pricing.js";
import { anthropicUsage, openaiUsage } from "./usage.js";
import type { SseEvent } from "./sse.js";

export type JsonObject = Record<string, unknown>;

export interface RequestEstimate {
  /** The `model` field; "" when the body has none. */
  readonly model: string;
  readonly inputTokens: number;
  /** The most output tokens the request allows, over all choices. */
  readonly outputTokens: number;
  readonly stream: boolean;
}

export interface EstimateOptions {
  readonly defaultMaxOutputTokens: number;
}

export interface ProviderAdapter {
  /** The provider name used in grants (`providers`), the pricing table and the breaker. */
  readonly provider: string;
  /** A name for this endpoint, such as `openai.chat.completions`. */
  readonly endpoint: string;
  /** Whether this adapter meters a request; called for every request, so keep it cheap. */
  match(url: URL, method: string): boolean;
  estimate(body: JsonObject, options: EstimateOptions): RequestEstimate;
  /** A copy of `body` allowing at most `outputTokens` output tokens in all; undefined when that is too few. */
  withMaxOutput(body: JsonObject, outputTokens: number): JsonObject | undefined;
  /** For a streaming request: a copy of `body` that asks the provider to report usage, or undefined if nothing needs changing. */
  withStreamUsage?(body: JsonObject): JsonObject | undefined;
  /** The request's arguments, compared (normalised) for loop detection. */
  fingerprintInput(body: JsonObject): unknown;
  /** Usage from a non-streaming JSON response body; undefined when it reports none. */
  usageFromJson(json: unknown): TokenUsage | undefined;
  /** Folds one event of a streamed response into the usage seen so far. */
  usageFromEvent(event: SseEvent, seen: TokenUsage | undefined): TokenUsage | undefined;
}

const MESSAGE_OVERHEAD = 4;
const REPLY_PRIMING = 3;
const BINARY_PART_TOKENS = 1000;

/** Characters of every string in `value`, and the number of binary parts (not counted as characters). */
function textOf(value: unknown): { chars: number; binary: number } {
  let chars = 0;
  let binary = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (typeof item === "string") {
      if (item.startsWith("data:")) binary++;
      else chars += item.length;
    } else if (Array.isArray(item)) {
      for (const x of item) stack.push(x);
    } else if (item !== null && typeof item === "object") {
      for (const [key, x] of Object.entries(item)) {
        if (key === "data" && typeof x === "string") binary++;
        else stack.push(x);
      }
    }
  }
  return { chars, binary };
}

/** The input estimate of the module comment. */
export function estimateInputTokens(parts: { messages: readonly unknown[]; system?: unknown; tools?: unknown }): number {
  let chars = 0;
  let binary = 0;
  for (const part of [parts.messages, parts.system]) {
    const t = textOf(part);
    chars += t.chars;
    binary += t.binary;
  }
  if (parts.tools !== undefined && parts.tools !== null) chars += JSON.stringify(parts.tools).length;
  return Math.ceil(chars / 4) + MESSAGE_OVERHEAD * parts.messages.length + REPLY_PRIMING + BINARY_PART_TOKENS * binary;
}

const count = (value: unknown): number | undefined => (typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined);
const objectAt = (value: unknown, key: string): JsonObject | undefined => {
  if (value === null || typeof value !== "object") return undefined;
  const x = (value as JsonObject)[key];
  return x !== null && typeof x === "object" && !Array.isArray(x) ? (x as JsonObject) : undefined;
};
const modelOf = (body: JsonObject): string => (typeof body.model === "string" ? body.model : "");
const endsWithPath = (url: URL, suffix: string): boolean => {
  const path = url.pathname.endsWith("/") ? url.pathname.slice(0, -1) : url.pathname;
  return path.endsWith(suffix);
};
const parse = (data: string): unknown => {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
};

/** POST …/v1/chat/completions */
export const openaiChatCompletions: ProviderAdapter = {
  provider: "openai",
  endpoint: "openai.chat.completions",
  match: (url, method) => method === "POST" && endsWithPath(url, "/v1/chat/completions"),
  estimate(body, options) {
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const choices = count(body.n) ?? 1;
    const perChoice = count(body.max_completion_tokens) ?? count(body.max_tokens) ?? options.defaultMaxOutputTokens;
    return { model: modelOf(body), inputTokens: estimateInputTokens({ messages, tools: body.tools }), outputTokens: perChoice * Math.max(1, choices), stream: body.stream === true };
  },
  withMaxOutput(body, outputTokens) {
    const perChoice = Math.floor(outputTokens / Math.max(1, count(body.n) ?? 1));
    if (perChoice < 1) return undefined;
    const fields = ["max_completion_tokens", "max_tokens"].filter((f) => body[f] !== undefined && body[f] !== null);
    // Without a maximum, set the current field (max_tokens is deprecated and refused by o-series models).
    if (fields.length === 0) return { ...body, max_completion_tokens: perChoice };
    return { ...body, ...Object.fromEntries(fields.map((f) => [f, Math.min(count(body[f]) ?? perChoice, perChoice)])) };
  },
  withStreamUsage(body) {
    if (body.stream !== true) return undefined;
    const options = objectAt(body, "stream_options");
    // An explicit include_usage (even false) is the caller's choice; without usage the estimate is charged.
    if (options !== undefined && options.include_usage !== undefined) return undefined;
    return { ...body, stream_options: { ...options, include_usage: true } };
  },
  fingerprintInput: (body) => ({ messages: body.messages }),
  usageFromJson: (json) => openaiUsage(objectAt(json, "usage"), "prompt_tokens", "completion_tokens"),
  usageFromEvent(event, seen) {
    // With include_usage, every chunk carries "usage": null; only the last has the counts.
    if (!event.data.includes('"prompt_tokens"')) return seen;
    return openaiUsage(objectAt(parse(event.data), "usage"), "prompt_tokens", "completion_tokens") ?? seen;
  },
};

/** POST …/v1/responses */
export const openaiResponses: ProviderAdapter = {
  provider: "openai",
  endpoint: "openai.responses",
  match: (url, method) => method === "POST" && endsWithPath(url, "/v1/responses"),
  estimate(body, options) {
    const messages = typeof body.input === "string" ? [body.input] : Array.isArray(body.input) ? body.input : [];
    return {
      model: modelOf(body),
      inputTokens: estimateInputTokens({ messages, system: body.instructions, tools: body.tools }),
      outputTokens: count(body.max_output_tokens) ?? options.defaultMaxOutputTokens,
      stream: body.stream === true,
    };
  },
  withMaxOutput: (body, outputTokens) => (outputTokens < 1 ? undefined : { ...body, max_output_tokens: Math.min(count(body.max_output_tokens) ?? outputTokens, outputTokens) }),
  fingerprintInput: (body) => ({ instructions: body.instructions, input: body.input }),
  usageFromJson: (json) => openaiUsage(objectAt(json, "usage"), "input_tokens", "output_tokens"),
  usageFromEvent(event, seen) {
    // response.completed (also .incomplete and .failed) carries the whole response with its usage.
    if (!event.data.includes('"input_tokens"')) return seen;
    return openaiUsage(objectAt(objectAt(parse(event.data), "response"), "usage"), "input_tokens", "output_tokens") ?? seen;
  },
};

/** POST …/v1/messages */
export const anthropicMessages: ProviderAdapter = {
  provider: "anthropic",
  endpoint: "anthropic.messages",
  match: (url, method) => method === "POST" && endsWithPath(url, "/v1/messages"),
  estimate(body, options) {
    const messages = Array.isArray(body.messages) ? body.messages : [];
    return {
      model: modelOf(body),
      inputTokens: estimateInputTokens({ messages, system: body.system, tools: body.tools }),
      outputTokens: count(body.max_tokens) ?? options.defaultMaxOutputTokens,
      stream: body.stream === true,
    };
  },
  withMaxOutput: (body, outputTokens) => (outputTokens < 1 ? undefined : { ...body, max_tokens: Math.min(count(body.max_tokens) ?? outputTokens, outputTokens) }),
  fingerprintInput: (body) => ({ system: body.system, messages: body.messages }),
  usageFromJson: (json) => anthropicUsage(objectAt(json, "usage"), undefined),
  usageFromEvent(event, seen) {
    // message_start: the input counts (output so far: 1 or so); message_delta: cumulative output.
    if (event.event === "message_start") return anthropicUsage(objectAt(objectAt(parse(event.data), "message"), "usage"), seen);
    if (event.event === "message_delta") return anthropicUsage(objectAt(parse(event.data), "usage"), seen);
    return seen;
  },
};

export const BUILTIN_ADAPTERS: readonly ProviderAdapter[] = Object.freeze([openaiChatCompletions, openaiResponses, anthropicMessages]);
