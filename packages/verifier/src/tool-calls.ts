/**
 * The tool calls a request makes, checked against the verified grant (spec/presentation.md §8.4):
 * each tool against the effective `tools` (spec/format.md §6.3), its arguments against the
 * effective `args` (spec/arguments.md §6). The body is read as strict JSON (spec/arguments.md §6.4),
 * so a member named twice cannot be checked with one value and run with the other.
 */
import {
  checkArguments,
  type ArgumentConstraint,
  type ArgumentDenialReason,
} from "@allowance/core";
import { TOOL_NAME, parseStrictJson, toolAllowed } from "@allowance/core/format";
import { shown } from "./inputs.js";
import type { VerifiedChain } from "./verify.js";

/**
 * The refusals of a request's tool calls, after its credential verified. They are not token error
 * codes: the grant is valid, and the request asks for more than it allows, or cannot be read.
 */
export const TOOL_CALL_CODES = Object.freeze([
  "TOOL_NOT_ALLOWED",
  "ARGUMENT_NOT_ALLOWED",
  "MALFORMED_TOOL_CALL",
  "BODY_TOO_LARGE",
  "UNSUPPORTED_CONTENT_ENCODING",
] as const);
export type ToolCallCode = (typeof TOOL_CALL_CODES)[number];

/** One tool call: the tool's name and its arguments as parsed JSON (absent: none given, `{}`). */
export interface ToolCall {
  readonly tool: string;
  readonly arguments?: unknown;
}

/** What the `toolCall` function learns of a request besides its body. */
export interface ToolCallRequest {
  readonly method: string;
  /** The path as the middleware checks it (spec/presentation.md §8.1). */
  readonly path: string;
  /** A request header by name, in any case; undefined when absent. */
  header(name: string): string | undefined;
}

/**
 * The `toolCall` option as a function: given the request and its body read as strict JSON
 * (undefined for an empty body), the request's tool calls: undefined or [] for none, one call, or
 * a list of them. It may be async. A `SyntaxError` thrown refuses the request as malformed (400
 * MALFORMED_TOOL_CALL); anything else thrown, or an answer of another shape, is a server error.
 */
export type ToolCallExtractor = (
  request: ToolCallRequest,
  body: unknown,
) => ToolCallAnswer | Promise<ToolCallAnswer>;
export type ToolCallAnswer = ToolCall | readonly ToolCall[] | undefined;

/** What the tool-call check reads of a request: each adapter gives its own (§8.4). */
export interface ToolCallSource {
  /** A request header by name, in any case; undefined when absent. */
  header(name: string): string | undefined;
  /**
   * The body's bytes; reading may stop once more than `maxBodyBytes` were read. Undefined when the
   * body cannot be had as bytes, which refuses the request (400).
   */
  body(): Uint8Array | undefined | Promise<Uint8Array | undefined>;
}

/** A refusal of §8.4, as data: the middleware turns it into a problem response. */
export interface ToolCallRefusal {
  readonly status: 400 | 403 | 413 | 415;
  readonly code: ToolCallCode;
  readonly detail: string;
  /** For 403: the link whose `tools` (or `args`) are in force, the last that states them. */
  readonly linkIndex: number | null;
  readonly linkId: string | null;
  /** The members of the problem body beside the usual ones. */
  readonly extra: ToolCallProblemMembers;
}

/** The problem body's members naming what was refused (TOOL_NOT_ALLOWED, ARGUMENT_NOT_ALLOWED). */
export interface ToolCallProblemMembers {
  readonly tool?: string;
  readonly pattern?: string | null;
  readonly reason?: ArgumentDenialReason;
  readonly argument?: string | null;
  readonly constraint?: ArgumentConstraint | null;
}

/**
 * The `{ "tool": …, "arguments": … }` body (the `toolCall: "json"` option): an object with a string
 * `tool` and, optionally, `arguments`, and no other member (one the application might read instead
 * is refused, not ignored). An empty body makes no tool call: the application, reading the same
 * body, runs none.
 */
export function jsonToolCall(_request: ToolCallRequest, body: unknown): ToolCall | undefined {
  if (body === undefined) return undefined;
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw new SyntaxError('the body is not a tool call: expected {"tool": …, "arguments": …}');
  const record = body as Record<string, unknown>;
  for (const key of Object.keys(record))
    if (key !== "tool" && key !== "arguments")
      throw new SyntaxError(
        `the body has a member ${shownName(key)} beside "tool" and "arguments"`,
      );
  const { tool } = record;
  if (typeof tool !== "string") throw new SyntaxError('the body names no tool (a string "tool")');
  return Object.hasOwn(record, "arguments") ? { tool, arguments: record["arguments"] } : { tool };
}

/** The extractor's answer, checked: a wrong shape is a server error, never an unchecked call. */
function callsOf(found: unknown): readonly ToolCall[] {
  if (found === undefined) return [];
  const list: readonly unknown[] = Array.isArray(found) ? found : [found];
  return Object.freeze(
    list.map((call) => {
      if (
        typeof call !== "object" ||
        call === null ||
        Array.isArray(call) ||
        typeof (call as { tool?: unknown }).tool !== "string" ||
        Object.keys(call).some((key) => key !== "tool" && key !== "arguments")
      )
        throw new TypeError(
          `"toolCall" must answer undefined, a { tool, arguments } object or a list of them, got ${shown(found)}`,
        );
      const { tool } = call as ToolCall;
      return Object.freeze(
        Object.hasOwn(call, "arguments")
          ? { tool, arguments: (call as ToolCall).arguments }
          : { tool },
      );
    }),
  );
}

