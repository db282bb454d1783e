/**
 * What every adapter shares: the adapter interface, the input bound and the input estimate, and
 * small readers of provider JSON. See docs/metering.md, "Bounds", for the figures below.
 */
import type { TokenUsage } from "../pricing.js";
import type { SseEvent } from "../sse.js";

export type JsonObject = Record<string, unknown>;

/** How the meter sizes a reservation: an upper bound (default) or the older estimate. */
export type BoundMode = "hard" | "estimate";

export interface RequestEstimate {
  /** The model priced and checked against the grant ("" when the request names none). */
  readonly model: string;
  /** Hard mode: the most input tokens the request can be billed; estimate mode: a guess. */
  readonly inputTokens: number;
  /** The most output tokens the request allows as written (all choices), or the default when it sets none. */
  readonly outputTokens: number;
  /** The most per-call server tool uses (web search) the request allows, when it enables any. */
  readonly webSearchCalls?: number;
  readonly stream: boolean;
  /** What to tell the caller when the model has no price (Azure: how to map a deployment). */
  readonly priceHint?: string;
  /** Hard mode only: why this request cannot be bounded (the meter refuses it as UNMETERABLE_REQUEST). */
  readonly unmeterable?: string;
}

export interface EstimateOptions {
  readonly defaultMaxOutputTokens: number;
  /** Server tool uses allowed per call when a request enables web search without a maximum. Default 5. */
  readonly defaultMaxToolCalls?: number;
  /** Default "hard". */
  readonly bound?: BoundMode;
  /** The request's URL: Gemini names the model in the path, Azure the deployment. */
  readonly url?: URL;
}

/** The limits the meter writes on a request: output tokens in all, and server tool calls. */
export interface RequestLimits {
  readonly outputTokens: number;
  readonly webSearchCalls?: number;
}

/** What a stream has told so far. */
export interface StreamTally {
  /** The usage reported so far (cumulative). */
  usage: TokenUsage | undefined;
  /** True once the provider's closing usage report was read (it counts every token billed). */
  final: boolean;
}

export interface ProviderAdapter {
  /** The provider name used in grants (`providers`) and by the breaker. */
  readonly provider: string;
  /** The pricing table's provider name, when it is not `provider` (Azure deployments price as OpenAI). */
  readonly pricedAs?: string;
  /** A name for this endpoint, such as `openai.chat.completions`. */
  readonly endpoint: string;
  /** A streamed answer that is a JSON array sent piece by piece (Gemini without `alt=sse`), not server-sent events. */
  readonly jsonArrayStream?: boolean;
  /** Whether this adapter meters a request; called for every request, so keep it cheap. */
  match(url: URL, method: string): boolean;
  estimate(body: JsonObject, options: EstimateOptions): RequestEstimate;
  /**
   * The top-level fields to set so the provider cannot bill more than `limits` (only the fields that
   * change); an empty object when the body already says so; undefined when that is too little to call.
   * `url` is the request's, where the fields a provider accepts depend on it (Azure's api-version).
   */
  limitsPatch(body: JsonObject, limits: RequestLimits, url?: URL): JsonObject | undefined;
  /** For a streaming request: the fields that make the provider report usage; undefined when nothing changes. */
  streamUsagePatch?(body: JsonObject, url?: URL): JsonObject | undefined;
  /** The request's arguments, compared (normalised) for loop detection. */
  fingerprintInput(body: JsonObject): unknown;
  /** Usage from a non-streaming JSON response body; undefined when it reports none. */
  usageFromJson(json: unknown): TokenUsage | undefined;
  /** Folds one streamed event into the tally. Called for every event: keep it cheap (look before parsing). */
  observe(event: SseEvent, tally: StreamTally): void;
  /** UTF-8 bytes of the generated text and tool-call arguments this event delivered (read only when a stream is abandoned). */
  deliveredBytes(event: SseEvent): number;
}

/**
 * `text.includes(needle)`, asked first of `probe`, a short part of `needle`. V8 prepares a
 * Boyer-Moore table for every search of a pattern of 7 characters or more (about 0.3 µs, more than
 * the search), while a short pattern is a plain scan; most stream events hold no usage, and fail on
 * the probe.
 */
export const mentions = (text: string, probe: string, needle: string): boolean =>
  text.includes(probe) && text.includes(needle);

export const count = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
/**
 * A multiplier field (`n`, `best_of`, `candidateCount`) that is present but not a positive safe
 * integer: a server that coerces it ("3") would produce more than the bound counts, so the
 * request is refused in hard mode. Returns the sentence, or undefined when the field is fine.
 */
export function badMultiplier(
  body: JsonObject | undefined,
  ...fields: string[]
): string | undefined {
  for (const field of fields) {
    const value = body?.[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1)
      return `"${field}" must be a positive integer, got ${JSON.stringify(value) ?? typeof value}`;
  }
  return undefined;
}
export const objectAt = (value: unknown, key: string): JsonObject | undefined => {
  if (value === null || typeof value !== "object") return undefined;
  const x = (value as JsonObject)[key];
  return x !== null && typeof x === "object" && !Array.isArray(x) ? (x as JsonObject) : undefined;
};
export const modelOf = (body: JsonObject): string =>
  typeof body.model === "string" ? body.model : "";
