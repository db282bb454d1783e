/**
 * Reads what a provider's answer reports (usage, model, id, finish reasons) with the meter's own
 * adapter for that endpoint (`usageFromJson` for a whole answer, `observe` for each streamed
 * event), so the rule of what a provider reported stays in one place. A streamed answer passes
 * through an AnswerReader untouched on its way to the meter.
 */
import type { ProviderAdapter, StreamTally, TokenUsage } from "@allowance/meter";
import { factsOf, finishReasonsOf, type ResponseFacts } from "./genai.js";

/** The most of a JSON answer kept for reading its usage; a larger answer is passed on unread. */
const MAX_JSON_BYTES = 16 * 1024 * 1024;

/** A finish reason that is a string (OpenAI sends `"finish_reason":null` until the last chunk). */
const FINISH_REASON = /"(?:finish_reason|stop_reason|finishReason)"\s*:\s*"/;

/** A streamed answer (server-sent events, or Gemini's JSON array), read as it passes. */
export class AnswerReader {
  readonly facts: ResponseFacts = {};
  readonly #adapter: ProviderAdapter;
  readonly #tally: StreamTally = { usage: undefined, final: false };
  readonly #events: EventParser | undefined;
  #chunks: Uint8Array[] | undefined = [];
  #bytes = 0;
  #jsonUsage: TokenUsage | undefined;
  #first = true;

  constructor(adapter: ProviderAdapter, sse: boolean) {
    this.#adapter = adapter;
    this.#events = sse ? new EventParser() : undefined;
  }

  /** The usage read so far: a stream cut short reports what it reported before. */
  get usage(): TokenUsage | undefined {
    return this.#events === undefined ? this.#jsonUsage : this.#tally.usage;
  }

  /** A response whose body passes through this reader on its way to the meter. */
  observe(response: Response): Response {
    const body = (response.body as ReadableStream<Uint8Array>).pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform: (chunk, controller) => {
          controller.enqueue(chunk);
          this.#push(chunk);
        },
        flush: () => this.#end(),
      }),
    );
    const copy = new Response(body, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
    // The meter serves `url` on to its caller, as fetch gave it.
    Object.defineProperty(copy, "url", { value: response.url });
    return copy;
  }

  // Reading must never break the answer the meter reads: every fault here is swallowed.
  #push(chunk: Uint8Array): void {
    try {
      if (this.#events !== undefined) this.#events.push(chunk, this.#event);
      else if (this.#chunks !== undefined) {
        this.#bytes += chunk.byteLength;
        if (this.#bytes > MAX_JSON_BYTES) this.#chunks = undefined;
        else this.#chunks.push(chunk);
      }
    } catch {
      /* an unreadable answer: no usage from it */
    }
  }

  #end(): void {
    try {
      if (this.#events !== undefined) this.#events.end(this.#event);
      else if (this.#chunks !== undefined) this.#json(Buffer.concat(this.#chunks).toString("utf8"));
    } catch {
      /* an unreadable answer: no usage from it */
    }
    this.#chunks = undefined;
  }

  #json(text: string): void {
    this.#jsonUsage = readAnswer(this.#adapter, JSON.parse(text), this.facts);
  }

  readonly #event = (event: { readonly event: string; readonly data: string }): void => {
    this.#adapter.observe(event, this.#tally);
    // The first event names the model and the answer's id; the finish reasons come near the end.
    // Only events that may say either are parsed (the adapter looks before it parses too).
    const first = this.#first;
    if (first && event.data.startsWith("{")) this.#first = false;
    if (!first && !FINISH_REASON.test(event.data)) return;
    let value: unknown;
    try {
      value = JSON.parse(event.data);
    } catch {
      return;
    }
    if (first) factsOf(value, this.facts);
    finishReasonsOf(value, this.facts);
  };
}

/**
 * A whole answer, parsed: its facts into `facts`, its usage as the adapter reads it. An array is
 * Gemini's streamGenerateContent without alt=sse: answers, the usage on the last.
 */
export function readAnswer(
  adapter: ProviderAdapter,
  answer: unknown,
  facts: ResponseFacts,
): TokenUsage | undefined {
  let value = answer;
  if (Array.isArray(value)) {
    factsOf(value[0], facts);
    for (const item of value) finishReasonsOf(item, facts);
    value = value[value.length - 1];
  } else {
    factsOf(value, facts);
    finishReasonsOf(value, facts);
  }
  return adapter.usageFromJson(value);
}

/**
 * Server-sent events (WHATWG HTML §9.2.6), only the `event` and `data` fields: enough to hand the
 * adapter the events the meter's own parser hands it. Lines end in LF or CRLF.
 */
class EventParser {
  readonly #decoder = new TextDecoder();
  #buffer = "";
  #event = "";
  #data: string[] = [];

  push(chunk: Uint8Array, emit: (event: { event: string; data: string }) => void): void {
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let at = this.#buffer.indexOf("\n"); at >= 0; at = this.#buffer.indexOf("\n", start)) {
      const end = at > start && this.#buffer.charCodeAt(at - 1) === 13 ? at - 1 : at;
      this.#line(this.#buffer.slice(start, end), emit);
      start = at + 1;
    }
    if (start > 0) this.#buffer = this.#buffer.slice(start);
  }

  /** As the meter does, an event not closed by a blank line is still read at the end. */
  end(emit: (event: { event: string; data: string }) => void): void {
    const tail = (this.#buffer + this.#decoder.decode()).replace(/\r$/, "");
    this.#buffer = "";
    if (tail.length > 0) this.#line(tail, emit);
    this.#line("", emit);
  }

  #line(line: string, emit: (event: { event: string; data: string }) => void): void {
    if (line === "") {
      if (this.#data.length > 0)
        emit({ event: this.#event || "message", data: this.#data.join("\n") });
      this.#event = "";
      this.#data = [];
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
  }
}
