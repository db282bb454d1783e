/**
 * Google Gemini (Generative Language API; the same paths under Vertex AI):
 * POST …/models/{model}:generateContent, :streamGenerateContent (server-sent events with
 * `alt=sse`, else one JSON array sent piece by piece), :embedContent, :batchEmbedContents; and the
 * OpenAI-compatible base …/v1beta/openai/ (chat completions, embeddings).
 */
import { geminiResponseUsage } from "../usage.js";
import {
  BOUND,
  badMultiplier,
  count,
  estimateInputTokens,
  jsonBytes,
  mentions,
  objectAt,
  parse,
  pathOf,
  stringBytes,
  walkPrompt,
  type JsonObject,
  type MediaRule,
  type ProviderAdapter,
} from "./common.js";
import { chatCompletionsAdapter, embeddingsAdapter } from "./openai.js";

/** `…/models/{model}:{method}` → the model and the method, or undefined. */
function target(url: URL): { model: string; method: string } | undefined {
  const path = pathOf(url);
  const colon = path.lastIndexOf(":");
  const models = path.lastIndexOf("/models/", colon);
  if (colon < 0 || models < 0) return undefined;
  const model = path.slice(models + 8, colon);
  return model.length === 0 || model.includes("/")
    ? undefined
    : { model: decodeURIComponent(model), method: path.slice(colon + 1) };
}

const media: MediaRule = (part) => {
  // Images are tiled with no stated maximum of tiles; audio and video are billed by duration.
  if (part.inlineData !== undefined || part.inline_data !== undefined)
    return "inline media (images, audio, video, PDF) have no documented maximum of tokens";
  if (part.fileData !== undefined || part.file_data !== undefined)
    return "file media (images, audio, video, PDF) have no documented maximum of tokens";
  return undefined;
};

/**
 * Fields Gemini takes in either spelling: given both, the meter would bound one while the API may
 * read the other, so such a request is refused (as a duplicated key is re-sent, wrap-fetch.ts).
 */
const TOP_FIELDS: readonly (readonly [string, string])[] = [
  ["generationConfig", "generation_config"],
  ["systemInstruction", "system_instruction"],
  ["toolConfig", "tool_config"],
  ["cachedContent", "cached_content"],
];
const CONFIG_FIELDS: readonly (readonly [string, string])[] = [
  ["maxOutputTokens", "max_output_tokens"],
  ["candidateCount", "candidate_count"],
  ["responseSchema", "response_schema"],
  ["responseJsonSchema", "response_json_schema"],
  ["thinkingConfig", "thinking_config"],
];

function bothSpellings(
  object: JsonObject | undefined,
  fields: readonly (readonly [string, string])[],
): string | undefined {
  if (object === undefined) return undefined;
  for (const [camel, snake] of fields)
    if (object[camel] !== undefined && object[snake] !== undefined)
      return `it gives both ${camel} and ${snake}, of which the API may read either`;
  return undefined;
}

const camelOrSnake = (body: JsonObject, camel: string, snake: string): string =>
  body[camel] === undefined && body[snake] !== undefined ? snake : camel;
const PART_META = new Set(["thoughtSignature", "thought_signature", "role"]);

