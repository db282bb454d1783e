/**
 * Provider usage objects → normalised `TokenUsage` (spec/usage.md §3). Pure functions over the
 * JSON a provider reports; where that JSON sits in a response body or a stream is the adapters'
 * job (providers.ts).
 *
 * Policy: a count that is present but not a non-negative safe integer (a string, a float, a
 * negative, NaN), or counts that contradict each other (more cached tokens than prompt tokens),
 * make the usage unreadable: the function returns undefined and the meter charges the hold, never
 * a guess. An absent or null count is zero, except the two counts every API reports (input and
 * output), whose absence is also unreadable.
 */
import type { TokenUsage } from "./pricing.js";

type JsonObject = Record<string, unknown>;

/** Thrown inside this module only, and turned into `undefined` at each exported function. */
const UNREADABLE: unique symbol = Symbol("unreadable");

const isObject = (value: unknown): value is JsonObject =>
  value !== null && typeof value === "object" && !Array.isArray(value);

/** A required count: a non-negative safe integer. */
function need(value: unknown): number {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  throw UNREADABLE;
}

/** An optional count: absent or null is undefined, anything else must be a count. */
function opt(value: unknown): number | undefined {
  return value === undefined || value === null ? undefined : need(value);
}

/** An optional nested object: absent or null is undefined, anything else must be an object. */
function objectOpt(value: unknown): JsonObject | undefined {
  if (value === undefined || value === null) return undefined;
  if (isObject(value)) return value;
  throw UNREADABLE;
}

function readable<A extends unknown[]>(
  read: (...args: A) => TokenUsage,
): (...args: A) => TokenUsage | undefined {
  return (...args) => {
    try {
      return read(...args);
    } catch (e) {
      if (e === UNREADABLE) return undefined;
      throw e;
    }
  };
}

/** Leaves out zero optional fields, so equal usages compare equal. */
function usage(fields: {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens?: number;
  cacheWriteInputTokens?: number;
  cacheWrite1hInputTokens?: number;
  reasoningTokens?: number;
  webSearchCalls?: number;
}): TokenUsage {
  const out: Record<string, number> = {
    inputTokens: fields.inputTokens,
    outputTokens: fields.outputTokens,
  };
  for (const key of [
    "cachedInputTokens",
    "cacheWriteInputTokens",
    "cacheWrite1hInputTokens",
    "reasoningTokens",
    "webSearchCalls",
  ] as const) {
    const v = fields[key];
    if (v !== undefined && v > 0) out[key] = v;
  }
  return out as unknown as TokenUsage;
}

const safeSum = (...values: number[]): number => {
  const sum = values.reduce((a, b) => a + b, 0);
  if (!Number.isSafeInteger(sum)) throw UNREADABLE;
  return sum;
};

/**
 * OpenAI usage with `prompt_tokens` / `completion_tokens` or `input_tokens` / `output_tokens`
 * (spec/usage.md §3.1): the prompt count includes the cached tokens and the cache writes (a
 * detail some models report), which are priced apart; reasoning tokens are inside the output.
 */
function readOpenai(
  value: unknown,
  input: "prompt_tokens" | "input_tokens",
  webSearchCalls: number,
): TokenUsage {
  if (!isObject(value)) throw UNREADABLE;
  const prompt = need(value[input]);
  const output = need(value[input === "prompt_tokens" ? "completion_tokens" : "output_tokens"]);
  const inDetails = objectOpt(
    value[input === "prompt_tokens" ? "prompt_tokens_details" : "input_tokens_details"],
  );
  const outDetails = objectOpt(
    value[input === "prompt_tokens" ? "completion_tokens_details" : "output_tokens_details"],
  );
  const cached = opt(inDetails?.cached_tokens) ?? 0;
  const written = opt(inDetails?.cache_write_tokens) ?? 0;
  const reasoning = opt(outDetails?.reasoning_tokens) ?? 0;
  if (safeSum(cached, written) > prompt || reasoning > output) throw UNREADABLE;
  return usage({
    inputTokens: prompt - cached - written,
    outputTokens: output,
    cachedInputTokens: cached,
    cacheWriteInputTokens: written,
    reasoningTokens: reasoning,
    webSearchCalls,
  });
}

/** OpenAI chat completions and legacy completions: the `usage` object of a response or of the last stream chunk. */
export const openaiChatUsage: (usage: unknown) => TokenUsage | undefined = readable(
  (value: unknown) => readOpenai(value, "prompt_tokens", 0),
);

/**
 * OpenAI responses: the `usage` object of a response (non-streamed, or `response.completed` /
 * `.incomplete` / `.failed` in a stream), with the web search calls counted from its `output`
 * (`openaiWebSearchCalls`).
 */
