/**
 * The leak matrix: every SDK case × every outcome, as fast-check properties (seeded, explicit
 * numRuns, no shrinking: a run is seconds of real HTTP) over prompts, maximum outputs, how long the
 * model would talk, delta sizes, bytes per token, the chunk at which the stream stops, and socket
 * write sizes. After each run the law of harness.ts is checked.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallSpec, SdkCase } from "./clients.js";
import { checkLaw, makeWorld, SEED, Tally, type World, type WorldOptions } from "./harness.js";
import { BillingProvider, type Outcome, type Plan, type Tokenizer } from "./provider.js";

export const OUTCOMES: readonly Outcome[] = [
  "complete",
  "abort",
  "cut",
  "malformed-before",
  "malformed-after",
  "5xx",
  "no-usage",
];

/**
 * Scenarios whose meter feature has not landed, by `case outcome` (or `case *`): they are not run,
 * and the suite prints them. The coordinator decides; nothing here is hidden as passing.
 */
export const PENDING: ReadonlySet<string> = new Set<string>([]);

export interface CallParams {
  readonly agent: number;
  readonly system: string;
  readonly prompt: string;
  readonly maxOutput: number | undefined;
  readonly plan: Plan;
}

const piece = fc.constantFrom(
  "hello ",
  "budget ",
  "please summarise ",
  "ünïcode ✓ ",
  "日本語 ",
  "🙂 ",
  "x",
  "\n",
  "naïve café ",
);
const text = fc.array(piece, { minLength: 1, maxLength: 40 }).map((a) => a.join(""));

export function planArb(outcome: Outcome, naturalMax = 6000): fc.Arbitrary<Plan> {
  return fc.record({
    outcome: fc.constant(outcome),
    naturalTokens: fc.integer({ min: 0, max: naturalMax }),
    deltaTokens: fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 4 }),
    bytesPerToken: fc.integer({ min: 1, max: 4 }),
    at: fc.integer({ min: 0, max: 40 }),
    writeBytes: fc.constantFrom(0, 0, 7, 61),
  });
}

export function callArb(
  outcome: Outcome | fc.Arbitrary<Outcome>,
  agents: number,
  naturalMax = 6000,
): fc.Arbitrary<CallParams> {
  const outcomes = typeof outcome === "string" ? fc.constant(outcome) : outcome;
  return fc.record({
    agent: fc.integer({ min: 0, max: agents - 1 }),
    system: text,
    prompt: text,
    maxOutput: fc.option(fc.integer({ min: 1, max: 1500 }), { nil: undefined }),
    plan: outcomes.chain((o) => planArb(o, naturalMax)),
  });
}

/** Runs per scenario (LEAK_RUNS overrides it, to explore further). */
const DEFAULT_RUNS = Number(process.env.LEAK_RUNS ?? 2);

/** The cases whose cut JSON answers the SDK retries once (each attempt billed, each charged). */
const RETRIED_CUTS: ReadonlySet<string> = new Set(["openai/chat", "anthropic/messages"]);

/** fc.assert, with the law's own message (the figures) in the error, not only in its cause. */
export async function assertRuns<T>(
  property: fc.IAsyncProperty<T>,
  params: fc.Parameters<T>,
): Promise<void> {
  try {
    await fc.assert(property, params);
  } catch (error) {
    if (error instanceof Error && error.cause instanceof Error)
      error.message = `${error.cause.message.split(": expected [")[0]}\n\n${error.message}`;
    throw error;
  }
}

let calls = 0;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the SDKs threw, by case, outcome and message (LEAK_ERRORS=1 prints it). */
export const thrown = new Map<string, number>();

/** Calls the 15 s guard had to abort (the plan did not play out as written): printed with the run counts. */
export let guarded = 0;

