/**
 * A loopback provider that answers like the OpenAI, Anthropic and Gemini APIs and bills like them:
 * for every request it keeps what a provider would charge — the input tokens it counts from the
 * prompt, plus the output tokens it actually delivered (a provider bills an abandoned stream up to
 * where it stopped, and never past the request's maximum output). The leak suite compares these
 * bills with what the meter charged.
 *
 * Input tokens are counted by the mock, within the meter's documented hard bound
 * (docs/metering.md "Bounds": UTF-8 bytes of the prompt's strings, plus framing per message and per
 * request): "typical" counts ceil(bytes / 4) + 3 per message + 3; "worst" counts one token per byte
 * (what a byte-level BPE can reach on text it has never seen) + 4 per message + 3.
 *
 * Each request names its caller in `x-leak-agent` and its SDK call in `x-leak-call`; a plan per
 * call (`plan`) scripts how the answer goes wrong.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { LoopbackServer } from "../support/http.js";

export type Endpoint =
  | "openai.chat"
  | "openai.responses"
  | "openai.completions"
  | "openai.embeddings"
  | "anthropic.messages"
  | "google.generateContent"
  | "google.embedContent";

/**
 * How an answer ends. `abort`: the client goes away at `at` deltas (the mock stops there and waits);
 * `cut`: the mock destroys the socket once the client has `at` deltas; `malformed-before`: a chunk
 * that is not JSON after `at` deltas, before any closing usage, then the end; `malformed-after`: the
 * same after the closing usage; `5xx`: a server error (not billed); `no-usage`: no usage anywhere.
 */
export type Outcome =
  "complete" | "abort" | "cut" | "malformed-before" | "malformed-after" | "5xx" | "no-usage";

export interface Plan {
  readonly outcome: Outcome;
  /** Output tokens the model would produce if nothing stopped it. */
  readonly naturalTokens: number;
  /** Tokens per streamed delta, cycled. */
  readonly deltaTokens: readonly number[];
  /** UTF-8 bytes per output token (1 to 4: no token is shorter than a byte). */
  readonly bytesPerToken: number;
  /** For abort, cut and malformed-before: after how many deltas (clamped to the deltas there are). */
  readonly at: number;
  /** Bytes per socket write (events split across writes), 0: one write per event. */
  readonly writeBytes: number;
}

export const COMPLETE: Plan = {
  outcome: "complete",
  naturalTokens: 40,
  deltaTokens: [5],
  bytesPerToken: 4,
  at: 0,
  writeBytes: 0,
};

/**
 * "typical" and "worst" stay within the documented bound; "broken" breaks its premise (a tokenizer
 * that makes more tokens than UTF-8 bytes, which docs/metering.md lists under "Not bounded"): four
 * tokens per byte of input (the hold prices input at the dearest input rate, which absorbs two),
 * and two output tokens per delivered byte.
 */
export type Tokenizer = "typical" | "worst" | "broken";

/** One request as the provider bills it. */
export interface Bill {
  readonly agent: string;
  readonly call: string;
  readonly endpoint: Endpoint;
  readonly model: string;
  readonly stream: boolean;
  readonly outcome: Outcome;
  readonly inputTokens: number;
  /** Output tokens delivered so far; final once `done`. */
  outputTokens: number;
  /** Streamed events that delivered output (each carries at least one token). */
  outputEvents: number;
  /** The request's maximum output (after the meter's rewrite), or undefined when it set none. */
  readonly maxOutput: number | undefined;
  /** The answer is over (ended, cut, or the client went away). */
  done: boolean;
  /** Not billed (5xx). */
  readonly free: boolean;
}

export interface Price {
  readonly inputPerMTok: number;
  readonly outputPerMTok: number;
}

/**
 * What the meter can prove of a bill. A streamed answer that went past its maximum output and never
 * sent its usage (aborted, cut, or without a usage report) shows its output only as delivered text
 * (at least one byte per token) and events (at least one token each). docs/metering.md ("Not
 * bounded"): with more output events than the maximum, the provider provably went past it and every
 * delivered byte is charged, which covers the whole bill; with fewer, the charge stops at the hold,
 * so only the maximum is provable. Every other bill is provable in full.
 */