function generateAdapter(method: "generateContent" | "streamGenerateContent"): ProviderAdapter {
  return {
    provider: "gemini",
    endpoint: `gemini.${method}`,
    ...(method === "streamGenerateContent" ? { jsonArrayStream: true } : {}),
    match: (url, m) => m === "POST" && target(url)?.method === method,
    estimate(body, options) {
      const model = options.url === undefined ? "" : (target(options.url)?.model ?? "");
      const contents = Array.isArray(body.contents) ? body.contents : [];
      const config = objectAt(body, camelOrSnake(body, "generationConfig", "generation_config"));
      const candidates = Math.max(1, count(config?.candidateCount ?? config?.candidate_count) ?? 1);
      const outputTokens =
        (count(config?.maxOutputTokens ?? config?.max_output_tokens) ??
          options.defaultMaxOutputTokens) * candidates;
      const stream = method === "streamGenerateContent";
      const system = body.systemInstruction ?? body.system_instruction;
      if (options.bound === "estimate")
        return {
          model,
          inputTokens: estimateInputTokens({ messages: contents, system, tools: body.tools }),
          outputTokens,
          stream,
        };
      const walk = walkPrompt(system, media, walkPrompt(contents, media));
      let unmeterable =
        walk.unmeterable ??
        badMultiplier(config, "candidateCount", "candidate_count") ??
        bothSpellings(body, TOP_FIELDS) ??
        bothSpellings(config, CONFIG_FIELDS);
      // Contents that are not a list would be counted as none.
      if (body.contents !== undefined && !Array.isArray(body.contents))
        unmeterable ??= "its contents are not a list";
      if (body.cachedContent !== undefined || body.cached_content !== undefined)
        unmeterable ??= "cached content is billed as input, which the meter cannot see";
      for (const tool of Array.isArray(body.tools) ? (body.tools as unknown[]) : []) {
        const t = objectAt({ tool }, "tool") ?? {};
        if (
          t.googleSearch !== undefined ||
          t.google_search !== undefined ||
          t.googleSearchRetrieval !== undefined ||
          t.google_search_retrieval !== undefined
        ) {
          unmeterable ??=
            "Google Search grounding is billed per search query, with no maximum the request can set";
        }
        if (t.googleMaps !== undefined || t.google_maps !== undefined)
          unmeterable ??=
            "Google Maps grounding is billed per grounded prompt, which the table has no price for";
      }
      return {
        model,
        inputTokens:
          walk.bytes +
          walk.mediaTokens +
          BOUND.messageTokens * contents.length +
          BOUND.requestTokens +
          jsonBytes(body.tools) +
          jsonBytes(body.toolConfig ?? body.tool_config) +
          jsonBytes(config?.responseSchema ?? config?.response_schema) +
          jsonBytes(config?.responseJsonSchema ?? config?.response_json_schema),
        outputTokens,
        stream,
        ...(unmeterable === undefined ? {} : { unmeterable }),
      };
    },
    limitsPatch(body, limits) {
      const key = camelOrSnake(body, "generationConfig", "generation_config");
      const config = objectAt(body, key) ?? {};
      const candidates = Math.max(1, count(config.candidateCount ?? config.candidate_count) ?? 1);
      const perCandidate = Math.floor(limits.outputTokens / candidates);
      if (perCandidate < 1) return undefined;
      const field =
        config.maxOutputTokens === undefined && config.max_output_tokens !== undefined
          ? "max_output_tokens"
          : "maxOutputTokens";
      const now = count(config[field]);
      // maxOutputTokens covers thinking tokens too (docs/metering.md "Bounds" states this assumption).
      return now === undefined || now > perCandidate
        ? { [key]: { ...config, [field]: perCandidate } }
        : {};
    },
    fingerprintInput: (body) => ({
      system: body.systemInstruction ?? body.system_instruction,
      contents: body.contents,
    }),
    usageFromJson: (json) => geminiResponseUsage(json),
    observe(event, tally) {
      // Every chunk carries the cumulative usageMetadata; the chunk with a finishReason closes it.
      if (!mentions(event.data, "Metad", "usageMetadata")) return;
      const usage = geminiResponseUsage(parse(event.data), tally.usage);
      if (usage === undefined) return;
      tally.usage = usage;
      if (mentions(event.data, "Reas", '"finishReason"')) tally.final = true;
    },
    deliveredBytes(event) {
      const candidates = (parse(event.data) as JsonObject | undefined)?.candidates;
      if (!Array.isArray(candidates)) return 0;
      let bytes = 0;
      for (const candidate of candidates) {
        const parts = objectAt(candidate, "content")?.parts;
        if (!Array.isArray(parts)) continue;
        for (const part of parts as JsonObject[]) {
          // Function calls: their arguments are generated JSON, keys included.
          if (part.functionCall !== undefined) bytes += jsonBytes(part.functionCall);
          else bytes += stringBytes(part, PART_META);
        }
      }
      return bytes;
    },
  };
}

function embedAdapter(method: "embedContent" | "batchEmbedContents"): ProviderAdapter {
  return {
    provider: "gemini",
    endpoint: `gemini.${method}`,
    match: (url, m) => m === "POST" && target(url)?.method === method,
    estimate(body, options) {
      const model = options.url === undefined ? "" : (target(options.url)?.model ?? "");
      const requests =
        method === "batchEmbedContents"
          ? Array.isArray(body.requests)
            ? (body.requests as unknown[])
            : []
          : [body];
      const contents = requests.map((r) => objectAt(r, "content"));
      const walk = walkPrompt(contents, media);
      if (options.bound === "estimate")
        return {
          model,
          inputTokens: Math.ceil(walk.bytes / 4) + 3 * requests.length,
          outputTokens: 0,
          stream: false,
        };
      return {
        model,
        inputTokens:
          walk.bytes +
          stringBytes(requests.map((r) => objectAt({ r }, "r")?.title)) +
          BOUND.messageTokens * requests.length +
          BOUND.requestTokens,
        outputTokens: 0,
        stream: false,
        ...(walk.unmeterable === undefined ? {} : { unmeterable: walk.unmeterable }),
      };
    },
    limitsPatch: () => ({}),
    fingerprintInput: (body) => ({ content: body.content, requests: body.requests }),
    usageFromJson: (json) => {
      const usage = geminiResponseUsage(json);
      return usage === undefined ? undefined : { ...usage, outputTokens: 0 };
    },
    observe: () => undefined,
    deliveredBytes: () => 0,
  };
}

export const geminiGenerateContent = generateAdapter("generateContent");
export const geminiStreamGenerateContent = generateAdapter("streamGenerateContent");
export const geminiEmbedContent = embedAdapter("embedContent");
export const geminiBatchEmbedContents = embedAdapter("batchEmbedContents");

const GEMINI_OPENAI_BASE = "/openai/";
/** Gemini's OpenAI-compatible base names models "gemini-…" or "models/gemini-…". */
const compatModel = (body: JsonObject): string => {
  const model = typeof body.model === "string" ? body.model : "";
  return model.startsWith("models/") ? model.slice(7) : model;
};
const onGeminiBase = (suffix: string) => (url: URL, method: string) => {
  if (method !== "POST") return false;
  const path = pathOf(url);
  return path.endsWith(suffix) && path.includes("/v1beta" + GEMINI_OPENAI_BASE);
};

/** POST …/v1beta/openai/chat/completions */
export const geminiOpenAiChat = chatCompletionsAdapter({
  provider: "gemini",
  endpoint: "gemini.openai.chat.completions",
  match: onGeminiBase("/openai/chat/completions"),
  model: compatModel,
  maxField: "max_tokens",
  // OpenAI's image maximum is not Gemini's, which documents none (as natively).
  images: false,
});
/** POST …/v1beta/openai/embeddings */
export const geminiOpenAiEmbeddings = embeddingsAdapter({
  provider: "gemini",
  endpoint: "gemini.openai.embeddings",
  match: onGeminiBase("/openai/embeddings"),
  model: compatModel,
});