/** One SDK call under `params`, stopped as its plan says. `ok`: the SDK returned; else what it threw. */
export async function sdkCall(
  world: World,
  kase: SdkCase,
  params: CallParams,
  extra: { maxRetries?: number; promptRepeat?: number } = {},
): Promise<{ ok: boolean; error?: unknown; call: string }> {
  const agent = world.agents[params.agent] ?? (world.agents[0] as World["agents"][number]);
  const call = `${world.id}-c${++calls}`;
  const provider = world.provider;
  // A stream is cut after its first delta at the earliest: the AI SDK (chat and legacy completion
  // streams, ai 6.0.333) waits forever on a body cut before that, with or without the meter.
  const plan =
    params.plan.outcome === "cut" && kase.stream
      ? {
          ...params.plan,
          at: Math.max(1, params.plan.at),
          naturalTokens: Math.max(1, params.plan.naturalTokens),
        }
      : params.plan;
  provider.plans.set(call, plan);
  const controller = new AbortController();
  const outcome = params.plan.outcome;
  let opened = false;
  let seen = 0;
  let stopAt: number | undefined;
  let cut: (() => void) | undefined;
  let fired = false;
  const fire = () => {
    if (fired) return;
    fired = true;
    if (outcome === "abort") controller.abort();
    else cut?.();
  };
  const check = () => {
    if (opened && stopAt !== undefined && seen >= stopAt) fire();
  };
  if (outcome === "abort" || (outcome === "cut" && kase.stream)) {
    void provider.pending(call).then(async (pending) => {
      cut = pending.cut;
      const deltas = await pending.reached;
      if (!kase.stream) {
        // A JSON answer half sent: let it reach the client, then go away.
        await sleep(20);
        fire();
        return;
      }
      stopAt = deltas;
      check();
    });
  }
  // Nothing may hang the suite: a call still running after 15 s is aborted (and the law still applies).
  const guard = setTimeout(() => {
    guarded++;
    if (process.env.LEAK_DEBUG !== undefined)
      console.log(
        "guard",
        kase.name,
        JSON.stringify({ opened, seen, stopAt, plan: params.plan, max: params.maxOutput }),
      );
    controller.abort();
  }, 15_000);
  const markOpened = () => {
    opened = true;
    check();
  };
  // Open once the answer's headers reached the SDK (an SDK may wait for a first chunk before it says so).
  const fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const response = await agent.fetch(input, init);
    if (response.ok) markOpened();
    return response;
  };
  const spec: CallSpec = {
    baseUrl: provider.url,
    fetch: fetch as typeof globalThis.fetch,
    agent: agent.name,
    call,
    system: params.system,
    prompt: `${params.prompt.repeat(extra.promptRepeat ?? 1)} #${call}`,
    maxOutput: params.maxOutput,
    signal: controller.signal,
    // A cut JSON answer is retried after a back-off (openai, anthropic: ~0.5 s, then ~1 s; the AI
    // SDK: 2 s, then 4 s). One retry (a second billed attempt) where RETRIED_CUTS says, none elsewhere: a quick suite.
    ...(outcome === "cut" && !kase.stream
      ? { maxRetries: RETRIED_CUTS.has(kase.name) ? 1 : 0 }
      : {}),
    ...(extra.maxRetries === undefined ? {} : { maxRetries: extra.maxRetries }),
    opened: markOpened,
    delta() {
      seen++;
      check();
    },
  };
  try {
    await kase.run(spec);
    return { ok: true, call };
  } catch (error) {
    const message =
      `${kase.name} ${outcome}: ${error instanceof Error ? `${error.constructor.name} ${error.message}` : String(error)}`
        .replace(/\s+/g, " ")
        .slice(0, 120);
    thrown.set(message, (thrown.get(message) ?? 0) + 1);
    return { ok: false, error, call };
  } finally {
    clearTimeout(guard);
  }
}

export interface MatrixOptions {
  readonly title: string;
  readonly cases: readonly SdkCase[];
  readonly outcomes?: readonly Outcome[];
  readonly numRuns?: number;
  readonly callsPerRun?: number;
  readonly world?: Omit<WorldOptions, "parentUsd" | "agentUsd">;
  /** Concurrent calls near the cap, per case. Default true. */
  readonly concurrent?: boolean;
  /**
   * The provider bills past the request's maximum output (a bound the docs name as unavailable):
   * spent may pass a cap only by reported overruns, and a call billed past its maximum must show
   * up as an overrun.
   */
  readonly ignoreMaxOutput?: boolean;
  /** Bill with a tokenizer that breaks the byte premise (docs/metering.md "Not bounded"); same law as ignoreMaxOutput. */
  readonly brokenTokenizer?: boolean;
  /** Judge on what the meter can prove of each bill (harness.ts LawOptions.provableOnly); said in each test's title. */
  readonly provableOnly?: boolean;
  /** Each prompt repeated this many times (long prompts: the input part of a bill outweighs the output). Default 1. */
  readonly promptRepeat?: number;
}

