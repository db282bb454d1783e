/**
 * The OpenAI API shapes: chat completions, responses, legacy completions and embeddings. The same
 * factories serve Azure OpenAI, Gemini's OpenAI-compatible base and any OpenAI-compatible server
 * (azure.ts, gemini.ts, compatible.ts): only the provider, the path and the model differ.
 */
import type { SseEvent } from "../sse.js";
import {
  mostOf,
  openaiChatUsage,
  openaiEmbeddingsUsage,
  openaiResponsesBodyUsage,
} from "../usage.js";
import {
  BOUND,
  badMultiplier,
  count,
  estimateInputTokens,
  jsonBytes,
  mentions,
  modelOf,
  objectAt,
  parse,
  pathOf,
  stringBytes,
  walkPrompt,
  type EstimateOptions,
  type JsonObject,
  type MediaRule,
  type ProviderAdapter,
  type RequestEstimate,
  type RequestLimits,
  type StreamTally,
} from "./common.js";

/** Where an OpenAI-shaped adapter is mounted and whom it bills. */
export interface OpenAiShape {
  readonly provider: string;
  readonly endpoint: string;
  readonly pricedAs?: string;
  match(url: URL, method: string): boolean;
  /** The model priced: by default the body's `model`. */
  model?(body: JsonObject, url: URL | undefined): string;
  /** The output maximum to set when a request has none. Default `max_completion_tokens` (OpenAI's current field). */
  readonly maxField?: "max_completion_tokens" | "max_tokens";
  /**
   * Set for Azure: whether the request's URL names an API version from before
   * `max_completion_tokens` and `stream_options` (then `max_tokens` is written, and a stream's
   * usage is not asked for: its delivered output is charged).
   */
  legacy?(url: URL | undefined): boolean;
  /** Set for Azure: the hint an unknown deployment's denial gives. */
  priceHint?(body: JsonObject, url: URL | undefined): string | undefined;
  /**
   * Whether image parts are held at OpenAI's documented maximum (default true). False where that
   * maximum is not the endpoint's (Gemini's base, a compatible server): image parts are refused.
   */
  readonly images?: boolean;
}

/**
 * Service tiers billed at most at the table's standard prices (flex is cheaper; auto is the
 * project's default, which docs/metering.md names as not bounded when that default is priority).
 */
const STANDARD_TIERS: readonly unknown[] = ["auto", "default", "flex"];

/** A refusal for a service tier billed above the table's prices, or undefined. */
function tierRefusal(body: JsonObject): string | undefined {
  const tier = body.service_tier;
  return tier === undefined || tier === null || STANDARD_TIERS.includes(tier)
    ? undefined
    : `service_tier ${JSON.stringify(tier)} is billed above the table's standard prices`;
}

/** The price hint, when the shape gives one. */
const hintOf = (
  shape: OpenAiShape,
  body: JsonObject,
  url: URL | undefined,
): { priceHint?: string } => {
  const hint = shape.priceHint?.(body, url);
  return hint === undefined ? {} : { priceHint: hint };
};

/** What every OpenAI-shaped adapter takes from its shape as it is. */
const mounted = (
  shape: OpenAiShape,
): Pick<ProviderAdapter, "provider" | "endpoint" | "pricedAs" | "match"> => ({
  provider: shape.provider,
  endpoint: shape.endpoint,
  ...(shape.pricedAs === undefined ? {} : { pricedAs: shape.pricedAs }),
  match: shape.match,
});

/** The model priced: the shape's, else the body's `model`. */
const modelFor = (shape: OpenAiShape, body: JsonObject, url: URL | undefined): string =>
  shape.model?.(body, url) ?? modelOf(body);

const post = (suffix: string) => (url: URL, method: string) =>
  method === "POST" && pathOf(url).endsWith(suffix);

/** Images at their documented maximum for the model; audio and files have none. */
function openaiMedia(model: string, images = true): MediaRule {
  const image = !images
    ? "images on this endpoint have no documented maximum of tokens"
    : model.startsWith("gpt-4o-mini")
      ? BOUND.openaiMiniImageTokens
      : BOUND.openaiImageTokens;
  return (part) => {
    switch (part.type) {
      case "image_url":
      case "input_image":
        return image;
      case "item_reference":
        return "an item_reference bills a stored item as input, which the meter cannot see";
      case "input_audio":
        return "audio input is billed by its length, which the meter cannot bound";
      case "file":
      case "input_file":
        return "file inputs (PDF) have no documented maximum of tokens";
      default:
        return undefined;
    }
  };
}

const CHOICE_META = new Set([
  "role",
  "index",
  "finish_reason",
  "logprobs",
  "id",
  "type",
  "refusal_type",
]);