export const openaiResponsesUsage: (
  usage: unknown,
  webSearchCalls?: number,
) => TokenUsage | undefined = readable((value: unknown, webSearchCalls: number = 0) =>
  readOpenai(value, "input_tokens", need(webSearchCalls)),
);

/**
 * The web search tool calls of an OpenAI response: `output` items of type `web_search_call`,
 * whatever their status or action (each call is billed). Undefined when `output` is not an array
 * of objects.
 */
export function openaiWebSearchCalls(output: unknown): number | undefined {
  if (!Array.isArray(output)) return undefined;
  let calls = 0;
  for (const item of output) {
    if (!isObject(item)) return undefined;
    if (item.type === "web_search_call") calls++;
  }
  return calls;
}

/** A whole OpenAI responses body (or the `response` of a terminal stream event): usage plus web search calls. */
export function openaiResponsesBodyUsage(response: unknown): TokenUsage | undefined {
  if (!isObject(response)) return undefined;
  const calls =
    response.output === undefined || response.output === null
      ? 0
      : openaiWebSearchCalls(response.output);
  return calls === undefined ? undefined : openaiResponsesUsage(response.usage, calls);
}

/**
 * OpenAI embeddings: `prompt_tokens`, all input (embeddings have no output). `total_tokens`, when
 * present, must be a count too, and the larger of the two is charged.
 */
export const openaiEmbeddingsUsage: (usage: unknown) => TokenUsage | undefined = readable(
  (value: unknown) => {
    if (!isObject(value)) throw UNREADABLE;
    const prompt = need(value.prompt_tokens);
    const total = opt(value.total_tokens) ?? 0;
    return usage({ inputTokens: Math.max(prompt, total), outputTokens: 0 });
  },
);

/** The greater of a count reported now and the one seen before; either may be absent. */
function atLeast(now: number | undefined, before: number | undefined): number | undefined {
  if (now === undefined) return before;
  return before === undefined || now >= before ? now : before;
}

/**
 * Anthropic messages (spec/usage.md §3.2): input, cache reads and cache writes are separate
 * counts. Cache writes are split by lifetime when `cache_creation` says so
 * (`ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`); a write the split leaves unaccounted
 * for is charged at the 1-hour price (the dearer), and without a split every write is a 5-minute
 * write (the API's default lifetime). `server_tool_use.web_search_requests` are web search calls;
 * `output_tokens_details.thinking_tokens`, when sent, is the reasoning inside `output_tokens`.
 *
 * Streams fold: `message_start` carries the input and cache counts, each `message_delta` the
 * cumulative output (and, in newer API versions, the other counts again). A count a later event
 * leaves out (or sends as null), or reports lower, keeps its earlier value; pass the usage so far
 * as `seen`.
 */
export const anthropicUsage: (
  usage: unknown,
  seen: TokenUsage | undefined,
) => TokenUsage | undefined = readable(
  (value: unknown, seen: TokenUsage | undefined): TokenUsage => {
    if (value === undefined) {
      if (seen === undefined) throw UNREADABLE;
      return seen;
    }
    if (!isObject(value)) throw UNREADABLE;
    // Cumulative counts never fall: a later event that reports less keeps the earlier count.
    const input = atLeast(opt(value.input_tokens), seen?.inputTokens);
    const output = atLeast(opt(value.output_tokens), seen?.outputTokens);
    if (input === undefined || output === undefined) throw UNREADABLE;
    const read = atLeast(opt(value.cache_read_input_tokens), seen?.cachedInputTokens) ?? 0;
    const created = opt(value.cache_creation_input_tokens);
    const split = objectOpt(value.cache_creation);
    let write5m = seen?.cacheWriteInputTokens ?? 0;
    let write1h = seen?.cacheWrite1hInputTokens ?? 0;
    if (split !== undefined) {
      write5m = opt(split.ephemeral_5m_input_tokens) ?? 0;
      write1h = opt(split.ephemeral_1h_input_tokens) ?? 0;
      if (created !== undefined && created > safeSum(write5m, write1h)) write1h = created - write5m;
    } else if (created !== undefined) {
      // No split in this event: a 1-hour part an earlier event reported stays, the rest is 5-minute.
      write1h = Math.min(write1h, created);
      write5m = created - write1h;
    }
    const tools = objectOpt(value.server_tool_use);
    const searches = atLeast(opt(tools?.web_search_requests), seen?.webSearchCalls) ?? 0;
    const thinking =
      opt(objectOpt(value.output_tokens_details)?.thinking_tokens) ?? seen?.reasoningTokens ?? 0;
    if (thinking > output) throw UNREADABLE;
    safeSum(input, output, read, write5m, write1h);
    return usage({
      inputTokens: input,
      outputTokens: output,
      cachedInputTokens: read,
      cacheWriteInputTokens: write5m,
      cacheWrite1hInputTokens: write1h,
      reasoningTokens: thinking,
      webSearchCalls: searches,
    });
  },
);

