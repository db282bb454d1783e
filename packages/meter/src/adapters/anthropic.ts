/** Anthropic messages: POST …/v1/messages. */
import { anthropicUsage } from "../usage.js";
import {
  BOUND,
  count,
  estimateInputTokens,
  jsonBytes,
  modelOf,
  objectAt,
  parse,
  pathOf,
  stringBytes,
  walkPrompt,
  type JsonObject,
  type MediaRule,
  type ProviderAdapter,
} from "./common.js";

const media: MediaRule = (part) => {
  switch (part.type) {
    case "image":
      return BOUND.anthropicImageTokens;
    case "document":
      // A plain-text document is text; a PDF is billed per page, text and image, with no stated maximum.
      return objectAt(part, "source")?.type === "text"
        ? undefined
        : "PDF documents are billed per page with no documented maximum";
    case "container_upload":
      return "container uploads feed code execution, which the meter cannot bound";
    default:
      return undefined;
  }
};

/** Server tools that run on Anthropic's side: web search is per call (bounded by `max_uses`). */
const serverTool = (tool: unknown): "web_search" | "web_fetch" | "code_execution" | undefined => {
  const type = objectAt({ tool }, "tool")?.type;
  if (typeof type !== "string") return undefined;
  if (type.startsWith("web_search_")) return "web_search";
  if (type.startsWith("web_fetch_")) return "web_fetch";
  if (type.startsWith("code_execution_")) return "code_execution";
  return undefined;
};

const DELTA_META = new Set(["type", "signature"]);

export const anthropicMessages: ProviderAdapter = {
  provider: "anthropic",
  endpoint: "anthropic.messages",
  match: (url, method) => method === "POST" && pathOf(url).endsWith("/v1/messages"),
  estimate(body, options) {
    const model = modelOf(body);
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const outputTokens = count(body.max_tokens) ?? options.defaultMaxOutputTokens;
    const stream = body.stream === true;
    if (options.bound === "estimate")
      return {
        model,
        inputTokens: estimateInputTokens({ messages, system: body.system, tools: body.tools }),
        outputTokens,
        stream,
      };
    const walk = walkPrompt(body.system, media, walkPrompt(messages, media));
    const tools = Array.isArray(body.tools) ? (body.tools as unknown[]) : [];
    let unmeterable = walk.unmeterable;
    let searches = 0;
    for (const tool of tools) {
      const kind = serverTool(tool);
      if (kind === "code_execution")
        unmeterable ??=
          "the code execution tool is billed per container hour, which the table has no price for";
      if (kind === "web_search")
        searches += count(objectAt({ tool }, "tool")?.max_uses) ?? options.defaultMaxToolCalls ?? 5;
    }
    if (Array.isArray(body.mcp_servers) && body.mcp_servers.length > 0)
      unmeterable ??= "MCP servers add tool definitions the meter cannot see";
    if (body.container !== undefined && body.container !== null)
      unmeterable ??= "a container is billed per hour, which the table has no price for";
    // Priced above the table's standard prices: fast mode, and inference kept in one region.
    if (body.speed !== undefined && body.speed !== null && body.speed !== "standard")
      unmeterable ??= `speed ${JSON.stringify(body.speed)} is billed above the table's standard prices`;
    if (body.inference_geo !== undefined && body.inference_geo !== null)
      unmeterable ??= "inference_geo is billed above the table's standard prices";
    // Messages that are not a list would be counted as none.
    if (body.messages !== undefined && !Array.isArray(body.messages))
      unmeterable ??= "its messages are not a list";
    return {
      model,
      inputTokens:
        walk.bytes +
        walk.mediaTokens +
        BOUND.messageTokens * messages.length +
        BOUND.requestTokens +
        jsonBytes(body.tools) +
        jsonBytes(body.output_format) +
        (tools.length > 0 ? BOUND.anthropicToolPromptTokens : 0),
      outputTokens,
      ...(searches > 0 ? { webSearchCalls: searches } : {}),
      stream,
      ...(unmeterable === undefined ? {} : { unmeterable }),
    };
  },
  limitsPatch(body, limits) {
    if (limits.outputTokens < 1) return undefined;
    const patch: JsonObject = {};
    const now = count(body.max_tokens);
    if (now === undefined || now > limits.outputTokens) patch.max_tokens = limits.outputTokens;
    // Extended thinking must stay below max_tokens, or the provider refuses the request.
    const thinking = objectAt(body, "thinking");
    const budget = count(thinking?.budget_tokens);
    if (thinking !== undefined && budget !== undefined && budget >= limits.outputTokens) {
      if (limits.outputTokens <= 1024) return undefined; // the provider's minimum thinking budget
      patch.thinking = { ...thinking, budget_tokens: limits.outputTokens - 1 };
    }
    // Web search: every tool without max_uses gets one, so the calls billed stay within the hold.
    if (limits.webSearchCalls !== undefined && Array.isArray(body.tools)) {
      const search = (body.tools as unknown[]).filter(
        (tool) => serverTool(tool) === "web_search",
      ) as JsonObject[];
      const open = search.filter((t) => count(t.max_uses) === undefined).length;
      const fixed = search.reduce((sum, t) => sum + (count(t.max_uses) ?? 0), 0);
      if (open > 0) {
        const each = Math.floor((limits.webSearchCalls - fixed) / open);
        if (each < 1) return undefined;
        patch.tools = (body.tools as unknown[]).map((tool) =>
          serverTool(tool) === "web_search" && count((tool as JsonObject).max_uses) === undefined
            ? { ...(tool as JsonObject), max_uses: each }
            : tool,
        );
      }
    }
    return patch;
  },
  fingerprintInput: (body) => ({ system: body.system, messages: body.messages }),
  usageFromJson: (json) => anthropicUsage(objectAt(json, "usage"), undefined),
  observe(event, tally) {
    // message_start: the input counts and an output of 1 or so, not final; message_delta: the
    // cumulative usage at the end of the message.
    if (event.event === "message_start")
      tally.usage = anthropicUsage(
        objectAt(objectAt(parse(event.data), "message"), "usage"),
        tally.usage,
      );
    else if (event.event === "message_delta") {
      tally.usage = anthropicUsage(objectAt(parse(event.data), "usage"), tally.usage);
      if (tally.usage !== undefined) tally.final = true;
    }
  },
  deliveredBytes(event) {
    if (event.event !== "content_block_delta" && event.event !== "content_block_start") return 0;
    const json = parse(event.data) as JsonObject | undefined;
    return stringBytes(json?.delta ?? json?.content_block, DELTA_META);
  },
};
