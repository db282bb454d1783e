/**
 * An incremental parser for server-sent events (WHATWG HTML §9.2.6, "event stream interpretation"),
 * fed the same byte chunks the consumer receives. It only observes: the bytes are never changed.
 * Lines end in LF or CRLF (lone CR line endings are not used by the providers metered here).
 */
import { StringDecoder } from "node:string_decoder";
export interface SseEvent {
  /** The `event:` field; "message" when absent. */
  readonly event: string;
  /** The `data:` lines joined with LF. */
  readonly data: string;
}

export class SseParser {
  // StringDecoder rather than TextDecoder: the same UTF-8 across chunk boundaries, at a third of
  // the cost per byte on Node 20 (TextDecoder's streaming mode takes a slow path).
  readonly #decoder = new StringDecoder("utf8");
  #started = false;
  #buffer = "";
  #event = "";
  #data: string[] = [];

  /** Decodes a chunk and calls `emit` for every event it completes. */
  push(chunk: Uint8Array, emit: (event: SseEvent) => void): void {
    this.#append(this.#decoder.write(chunk));
    let start = 0;
    for (
      let newline = this.#buffer.indexOf("\n");
      newline >= 0;
      newline = this.#buffer.indexOf("\n", start)
    ) {
      const end =
        newline > start && this.#buffer.charCodeAt(newline - 1) === 13 ? newline - 1 : newline;
      this.#line(this.#buffer, start, end, emit);
      start = newline + 1;
    }
    if (start > 0) this.#buffer = this.#buffer.slice(start);
  }

  /** Text decoded; a byte order mark at the very start is dropped, as TextDecoder and the SSE spec do. */
  #append(text: string): void {
    if (!this.#started && text.length > 0) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.#buffer += text;
  }

  /**
   * At the end of the stream: an event not closed by a blank line is still emitted. The spec
   * discards it; metering reads it anyway, since a usage report is worth more than the rule.
   */
  end(emit: (event: SseEvent) => void): void {
    this.#append(this.#decoder.end());
    const tail = this.#buffer.replace(/\r$/, "");
    this.#buffer = "";
    if (tail.length > 0) this.#line(tail, 0, tail.length, emit);
    this.#line("", 0, 0, emit);
  }

  /** The line text.slice(start, end), read in place: only a field's value is copied. */
  #line(text: string, start: number, end: number, emit: (event: SseEvent) => void): void {
    if (end === start) {
      if (this.#data.length > 0)
        emit({
          event: this.#event || "message",
          data: this.#data.length === 1 ? (this.#data[0] as string) : this.#data.join("\n"),
        });
      this.#event = "";
      this.#data = [];
      return;
    }
    // Only "data" and "event" matter here; comments (":"), "id", "retry" and unknown fields are skipped.
    const field = text.startsWith("data", start)
      ? "data"
      : text.startsWith("event", start)
        ? "event"
        : undefined;
    if (field === undefined) return;
    let from = start + field.length;
    if (from < end) {
      if (text.charCodeAt(from) !== 58) return; // a longer, unknown field name
      from++;
      if (from < end && text.charCodeAt(from) === 32) from++;
    }
    const value = from >= end ? "" : text.slice(from, end);
    if (field === "data") this.#data.push(value);
    else this.#event = value;
  }
}

/**
 * The JSON-array stream Gemini's `streamGenerateContent` sends without `alt=sse`: `[{…},\r\n{…}]`
 * written piece by piece. Emits each top-level object of the array as an event's `data` (event
 * "message"), as soon as its closing brace arrives. Only observes, like SseParser.
 */
export class JsonArrayParser {
  readonly #decoder = new TextDecoder();
  #buffer = "";
  /** Scan position in #buffer, nesting depth (the array itself is 1), string state. */
  #at = 0;
  #depth = 0;
  #inString = false;
  #escaped = false;
  #start = -1;

  push(chunk: Uint8Array, emit: (event: SseEvent) => void): void {
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    this.#scan(emit);
  }

  end(emit: (event: SseEvent) => void): void {
    this.#buffer += this.#decoder.decode();
    this.#scan(emit);
  }

  #scan(emit: (event: SseEvent) => void): void {
    const b = this.#buffer;
    let i = this.#at;
    for (; i < b.length; i++) {
      const c = b.charCodeAt(i);
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (c === 92)
          this.#escaped = true; // backslash
        else if (c === 34) this.#inString = false;
        continue;
      }
      if (c === 34) this.#inString = true;
      else if (c === 123 || c === 91) {
        if (c === 123 && this.#depth === 1) this.#start = i;
        this.#depth++;
      } else if (c === 125 || c === 93) {
        this.#depth--;
        if (c === 125 && this.#depth === 1 && this.#start >= 0) {
          emit({ event: "message", data: b.slice(this.#start, i + 1) });
          this.#start = -1;
        }
      }
    }
    // Keep only the element being read.
    if (this.#start >= 0) {
      this.#buffer = b.slice(this.#start);
      this.#at = i - this.#start;
      this.#start = 0;
    } else {
      this.#buffer = "";
      this.#at = 0;
    }
  }
}
