/**
 * Every metered endpoint as a user calls it, through the official SDKs: `openai` (OpenAI and, once
 * metered, AzureOpenAI), `@anthropic-ai/sdk`, and the AI SDK (`ai` with `@ai-sdk/openai`,
 * `@ai-sdk/anthropic`, `@ai-sdk/google`). Each SDK gets the agent's metered fetch, its own retry
 * defaults (the AI SDK: one retry, to keep a retried denial visible but quick), and two headers
 * that tell the loopback provider who is calling.
 */
import Anthropic from "@anthropic-ai/sdk";
import { createAnthropic } from "@ai-sdk/anthropic";
import { createGoogleGenerativeAI } from "@ai-sdk/google";
import { createOpenAI } from "@ai-sdk/openai";
import { embed, embedMany, generateText, streamText, type LanguageModel } from "ai";
import OpenAI, { AzureOpenAI } from "openai";
import type { Endpoint } from "./provider.js";

export interface CallSpec {
  readonly baseUrl: string;
  readonly fetch: typeof globalThis.fetch;
  readonly agent: string;
  readonly call: string;
  readonly system: string;
  readonly prompt: string;
  /** The request's maximum output; undefined: the SDK's default (none, or its own). */
  readonly maxOutput: number | undefined;
  readonly signal: AbortSignal;
  /** Retries the SDK may make; undefined: the SDK's default (the AI SDK here: one). */
  readonly maxRetries?: number;
  /** The stream is open (the SDK returned it). */
  opened(): void;
  /** One text delta reached the caller. */
  delta(): void;
}

export interface SdkCase {
  /** `sdk/endpoint[~]` (~: streamed). */
  readonly name: string;
  readonly endpoint: Endpoint;
  readonly stream: boolean;
  run(spec: CallSpec): Promise<void>;
}

const headersOf = (spec: CallSpec) => ({ "x-leak-agent": spec.agent, "x-leak-call": spec.call });

const retries = (spec: CallSpec) =>
  spec.maxRetries === undefined ? {} : { maxRetries: spec.maxRetries };
const openai = (spec: CallSpec) =>
  new OpenAI({
    apiKey: "sk-leak",
    baseURL: `${spec.baseUrl}/v1`,
    fetch: spec.fetch,
    ...retries(spec),
  });
const anthropic = (spec: CallSpec) =>
  new Anthropic({
    apiKey: "sk-ant-leak",
    baseURL: spec.baseUrl,
    fetch: spec.fetch,
    ...retries(spec),
  });
// No fixed deployment: the SDK puts each call's `model` in the path as the deployment.
const azure = (spec: CallSpec) =>
  new AzureOpenAI({
    apiKey: "azure-leak",
    endpoint: spec.baseUrl,
    apiVersion: "2024-10-21",
    fetch: spec.fetch,
    ...retries(spec),
  });

/** The model names: none is in any price table, so every call is priced at the suite's PRICE. */
export const MODELS = {
  chat: "leak-chat",
  responses: "leak-resp",
  completions: "leak-instruct",
  embeddings: "leak-embed",
  claude: "leak-claude",
  gemini: "leak-gemini",
  geminiEmbed: "leak-gemini-embed",
} as const;

const chatMessages = (spec: CallSpec): OpenAI.Chat.ChatCompletionMessageParam[] => [
  { role: "system", content: spec.system },
  { role: "user", content: spec.prompt },
];

async function drain<T>(
  stream: AsyncIterable<T>,
  spec: CallSpec,
  isDelta: (event: T) => boolean,
): Promise<void> {
  spec.opened();
  for await (const event of stream) if (isDelta(event)) spec.delta();
}

