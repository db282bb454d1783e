/**
 * Denials stop callers: with too little budget left (10 µ$), every SDK call — at the SDKs' default retry
 * settings — makes exactly one call into wrapFetch and no request to the provider, and fails with
 * an error that `denialOf` (when the meter exports it) turns back into the typed denial, and whose
 * message — what a person sees — carries the denial's sentence.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as meter from "@allowance/meter";
import { SDK_CASES, type SdkCase } from "./clients.js";
import { makeWorld, SEED, Tally } from "./harness.js";
import { BillingProvider } from "./provider.js";
import { assertRuns, callArb, PENDING, sdkCall, thrown } from "./scenarios.js";

const provider = new BillingProvider();
const tally = new Tally();
const pending: string[] = [];
beforeAll(async () => {
  await provider.start();
});
afterAll(async () => {
  await provider.close();
  tally.print("denials");
  if (process.env.LEAK_ERRORS !== undefined)
    console.log([...thrown].map(([m, n]) => `${n}× ${m}`).join("\n"));
  if (pending.length > 0)
    console.log(`leak suite, denials: PENDING (not run): ${pending.join(", ")}`);
});

/** The helper the meter is to export; looked up at run time so this file runs before it lands. */
const denialOf = (meter as Record<string, unknown>).denialOf as
  ((error: unknown) => { reason?: unknown; message?: unknown } | undefined) | undefined;

const families: Record<string, readonly SdkCase[]> = {
  openai: [...SDK_CASES.openai, ...SDK_CASES.azure, ...SDK_CASES.geminiOpenAi],
  anthropic: SDK_CASES.anthropic,
  ai: SDK_CASES.ai,
};

describe("a denied call is tried once and reaches no provider", () => {
  for (const [family, cases] of Object.entries(families)) {
    it(`${family}: one wrapFetch call, zero provider requests, per SDK call, at the SDK's default retries`, async () => {
      await assertRuns(
        fc.asyncProperty(
          fc.array(callArb("complete", 2), { minLength: 2, maxLength: 2 }),
          async (params) => {
            // 10 µ$ fits no call of the suite (the least input is over 10 tokens at $1 per million): every call is denied for its budget.
            const world = await makeWorld(provider, { parentUsd: 60_000, agentUsd: [10, 10] });
            try {
              const problems: string[] = [];
              await Promise.all(
                cases.flatMap((kase) =>
                  params.map(async (p) => {
                    const { ok, error, call } = await sdkCall(world, kase, p, { maxRetries: 2 });
                    const attempts = world.agents.flatMap((a) =>
                      a.attempts.filter((x) => x.call === call),
                    );
                    const received = provider.received.get(call) ?? 0;
                    tally.add(kase.name, "sdkCalls");
                    tally.add(kase.name, "meterCalls", attempts.length);
                    tally.add(kase.name, "providerRequests", received);
                    if (ok) problems.push(`${kase.name}: a call with 10 µ$ left succeeded`);
                    if (attempts.length !== 1)
                      problems.push(
                        `${kase.name}: ${attempts.length} calls into wrapFetch for one SDK call (${attempts.map((a) => a.reason ?? a.status).join(", ")})`,
                      );
                    if (received !== 0)
                      problems.push(
                        `${kase.name}: ${received} provider request(s) for a denied call`,
                      );
                    if (attempts[0]?.denied !== true)
                      problems.push(
                        `${kase.name}: the first attempt was not a denial (status ${attempts[0]?.status})`,
                      );
                    if (denialOf !== undefined) {
                      const denial = denialOf(error);
                      if (denial === undefined || typeof denial.reason !== "string")
                        problems.push(`${kase.name}: denialOf did not recognise ${String(error)}`);
                      else {
                        tally.add(kase.name, `denialOf:${denial.reason}`);
                        // What a person sees: the SDK error's message must carry the denial's sentence.
                        const shown = error instanceof Error ? error.message : String(error);
                        if (typeof denial.message === "string" && !shown.includes(denial.message))
                          problems.push(
                            `${kase.name}: the SDK's error says "${shown}", not the denial's "${denial.message}"`,
                          );
                      }
                    }
                  }),
                ),
              );
              expect(problems, problems.join("\n")).toEqual([]);
            } finally {
              await world.close();
            }
          },
        ),
        { numRuns: 1, seed: SEED, endOnFailure: true },
      );
    });
  }
  if (denialOf === undefined) pending.push("denialOf (not exported by @allowance/meter)");
  if (PENDING.size > 0) pending.push(...PENDING);
});