/**
 * Gemini `usageMetadata` (spec/usage.md §3.3): `promptTokenCount` includes
 * `cachedContentTokenCount`, which is priced apart; `toolUsePromptTokenCount` (tool results fed
 * back to the model) is input too; `thoughtsTokenCount` is billed as output and is NOT inside
 * `candidatesTokenCount`. A response whose candidates were all blocked may omit
 * `candidatesTokenCount`: zero. `promptTokenCount` is required.
 */
export const geminiUsage: (
  usageMetadata: unknown,
  webSearchCalls?: number,
) => TokenUsage | undefined = readable((value: unknown, webSearchCalls: number = 0): TokenUsage => {
  if (!isObject(value)) throw UNREADABLE;
  const prompt = need(value.promptTokenCount);
  const cached = opt(value.cachedContentTokenCount) ?? 0;
  const toolUse = opt(value.toolUsePromptTokenCount) ?? 0;
  const candidates = opt(value.candidatesTokenCount) ?? 0;
  const thoughts = opt(value.thoughtsTokenCount) ?? 0;
  if (cached > prompt) throw UNREADABLE;
  return usage({
    inputTokens: safeSum(prompt - cached, toolUse),
    outputTokens: safeSum(candidates, thoughts),
    cachedInputTokens: cached,
    reasoningTokens: thoughts,
    webSearchCalls: need(webSearchCalls),
  });
});

/**
 * Google Search grounding in a Gemini response: the search queries of every candidate's
 * `groundingMetadata.webSearchQueries`. Gemini 3 bills per query, Gemini 2.x per grounded prompt;
 * counting queries is never fewer than prompts. Undefined when the response is not an object or
 * the metadata is malformed.
 */
export function geminiWebSearchCalls(response: unknown): number | undefined {
  if (!isObject(response)) return undefined;
  const candidates = response.candidates;
  if (candidates === undefined || candidates === null) return 0;
  if (!Array.isArray(candidates)) return undefined;
  let queries = 0;
  for (const candidate of candidates) {
    if (!isObject(candidate)) return undefined;
    const grounding = candidate.groundingMetadata;
    if (grounding === undefined || grounding === null) continue;
    if (!isObject(grounding)) return undefined;
    const list = grounding.webSearchQueries;
    if (list === undefined || list === null) continue;
    if (!Array.isArray(list)) return undefined;
    queries += list.length;
  }
  return queries;
}

/**
 * A Gemini `generateContent` body or one `streamGenerateContent` chunk: its `usageMetadata` and
 * grounding queries. Stream chunks repeat the counts so far; pass the usage so far as `seen`: the
 * output, reasoning and search counts are the larger of the two, the input split is the one with
 * the larger input total, so a chunk with smaller counts never lowers the charge.
 */
export function geminiResponseUsage(response: unknown, seen?: TokenUsage): TokenUsage | undefined {
  if (!isObject(response)) return undefined;
  const calls = geminiWebSearchCalls(response);
  if (calls === undefined) return undefined;
  const metadata = response.usageMetadata;
  if ((metadata === undefined || metadata === null) && seen !== undefined) {
    return calls > (seen.webSearchCalls ?? 0) ? usage({ ...seen, webSearchCalls: calls }) : seen;
  }
  const now = geminiUsage(metadata, calls);
  if (now === undefined || seen === undefined) return now;
  return mostOf(now, seen);
}

/**
 * Two reports of one answer's cumulative usage (a stream's), as the larger: the output, reasoning
 * and search counts are the larger of the two, the input split is the one with the larger input
 * total (cache reads and writes included), so a report with smaller counts never lowers the
 * charge (Gemini, OpenAI chat and completions).
 */
export function mostOf(now: TokenUsage, seen: TokenUsage): TokenUsage {
  const max = (a: number | undefined, b: number | undefined): number => Math.max(a ?? 0, b ?? 0);
  const inputOf = (u: TokenUsage): number =>
    u.inputTokens +
    (u.cachedInputTokens ?? 0) +
    (u.cacheWriteInputTokens ?? 0) +
    (u.cacheWrite1hInputTokens ?? 0);
  const input = inputOf(now) >= inputOf(seen) ? now : seen;
  return usage({
    inputTokens: input.inputTokens,
    cachedInputTokens: input.cachedInputTokens ?? 0,
    cacheWriteInputTokens: input.cacheWriteInputTokens ?? 0,
    cacheWrite1hInputTokens: input.cacheWrite1hInputTokens ?? 0,
    outputTokens: max(now.outputTokens, seen.outputTokens),
    reasoningTokens: max(now.reasoningTokens, seen.reasoningTokens),
    webSearchCalls: max(now.webSearchCalls, seen.webSearchCalls),
  });
}
