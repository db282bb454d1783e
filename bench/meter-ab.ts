/**
 * This checkout's meter against another checkout's, side by side in one process: plain `fetch`
 * and each meter alternated in blocks of BLOCK calls, CYCLES cycles in random order, on the same
 * loopback mock and 1 KB request as bench/meter.ts. Each figure is the median of the paired
 * differences (a block of a meter minus the plain block of the same cycle), with the medians of
 * the first and second half of the cycles: when those two disagree, the machine's load moved.
 *
 *   node --conditions=@allowance/source --import tsx bench/meter-ab.ts ../other-checkout
 *
 * The other checkout needs its dependencies installed (`npm run setup` there). READ=json reads
 * answers with json() (the OpenAI and Anthropic SDKs), READ=text with text() (the AI SDK); the
 * default reads bytes. CYCLES (default 500) and BLOCK (default 25) set the size of the run.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { completion, requestBody } from "./meter.js";

const here = resolve(fileURLToPath(import.meta.url), "../..");
const trees = [here, ...process.argv.slice(2).map((p) => resolve(p))];
const read = process.env.READ ?? "bytes";
if (read !== "bytes" && read !== "json" && read !== "text")
  throw new RangeError(`READ expected bytes, json or text, got ${read}`);
const CYCLES = Number(process.env.CYCLES ?? 500);
const BLOCK = Number(process.env.BLOCK ?? 25);
for (const [name, n] of [
  ["CYCLES", CYCLES],
  ["BLOCK", BLOCK],
] as const)
  if (!Number.isSafeInteger(n) || n < 2) throw new RangeError(`${name} expected an integer ≥ 2`);

const server = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(completion);
  });
});
await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`;

let n = 0;

type Fetch = typeof globalThis.fetch;
const variants: { name: string; fetch: Fetch }[] = [{ name: "fetch", fetch }];
for (const [i, tree] of trees.entries()) {
  // Each checkout's own sources, so that two versions of the meter run side by side.
  const { Enforcer, MemoryLedger } = await import(`${tree}/packages/enforcer/src/index.ts`);
  const { wrapFetch } = await import(`${tree}/packages/meter/src/index.ts`);
  const { benchChain } = await import(`${tree}/bench/ledger.ts`);
  const { chain } = await benchChain();
  const label = i === 0 ? "this checkout" : tree;
  for (const loop of [true, false])
    variants.push({
      name: `${label}${loop ? "" : ", loop: false"}`,
      fetch: wrapFetch(fetch, {
        enforcer: new Enforcer({ ledger: new MemoryLedger() }),
        chain,
        ...(loop ? {} : { loop: false }),
      }),
    });
}

const call = async (f: Fetch) => {
  const response = await f(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: requestBody(n++),
  });
  if (read === "json") await response.json();
  else if (read === "text") await response.text();
  else await response.arrayBuffer();
};

for (let i = 0; i < 1_000; i++) for (const v of variants) await call(v.fetch);
const samples = variants.map(() => [] as number[]);
for (let c = 0; c < CYCLES; c++) {
  const order = variants.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  for (const i of order) {
    const start = performance.now();
    for (let k = 0; k < BLOCK; k++) await call((variants[i] as (typeof variants)[number]).fetch);
    (samples[i] as number[]).push(((performance.now() - start) * 1000) / BLOCK);
  }
}
server.close();

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
const plain = samples[0] as number[];
console.log(`plain fetch: ${median(plain).toFixed(1)} µs per call; answers read as ${read}`);
for (let i = 1; i < variants.length; i++) {
  const diffs = (samples[i] as number[]).map((x, c) => x - (plain[c] as number));
  const half = diffs.length >> 1;
  console.log(
    `${(variants[i] as (typeof variants)[number]).name}: +${median(diffs).toFixed(1)} µs ` +
      `(halves +${median(diffs.slice(0, half)).toFixed(1)} / +${median(diffs.slice(half)).toFixed(1)})`,
  );
}
