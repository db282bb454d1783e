/**
 * The second run: the provider ignores the request's maximum output and bills what the model
 * produced — a bound the meter cannot enforce (docs/metering.md names it). The excess must be
 * charged and reported as an overrun, never lost: spent ≥ billed on every link, and a link over its
 * cap only by what the enforcer's `overrun` events report.
 */
import { SDK_CASES } from "./clients.js";
import { leakMatrix } from "./scenarios.js";

const streamed = [...SDK_CASES.openai, ...SDK_CASES.anthropic, ...SDK_CASES.ai].filter((c) => c.endpoint !== "openai.embeddings");

leakMatrix({ title: "provider past the maximum output", cases: streamed, outcomes: ["complete", "abort", "no-usage"], ignoreMaxOutput: true, numRuns: 2 });
