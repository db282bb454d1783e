/**
 * OpenAI-compatible servers the user registers by base URL (vLLM, Ollama, LM Studio, OpenRouter,
 * …): chat completions, completions, embeddings and responses under that base, billed to the
 * provider name given and priced from the table under that name (or `unknownModel`).
 */
import { pathOf, type ProviderAdapter } from "./common.js";
import {
  chatCompletionsAdapter,
  completionsAdapter,
  embeddingsAdapter,
  responsesAdapter,
} from "./openai.js";

export interface CompatibleServer {
  /** Where the API is mounted, such as `http://localhost:11434/v1` or `https://openrouter.ai/api/v1`. */
  readonly baseUrl: string;
  /** The provider name in grants, the pricing table and the breaker, such as `ollama`. */
  readonly provider: string;
}

/** A parsed base: origin and path prefix (no trailing slash). */
export interface CompatibleBase {
  readonly origin: string;
  readonly path: string;
  readonly provider: string;
}

export function parseCompatible(server: CompatibleServer): CompatibleBase {
  if (server === null || typeof server !== "object")
    throw new TypeError('"compatible" expected { baseUrl, provider } entries');
  if (typeof server.provider !== "string" || !/^[A-Za-z0-9_.:-]{1,64}$/.test(server.provider))
    throw new TypeError(
      `"compatible" provider expected a name of letters, digits and _.:-, got ${JSON.stringify(server.provider)}`,
    );
  let url: URL;
  try {
    url = new URL(server.baseUrl);
  } catch {
    throw new TypeError(
      `"compatible" baseUrl expected an absolute URL, got ${JSON.stringify(server.baseUrl)}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new TypeError(`"compatible" baseUrl expected http or https, got ${url.protocol}`);
  return {
    origin: url.origin,
    path: pathOf(url) === "/" ? "" : pathOf(url),
    provider: server.provider,
  };
}

/** Whether `url` lies under the base. */
export const underBase = (base: CompatibleBase, url: URL): boolean =>
  url.origin === base.origin &&
  (base.path === "" || url.pathname === base.path || url.pathname.startsWith(base.path + "/"));

export function compatibleAdapters(base: CompatibleBase): readonly ProviderAdapter[] {
  const at = (suffix: string) => (url: URL, method: string) =>
    method === "POST" && underBase(base, url) && pathOf(url) === base.path + suffix;
  const shape = (suffix: string, name: string) => ({
    provider: base.provider,
    endpoint: `${base.provider}.${name}`,
    match: at(suffix),
    maxField: "max_tokens" as const,
    // A server's own models document no image maximum that the meter knows.
    images: false,
  });
  return [
    chatCompletionsAdapter(shape("/chat/completions", "chat.completions")),
    completionsAdapter(shape("/completions", "completions")),
    embeddingsAdapter(shape("/embeddings", "embeddings")),
    responsesAdapter(shape("/responses", "responses")),
  ];
}
