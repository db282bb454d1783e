/**
 * The OpenTelemetry GenAI semantic conventions (gen_ai.* attributes and metrics) as they apply to
 * a metered call: the operation an endpoint performs, the provider's well-known name, the usage a
 * provider reports, and what its answer says about itself (model, id, finish reasons).
 */
import type { Attributes } from "@opentelemetry/api";
import { DEFAULT_PRICING, type PricingTable, type TokenUsage } from "@allowance/meter";

/** `gen_ai.operation.name` for an adapter's endpoint (`openai.chat.completions`, `gemini.embedContent`, …). */
export function operationOf(endpoint: string): string {
  if (endpoint.endsWith("chat.completions") || endpoint.endsWith(".responses")) return "chat";
  if (endpoint.endsWith(".messages")) return "chat";
  if (endpoint.endsWith(".completions")) return "text_completion";
  if (/(?:embeddings|embedContent|batchEmbedContents)$/.test(endpoint)) return "embeddings";
  if (/(?:generateContent|streamGenerateContent)$/.test(endpoint)) return "generate_content";
  // An adapter of the application's own: its endpoint says what it is better than a guess would.
  return endpoint;
}

/**
 * `gen_ai.provider.name`: the convention's well-known value for the meter's provider names, else
 * the name as is. The meter calls Gemini on both of Google's APIs `gemini`; the convention names
 * them apart: `gcp.vertex_ai` for Vertex AI (its hosts, or its `…/publishers/google/models/…`
 * paths), `gcp.gemini` for the Gemini Developer API.
 */
export function providerNameOf(provider: string, url?: URL): string {
  switch (provider) {
    case "gemini":
      return url !== undefined && isVertexAi(url) ? "gcp.vertex_ai" : "gcp.gemini";
    case "azure":
      return "azure.ai.openai";
    default:
      return provider;
  }
}

function isVertexAi(url: URL): boolean {
  return (
    url.hostname === "aiplatform.googleapis.com" ||
    url.hostname.endsWith("-aiplatform.googleapis.com") ||
    url.pathname.includes("/publishers/google/models/")
  );
}

/**
 * Whether `table` lists `model` by its exact id under one of `providers`. A listed id is one of a
 * set the application chose; a snapshot of one (`gpt-4o-2024-08-06`), which the meter also
 * prices, is not: its dates are as many as a request cares to write.
 */
export function listedIn(
  table: PricingTable,
  providers: readonly (string | undefined)[],
  model: string,
): boolean {
  for (const provider of providers) {
    if (provider === undefined || !Object.hasOwn(table, provider)) continue;
    if (Object.hasOwn(table[provider] as object, model)) return true;
  }
  return false;
}

let defaultIds: ReadonlySet<string> | undefined;

/** Whether the default price table lists `model` under any provider. */
export function listedByDefault(model: string): boolean {
  defaultIds ??= new Set(Object.values(DEFAULT_PRICING).flatMap((models) => Object.keys(models)));
  return defaultIds.has(model);
}

/**
 * The usage attributes. `gen_ai.usage.input_tokens` counts every input token, cached and
 * cache-written included, as the convention says it should; the meter's `inputTokens` are those
 * at the full input price only.
 */
export function usageAttributes(usage: TokenUsage): Attributes {
  const cacheRead = usage.cachedInputTokens ?? 0;
  const cacheWrite = (usage.cacheWriteInputTokens ?? 0) + (usage.cacheWrite1hInputTokens ?? 0);
  const attributes: Attributes = {
    "gen_ai.usage.input_tokens": inputTokensOf(usage),
    "gen_ai.usage.output_tokens": usage.outputTokens,
  };
  if (cacheRead > 0) attributes["gen_ai.usage.cache_read.input_tokens"] = cacheRead;
  if (cacheWrite > 0) attributes["gen_ai.usage.cache_creation.input_tokens"] = cacheWrite;
  if ((usage.reasoningTokens ?? 0) > 0)
    attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoningTokens as number;
  return attributes;
}

export function inputTokensOf(usage: TokenUsage): number {
  return (
    usage.inputTokens +
    (usage.cachedInputTokens ?? 0) +
    (usage.cacheWriteInputTokens ?? 0) +
    (usage.cacheWrite1hInputTokens ?? 0)
  );
}

/** What an answer (or a stream's first event) says about itself. */
export interface ResponseFacts {
  model?: string | undefined;
  id?: string | undefined;
  finishReasons?: string[];
}

/**
 * The model and id of an answer, in each API's shape: OpenAI chat, completions and embeddings
 * (`model`, `id`), the Responses API and its events (`response.model`), Anthropic messages and
 * `message_start` (`message.model`), Gemini (`modelVersion`, `responseId`).
 */
export function factsOf(value: unknown, facts: ResponseFacts): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  const v = value as Record<string, unknown>;
  const nested = objectAt(v, "response") ?? objectAt(v, "message");
  facts.model ??= stringAt(v, "model") ?? stringAt(v, "modelVersion") ?? stringAt(nested, "model");
  facts.id ??= stringAt(v, "responseId") ?? stringAt(nested, "id") ?? stringAt(v, "id");
}

/** Finish reasons: OpenAI's `choices[].finish_reason`, Anthropic's `stop_reason` (also in `delta`), Gemini's `candidates[].finishReason`. */
export function finishReasonsOf(value: unknown, facts: ResponseFacts): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return;
  const v = value as Record<string, unknown>;
  const found: string[] = [];
  for (const list of [v.choices, v.candidates]) {
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      const reason = stringAt(item, "finish_reason") ?? stringAt(item, "finishReason");
      if (reason !== undefined) found.push(reason);
    }
  }
  const stop = stringAt(v, "stop_reason") ?? stringAt(objectAt(v, "delta"), "stop_reason");
  if (stop !== undefined) found.push(stop);
  if (found.length > 0) facts.finishReasons = [...(facts.finishReasons ?? []), ...found];
}

function objectAt(value: unknown, key: string): Record<string, unknown> | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const x = (value as Record<string, unknown>)[key];
  return x !== null && typeof x === "object" && !Array.isArray(x)
    ? (x as Record<string, unknown>)
    : undefined;
}

function stringAt(value: unknown, key: string): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  const x = (value as Record<string, unknown>)[key];
  return typeof x === "string" && x.length > 0 ? x : undefined;
}