function chatEstimate(
  shape: OpenAiShape,
  body: JsonObject,
  options: EstimateOptions,
): RequestEstimate {
  const model = modelFor(shape, body, options.url);
  const messages = Array.isArray(body.messages) ? body.messages : [];
  const choices = Math.max(1, count(body.n) ?? 1);
  const perChoice =
    count(body.max_completion_tokens) ?? count(body.max_tokens) ?? options.defaultMaxOutputTokens;
  const stream = body.stream === true;
  if (options.bound === "estimate")
    return {
      model,
      inputTokens: estimateInputTokens({ messages, tools: body.tools }),
      outputTokens: perChoice * choices,
      stream,
    };
  const walk = walkPrompt(messages, openaiMedia(model, shape.images));
  const tools = Array.isArray(body.tools) ? body.tools.length : 0;
  const functions = Array.isArray(body.functions) ? body.functions.length : 0;
  const input =
    walk.bytes +
    walk.mediaTokens +
    BOUND.messageTokens * messages.length +
    BOUND.requestTokens +
    jsonBytes(body.tools) +
    jsonBytes(body.functions) +
    jsonBytes(body.response_format) +
    (tools + functions > 0
      ? BOUND.openaiToolPromptTokens + BOUND.openaiToolTokens * (tools + functions)
      : 0);
  // Predicted outputs: rejected prediction tokens are billed as output, so the prediction widens the output bound.
  const predicted = stringBytes(objectAt(body, "prediction")?.content);
  let unmeterable = walk.unmeterable ?? badMultiplier(body, "n") ?? tierRefusal(body);
  // Messages that are not a list would be counted as none.
  if (body.messages !== undefined && !Array.isArray(body.messages))
    unmeterable ??= "its messages are not a list";
  if (body.audio !== undefined && body.audio !== null)
    unmeterable ??= "audio output is priced per audio token, which the table has no price for";
  return {
    model,
    inputTokens: input,
    outputTokens: perChoice * choices + predicted,
    // Search models run the search once per request (documented per-call fee).
    ...(body.web_search_options !== undefined && body.web_search_options !== null
      ? { webSearchCalls: 1 }
      : {}),
    stream,
    ...(unmeterable === undefined ? {} : { unmeterable }),
    ...hintOf(shape, body, options.url),
  };
}

function chatLimits(
  shape: OpenAiShape,
  body: JsonObject,
  limits: RequestLimits,
  url: URL | undefined,
): JsonObject | undefined {
  const predicted = stringBytes(objectAt(body, "prediction")?.content);
  const perChoice = Math.floor((limits.outputTokens - predicted) / Math.max(1, count(body.n) ?? 1));
  if (perChoice < 1) return undefined;
  const patch: JsonObject = {};
  let present = false;
  for (const field of ["max_completion_tokens", "max_tokens"] as const) {
    if (body[field] === undefined || body[field] === null) continue;
    present = true;
    const now = count(body[field]);
    if (now === undefined || now > perChoice) patch[field] = perChoice;
  }
  // Without a maximum, set one (max_tokens is deprecated and refused by o-series models at OpenAI).
  if (!present)
    patch[
      shape.legacy?.(url) === true ? "max_tokens" : (shape.maxField ?? "max_completion_tokens")
    ] = perChoice;
  return patch;
}

/** Bytes of generated text in a chat or completions chunk (`choices[].delta`, `choices[].text`). */
function choicesBytes(event: SseEvent): number {
  if (event.data.charCodeAt(0) !== 123) return 0; // [DONE]
  const json = parse(event.data);
  return stringBytes(
    json !== null && typeof json === "object" ? (json as JsonObject).choices : undefined,
    CHOICE_META,
  );
}

/** The closing usage chunk of a chat or completions stream (with `stream_options.include_usage`). */
function observeChoicesUsage(event: SseEvent, tally: StreamTally): void {
  // With include_usage every chunk carries "usage": null; only the last has the counts.
  if (!mentions(event.data, "_tok", '"prompt_tokens"')) return;
  const usage = openaiChatUsage(objectAt(parse(event.data), "usage"));
  if (usage !== undefined) {
    // A second report never lowers the first.
    tally.usage = tally.usage === undefined ? usage : mostOf(usage, tally.usage);
    tally.final = true;
  }
}

function streamUsagePatch(body: JsonObject): JsonObject | undefined {
  if (body.stream !== true) return undefined;
  const options = objectAt(body, "stream_options");
  // An explicit include_usage (even false) is the caller's choice; without usage the delivered output is charged.
  if (options !== undefined && options.include_usage !== undefined) return undefined;
  return { stream_options: { ...options, include_usage: true } };
}

