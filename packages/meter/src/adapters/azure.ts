/**
 * Azure OpenAI: POST …/openai/deployments/{deployment}/chat/completions | completions | embeddings
 * (with `?api-version=`), and the v1 API …/openai/v1/chat/completions | completions | embeddings |
 * responses (and the preview …/openai/responses), where the body's `model` names the deployment.
 * A deployment is priced as the OpenAI model it runs: the `deployments` option maps one to the
 * other; a deployment named like a model (`gpt-4o`) needs no entry. On a deployment path whose
 * api-version predates 2024-09-01, chat requests get `max_tokens` and no `stream_options`.
 */
import { pathOf, type JsonObject, type ProviderAdapter } from "./common.js";
import {
  chatCompletionsAdapter,
  completionsAdapter,
  embeddingsAdapter,
  responsesAdapter,
  type OpenAiShape,
} from "./openai.js";

const DEPLOYMENTS = "/openai/deployments/";

/** `…/openai/deployments/{name}{rest}` → name and rest. */
function deploymentOf(url: URL): { name: string; rest: string } | undefined {
  const path = pathOf(url);
  const at = path.indexOf(DEPLOYMENTS);
  if (at < 0) return undefined;
  const start = at + DEPLOYMENTS.length;
  const slash = path.indexOf("/", start);
  if (slash <= start) return undefined;
  return { name: decodeURIComponent(path.slice(start, slash)), rest: path.slice(slash) };
}

/**
 * The first dated API version that takes `max_completion_tokens` and `stream_options`; an older
 * one answers 400 to either.
 */
const CURRENT_API = "2024-09-01";

/** Whether the URL's `api-version` is a date before CURRENT_API (`2024-06-01`, `2024-08-01-preview`). */
function legacyApi(url: URL | undefined): boolean {
  const version = url?.searchParams.get("api-version");
  return (
    version !== null &&
    version !== undefined &&
    /^\d{4}-\d{2}-\d{2}/.test(version) &&
    version.slice(0, 10) < CURRENT_API
  );
}

const v1 = (suffix: string) => (url: URL, method: string) => {
  if (method !== "POST") return false;
  const path = pathOf(url);
  return (
    path.endsWith(suffix) &&
    (path.includes("/openai/v1/") ||
      (suffix === "/responses" && path.endsWith("/openai/responses")))
  );
};

export function azureAdapters(
  deployments: Readonly<Record<string, string>> = {},
): readonly ProviderAdapter[] {
  const mapped = (name: string): string =>
    Object.hasOwn(deployments, name) ? (deployments[name] as string) : name;
  const hint = (name: string): string | undefined =>
    Object.hasOwn(deployments, name)
      ? undefined
      : `map the Azure deployment to the OpenAI model it runs: wrapFetch(fetch, { azure: { deployments: { "${name}": "gpt-4o" } } }), or price it with pricing: { azure: { "${name}": { inputPerMTok, outputPerMTok } } }`;
  const byPath = (rest: string, endpoint: string): OpenAiShape => ({
    provider: "azure",
    pricedAs: "openai",
    endpoint,
    match: (url, method) => method === "POST" && deploymentOf(url)?.rest === rest,
    model: (_body, url) => (url === undefined ? "" : mapped(deploymentOf(url)?.name ?? "")),
    priceHint: (_body, url) =>
      url === undefined ? undefined : hint(deploymentOf(url)?.name ?? ""),
  });
  const byBody = (suffix: string, endpoint: string): OpenAiShape => ({
    provider: "azure",
    pricedAs: "openai",
    endpoint,
    match: v1(suffix),
    model: (body: JsonObject) => mapped(typeof body.model === "string" ? body.model : ""),
    priceHint: (body: JsonObject) => hint(typeof body.model === "string" ? body.model : ""),
  });
  return [
    chatCompletionsAdapter({
      ...byPath("/chat/completions", "azure.chat.completions"),
      legacy: legacyApi,
    }),
    completionsAdapter({ ...byPath("/completions", "azure.completions"), maxField: "max_tokens" }),
    embeddingsAdapter(byPath("/embeddings", "azure.embeddings")),
    chatCompletionsAdapter(byBody("/chat/completions", "azure.v1.chat.completions")),
    completionsAdapter({
      ...byBody("/completions", "azure.v1.completions"),
      maxField: "max_tokens",
    }),
    embeddingsAdapter(byBody("/embeddings", "azure.v1.embeddings")),
    responsesAdapter(byBody("/responses", "azure.v1.responses")),
  ];
}