export function visibleBill(bill: Bill): Pick<Bill, "inputTokens" | "outputTokens" | "free"> {
  const unreported =
    bill.stream &&
    (bill.outcome === "abort" ||
      bill.outcome === "no-usage" ||
      bill.outcome === "cut" ||
      bill.outcome === "malformed-before");
  if (
    !unreported ||
    bill.maxOutput === undefined ||
    bill.outputTokens <= bill.maxOutput ||
    bill.outputEvents > bill.maxOutput
  )
    return bill;
  return { inputTokens: bill.inputTokens, outputTokens: bill.maxOutput, free: bill.free };
}

/** Exact bill in millionths of a micro-dollar (no rounding: the meter rounds up, a provider sums exactly). */
export function exactCost(
  bill: Pick<Bill, "inputTokens" | "outputTokens" | "free">,
  price: Price,
): bigint {
  if (bill.free) return 0n;
  return (
    BigInt(bill.inputTokens) * BigInt(price.inputPerMTok) +
    BigInt(bill.outputTokens) * BigInt(price.outputPerMTok)
  );
}

export interface Pending {
  /** Resolves, with the deltas written, when the answer has written what it writes before waiting (abort, cut). */
  readonly reached: Promise<number>;
  /** For cut: destroy now. */
  cut(): void;
}

export class BillingProvider extends LoopbackServer {
  readonly bills: Bill[] = [];
  /** Requests received per call id (every attempt, retries included). */
  readonly received = new Map<string, number>();
  readonly plans = new Map<string, Plan>();
  tokenizer: Tokenizer = "typical";
  /** Bill past the request's maximum output (a bound the docs name as unavailable). */
  ignoreMaxOutput = false;
  readonly #pending = new Map<string, Pending>();
  readonly #waiters = new Map<string, (p: Pending) => void>();

  /** The pending answer of a call (its latest attempt), once the mock reached its waiting point. */
  pending(call: string): Promise<Pending> {
    const p = this.#pending.get(call);
    if (p !== undefined) return p.reached.then(() => p);
    return new Promise((resolve) =>
      this.#waiters.set(call, (q) => void q.reached.then(() => resolve(q))),
    );
  }

