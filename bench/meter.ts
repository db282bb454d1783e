/**
 * Per-call overhead of `wrapFetch` against a loopback mock of the OpenAI chat completions API, side
 * by side with plain `fetch`: a JSON answer, and a streamed answer (12 server-sent events) read to
 * the end. The request body is 1 KB. The metered calls do everything a real one does: parse, bound
 * the input (hard mode), price, breaker and loop check (each request's text differs, so none is a
 * repeat), reserve on a 3-link chain in the memory ledger, write the limits on the request, read the
 * usage, commit.
 *
 * The same four cases run again over an in-process stub instead of the socket: the meter's own CPU
 * cost per call, which the loopback figures hide under the network's noise on a loaded machine.
 * And the JSON cases once more with `loop: false` (the documented option): the share of the loop
 * check, the fingerprint of the messages and its window. Every case reads the answer with
 * `arrayBuffer()`, which charges the meter's parse of a JSON answer to the meter; one pair reads it
 * with `json()` instead, as the OpenAI and Anthropic SDKs do, which the meter serves from the value
 * it parsed (the plain case parses it itself).
 *
 * Rounds alternate the ten cases in one process: each round runs CALLS calls of each case, in
 * blocks of BLOCK calls with the cases interleaved (the order reversed every other block), so that
 * a neighbour's load that comes and goes within a round falls on every case alike. A case's figure
 * is the median of its rounds, and the overhead is the median of the per-round differences from its
 * plain case, with their spread (min–max) across rounds.
 *
 * Alone: node --conditions=@allowance/source --import tsx bench/meter.ts
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { Enforcer, MemoryLedger } from "@allowance/enforcer";
import { wrapFetch } from "@allowance/meter";
import { median, table, type BenchFigure } from "./harness.js";
import { benchChain } from "./ledger.js";

export interface MeterOverhead {
  readonly kind:
    | "json"
    | "stream"
    | "json, in-process"
    | "stream, in-process"
    | "json, loop: false"
    | "json, in-process, loop: false"
    | "json, read with json()";
  /** Median over rounds of (metered − plain) µs per call. */
  readonly micros: number;
  readonly min: number;
  readonly max: number;
}

export interface MeterBench {
  readonly figures: readonly BenchFigure[];
  /** Per figure: the index of the plain case it is compared with (undefined for a plain case). */
  readonly bases: readonly (number | undefined)[];
  /** Metered ÷ plain, per answer kind. */
  readonly ratios: { readonly json: number; readonly stream: number };
  readonly overhead: readonly MeterOverhead[];
  readonly rounds: number;
  readonly callsPerRound: number;
  readonly requestBytes: number;
}

const ROUNDS = 9;
const CALLS = 1_000;
const BLOCK = 100;

const usage = {
  prompt_tokens: 1234,
  completion_tokens: 56,
  total_tokens: 1290,
  prompt_tokens_details: { cached_tokens: 0 },
};
/** The mock's JSON answer (bench/meter-ab.ts serves the same). */
export const completion = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 1_760_000_000,
  model: "gpt-4o-mini",
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: "Hello there.", refusal: null },
      logprobs: null,
      finish_reason: "stop",
    },
  ],
  usage,
});
const chunk = (delta: object, finish: string | null) =>
  `data: ${JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 1_760_000_000, model: "gpt-4o-mini", choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null })}\n\n`;
const events = [
  chunk({ role: "assistant", content: "" }, null),
  ...Array.from({ length: 8 }, (_, i) => chunk({ content: `word${i} ` }, null)),
  chunk({}, "stop"),
  `data: ${JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 1_760_000_000, model: "gpt-4o-mini", choices: [], usage })}\n\n`,
  "data: [DONE]\n\n",
];
// About 1 KB of prompt: a system message and a user message of mixed text.
const SYSTEM =
  "You are a terse assistant. Answer in one short sentence, without preamble or apology. ".repeat(
    4,
  );
const USER =
  "Summarise the following note for a colleague: the quarterly figures are in, revenue is up, costs are flat, and the new region opened on time; ".repeat(
    4,
  );

/** The bench's request: about 1 KB, made unique by `sequence` (a repeat would be a loop). */
export function requestBody(sequence: number, stream = false): string {
  return JSON.stringify({
    model: "gpt-4o-mini",
    messages: [
      { role: "system", content: SYSTEM },
      { role: "user", content: `${USER} #${sequence}` },
    ],
    max_tokens: 256,
    ...(stream ? { stream: true } : {}),
  });
}

