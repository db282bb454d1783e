/**
 * The second run: the provider bills beyond a bound, and the excess must be charged and reported
 * as an overrun, never lost: spent ≥ billed on every link, and a link over its cap only by what the
 * enforcer's `overrun` events report.
 *
 * 1. A tokenizer that breaks the byte premise (docs/metering.md "Not bounded"): four tokens per
 *    byte of input, two per byte of delivered output. The meter can see the excess only in reported usage:
 *    complete answers, and streams that end with a malformed chunk after their usage.
 * 2. A provider that ignores the maximum output written on the request. The meter sees the excess
 *    in reported usage; a stream that never reports it (aborted, or without usage) shows it as
 *    delivered text (at least one byte per token) and output events (at least one token each).
 *    With more events than the maximum allows tokens the meter charges every delivered byte; with
 *    fewer, nothing tells the excess from an honest answer, and docs/metering.md ("Not bounded")
 *    says it is not seen: those runs are judged on the provable part (provider.ts `visibleBill`),
 *    and their titles say so. A JSON answer aborted or without usage shows nothing of the excess
 *    and is left out.
 */
import { SDK_CASES } from "./clients.js";
import { leakMatrix } from "./scenarios.js";

const generating = [
  ...SDK_CASES.openai,
  ...SDK_CASES.azure,
  ...SDK_CASES.geminiOpenAi,
  ...SDK_CASES.anthropic,
  ...SDK_CASES.ai,
].filter((c) => c.endpoint !== "openai.embeddings" && c.endpoint !== "google.embedContent");
const streamed = generating.filter((c) => c.stream);
const json = generating.filter((c) => !c.stream);

// Prompts 20 times as long (up to ~8 KB): the input excess outweighs the slack of the output maximum.
leakMatrix({
  title: "tokenizer past the byte premise, streamed",
  cases: streamed,
  outcomes: ["complete", "malformed-after"],
  brokenTokenizer: true,
  promptRepeat: 20,
  numRuns: 1,
});
leakMatrix({
  title: "tokenizer past the byte premise, JSON",
  cases: json,
  outcomes: ["complete"],
  brokenTokenizer: true,
  promptRepeat: 20,
  numRuns: 1,
  concurrent: false,
});
leakMatrix({
  title: "provider past the maximum output, streamed",
  cases: streamed,
  outcomes: ["complete"],
  ignoreMaxOutput: true,
  numRuns: 1,
});
// Without usage, an excess delivered in fewer events than the maximum allows tokens cannot be told
// from an honest answer of long tokens: docs/metering.md names it as not seen. Judged on what is provable.
leakMatrix({
  title: "provider past the maximum output, streamed, no usage",
  cases: streamed,
  outcomes: ["abort", "no-usage"],
  ignoreMaxOutput: true,
  provableOnly: true,
  numRuns: 1,
});
leakMatrix({
  title: "provider past the maximum output, JSON",
  cases: json,
  outcomes: ["complete"],
  ignoreMaxOutput: true,
  numRuns: 1,
  concurrent: false,
});