  #register(call: string, pending: Pending): void {
    this.#pending.set(call, pending);
    const waiter = this.#waiters.get(call);
    if (waiter !== undefined) {
      this.#waiters.delete(call);
      waiter(pending);
    }
  }

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://127.0.0.1");
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
      } catch {
        /* {} */
      }
      const agent = header(req, "x-leak-agent") ?? "unknown";
      const call = header(req, "x-leak-call") ?? "unknown";
      this.received.set(call, (this.received.get(call) ?? 0) + 1);
      const route = routeOf(url, req.method ?? "GET");
      if (route === undefined)
        return json(res, 404, {
          error: {
            message: `no route ${req.method} ${url.pathname}`,
            type: "invalid_request_error",
          },
        });
      const plan = this.plans.get(call) ?? COMPLETE;
      const model = route.model ?? (typeof body.model === "string" ? body.model : "unknown");
      if (plan.outcome === "5xx") {
        this.bills.push({
          agent,
          call,
          endpoint: route.endpoint,
          model,
          stream: route.stream(body),
          outcome: "5xx",
          inputTokens: 0,
          outputTokens: 0,
          outputEvents: 0,
          maxOutput: undefined,
          done: true,
          free: true,
        });
        return serverError(res, route.endpoint);
      }
      const maxOutput = maxOutputOf(route.endpoint, body);
      const inputTokens = countInput(route.endpoint, body, this.tokenizer);
      const produced =
        route.endpoint === "openai.embeddings" || route.endpoint === "google.embedContent"
          ? 0
          : this.ignoreMaxOutput || maxOutput === undefined
            ? plan.naturalTokens
            : Math.min(plan.naturalTokens, maxOutput);
      const stream = route.stream(body);
      const bill: Bill = {
        agent,
        call,
        endpoint: route.endpoint,
        model,
        stream,
        outcome: plan.outcome,
        inputTokens,
        outputTokens: 0,
        outputEvents: 0,
        maxOutput,
        done: false,
        free: false,
      };
      this.bills.push(bill);
      const deltas = splitTokens(produced, plan.deltaTokens);
      const answer: Answer = {
        model,
        inputTokens,
        deltas,
        bytesPerToken: this.tokenizer === "broken" ? 0.5 : plan.bytesPerToken,
        body,
        usage: plan.outcome !== "no-usage",
      };
      if (stream) return this.#stream(res, req.socket, route.endpoint, answer, plan, bill, call);
      return this.#json(res, req.socket, route.endpoint, answer, plan, bill, call);
    });
  }

  #json(
    res: ServerResponse,
    socket: Socket,
    endpoint: Endpoint,
    a: Answer,
    plan: Plan,
    bill: Bill,
    call: string,
  ): void {
    // A non-streamed answer was generated in full before the first byte: it is billed in full.
    bill.outputTokens = a.deltas.reduce((x, y) => x + y, 0);
    const usageFirst = plan.outcome === "malformed-after";
    const text = JSON.stringify(jsonAnswer(endpoint, a, usageFirst));
    if (plan.outcome === "complete" || plan.outcome === "no-usage") {
      bill.done = true;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(text);
      return;
    }
    if (plan.outcome === "malformed-before" || plan.outcome === "malformed-after") {
      // Cut before the usage (it is the last key) or after it (the first key), then garbage.
      const usageAt = text.indexOf('"usage');
      const keep = usageFirst ? Math.max(usageAt + 1, text.length - 20) : Math.max(1, usageAt - 1);
      bill.done = true;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(`${text.slice(0, keep)}\u0000<html>502 bad gateway`);
      return;
    }
    // abort, cut: half of the body, then wait for the client to go away, or destroy the socket.
    let resolve!: (deltas: number) => void;
    const reached = new Promise<number>((r) => (resolve = r));
    this.#register(call, { reached, cut: () => socket.destroy() });
    res.on("close", () => (bill.done = true));
    res.writeHead(200, { "content-type": "application/json" });
    res.write(text.slice(0, Math.floor(text.length / 2)), () => {
      resolve(0);
      if (plan.outcome === "cut") setImmediate(() => socket.destroy());
    });
  }

  #stream(
    res: ServerResponse,
    socket: Socket,
    endpoint: Endpoint,
    a: Answer,
    plan: Plan,
    bill: Bill,
    call: string,
  ): void {
    const events = streamEvents(endpoint, a);
    const stopAt = Math.min(plan.at, a.deltas.length);
    let resolve!: (deltas: number) => void;
    const reached = new Promise<number>((r) => (resolve = r));
    if (plan.outcome === "abort" || plan.outcome === "cut")
      this.#register(call, { reached, cut: () => socket.destroy() });
    res.on("close", () => (bill.done = true));
    res.writeHead(200, {
      "content-type":
        endpoint === "google.generateContent"
          ? "text/event-stream"
          : "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
    });
    res.flushHeaders();
    // The events to send, in order, and where to stop.
    const out: StreamEvent[] = [];
    let deltasSent = 0;
    for (const e of events) {
      if (
        plan.outcome === "abort" ||
        plan.outcome === "cut" ||
        plan.outcome === "malformed-before"
      ) {
        if (e.delta !== undefined && deltasSent >= stopAt) break;
        if (e.closing === true && deltasSent >= stopAt) break;
      }
      if (e.delta !== undefined) deltasSent++;
      if (plan.outcome === "malformed-after" && e.afterUsage === true)
        out.push({ text: MALFORMED[endpoint] });
      out.push(e);
    }
    if (plan.outcome === "malformed-before") out.push({ text: MALFORMED[endpoint] });
    const writes: { bytes: Buffer; tokens: number }[] = [];
    for (const e of out) {
      const bytes = Buffer.from(e.text, "utf8");
      const size = plan.writeBytes > 0 ? plan.writeBytes : bytes.length;
      for (let i = 0; i < bytes.length; i += size) {
        const last = i + size >= bytes.length;
        // The tokens of a delta count once its last byte is written.
        writes.push({ bytes: bytes.subarray(i, i + size), tokens: last ? (e.delta ?? 0) : 0 });
      }
    }
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (i >= writes.length) {
        if (plan.outcome === "abort" || plan.outcome === "cut") {
          // Everything up to the stopping point is written: wait for the client (abort) or the test (cut).
          resolve(deltasSent);
          return;
        }
        bill.done = true;
        res.end();
        return;
      }
      const w = writes[i++] as { bytes: Buffer; tokens: number };
      bill.outputTokens += w.tokens;
      if (w.tokens > 0) bill.outputEvents++;
      res.write(w.bytes, () => setImmediate(next));
    };
    next();
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === "string" ? v : undefined;
}