/** Whether a Content-Encoding header names an encoding (anything but none or `identity`). */
export function encoded(header: string | readonly string[] | null | undefined): boolean {
  if (header === undefined || header === null) return false;
  const values = typeof header === "string" ? [header] : header;
  return values.some((value) => !/^\s*(?:identity)?\s*$/i.test(value));
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Reads the request's tool calls: the body (not encoded, at most `maxBodyBytes`, strict JSON),
 * then the extractor. The calls, or the refusal of a request whose calls cannot be read.
 */
export async function readToolCalls(
  source: ToolCallSource,
  extractor: ToolCallExtractor,
  method: string,
  path: string,
  maxBodyBytes: number,
): Promise<{ readonly calls: readonly ToolCall[] } | ToolCallRefusal> {
  // Bytes that are not what the application decodes would be checked in vain.
  if (encoded(source.header("content-encoding")))
    return unread(
      415,
      "UNSUPPORTED_CONTENT_ENCODING",
      "a body with a Content-Encoding is not checked",
    );
  const bytes: unknown = await source.body();
  if (bytes === undefined)
    return unread(400, "MALFORMED_TOOL_CALL", "the request body could not be read as bytes");
  if (!(bytes instanceof Uint8Array))
    throw new TypeError(`a ToolCallSource's body() must give bytes, got ${shown(bytes)}`);
  if (bytes.length > maxBodyBytes)
    return unread(413, "BODY_TOO_LARGE", `the request body is over ${maxBodyBytes} bytes`);
  let message: unknown;
  if (bytes.length > 0) {
    let text: string;
    try {
      text = strictUtf8.decode(bytes);
    } catch {
      return unread(400, "MALFORMED_TOOL_CALL", "the request body is not UTF-8");
    }
    const parsed = parseStrictJson(text);
    if (!parsed.ok)
      return unread(400, "MALFORMED_TOOL_CALL", `the request body is refused: ${parsed.message}`);
    message = parsed.value;
  }
  const header = (name: string) => source.header(name);
  let found: unknown;
  try {
    found = await extractor({ method, path, header }, message);
  } catch (error) {
    if (error instanceof SyntaxError) return unread(400, "MALFORMED_TOOL_CALL", error.message);
    throw error;
  }
  return { calls: callsOf(found) };
}

function unread(status: 400 | 413 | 415, code: ToolCallCode, detail: string): ToolCallRefusal {
  return { status, code, detail, linkIndex: null, linkId: null, extra: {} };
}

/**
 * Every call, in order, against the chain's effective `tools` and `args`: undefined if all may
 * run, else the first refusal, which refuses the whole request. A name that is not a tool name
 * (spec/arguments.md §2) is refused whatever the grant: no grant can allow it, and an unrestricted
 * `tools` must not let it by.
 */
export function checkToolCalls(
  chain: VerifiedChain,
  calls: readonly ToolCall[],
): ToolCallRefusal | undefined {
  const { grant } = chain;
  for (const call of calls) {
    const { tool } = call;
    if (!TOOL_NAME.test(tool) || !toolAllowed(grant.tools, tool)) {
      const linkIndex = lastLinkStating(chain, "tools");
      return {
        status: 403,
        code: "TOOL_NOT_ALLOWED",
        detail: TOOL_NAME.test(tool)
          ? `${shownName(tool)} is not a tool this grant allows`
          : "the call names no valid tool",
        linkIndex,
        linkId: linkIndex === null ? null : (chain.linkIds[linkIndex] ?? null),
        extra: { tool },
      };
    }
    const denial = checkArguments(grant.args, tool, call.arguments);
    if (denial !== null) {
      const linkIndex = lastLinkStating(chain, "args");
      return {
        status: 403,
        code: "ARGUMENT_NOT_ALLOWED",
        detail: `${tool}: ${denial.message.length > 300 ? `${denial.message.slice(0, 300)}…` : denial.message}`,
        linkIndex,
        linkId: linkIndex === null ? null : (chain.linkIds[linkIndex] ?? null),
        extra: {
          tool,
          pattern: denial.pattern,
          reason: denial.reason,
          argument: denial.argument,
          constraint: denial.constraint,
        },
      };
    }
  }
  return undefined;
}

/** The link whose `tools` or `args` are in force: the last that states them (none: null). */
function lastLinkStating(chain: VerifiedChain, field: "tools" | "args"): number | null {
  for (let i = chain.links.length - 1; i >= 0; i--)
    if (chain.links[i]?.grant[field] !== undefined) return i;
  return null;
}

/** A name from the request in a message: JSON-quoted, cut to 100 characters. */
function shownName(name: string): string {
  return JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}…` : name);
}

/**
 * The bytes of a body stream, stopping once more than `max` were read (the caller refuses those);
 * none for no body.
 */
export async function readCapped(
  stream: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<Uint8Array> {
  if (stream === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.length;
    if (size > max) {
      // Not awaited: the copy is one branch of a tee, whose cancel settles only with the other's.
      reader.cancel().catch(() => undefined);
      break;
    }
  }
  return joined(chunks, size);
}

/**
 * The bytes of a Node stream (Fastify's payload), stopping once more than `max` were read. The
 * rest is then let flow and dropped, as Node drops an unread body, not destroyed: the response
 * still has to be written on its socket.
 */
export function readNodeCapped(stream: NodeJS.ReadableStream, max: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    const stop = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("error", onError);
    };
    const onData = (chunk: Uint8Array | string) => {
      const bytes = typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk;
      chunks.push(bytes);
      size += bytes.length;
      if (size > max) {
        stop();
        stream.resume();
        resolve(joined(chunks, size));
      }
    };
    const onEnd = () => {
      stop();
      resolve(joined(chunks, size));
    };
    const onError = (error: unknown) => {
      stop();
      reject(error as Error);
    };
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.on("error", onError);
  });
}

function joined(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