export async function benchMeter(): Promise<MeterBench> {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString("utf8")));
    req.on("end", () => {
      if (body.includes('"stream":true')) {
        res.writeHead(200, { "content-type": "text/event-stream" });
        for (const e of events) res.write(e);
        res.end();
      } else {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(completion);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`;
  try {
    const { chain } = await benchChain();
    const metered = wrapFetch(fetch, {
      enforcer: new Enforcer({ ledger: new MemoryLedger() }),
      chain,
    });
    let n = 0;
    const bodyOf = (stream: boolean) => requestBody(n++, stream);
    const requestBytes = Buffer.byteLength(bodyOf(true));
    const call = async (f: typeof fetch, stream: boolean, json = false) => {
      const response = await f(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: bodyOf(stream),
      });
      if (json) await response.json();
      else await response.arrayBuffer();
    };
    // The same answers from an in-process stub instead of the socket: the meter's own cost, without the network's noise.
    const encoded = events.map((e) => new TextEncoder().encode(e));
    const stub: typeof fetch = async (_input, init) => {
      if (typeof init?.body !== "string" || !init.body.includes('"stream":true'))
        return new Response(completion, { headers: { "content-type": "application/json" } });
      let i = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          pull: (c) => (i < encoded.length ? c.enqueue(encoded[i++] as Uint8Array) : c.close()),
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    };
    const stubMetered = wrapFetch(stub, {
      enforcer: new Enforcer({ ledger: new MemoryLedger() }),
      chain,
    });
    // The same meter with `loop: false`: what the loop check (fingerprint and window) costs.
    const noLoops = wrapFetch(fetch, {
      enforcer: new Enforcer({ ledger: new MemoryLedger() }),
      chain,
      loop: false,
    });
    const stubNoLoops = wrapFetch(stub, {
      enforcer: new Enforcer({ ledger: new MemoryLedger() }),
      chain,
      loop: false,
    });
    // `base`: the plain case a metered one is compared with.
    const cases: readonly { name: string; run: () => Promise<void>; base?: number }[] = [
      { name: "fetch, JSON answer", run: () => call(fetch, false) },
      { name: "wrapFetch, JSON answer", run: () => call(metered, false), base: 0 },
      { name: "fetch, streamed answer (12 events)", run: () => call(fetch, true) },
      {
        name: "wrapFetch, streamed answer (12 events)",
        run: () => call(metered, true),
        base: 2,
      },
      { name: "in-process stub, JSON answer", run: () => call(stub, false) },
      {
        name: "wrapFetch over the stub, JSON answer",
        run: () => call(stubMetered, false),
        base: 4,
      },
      { name: "in-process stub, streamed answer", run: () => call(stub, true) },
      {
        name: "wrapFetch over the stub, streamed answer",
        run: () => call(stubMetered, true),
        base: 6,
      },
      {
        name: "wrapFetch, loop: false, JSON answer",
        run: () => call(noLoops, false),
        base: 0,
      },
      {
        name: "wrapFetch over the stub, loop: false, JSON",
        run: () => call(stubNoLoops, false),
        base: 4,
      },
      { name: "fetch, JSON answer read with json()", run: () => call(fetch, false, true) },
      {
        name: "wrapFetch, JSON answer read with json()",
        run: () => call(metered, false, true),
        base: 10,
      },
    ];
    for (const c of cases) for (let i = 0; i < 200; i++) await c.run();
    const samples = cases.map(() => [] as number[]);
    const all = cases.map((_, i) => i);
    for (let r = 0; r < ROUNDS; r++) {
      const millis = cases.map(() => 0);
      for (let b = 0; b < CALLS / BLOCK; b++) {
        const order = (r + b) % 2 === 0 ? all : [...all].reverse();
        for (const i of order) {
          const c = cases[i] as (typeof cases)[number];
          const start = performance.now();
          for (let k = 0; k < BLOCK; k++) await c.run();
          millis[i] = (millis[i] as number) + performance.now() - start;
        }
      }
      millis.forEach((ms, i) => (samples[i] as number[]).push((ms * 1000) / CALLS));
    }
    const figures = cases.map((c, i) => ({ name: c.name, micros: median(samples[i] as number[]) }));
    const overheadOf = (
      kind: MeterOverhead["kind"],
      plain: number,
      meter: number,
    ): MeterOverhead => {
      const diffs = (samples[meter] as number[]).map(
        (m, r) => m - (samples[plain] as number[])[r]!,
      );
      return { kind, micros: median(diffs), min: Math.min(...diffs), max: Math.max(...diffs) };
    };
    const micros = (i: number) => (figures[i] as BenchFigure).micros;
    // In the order of the metered cases (meterReport lists them so).
    return {
      figures,
      bases: cases.map((c) => c.base),
      ratios: { json: micros(1) / micros(0), stream: micros(3) / micros(2) },
      overhead: [
        overheadOf("json", 0, 1),
        overheadOf("stream", 2, 3),
        overheadOf("json, in-process", 4, 5),
        overheadOf("stream, in-process", 6, 7),
        overheadOf("json, loop: false", 0, 8),
        overheadOf("json, in-process, loop: false", 4, 9),
        overheadOf("json, read with json()", 10, 11),
      ],
      rounds: ROUNDS,
      callsPerRound: CALLS,
      requestBytes,
    };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export function meterReport(result: MeterBench): string {
  // Overheads are listed in the order of the metered figures.
  let next = 0;
  const rows = result.figures.map((f, i) => {
    const base = result.bases[i];
    if (base === undefined) return [f.name, f.micros.toFixed(0), "", "", "1.00×"];
    const overhead = result.overhead[next++] as MeterOverhead;
    return [
      f.name,
      f.micros.toFixed(0),
      `+${overhead.micros.toFixed(0)}`,
      `${overhead.min.toFixed(0)} … ${overhead.max.toFixed(0)}`,
      `${(f.micros / (result.figures[base] as BenchFigure).micros).toFixed(2)}×`,
    ];
  });
  return `${table(["per call on loopback", "µs (median)", "overhead µs", "spread µs", "ratio"], rows)}\n(${result.rounds} rounds × ${result.callsPerRound} calls per case, interleaved in blocks of ${BLOCK}; ${result.requestBytes}-byte request body; "loop: false" is the same meter without loop detection; answers read with arrayBuffer() unless named)`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(meterReport(await benchMeter()));
}