interface Route {
  readonly endpoint: Endpoint;
  readonly model?: string;
  stream(body: Record<string, unknown>): boolean;
}

const bodyStream = (body: Record<string, unknown>) => body.stream === true;

function routeOf(url: URL, method: string): Route | undefined {
  if (method !== "POST") return undefined;
  const path = url.pathname;
  // Azure OpenAI: the deployment in the path stands for the model; the APIs are OpenAI's.
  const azure = /\/openai\/deployments\/([^/]+)\/(chat\/completions|completions|embeddings)$/.exec(
    path,
  );
  if (azure !== null) {
    const model = decodeURIComponent(azure[1] as string);
    const endpoint =
      azure[2] === "chat/completions"
        ? "openai.chat"
        : azure[2] === "completions"
          ? "openai.completions"
          : "openai.embeddings";
    return { endpoint, model, stream: endpoint === "openai.embeddings" ? () => false : bodyStream };
  }
  // Gemini's OpenAI-compatible base: …/v1beta/openai/chat/completions.
  if (path.endsWith("/v1/chat/completions") || path.endsWith("/openai/chat/completions"))
    return { endpoint: "openai.chat", stream: bodyStream };
  if (path.endsWith("/v1/responses")) return { endpoint: "openai.responses", stream: bodyStream };
  if (path.endsWith("/v1/completions"))
    return { endpoint: "openai.completions", stream: bodyStream };
  if (path.endsWith("/v1/embeddings"))
    return { endpoint: "openai.embeddings", stream: () => false };
  if (path.endsWith("/v1/messages")) return { endpoint: "anthropic.messages", stream: bodyStream };
  const embed = /\/models\/([^/:]+):(embedContent|batchEmbedContents)$/.exec(path);
  if (embed !== null)
    return { endpoint: "google.embedContent", model: embed[1] as string, stream: () => false };
  const gemini = /\/models\/([^/:]+):(generateContent|streamGenerateContent)$/.exec(path);
  if (gemini !== null) {
    const streamed = gemini[2] === "streamGenerateContent";
    return {
      endpoint: "google.generateContent",
      model: gemini[1] as string,
      stream: () => streamed,
    };
  }
  return undefined;
}

const count = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;

/** The request's maximum output, as each provider reads it (legacy completions default to 16). */
function maxOutputOf(endpoint: Endpoint, body: Record<string, unknown>): number | undefined {
  switch (endpoint) {
    case "openai.chat":
      return count(body.max_completion_tokens) ?? count(body.max_tokens);
    case "openai.responses":
      return count(body.max_output_tokens);
    case "openai.completions":
      return count(body.max_tokens) ?? 16;
    case "anthropic.messages":
      return count(body.max_tokens);
    case "google.generateContent": {
      const config = body.generationConfig as Record<string, unknown> | undefined;
      return count(config?.maxOutputTokens);
    }
    case "openai.embeddings":
    case "google.embedContent":
      return undefined;
  }
}

