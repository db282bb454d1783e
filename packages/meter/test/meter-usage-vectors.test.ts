/**
 * spec/vectors/usage/*.json (spec/usage.md §5): raw provider usage, whole response bodies and SSE
 * event lists → normalised usage → micro-dollars at a stated price. Expected values were derived
 * by hand (each vector carries its derivation); they are checked here against usage.ts +
 * priceUsage, against the adapters by endpoint name, and against @pydantic/genai-prices' own
 * calcPrice as an independent oracle.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BUILTIN_ADAPTERS } from "@allowance/meter/adapters";
import {
  createPricing,
  priceUsage,
  type ModelPrice,
  type ProviderAdapter,
  type SseEvent,
  type StreamTally,
  type TokenUsage,
} from "@allowance/meter";
import { oracleMicros } from "./price-oracle.js";
import {
  anthropicUsage,
  geminiResponseUsage,
  openaiChatUsage,
  openaiEmbeddingsUsage,
  openaiResponsesBodyUsage,
} from "../src/usage.js";

interface Vector {
  readonly name: string;
  readonly endpoint: string;
  readonly description: string;
  readonly stream: boolean;
  readonly model?: string;
  readonly price?: ModelPrice;
  /** What usage.ts reads: a usage object or a response, or for a stream the list of them in order. */
  readonly raw: unknown;
  readonly body?: unknown;
  readonly events?: readonly { event: string; data: string }[];
  readonly expected: {
    usage: TokenUsage | null;
    tokens: number | null;
    usdMicros: number | null;
    derivation?: string;
  };
}

const dir = join(import.meta.dirname, "..", "..", "..", "spec", "vectors", "usage");
const vectors: Vector[] = readdirSync(dir)
  .filter((f) => f.endsWith(".json"))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(dir, f), "utf8")) as Vector);

const ENDPOINTS = [
  "openai.chat.completions",
  "openai.completions",
  "openai.responses",
  "openai.embeddings",
  "anthropic.messages",
  "gemini.generateContent",
  "gemini.streamGenerateContent",
  "gemini.embedContent",
] as const;

/** usage.ts for each endpoint; a list is a stream, folded in order. */
function normalise(endpoint: string, raw: unknown): TokenUsage | undefined {
  const list = Array.isArray(raw) ? raw : [raw];
  switch (endpoint) {
    case "openai.chat.completions":
    case "openai.completions":
      return openaiChatUsage(raw);
    case "openai.responses":
      return openaiResponsesBodyUsage(raw);
    case "openai.embeddings":
      return openaiEmbeddingsUsage(raw);
    case "anthropic.messages":
      return list.reduce<TokenUsage | undefined>(
        (seen, usage, i) => (i > 0 && seen === undefined ? undefined : anthropicUsage(usage, seen)),
        undefined,
      );
    case "gemini.generateContent":
    case "gemini.streamGenerateContent":
    case "gemini.embedContent":
      return list.reduce<TokenUsage | undefined>(
        (seen, chunk, i) =>
          i > 0 && seen === undefined ? undefined : geminiResponseUsage(chunk, seen),
        undefined,
      );
    default:
      throw new Error(`no normaliser for ${endpoint}`);
  }
}

/** The adapter for an endpoint name ("gemini.*" is also looked up as "google.*", the provider's other name). */
function adapterFor(endpoint: string): ProviderAdapter | undefined {
  return (
    BUILTIN_ADAPTERS.find((a) => a.endpoint === endpoint) ??
    BUILTIN_ADAPTERS.find((a) => a.endpoint === endpoint.replace(/^gemini\./, "google."))
  );
}

describe("usage vectors (spec/vectors/usage)", () => {
  it("cover every API, streamed and not, and unreadable usage", () => {
    // embedContent reports no usage at all: its vector expects none (the hold is charged).
    for (const endpoint of ENDPOINTS)
      expect(
        vectors.some(
          (v) =>
            v.endpoint === endpoint &&
            (v.expected.usage !== null) !== (endpoint === "gemini.embedContent"),
        ),
        endpoint,
      ).toBe(true);
    for (const endpoint of [
      "openai.chat.completions",
      "openai.completions",
      "openai.responses",
      "anthropic.messages",
      "gemini.streamGenerateContent",
    ]) {
      expect(
        vectors.some((v) => v.endpoint === endpoint && v.stream && v.events !== undefined),
        `${endpoint} streamed`,
      ).toBe(true);
    }
    expect(vectors.filter((v) => v.name.startsWith("malformed-")).length).toBeGreaterThanOrEqual(6);
    expect(vectors.length).toBeGreaterThanOrEqual(25);
  });

  for (const v of vectors) {
    describe(v.name, () => {
      it(`usage.ts reads it: ${v.description}`, () => {
        expect(normalise(v.endpoint, v.raw) ?? null).toEqual(v.expected.usage);
      });

      if (v.expected.usage !== null && v.price !== undefined) {
        const price = v.price;
        const usage = v.expected.usage;
        it(`priceUsage charges ${v.expected.usdMicros} µ$ (${v.expected.derivation ?? ""})`, () => {
          expect(priceUsage(usage, price)).toEqual({
            tokens: v.expected.tokens,
            usdMicros: v.expected.usdMicros,
          });
        });
      }

      if (v.model !== undefined && v.price !== undefined) {
        const model = v.model;
        const price = v.price;
        const provider = v.endpoint.split(".")[0] ?? "";
        it(`states the default table's price for ${model}`, () => {
          expect(createPricing().lookup(provider, model)).toEqual(price);
        });
        if (v.expected.usage !== null) {
          const usage = v.expected.usage;
          it("agrees with @pydantic/genai-prices' calcPrice within rounding", () => {
            const oracle = oracleMicros(provider, model, usage);
            expect(oracle).toBeDefined();
            let micros = oracle?.micros ?? Number.NaN;
            // Gemini grounding is our overlay (the package has no per-call price for it): add it as stated.
            if (oracle?.pricesWebSearch !== true)
              micros += (usage.webSearchCalls ?? 0) * (price.webSearchPerCall ?? 0);
            const ours = v.expected.usdMicros ?? Number.NaN;
            expect(ours).toBeGreaterThanOrEqual(micros - 1e-6 * micros);
            expect(ours).toBeLessThanOrEqual(micros + 5 + 1e-6 * micros);
          });
        }
      }

      if (v.body !== undefined || v.events !== undefined) {
        const adapter = adapterFor(v.endpoint);
        // Visible, never silent: a vector whose adapter is missing is reported as skipped by name.
        it.skipIf(adapter === undefined)(
          `the ${v.endpoint} adapter reads the whole ${v.events === undefined ? "body" : "stream"} the same way`,
          () => {
            if (adapter === undefined) return;
            if (v.body !== undefined)
              expect(adapter.usageFromJson(v.body) ?? null).toEqual(v.expected.usage);
            if (v.events !== undefined) {
              const tally: StreamTally = { usage: undefined, final: false };
              for (const event of v.events as SseEvent[]) adapter.observe(event, tally);
              expect(tally.usage ?? null).toEqual(v.expected.usage);
            }
          },
        );
      }
    });
  }
});