export const parse = (data: string): unknown => {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
};
/** The path without one trailing slash. */
export const pathOf = (url: URL): string => {
  const path = url.pathname;
  return path.length > 1 && path.charCodeAt(path.length - 1) === 47 ? path.slice(0, -1) : path;
};

/** UTF-8 length of a string (native, no allocation; lone surrogates count 3, as encoded). */
export const utf8Length = (s: string): number => Buffer.byteLength(s, "utf8");

/** UTF-8 bytes of every string value under `value`, skipping the values of `skip` keys (metadata, not text). */
export function stringBytes(value: unknown, skip?: ReadonlySet<string>): number {
  if (typeof value === "string") return utf8Length(value);
  if (value === null || typeof value !== "object") return 0;
  let bytes = 0;
  if (Array.isArray(value)) {
    for (const x of value) bytes += stringBytes(x, skip);
    return bytes;
  }
  for (const key in value) {
    if (skip?.has(key) === true) continue;
    bytes += stringBytes((value as JsonObject)[key], skip);
  }
  return bytes;
}

/** UTF-8 bytes of a value's JSON (tool definitions, schemas: their keys are prompt text too). */
export function jsonBytes(value: unknown): number {
  if (value === undefined || value === null) return 0;
  return utf8Length(JSON.stringify(value));
}

/**
 * Hard bounds (docs/metering.md "Bounds"). The premise: for the byte-level BPE tokenizers of
 * OpenAI (o200k, cl100k) and, as we assume, Anthropic, and for SentencePiece with byte fallback
 * (Gemini), no token stands for less than one byte of UTF-8 text, so text never yields more tokens
 * than bytes. What the provider adds around the text (role markers, message framing, reply priming,
 * tool preambles) is bounded by the constants below, set well above the published figures.
 */
export const BOUND = Object.freeze({
  /** Per message or content item: OpenAI documents 3 (4 with a name); we allow 8. */
  messageTokens: 8,
  /** Per request: OpenAI's reply priming is 3; we allow 16. */
  requestTokens: 16,
  /** Anthropic's tool-use system prompt when tools are present: 530 at most (Claude 3 Opus), we allow 600. */
  anthropicToolPromptTokens: 600,
  /** OpenAI renders each function into a namespace preamble: 32 per tool and 64 once. */
  openaiToolTokens: 32,
  openaiToolPromptTokens: 64,
  /** An image at its documented maximum: Anthropic ≈1,600 (≤1.15 MP ÷ 750 px per token). */
  anthropicImageTokens: 1_600,
  /** OpenAI: gpt-4o-mini bills an image at up to 2,833 + 5,667 × 8 tiles. */
  openaiMiniImageTokens: 48_169,
  /** OpenAI, other models: ≤ 85 + 170 × 8 tiles (4o, 4.1), 1,536 patches × 2.46 (4.1-nano, o4-mini, gpt-5-mini): 3,779. */
  openaiImageTokens: 3_779,
});

/** The old estimate (`bound: "estimate"`): ceil(C / 4) + 4 × messages + 3 + 1,000 × binary parts. */
export function estimateInputTokens(parts: {
  messages: readonly unknown[];
  system?: unknown;
  tools?: unknown;
}): number {
  let chars = 0;
  let binary = 0;
  const stack: unknown[] = [parts.messages, parts.system];
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
  if (parts.tools !== undefined && parts.tools !== null)
    chars += JSON.stringify(parts.tools).length;
  return Math.ceil(chars / 4) + 4 * parts.messages.length + 3 + 1000 * binary;
}

/**
 * Walks a prompt for the hard bound: the UTF-8 bytes of its strings, and its media parts. `media`
 * classifies each object before it is walked: a number of tokens (its documented maximum, and the
 * object is not walked), a sentence saying why it cannot be bounded, or undefined (walk it as text).
 */
export interface PromptWalk {
  bytes: number;
  mediaTokens: number;
  unmeterable: string | undefined;
}

export type MediaRule = (part: JsonObject) => number | string | undefined;

export function walkPrompt(
  value: unknown,
  media: MediaRule | undefined,
  walk: PromptWalk = { bytes: 0, mediaTokens: 0, unmeterable: undefined },
): PromptWalk {
  if (typeof value === "string") {
    // A data: URL that no rule priced is binary: it cannot be bounded as text.
    if (value.length > 5 && value.startsWith("data:"))
      walk.unmeterable ??= "it holds a data: URL in a part the meter cannot price";
    else walk.bytes += utf8Length(value);
    return walk;
  }
  if (value === null || typeof value !== "object") return walk;
  if (Array.isArray(value)) {
    for (const x of value) walkPrompt(x, media, walk);
    return walk;
  }
  const rule = media?.(value as JsonObject);
  if (typeof rule === "number") walk.mediaTokens += rule;
  else if (typeof rule === "string") walk.unmeterable ??= rule;
  else for (const key in value) walkPrompt((value as JsonObject)[key], media, walk);
  return walk;
}