/** The prompt's text strings and its number of messages, per API. */
function promptOf(
  endpoint: Endpoint,
  body: Record<string, unknown>,
): { texts: string[]; messages: number } {
  const texts: string[] = [];
  const collect = (v: unknown): void => {
    if (typeof v === "string") texts.push(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v !== null && typeof v === "object") {
      for (const [k, x] of Object.entries(v))
        if (k === "text" || k === "content" || k === "input" || k === "parts") collect(x);
    }
  };
  const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);
  switch (endpoint) {
    case "openai.chat":
    case "anthropic.messages": {
      const messages = list(body.messages);
      messages.forEach(collect);
      const system = list(body.system);
      system.forEach((s) => (typeof s === "string" ? texts.push(s) : collect(s)));
      return { texts, messages: messages.length + system.length };
    }
    case "openai.responses": {
      const input = list(body.input);
      input.forEach((x) => (typeof x === "string" ? texts.push(x) : collect(x)));
      if (typeof body.instructions === "string") texts.push(body.instructions);
      return { texts, messages: input.length + (body.instructions === undefined ? 0 : 1) };
    }
    case "openai.completions":
    case "openai.embeddings": {
      const input = list(endpoint === "openai.embeddings" ? body.input : body.prompt);
      input.forEach((x) => typeof x === "string" && texts.push(x));
      return { texts, messages: input.length };
    }
    case "google.embedContent": {
      // embedContent: one `content`; batchEmbedContents: `requests[].content`.
      const contents = Array.isArray(body.requests)
        ? body.requests.map((r) => (r as Record<string, unknown>).content)
        : [body.content];
      contents.forEach(collect);
      return { texts, messages: contents.length };
    }
    case "google.generateContent": {
      const contents = list(body.contents);
      contents.forEach(collect);
      const system = body.systemInstruction;
      if (system !== undefined) collect(system);
      return { texts, messages: contents.length + (system === undefined ? 0 : 1) };
    }
  }
}

export function countInput(
  endpoint: Endpoint,
  body: Record<string, unknown>,
  tokenizer: Tokenizer,
): number {
  const { texts, messages } = promptOf(endpoint, body);
  if (tokenizer === "broken")
    return texts.reduce((n, t) => n + 4 * Buffer.byteLength(t, "utf8"), 0) + 4 * messages + 3;
  if (tokenizer === "worst")
    return texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0) + 4 * messages + 3;
  return (
    texts.reduce((n, t) => n + Math.ceil(Buffer.byteLength(t, "utf8") / 4), 0) + 3 * messages + 3
  );
}

/** Deltas of the given sizes, cycled; at least total / 200 tokens each, so a stream stays under ~200 events. */
function splitTokens(total: number, sizes: readonly number[]): number[] {
  const out: number[] = [];
  const least = Math.max(1, Math.ceil(total / 200));
  let left = total;
  for (let i = 0; left > 0; i++) {
    const n = Math.min(left, Math.max(least, sizes[i % sizes.length] ?? 1));
    out.push(n);
    left -= n;
  }
  return out;
}

/** Text of `tokens` tokens at `bytesPerToken` UTF-8 bytes each (0.5: two tokens per byte, past the premise). */
function textOf(tokens: number, bytesPerToken: number): string {
  if (bytesPerToken < 1) return "a".repeat(Math.ceil(tokens * bytesPerToken));
  const piece =
    bytesPerToken === 1 ? "a" : bytesPerToken === 2 ? "é" : bytesPerToken === 3 ? " ok" : " tok";
  return piece.repeat(tokens);
}

interface Answer {
  readonly model: string;
  readonly inputTokens: number;
  readonly deltas: readonly number[];
  readonly bytesPerToken: number;
  readonly body: Record<string, unknown>;
  readonly usage: boolean;
}

interface StreamEvent {
  readonly text: string;
  /** Output tokens this event delivers. */
  readonly delta?: number;
  /** The closing events (finish, usage): not sent when the stream stops early. */
  readonly closing?: boolean;
  /** A malformed-after chunk goes before this event (it comes after the full usage). */
  readonly afterUsage?: boolean;
}

const CREATED = 1_760_000_000;
const outputOf = (a: Answer) => a.deltas.reduce((x, y) => x + y, 0);
const fullText = (a: Answer) => a.deltas.map((n) => textOf(n, a.bytesPerToken)).join("");

