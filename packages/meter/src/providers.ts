/**
 * Provider adapters: how wrapFetch recognises an LLM endpoint, bounds a request, writes its limits,
 * and reads the usage the provider reports. One file per API family under adapters/; this module
 * lists them in matching order and says which hosts are providers' (docs/metering.md).
 *
 * Adapters match by path on any host, so gateways and loopback mocks are metered too. A request
 * to a known provider host that no adapter understands is refused (UNMATCHED_ENDPOINT) unless it is
 * one of the FREE_ENDPOINTS or the caller lets it pass.
 */
import type { ProviderAdapter } from "./adapters/common.js";
import { anthropicMessages } from "./adapters/anthropic.js";
import { azureAdapters } from "./adapters/azure.js";
import {
  compatibleAdapters,
  parseCompatible,
  underBase,
  type CompatibleBase,
  type CompatibleServer,
} from "./adapters/compatible.js";
import {
  geminiBatchEmbedContents,
  geminiEmbedContent,
  geminiGenerateContent,
  geminiOpenAiChat,
  geminiOpenAiEmbeddings,
  geminiStreamGenerateContent,
} from "./adapters/gemini.js";
import {
  openaiChatCompletions,
  openaiCompletions,
  openaiEmbeddings,
  openaiResponses,
} from "./adapters/openai.js";

export type {
  BoundMode,
  EstimateOptions,
  JsonObject,
  ProviderAdapter,
  RequestEstimate,
  RequestLimits,
  StreamTally,
} from "./adapters/common.js";
export { BOUND, estimateInputTokens } from "./adapters/common.js";
export type { CompatibleServer } from "./adapters/compatible.js";
export { anthropicMessages } from "./adapters/anthropic.js";
export { azureAdapters } from "./adapters/azure.js";
export { compatibleAdapters } from "./adapters/compatible.js";
export {
  geminiBatchEmbedContents,
  geminiEmbedContent,
  geminiGenerateContent,
  geminiOpenAiChat,
  geminiOpenAiEmbeddings,
  geminiStreamGenerateContent,
} from "./adapters/gemini.js";
export type { OpenAiShape } from "./adapters/openai.js";
export {
  chatCompletionsAdapter,
  completionsAdapter,
  embeddingsAdapter,
  openaiChatCompletions,
  openaiCompletions,
  openaiEmbeddings,
  openaiResponses,
  responsesAdapter,
} from "./adapters/openai.js";

/** Built in, in matching order: Azure and Gemini's OpenAI base before OpenAI, whose paths they share a suffix with. */
export function builtinAdapters(
  options: { azureDeployments?: Readonly<Record<string, string>> } = {},
): readonly ProviderAdapter[] {
  return Object.freeze([
    ...azureAdapters(options.azureDeployments),
    geminiOpenAiChat,
    geminiOpenAiEmbeddings,
    geminiGenerateContent,
    geminiStreamGenerateContent,
    geminiEmbedContent,
    geminiBatchEmbedContents,
    openaiChatCompletions,
    openaiResponses,
    openaiCompletions,
    openaiEmbeddings,
    anthropicMessages,
  ]);
}

export const BUILTIN_ADAPTERS: readonly ProviderAdapter[] = builtinAdapters();

/** The providers' own API hosts. A request there that no adapter meters is refused by default. */
export function isProviderHost(name: string): boolean {
  // A fully qualified name (a trailing dot) is the same host.
  const hostname = name.endsWith(".") ? name.slice(0, -1) : name;
  switch (hostname) {
    case "api.openai.com":
    case "api.anthropic.com":
    case "generativelanguage.googleapis.com":
    case "aiplatform.googleapis.com":
      return true;
    default:
      return (
        hostname.endsWith(".openai.azure.com") ||
        hostname.endsWith(".cognitiveservices.azure.com") ||
        hostname.endsWith(".services.ai.azure.com") ||
        hostname.endsWith("-aiplatform.googleapis.com")
      );
  }
}

/**
 * Requests to a provider host that cost nothing and pass unmetered: listing and reading models
 * (GET …/models, …/models/{id}), and counting tokens (Anthropic POST …/v1/messages/count_tokens,
 * OpenAI POST …/v1/responses/input_tokens, Gemini POST …/models/{model}:countTokens).
 */
export function isFreeEndpoint(url: URL, method: string): boolean {
  const path = url.pathname;
  if (method === "GET" || method === "HEAD") {
    const models = path.lastIndexOf("/models");
    if (models < 0) return false;
    const rest = path.slice(models + 7);
    return (
      rest === "" ||
      rest === "/" ||
      (rest.charCodeAt(0) === 47 && !rest.includes("/", 1) && !rest.includes(":"))
    );
  }
  if (method !== "POST") return false;
  return (
    path.endsWith("/v1/messages/count_tokens") ||
    path.endsWith("/v1/responses/input_tokens") ||
    (path.endsWith(":countTokens") && path.includes("/models/"))
  );
}

/** The adapters and host rule for user-registered OpenAI-compatible servers. */
export function compatibleSetup(servers: readonly CompatibleServer[] | undefined): {
  adapters: readonly ProviderAdapter[];
  bases: readonly CompatibleBase[];
} {
  if (servers === undefined) return { adapters: [], bases: [] };
  if (!Array.isArray(servers))
    throw new TypeError('"compatible" expected an array of { baseUrl, provider }');
  const bases = servers.map(parseCompatible);
  return { adapters: bases.flatMap(compatibleAdapters), bases };
}

export { underBase };