export function chatCompletionsAdapter(shape: OpenAiShape): ProviderAdapter {
  return {
    ...mounted(shape),
    estimate: (body, options) => chatEstimate(shape, body, options),
    limitsPatch: (body, limits, url) => chatLimits(shape, body, limits, url),
    streamUsagePatch: (body, url) =>
      shape.legacy?.(url) === true ? undefined : streamUsagePatch(body),
    fingerprintInput: (body) => ({ messages: body.messages }),
    usageFromJson: (json) => openaiChatUsage(objectAt(json, "usage")),
    observe: observeChoicesUsage,
    deliveredBytes: choicesBytes,
  };
}

/** Responses tools: per-call tools the table has no price for cannot be bounded. */
const RESPONSES_UNPRICED_TOOLS: Readonly<Record<string, string>> = {
  file_search: "the file_search tool is billed per call, which the table has no price for",
  code_interpreter:
    "the code_interpreter tool is billed per container, which the table has no price for",
  image_generation:
    "the image_generation tool is billed per image, which the table has no price for",
  computer_use_preview: "the computer_use tool has no bound the meter can state",
};
const isWebSearch = (type: unknown): boolean =>
  typeof type === "string" && type.startsWith("web_search");

export function responsesAdapter(shape: OpenAiShape): ProviderAdapter {
  return {
    ...mounted(shape),
    estimate(body, options) {
      const model = modelFor(shape, body, options.url);
      const input =
        typeof body.input === "string" ? [body.input] : Array.isArray(body.input) ? body.input : [];
      const outputTokens = count(body.max_output_tokens) ?? options.defaultMaxOutputTokens;
      const stream = body.stream === true;
      const tools = Array.isArray(body.tools) ? (body.tools as unknown[]) : [];
      const searches = tools.some((t) => isWebSearch(objectAt({ t }, "t")?.type));
      if (options.bound === "estimate")
        return {
          model,
          inputTokens: estimateInputTokens({
            messages: input,
            system: body.instructions,
            tools: body.tools,
          }),
          outputTokens,
          stream,
        };
      const walk = walkPrompt(input, openaiMedia(model, shape.images));
      let unmeterable = walk.unmeterable ?? tierRefusal(body);
      // An input that is neither text nor a list would be counted as none.
      if (body.input !== undefined && typeof body.input !== "string" && !Array.isArray(body.input))
        unmeterable ??= "its input is neither text nor a list";
      // Stored state is billed as input, and the meter cannot see it.
      if (typeof body.previous_response_id === "string")
        unmeterable ??=
          "previous_response_id bills the stored conversation as input, which the meter cannot see";
      if (body.conversation !== undefined && body.conversation !== null)
        unmeterable ??= "a stored conversation is billed as input, which the meter cannot see";
      if (body.prompt !== undefined && body.prompt !== null)
        unmeterable ??= "a stored prompt template is billed as input, which the meter cannot see";
      for (const tool of tools) {
        const type = objectAt({ tool }, "tool")?.type;
        if (typeof type === "string" && RESPONSES_UNPRICED_TOOLS[type] !== undefined)
          unmeterable ??= RESPONSES_UNPRICED_TOOLS[type];
      }
      const functions = tools.length;
      return {
        model,
        inputTokens:
          walk.bytes +
          walk.mediaTokens +
          BOUND.messageTokens * input.length +
          BOUND.requestTokens +
          walkPrompt(body.instructions, undefined).bytes +
          jsonBytes(body.tools) +
          jsonBytes(body.text) +
          (functions > 0 ? BOUND.openaiToolPromptTokens + BOUND.openaiToolTokens * functions : 0),
        outputTokens,
        ...(searches
          ? { webSearchCalls: count(body.max_tool_calls) ?? options.defaultMaxToolCalls ?? 5 }
          : {}),
        stream,
        ...(unmeterable === undefined ? {} : { unmeterable }),
        ...hintOf(shape, body, options.url),
      };
    },
    limitsPatch(body, limits) {
      if (limits.outputTokens < 1) return undefined;
      const patch: JsonObject = {};
      const now = count(body.max_output_tokens);
      if (now === undefined || now > limits.outputTokens)
        patch.max_output_tokens = limits.outputTokens;
      if (limits.webSearchCalls !== undefined) {
        const calls = count(body.max_tool_calls);
        if (calls === undefined || calls > limits.webSearchCalls)
          patch.max_tool_calls = limits.webSearchCalls;
      }
      return patch;
    },
    fingerprintInput: (body) => ({ instructions: body.instructions, input: body.input }),
    usageFromJson: (json) => openaiResponsesBodyUsage(json),
    observe(event, tally) {
      // response.completed (also .incomplete and .failed) carries the whole response with its usage.
      if (!mentions(event.data, "_tok", '"input_tokens"')) return;
      const usage = openaiResponsesBodyUsage(objectAt(parse(event.data), "response"));
      if (usage !== undefined) {
        tally.usage = usage;
        tally.final = true;
      }
    },
    deliveredBytes(event) {
      // output_text, refusal, function_call_arguments, reasoning_summary_text … all end in ".delta".
      if (!event.event.endsWith(".delta") && !event.data.includes('.delta"')) return 0;
      const delta = (parse(event.data) as JsonObject | undefined)?.delta;
      return typeof delta === "string" ? stringBytes(delta) : 0;
    },
  };
}