function openaiUsage(a: Answer) {
  const out = outputOf(a);
  return {
    prompt_tokens: a.inputTokens,
    completion_tokens: out,
    total_tokens: a.inputTokens + out,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

function responsesUsage(a: Answer) {
  const out = outputOf(a);
  return {
    input_tokens: a.inputTokens,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens: out,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: a.inputTokens + out,
  };
}

function anthropicUsage(a: Answer, output: number) {
  return {
    input_tokens: a.inputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: output,
    service_tier: "standard",
  };
}

function geminiUsage(a: Answer, output: number) {
  return {
    promptTokenCount: a.inputTokens,
    candidatesTokenCount: output,
    totalTokenCount: a.inputTokens + output,
    promptTokensDetails: [{ modality: "TEXT", tokenCount: a.inputTokens }],
  };
}

function responseObject(a: Answer, status: "in_progress" | "completed", usage: boolean) {
  const done = status === "completed";
  return {
    id: "resp_leak",
    object: "response",
    created_at: CREATED,
    status,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: count(a.body.max_output_tokens) ?? null,
    model: a.model,
    output: done
      ? [
          {
            type: "message",
            id: "msg_leak",
            status: "completed",
            role: "assistant",
            content: [{ type: "output_text", text: fullText(a), annotations: [], logprobs: [] }],
          },
        ]
      : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    store: true,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
    top_p: 1,
    truncation: "disabled",
    metadata: {},
    usage: done && usage ? responsesUsage(a) : null,
  };
}

/** A JSON answer; the usage is the first key (`usageFirst`) or the last. */
function jsonAnswer(endpoint: Endpoint, a: Answer, usageFirst: boolean): unknown {
  const text = fullText(a);
  const out = outputOf(a);
  const place = (rest: Record<string, unknown>, usage: unknown) =>
    !a.usage ? rest : usageFirst ? { usage, ...rest } : { ...rest, usage };
  switch (endpoint) {
    case "openai.chat":
      return place(
        {
          id: "chatcmpl-leak",
          object: "chat.completion",
          created: CREATED,
          model: a.model,
          choices: [
            {
              index: 0,
              message: { role: "assistant", content: text, refusal: null, annotations: [] },
              logprobs: null,
              finish_reason: "stop",
            },
          ],
          service_tier: "default",
          system_fingerprint: "fp_leak",
        },
        openaiUsage(a),
      );
    case "openai.responses": {
      const { usage, ...rest } = responseObject(a, "completed", true);
      return place(rest, usage);
    }
    case "openai.completions":
      return place(
        {
          id: "cmpl-leak",
          object: "text_completion",
          created: CREATED,
          model: a.model,
          choices: [{ text, index: 0, logprobs: null, finish_reason: "length" }],
        },
        { prompt_tokens: a.inputTokens, completion_tokens: out, total_tokens: a.inputTokens + out },
      );
    case "openai.embeddings": {
      const inputs = Array.isArray(a.body.input) ? a.body.input.length : 1;
      const vector = [0.25, -0.5, 0.125, 1];
      const embedding =
        a.body.encoding_format === "base64"
          ? Buffer.from(new Float32Array(vector).buffer).toString("base64")
          : vector;
      return place(
        {
          object: "list",
          data: Array.from({ length: inputs }, (_, index) => ({
            object: "embedding",
            index,
            embedding,
          })),
          model: a.model,
        },
        { prompt_tokens: a.inputTokens, total_tokens: a.inputTokens },
      );
    }
    case "anthropic.messages":
      return place(
        {
          id: "msg_01Leak",
          type: "message",
          role: "assistant",
          model: a.model,
          content: [{ type: "text", text }],
          stop_reason: "end_turn",
          stop_sequence: null,
        },
        anthropicUsage(a, out),
      );
    case "google.embedContent": {
      // Gemini's embedding answers carry no usage at all: the meter must charge its bound.
      const values = [0.25, -0.5, 0.125, 1];
      return Array.isArray(a.body.requests)
        ? { embeddings: a.body.requests.map(() => ({ values })) }
        : { embedding: { values } };
    }
    case "google.generateContent": {
      const rest = {
        candidates: [
          { content: { parts: [{ text }], role: "model" }, finishReason: "STOP", index: 0 },
        ],
        modelVersion: a.model,
        responseId: "leak",
      };
      if (!a.usage) return rest;
      return usageFirst
        ? { usageMetadata: geminiUsage(a, out), ...rest }
        : { ...rest, usageMetadata: geminiUsage(a, out) };
    }
  }
}

const sse = (data: unknown, event?: string) =>
  `${event === undefined ? "" : `event: ${event}\n`}data: ${JSON.stringify(data)}\n\n`;

/** Not JSON where JSON is due: what a broken proxy or a provider bug sends. */
const MALFORMED: Record<Endpoint, string> = {
  "openai.chat": 'data: {"id":"chatcmpl-leak","choices":[{"delta":{"content":"x"\n\n',
  "openai.completions": 'data: {"id":"cmpl-leak","choices":[{"text":"x"\n\n',
  "openai.responses":
    'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":\n\n',
  "openai.embeddings": "",
  "google.embedContent": "",
  "anthropic.messages":
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":\n\n',
  "google.generateContent": 'data: {"candidates":[{"content":{"parts":[{"text":"x"\r\n\r\n',
};

function streamEvents(endpoint: Endpoint, a: Answer): StreamEvent[] {
  const out = outputOf(a);
  const deltas = a.deltas.map((n) => ({ n, text: textOf(n, a.bytesPerToken) }));
  switch (endpoint) {
    case "openai.chat": {
      const base = {
        id: "chatcmpl-leak",
        object: "chat.completion.chunk",
        created: CREATED,
        model: a.model,
        service_tier: "default",
        system_fingerprint: "fp_leak",
      };
      const options = a.body.stream_options as { include_usage?: unknown } | undefined;
      const usage = a.usage && options?.include_usage === true;
      const chunk = (delta: Record<string, unknown>, finish: string | null) => ({
        ...base,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        ...(usage ? { usage: null } : {}),
      });
      const events: StreamEvent[] = [
        {
          text: `data: ${JSON.stringify(chunk({ role: "assistant", content: "", refusal: null }, null))}\n\n`,
        },
      ];
      for (const d of deltas)
        events.push({
          text: `data: ${JSON.stringify(chunk({ content: d.text }, null))}\n\n`,
          delta: d.n,
        });
      events.push({ text: `data: ${JSON.stringify(chunk({}, "stop"))}\n\n`, closing: true });
      if (usage)
        events.push({
          text: `data: ${JSON.stringify({ ...base, choices: [], usage: openaiUsage(a) })}\n\n`,
          closing: true,
        });
      events.push({ text: "data: [DONE]\n\n", closing: true, afterUsage: true });
      return events;
    }
    case "openai.completions": {
      const base = { id: "cmpl-leak", object: "text_completion", created: CREATED, model: a.model };
      const options = a.body.stream_options as { include_usage?: unknown } | undefined;
      const usage = a.usage && options?.include_usage === true;
      const events: StreamEvent[] = deltas.map((d) => ({
        text: `data: ${JSON.stringify({ ...base, choices: [{ text: d.text, index: 0, logprobs: null, finish_reason: null }], ...(usage ? { usage: null } : {}) })}\n\n`,
        delta: d.n,
      }));
      events.push({
        text: `data: ${JSON.stringify({ ...base, choices: [{ text: "", index: 0, logprobs: null, finish_reason: "length" }], ...(usage ? { usage: null } : {}) })}\n\n`,
        closing: true,
      });
      if (usage)
        events.push({
          text: `data: ${JSON.stringify({ ...base, choices: [], usage: { prompt_tokens: a.inputTokens, completion_tokens: out, total_tokens: a.inputTokens + out } })}\n\n`,
          closing: true,
        });
      events.push({ text: "data: [DONE]\n\n", closing: true, afterUsage: true });
      return events;
    }
    case "openai.responses": {
      let seq = 0;
      const ev = (type: string, data: Record<string, unknown>) =>
        sse({ type, sequence_number: seq++, ...data }, type);
      const events: StreamEvent[] = [
        { text: ev("response.created", { response: responseObject(a, "in_progress", false) }) },
        { text: ev("response.in_progress", { response: responseObject(a, "in_progress", false) }) },
        {
          text: ev("response.output_item.added", {
            output_index: 0,
            item: {
              id: "msg_leak",
              type: "message",
              status: "in_progress",
              content: [],
              role: "assistant",
            },
          }),
        },
        {
          text: ev("response.content_part.added", {
            item_id: "msg_leak",
            output_index: 0,
            content_index: 0,
            part: { type: "output_text", annotations: [], text: "" },
          }),
        },
      ];
      for (const d of deltas)
        events.push({
          text: ev("response.output_text.delta", {
            item_id: "msg_leak",
            output_index: 0,
            content_index: 0,
            delta: d.text,
            logprobs: [],
          }),
          delta: d.n,
        });
      const text = fullText(a);
      events.push(
        {
          text: ev("response.output_text.done", {
            item_id: "msg_leak",
            output_index: 0,
            content_index: 0,
            text,
            logprobs: [],
          }),
          closing: true,
        },
        {
          text: ev("response.content_part.done", {
            item_id: "msg_leak",
            output_index: 0,
            content_index: 0,
            part: { type: "output_text", annotations: [], text },
          }),
          closing: true,
        },
        {
          text: ev("response.output_item.done", {
            output_index: 0,
            item: {
              id: "msg_leak",
              type: "message",
              status: "completed",
              role: "assistant",
              content: [{ type: "output_text", text, annotations: [], logprobs: [] }],
            },
          }),
          closing: true,
        },
        {
          text: ev("response.completed", { response: responseObject(a, "completed", a.usage) }),
          closing: true,
        },
      );
      // A trailing comment line, so that "after the usage" has a place in this API too.
      events.push({ text: ": end\n\n", closing: true, afterUsage: true });
      return events;
    }
    case "anthropic.messages": {
      const message = {
        id: "msg_01Leak",
        type: "message",
        role: "assistant",
        model: a.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
      };
      const events: StreamEvent[] = [
        {
          text: sse(
            {
              type: "message_start",
              message: a.usage ? { ...message, usage: anthropicUsage(a, 1) } : message,
            },
            "message_start",
          ),
        },
        {
          text: sse(
            { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
            "content_block_start",
          ),
        },
        { text: sse({ type: "ping" }, "ping") },
      ];
      for (const d of deltas)
        events.push({
          text: sse(
            { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: d.text } },
            "content_block_delta",
          ),
          delta: d.n,
        });
      events.push(
        {
          text: sse({ type: "content_block_stop", index: 0 }, "content_block_stop"),
          closing: true,
        },
        {
          text: sse(
            {
              type: "message_delta",
              delta: { stop_reason: "end_turn", stop_sequence: null },
              ...(a.usage ? { usage: { output_tokens: out } } : {}),
            },
            "message_delta",
          ),
          closing: true,
        },
        { text: sse({ type: "message_stop" }, "message_stop"), closing: true, afterUsage: true },
      );
      return events;
    }
    case "google.generateContent": {
      // Every chunk carries the usage so far (cumulative), the last one the full count and finishReason.
      const events: StreamEvent[] = [];
      let sofar = 0;
      deltas.forEach((d, i) => {
        sofar += d.n;
        const last = i === deltas.length - 1;
        const chunk = {
          candidates: [
            {
              content: { parts: [{ text: d.text }], role: "model" },
              index: 0,
              ...(last ? { finishReason: "STOP" } : {}),
            },
          ],
          ...(a.usage ? { usageMetadata: geminiUsage(a, sofar) } : {}),
          modelVersion: a.model,
          responseId: "leak",
        };
        events.push({ text: `data: ${JSON.stringify(chunk)}\r\n\r\n`, delta: d.n });
      });
      if (deltas.length === 0)
        events.push({
          text: `data: ${JSON.stringify({ candidates: [{ content: { parts: [{ text: "" }], role: "model" }, finishReason: "STOP", index: 0 }], ...(a.usage ? { usageMetadata: geminiUsage(a, 0) } : {}), modelVersion: a.model })}\r\n\r\n`,
          closing: true,
        });
      events.push({ text: ": end\r\n\r\n", closing: true, afterUsage: true });
      return events;
    }
    case "openai.embeddings":
    case "google.embedContent":
      return [];
  }
}

function json(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(value));
}

/** A 500 in the provider's own error shape; `retry-after-ms` keeps the SDKs' retries quick. */
function serverError(res: ServerResponse, endpoint: Endpoint): void {
  const headers = { "retry-after-ms": "5", "retry-after": "0" };
  if (endpoint === "anthropic.messages")
    return json(
      res,
      500,
      {
        type: "error",
        error: { type: "api_error", message: "Internal server error" },
        request_id: "req_leak",
      },
      headers,
    );
  if (endpoint === "google.generateContent" || endpoint === "google.embedContent")
    return json(
      res,
      500,
      { error: { code: 500, message: "Internal error encountered.", status: "INTERNAL" } },
      headers,
    );
  return json(
    res,
    500,
    {
      error: {
        message: "The server had an error while processing your request.",
        type: "server_error",
        param: null,
        code: null,
      },
    },
    headers,
  );
}
