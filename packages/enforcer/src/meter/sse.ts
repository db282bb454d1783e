/**
 * An incremental parser for server-sent events (WHATWG HTML §9.2.6, "event stream interpretation"),
 * fed the same byte chunks the consumer receives. It only observes: the bytes are never changed.
 * Lines end in LF or CRLF (lone CR line endings are not used by the providers metered here).
 */
export interface SseEvent {
  /** The `event:` field; "message" when absent. */
  readonly event: string;
  /** The `data:` lines joined with LF. */
  readonly data: string;
}

export class SseParser {
  readonly #decoder = new TextDecoder();
  #buffer = "";
  #event = "";
  #data: string[] = [];

  /** Decodes a chunk and calls `emit` for every event it completes. */
  push(chunk: Uint8Array, emit: (event: SseEvent) => void): void {
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let newline = this.#buffer.indexOf("\n"); newline >= 0; newline = this.#buffer.indexOf("\n", start)) {
      const end = newline > start && this.#buffer.charCodeAt(newline - 1) === 13 ? newline - 1 : newline;
      this.#line(this.#buffer.slice(start, end), emit);
      start = newline + 1;
    }
    if (start > 0) this.#buffer = this.#buffer.slice(start);
  }

  /**
   * At the end of the stream: an event not closed by a blank line is still emitted. The spec
   * discards it; metering reads it anyway, since a usage report is worth more than the rule.
   */
  end(emit: (event: SseEvent) => void): void {
    this.#buffer += this.#decoder.decode();
    if (this.#buffer.length > 0) this.#line(this.#buffer.replace(/\r$/, ""), emit);
    this.#buffer = "";
    this.#line("", emit);
  }

  #line(line: string, emit: (event: SseEvent) => void): void {
    if (line.length === 0) {
      if (this.#data.length > 0) emit({ event: this.#event || "message", data: this.#data.join("\n") });
      this.#event = "";
      this.#data = [];
      return;
    }
    if (line.charCodeAt(0) === 58) return; // ":" starts a comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
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
        else if (c === 92) this.#escaped = true; // backslash
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