const openaiCases: SdkCase[] = [
  {
    name: "openai/chat",
    endpoint: "openai.chat",
    stream: false,
    async run(spec) {
      await openai(spec).chat.completions.create(
        {
          model: MODELS.chat,
          messages: chatMessages(spec),
          ...(spec.maxOutput === undefined ? {} : { max_completion_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
    },
  },
  {
    name: "openai/chat~",
    endpoint: "openai.chat",
    stream: true,
    async run(spec) {
      const stream = await openai(spec).chat.completions.create(
        {
          model: MODELS.chat,
          messages: chatMessages(spec),
          stream: true,
          ...(spec.maxOutput === undefined ? {} : { max_completion_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
      await drain(stream, spec, (c) => (c.choices[0]?.delta.content ?? "") !== "");
    },
  },
  {
    name: "openai/responses",
    endpoint: "openai.responses",
    stream: false,
    async run(spec) {
      await openai(spec).responses.create(
        {
          model: MODELS.responses,
          instructions: spec.system,
          input: spec.prompt,
          ...(spec.maxOutput === undefined ? {} : { max_output_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
    },
  },
  {
    name: "openai/responses~",
    endpoint: "openai.responses",
    stream: true,
    async run(spec) {
      const stream = await openai(spec).responses.create(
        {
          model: MODELS.responses,
          instructions: spec.system,
          input: spec.prompt,
          stream: true,
          ...(spec.maxOutput === undefined ? {} : { max_output_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
      await drain(stream, spec, (e) => e.type === "response.output_text.delta" && e.delta !== "");
    },
  },
  {
    name: "openai/completions",
    endpoint: "openai.completions",
    stream: false,
    async run(spec) {
      await openai(spec).completions.create(
        {
          model: MODELS.completions,
          prompt: `${spec.system}\n${spec.prompt}`,
          ...(spec.maxOutput === undefined ? {} : { max_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
    },
  },
  {
    name: "openai/completions~",
    endpoint: "openai.completions",
    stream: true,
    async run(spec) {
      const stream = await openai(spec).completions.create(
        {
          model: MODELS.completions,
          prompt: `${spec.system}\n${spec.prompt}`,
          stream: true,
          ...(spec.maxOutput === undefined ? {} : { max_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
      await drain(stream, spec, (c) => (c.choices[0]?.text ?? "") !== "");
    },
  },
  {
    name: "openai/embeddings",
    endpoint: "openai.embeddings",
    stream: false,
    async run(spec) {
      await openai(spec).embeddings.create(
        { model: MODELS.embeddings, input: [spec.system, spec.prompt] },
        { headers: headersOf(spec), signal: spec.signal },
      );
    },
  },
];

/** The openai client on Gemini's OpenAI-compatible base (…/v1beta/openai): metered as Gemini. */
const geminiBase = (spec: CallSpec) =>
  new OpenAI({
    apiKey: "g-leak",
    baseURL: `${spec.baseUrl}/v1beta/openai`,
    fetch: spec.fetch,
    ...retries(spec),
  });
const geminiOpenAiCases: SdkCase[] = [
  {
    name: "openai@gemini/chat",
    endpoint: "openai.chat",
    stream: false,
    async run(spec) {
      await geminiBase(spec).chat.completions.create(
        {
          model: MODELS.gemini,
          messages: chatMessages(spec),
          ...(spec.maxOutput === undefined ? {} : { max_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
    },
  },
  {
    name: "openai@gemini/chat~",
    endpoint: "openai.chat",
    stream: true,
    async run(spec) {
      const stream = await geminiBase(spec).chat.completions.create(
        {
          model: MODELS.gemini,
          messages: chatMessages(spec),
          stream: true,
          ...(spec.maxOutput === undefined ? {} : { max_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
      await drain(stream, spec, (c) => (c.choices[0]?.delta.content ?? "") !== "");
    },
  },
];

/** AzureOpenAI: deployment paths (`/openai/deployments/{model}/…?api-version=`); the deployment is priced as the model it names. */
const azureCases: SdkCase[] = [
  {
    name: "azure/chat",
    endpoint: "openai.chat",
    stream: false,
    async run(spec) {
      await azure(spec).chat.completions.create(
        {
          model: "leak-azure-chat",
          messages: chatMessages(spec),
          ...(spec.maxOutput === undefined ? {} : { max_completion_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
    },
  },
  {
    name: "azure/chat~",
    endpoint: "openai.chat",
    stream: true,
    async run(spec) {
      const stream = await azure(spec).chat.completions.create(
        {
          model: "leak-azure-chat",
          messages: chatMessages(spec),
          stream: true,
          ...(spec.maxOutput === undefined ? {} : { max_completion_tokens: spec.maxOutput }),
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
      await drain(stream, spec, (c) => (c.choices[0]?.delta.content ?? "") !== "");
    },
  },
  {
    name: "azure/embeddings",
    endpoint: "openai.embeddings",
    stream: false,
    async run(spec) {
      await azure(spec).embeddings.create(
        { model: "leak-azure-embed", input: [spec.system, spec.prompt] },
        { headers: headersOf(spec), signal: spec.signal },
      );
    },
  },
];

const anthropicCases: SdkCase[] = [
  {
    name: "anthropic/messages",
    endpoint: "anthropic.messages",
    stream: false,
    async run(spec) {
      await anthropic(spec).messages.create(
        {
          model: MODELS.claude,
          max_tokens: spec.maxOutput ?? 1024,
          system: spec.system,
          messages: [{ role: "user", content: spec.prompt }],
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
    },
  },
  {
    name: "anthropic/messages~",
    endpoint: "anthropic.messages",
    stream: true,
    async run(spec) {
      const stream = await anthropic(spec).messages.create(
        {
          model: MODELS.claude,
          max_tokens: spec.maxOutput ?? 1024,
          system: spec.system,
          messages: [{ role: "user", content: spec.prompt }],
          stream: true,
        },
        { headers: headersOf(spec), signal: spec.signal },
      );
      await drain(
        stream,
        spec,
        (e) =>
          e.type === "content_block_delta" && e.delta.type === "text_delta" && e.delta.text !== "",
      );
    },
  },
];

const AI_RETRIES = 1;

function aiText(
  name: string,
  endpoint: Endpoint,
  model: (spec: CallSpec) => LanguageModel,
): SdkCase[] {
  const common = (spec: CallSpec) => ({
    model: model(spec),
    system: spec.system,
    prompt: spec.prompt,
    headers: headersOf(spec),
    abortSignal: spec.signal,
    maxRetries: spec.maxRetries ?? AI_RETRIES,
    ...(spec.maxOutput === undefined ? {} : { maxOutputTokens: spec.maxOutput }),
  });
  return [
    {
      name: `ai/${name}`,
      endpoint,
      stream: false,
      async run(spec) {
        await generateText(common(spec));
      },
    },
    {
      name: `ai/${name}~`,
      endpoint,
      stream: true,
      async run(spec) {
        let failure: unknown;
        const result = streamText({
          ...common(spec),
          onError: ({ error }) => void (failure ??= error),
        });
        for await (const part of result.fullStream) {
          if (part.type === "start-step") spec.opened();
          else if (part.type === "text-delta" && part.text !== "") spec.delta();
          else if (part.type === "error") failure ??= part.error;
        }
        if (failure !== undefined) throw failure;
      },
    },
  ];
}

const aiGoogle = (spec: CallSpec) =>
  createGoogleGenerativeAI({
    apiKey: "g-leak",
    baseURL: `${spec.baseUrl}/v1beta`,
    fetch: spec.fetch,
  });
const aiOpenai = (spec: CallSpec) =>
  createOpenAI({ apiKey: "sk-leak", baseURL: `${spec.baseUrl}/v1`, fetch: spec.fetch });
const aiCases: SdkCase[] = [
  ...aiText("openai.chat", "openai.chat", (spec) => aiOpenai(spec).chat(MODELS.chat)),
  ...aiText("openai.responses", "openai.responses", (spec) =>
    aiOpenai(spec).responses(MODELS.responses),
  ),
  ...aiText("openai.completion", "openai.completions", (spec) =>
    aiOpenai(spec).completion(MODELS.completions),
  ),
  {
    name: "ai/openai.embed",
    endpoint: "openai.embeddings",
    stream: false,
    async run(spec) {
      await embed({
        model: aiOpenai(spec).embedding(MODELS.embeddings),
        value: `${spec.system} ${spec.prompt}`,
        headers: headersOf(spec),
        abortSignal: spec.signal,
        maxRetries: spec.maxRetries ?? AI_RETRIES,
      });
    },
  },
  ...aiText("anthropic", "anthropic.messages", (spec) =>
    createAnthropic({ apiKey: "sk-ant-leak", baseURL: `${spec.baseUrl}/v1`, fetch: spec.fetch })(
      MODELS.claude,
    ),
  ),
  ...aiText("google", "google.generateContent", (spec) =>
    createGoogleGenerativeAI({
      apiKey: "g-leak",
      baseURL: `${spec.baseUrl}/v1beta`,
      fetch: spec.fetch,
    })(MODELS.gemini),
  ),
  {
    name: "ai/google.embed",
    endpoint: "google.embedContent",
    stream: false,
    async run(spec) {
      await embed({
        model: aiGoogle(spec).embedding(MODELS.geminiEmbed),
        value: `${spec.system} ${spec.prompt}`,
        headers: headersOf(spec),
        abortSignal: spec.signal,
        maxRetries: spec.maxRetries ?? AI_RETRIES,
      });
    },
  },
  {
    name: "ai/google.embedMany",
    endpoint: "google.embedContent",
    stream: false,
    async run(spec) {
      await embedMany({
        model: aiGoogle(spec).embedding(MODELS.geminiEmbed),
        values: [spec.system, spec.prompt],
        headers: headersOf(spec),
        abortSignal: spec.signal,
        maxRetries: spec.maxRetries ?? AI_RETRIES,
      });
    },
  },
];

export const SDK_CASES = {
  openai: openaiCases,
  anthropic: anthropicCases,
  ai: aiCases,
  azure: azureCases,
  geminiOpenAi: geminiOpenAiCases,
} as const;