/** Shared by every file: a provider per file, the tally printed at the end. */
export function leakMatrix(options: MatrixOptions): void {
  const beyond = options.ignoreMaxOutput === true || options.brokenTokenizer === true;
  const repeat = options.promptRepeat === undefined ? {} : { promptRepeat: options.promptRepeat };
  const provider = new BillingProvider();
  const tally = new Tally();
  const pending: string[] = [];
  beforeAll(async () => {
    await provider.start();
  });
  afterAll(async () => {
    await provider.close();
    tally.print(options.title);
    if (guarded > 0)
      console.log(`leak suite, ${options.title}: ${guarded} call(s) aborted by the 15 s guard`);
    if (process.env.LEAK_ERRORS !== undefined && thrown.size > 0)
      console.log([...thrown].map(([m, n]) => `${n}× ${m}`).join("\n"));
    if (pending.length > 0)
      console.log(`leak suite, ${options.title}: PENDING (not run): ${pending.join(", ")}`);
  });
  const numRuns = options.numRuns ?? DEFAULT_RUNS;
  const callsPerRun = options.callsPerRun ?? 3;
  const outcomes = options.outcomes ?? OUTCOMES;
  for (const kase of options.cases) {
    describe(kase.name, () => {
      for (const outcome of outcomes) {
        // Embedding answers have no output to malform after their usage (Gemini's have no usage at all).
        if (
          outcome === "malformed-after" &&
          (kase.endpoint === "openai.embeddings" || kase.endpoint === "google.embedContent")
        )
          continue;
        const key = `${kase.name} ${outcome}`;
        if (PENDING.has(key) || PENDING.has(`${kase.name} *`)) {
          pending.push(key);
          continue;
        }
        const billed =
          options.provableOnly === true
            ? "spent ≥ the provable part of the bill (docs/metering.md: the rest is not seen)"
            : "spent ≥ billed";
        const law = beyond
          ? `${billed}, over a cap only by reported overruns`
          : `${billed} and ≤ cap on every link`;
        it(`${outcome}: ${law}`, async () => {
          await assertRuns(
            fc.asyncProperty(
              fc.array(callArb(outcome, 2), { minLength: callsPerRun, maxLength: callsPerRun }),
              fc.constantFrom<Tokenizer>("typical", "worst"),
              async (params, tokenizer) => {
                provider.tokenizer = options.brokenTokenizer === true ? "broken" : tokenizer;
                provider.ignoreMaxOutput = options.ignoreMaxOutput === true;
                const world = await makeWorld(provider, {
                  parentUsd: 60_000,
                  agentUsd: [40_000, 40_000],
                  ...options.world,
                });
                try {
                  let errors = 0;
                  for (const p of params) if (!(await sdkCall(world, kase, p, repeat)).ok) errors++;
                  tally.addWorld(key, world, params.length, errors);
                  const law = await checkLaw(world, {
                    overrun: beyond,
                    provableOnly: options.provableOnly === true,
                  });
                  tally.addLaw(key, law);
                } finally {
                  await world.close();
                }
              },
            ),
            { numRuns, seed: SEED, endOnFailure: true },
          );
          expectServed(tally, key, outcome);
        });
      }
      if (options.concurrent !== false) {
        const key = `${kase.name} concurrent`;
        if (PENDING.has(key) || PENDING.has(`${kase.name} *`)) pending.push(key);
        else {
          const law = beyond
            ? "spent ≥ billed, over a cap only by reported overruns"
            : "spent ≥ billed and ≤ cap on every link";
          it(`many concurrent calls near the cap: ${law}`, async () => {
            await assertRuns(
              fc.asyncProperty(
                fc.array(callArb("complete", 3), { minLength: 6, maxLength: 14 }),
                async (params) => {
                  provider.tokenizer = options.brokenTokenizer === true ? "broken" : "worst";
                  provider.ignoreMaxOutput = options.ignoreMaxOutput === true;
                  const world = await makeWorld(provider, {
                    parentUsd: 50_000,
                    agentUsd: [30_000, 25_000, 35_000],
                    ...options.world,
                  });
                  try {
                    const results = await Promise.all(
                      params.map((p) => sdkCall(world, kase, p, repeat)),
                    );
                    tally.addWorld(key, world, params.length, results.filter((r) => !r.ok).length);
                    const law = await checkLaw(world, { overrun: beyond });
                    tally.addLaw(key, law);
                  } finally {
                    await world.close();
                  }
                },
              ),
              { numRuns, seed: SEED, endOnFailure: true },
            );
            expectServed(tally, key, "complete");
          });
        }
      }
    });
  }
}

/**
 * The law holds of a world where nothing reaches the provider (every call denied, or failing
 * before it is sent): each test must show calls served, or it proves nothing. Every outcome sends
 * requests; every one but a 5xx is billed; calls that complete mostly succeed.
 */
function expectServed(tally: Tally, key: string, outcome: Outcome): void {
  const row = tally.rows.get(key) ?? {};
  expect(row.providerRequests ?? 0, `${key}: no call reached the provider`).toBeGreaterThan(0);
  if (outcome !== "5xx")
    expect(row.billedRuns ?? 0, `${key}: no run was billed anything`).toBeGreaterThan(0);
  if (outcome === "complete")
    expect(row.sdkErrors ?? 0, `${key}: every SDK call failed`).toBeLessThan(row.sdkCalls ?? 0);
}