/** The items of a legacy `prompt` or embeddings `input`: a string, strings, a token array, or token arrays. */
function items(value: unknown): { bytes: number; tokens: number; items: number } {
  if (typeof value === "string") return { bytes: stringBytes(value), tokens: 0, items: 1 };
  if (!Array.isArray(value)) return { bytes: 0, tokens: 0, items: 0 };
  if (value.every((x) => typeof x === "number"))
    return { bytes: 0, tokens: value.length, items: 1 };
  let bytes = 0;
  let tokens = 0;
  for (const x of value) {
    if (typeof x === "string") bytes += stringBytes(x);
    // A token array is exact: one token per entry.
    else if (Array.isArray(x)) tokens += x.length;
  }
  return { bytes, tokens, items: value.length };
}

export function completionsAdapter(shape: OpenAiShape): ProviderAdapter {
  const perChoiceOf = (body: JsonObject, fallback: number) => count(body.max_tokens) ?? fallback;
  // best_of generates that many completions server-side and bills them all.
  const choicesOf = (body: JsonObject) => Math.max(1, count(body.n) ?? 1, count(body.best_of) ?? 1);
  return {
    ...mounted(shape),
    estimate(body, options) {
      const model = modelFor(shape, body, options.url);
      const prompt = items(body.prompt);
      const prompts = Math.max(1, prompt.items);
      const outputTokens =
        perChoiceOf(body, options.defaultMaxOutputTokens) * choicesOf(body) * prompts;
      const stream = body.stream === true;
      if (options.bound === "estimate")
        return {
          model,
          inputTokens: Math.ceil(prompt.bytes / 4) + prompt.tokens + 3 * prompts,
          outputTokens,
          stream,
        };
      const unmeterable = badMultiplier(body, "n", "best_of") ?? tierRefusal(body);
      return {
        model,
        inputTokens:
          prompt.bytes +
          prompt.tokens +
          stringBytes(body.suffix) +
          BOUND.messageTokens * prompts +
          BOUND.requestTokens,
        outputTokens,
        stream,
        ...(unmeterable === undefined ? {} : { unmeterable }),
        ...hintOf(shape, body, options.url),
      };
    },
    limitsPatch(body, limits) {
      const perChoice = Math.floor(
        limits.outputTokens / (choicesOf(body) * Math.max(1, items(body.prompt).items)),
      );
      if (perChoice < 1) return undefined;
      const now = count(body.max_tokens);
      return now === undefined || now > perChoice ? { max_tokens: perChoice } : {};
    },
    streamUsagePatch,
    fingerprintInput: (body) => ({ prompt: body.prompt, suffix: body.suffix }),
    usageFromJson: (json) => openaiChatUsage(objectAt(json, "usage")),
    observe: observeChoicesUsage,
    deliveredBytes: choicesBytes,
  };
}

export function embeddingsAdapter(shape: OpenAiShape): ProviderAdapter {
  return {
    ...mounted(shape),
    estimate(body, options) {
      const model = modelFor(shape, body, options.url);
      const input = items(body.input);
      const inputTokens =
        options.bound === "estimate"
          ? Math.ceil(input.bytes / 4) + input.tokens
          : input.bytes + input.tokens + BOUND.messageTokens * input.items + BOUND.requestTokens;
      return {
        model,
        inputTokens,
        outputTokens: 0,
        stream: false,
        ...hintOf(shape, body, options.url),
      };
    },
    limitsPatch: () => ({}),
    fingerprintInput: (body) => ({ input: body.input }),
    usageFromJson: (json) => openaiEmbeddingsUsage(objectAt(json, "usage")),
    observe: () => undefined,
    deliveredBytes: () => 0,
  };
}

/** POST …/v1/chat/completions */
export const openaiChatCompletions = chatCompletionsAdapter({
  provider: "openai",
  endpoint: "openai.chat.completions",
  match: post("/v1/chat/completions"),
});
/** POST …/v1/responses */
export const openaiResponses = responsesAdapter({
  provider: "openai",
  endpoint: "openai.responses",
  match: post("/v1/responses"),
});
/** POST …/v1/completions (legacy) */
export const openaiCompletions = completionsAdapter({
  provider: "openai",
  endpoint: "openai.completions",
  match: post("/v1/completions"),
  maxField: "max_tokens",
});
/** POST …/v1/embeddings */
export const openaiEmbeddings = embeddingsAdapter({
  provider: "openai",
  endpoint: "openai.embeddings",
  match: post("/v1/embeddings"),
});
