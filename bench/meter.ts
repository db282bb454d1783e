/**
 * Per-call overhead of `wrapFetch` against a loopback mock of the OpenAI chat completions API, side
 * by side with plain `fetch` (alternating rounds, medians): a JSON answer, and a streamed answer
 * (12 server-sent events) read to the end. The metered calls do everything a real one does: parse
 * and estimate, price, breaker and loop check (each request's text differs, so none is a repeat),
 * reserve on a 3-link chain in the memory ledger, read the usage, commit.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Enforcer, MemoryLedger } from "@allowance/enforcer";
import { wrapFetch } from "@allowance/enforcer/meter";
import { measureAsync, table, type BenchFigure } from "./harness.js";
import { benchChain } from "./ledger.js";

export interface MeterBench {
  readonly figures: readonly BenchFigure[];
  /** Metered ÷ plain, per answer kind. */
  readonly ratios: { readonly json: number; readonly stream: number };
}

const usage = { prompt_tokens: 1234, completion_tokens: 56, total_tokens: 1290, prompt_tokens_details: { cached_tokens: 0 } };
const completion = JSON.stringify({
  id: "chatcmpl-bench",
  object: "chat.completion",
  created: 1_760_000_000,
  model: "gpt-4o-mini",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello there.", refusal: null }, logprobs: null, finish_reason: "stop" }],
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
    const metered = wrapFetch(fetch, { enforcer: new Enforcer({ ledger: new MemoryLedger() }), chain });
    let n = 0;
    const call = async (f: typeof fetch, stream: boolean) => {
      const body = JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "system", content: "You are terse." }, { role: "user", content: `Say hello #${n++}` }], max_tokens: 256, ...(stream ? { stream: true } : {}) });
      const response = await f(url, { method: "POST", headers: { "content-type": "application/json" }, body });
      await response.arrayBuffer();
    };
    const figures = await measureAsync(
      [
        { name: "fetch, JSON answer", run: () => call(fetch, false) },
        { name: "wrapFetch, JSON answer", run: () => call(metered, false) },
        { name: "fetch, streamed answer (12 events)", run: () => call(fetch, true) },
        { name: "wrapFetch, streamed answer (12 events)", run: () => call(metered, true) },
      ],
      { rounds: 9, minRoundMillis: 100 },
    );
    const micros = (i: number) => (figures[i] as BenchFigure).micros;
    return { figures, ratios: { json: micros(1) / micros(0), stream: micros(3) / micros(2) } };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export function meterReport(result: MeterBench): string {
  const rows = result.figures.map((f, i) => {
    const base = result.figures[i - (i % 2)] as BenchFigure;
    return [f.name, f.micros.toFixed(0), i % 2 === 0 ? "" : `+${(f.micros - base.micros).toFixed(0)}`, i % 2 === 0 ? "1.00×" : `${(f.micros / base.micros).toFixed(2)}×`];
  });
  return table(["per call on loopback", "µs (median)", "overhead µs", "ratio"], rows);
}
