/**
 * A stand-in for an LLM provider on 127.0.0.1: it answers the OpenAI Responses and Chat
 * Completions APIs (non-streamed) the way a model with tools would, but by a fixed rule, so every
 * run of the example prints the same thing:
 *
 * - offered `search_web` and no result yet: call it with the user's request as the query;
 * - offered `send_email`: call it once per e-mail address on the first line of the user's
 *   request, in order, with the second line as the subject and the rest as the body;
 * - otherwise: answer with a summary of what the tools returned.
 *
 * Every answer reports usage (more input tokens as the conversation grows), which the meter
 * charges to the calling agent's grant.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One tool call the rule decides, or a final answer. */
type Turn =
  | { readonly call: { readonly name: string; readonly arguments: Record<string, string> } }
  | { readonly answer: string };

/** What the rule reads from a request, whichever API it came by. */
interface Conversation {
  readonly user: string;
  readonly tools: readonly string[];
  /** The outputs of the tool calls made so far, in order. */
  readonly results: readonly string[];
}

export interface MockProvider {
  /** The base URL to give an OpenAI client: `http://127.0.0.1:<port>/v1`. */
  readonly baseURL: string;
  /** The requests answered, by API path (`/v1/responses`, `/v1/chat/completions`). */
  readonly calls: readonly string[];
  close(): Promise<void>;
}

const CREATED = 1_760_000_000;
const ADDRESS = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;

/** The model's rule (module comment). */
function nextTurn({ user, tools, results }: Conversation): Turn {
  if (tools.includes("search_web") && results.length === 0)
    return { call: { name: "search_web", arguments: { query: user.split("\n", 1)[0] ?? "" } } };
  if (tools.includes("send_email")) {
    const [recipients = "", subject = "", ...body] = user.split("\n");
    const to = recipients.match(ADDRESS) ?? [];
    const next = to[results.length];
    if (next !== undefined)
      return {
        call: { name: "send_email", arguments: { to: next, subject, body: body.join("\n") } },
      };
    return { answer: to.map((address, i) => `${address}: ${summary(results[i])}`).join("\n") };
  }
  return { answer: results.map(summary).join("\n") };
}

/** A tool's output in a line or a list: search results, a mail sent, or the text as it came. */
function summary(result: string | undefined): string {
  let value: unknown;
  try {
    value = JSON.parse(result ?? "");
  } catch {
    return result ?? "";
  }
  if (isRecord(value) && Array.isArray(value.results))
    return value.results
      .map((r: unknown) => (isRecord(r) ? `- ${String(r.title)} <${String(r.url)}>` : ""))
      .join("\n");
  if (isRecord(value) && value.sent === true) return `sent (${String(value.id)})`;
  return result ?? "";
}

/** Usage grows with the conversation, as a real model's input does. */
function usage(conversation: Conversation): { input: number; output: number } {
  return { input: 900 + 300 * conversation.results.length, output: 60 };
}

export async function startMockProvider(): Promise<MockProvider> {
  const calls: string[] = [];
  const server: Server = createServer((req, res) => {
    readJson(req).then(
      (body) => {
        const path = (req.url ?? "/").split("?", 1)[0] as string;
        if (req.method !== "POST" || body === undefined)
          return reply(res, 400, error("bad request"));
        if (body.stream === true) return reply(res, 400, error("this mock does not stream"));
        const model = typeof body.model === "string" ? body.model : "unknown";
        if (path === "/v1/responses") {
          calls.push(path);
          const conversation = fromResponses(body);
          return reply(res, 200, responsesAnswer(model, conversation, calls.length));
        }
        if (path === "/v1/chat/completions") {
          calls.push(path);
          const conversation = fromChat(body);
          return reply(res, 200, chatAnswer(model, conversation, calls.length));
        }
        return reply(res, 404, error(`no such API: ${path}`));
      },
      () => reply(res, 400, error("unreadable body")),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    calls,
    close: () => close(server),
  };
}

// ---------------------------------------------------------------------------------------------
// The Responses API

function fromResponses(body: Record<string, unknown>): Conversation {
  const input = Array.isArray(body.input) ? (body.input as unknown[]) : [body.input];
  const user: string[] = [];
  const results: string[] = [];
  for (const item of input) {
    if (typeof item === "string") user.push(item);
    if (!isRecord(item)) continue;
    if (item.role === "user") user.push(text(item.content));
    if (item.type === "function_call_output") results.push(text(item.output));
  }
  const tools = Array.isArray(body.tools) ? (body.tools as unknown[]) : [];
  return {
    user: user.join("\n"),
    tools: tools.flatMap((t) => (isRecord(t) && typeof t.name === "string" ? [t.name] : [])),
    results,
  };
}

function responsesAnswer(model: string, conversation: Conversation, n: number) {
  const turn = nextTurn(conversation);
  const { input, output } = usage(conversation);
  return {
    id: `resp_${n}`,
    object: "response",
    created_at: CREATED,
    status: "completed",
    error: null,
    incomplete_details: null,
    model,
    output: [
      "call" in turn
        ? {
            type: "function_call",
            id: `fc_${n}`,
            call_id: `call_${n}`,
            name: turn.call.name,
            arguments: JSON.stringify(turn.call.arguments),
            status: "completed",
          }
        : {
            type: "message",
            id: `msg_${n}`,
            status: "completed",
            role: "assistant",
            content: [{ type: "output_text", text: turn.answer, annotations: [] }],
          },
    ],
    parallel_tool_calls: false,
    tool_choice: "auto",
    tools: [],
    usage: {
      input_tokens: input,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: output,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: input + output,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The Chat Completions API

function fromChat(body: Record<string, unknown>): Conversation {
  const messages = Array.isArray(body.messages) ? (body.messages as unknown[]) : [];
  const user: string[] = [];
  const results: string[] = [];
  for (const message of messages) {
    if (!isRecord(message)) continue;
    if (message.role === "user") user.push(text(message.content));
    if (message.role === "tool") results.push(text(message.content));
  }
  const tools = Array.isArray(body.tools) ? (body.tools as unknown[]) : [];
  return {
    user: user.join("\n"),
    tools: tools.flatMap((t) =>
      isRecord(t) && isRecord(t.function) && typeof t.function.name === "string"
        ? [t.function.name]
        : [],
    ),
    results,
  };
}

function chatAnswer(model: string, conversation: Conversation, n: number) {
  const turn = nextTurn(conversation);
  const { input, output } = usage(conversation);
  return {
    id: `chatcmpl_${n}`,
    object: "chat.completion",
    created: CREATED,
    model,
    choices: [
      {
        index: 0,
        message:
          "call" in turn
            ? {
                role: "assistant",
                content: null,
                refusal: null,
                tool_calls: [
                  {
                    id: `call_${n}`,
                    type: "function",
                    function: {
                      name: turn.call.name,
                      arguments: JSON.stringify(turn.call.arguments),
                    },
                  },
                ],
              }
            : { role: "assistant", content: turn.answer, refusal: null },
        logprobs: null,
        finish_reason: "call" in turn ? "tool_calls" : "stop",
      },
    ],
    usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
  };
}

// ---------------------------------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The text of a message's content: a string, or the text parts of a list. */
function text(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((part: unknown) => (isRecord(part) && typeof part.text === "string" ? part.text : ""))
    .join("");
}

function error(message: string) {
  return { error: { message, type: "invalid_request_error", param: null, code: null } };
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const value: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  return isRecord(value) ? value : undefined;
}

function reply(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

export function close(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.closeAllConnections();
    server.close((error) => (error ? reject(error) : resolve()));
  });
}
