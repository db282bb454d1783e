/**
 * The second run: the provider ignores the request's maximum output and bills what the model
 * produced — a bound the meter cannot enforce (docs/metering.md names it). Whatever the meter can
 * see of the excess must be charged and reported as an overrun, never lost: spent ≥ billed on
 * every link, and a link over its cap only by what the enforcer's `overrun` events report.
 *
 * What the meter can see: the usage a provider reports (complete answers, JSON or streamed) and
 * the text a stream delivered (abandoned streams, streams without usage). A JSON answer that is
 * aborted or carries no usage shows nothing of an excess past the maximum the request carried, so
 * those are not part of this run (the first run covers them with a provider within its bounds).
 */
import { SDK_CASES } from "./clients.js";
import { leakMatrix } from "./scenarios.js";

const generating = [...SDK_CASES.openai, ...SDK_CASES.azure, ...SDK_CASES.anthropic, ...SDK_CASES.ai].filter((c) => c.endpoint !== "openai.embeddings");

leakMatrix({ title: "provider past the maximum output, streamed", cases: generating.filter((c) => c.stream), outcomes: ["complete", "abort", "no-usage"], ignoreMaxOutput: true, numRuns: 1 });
leakMatrix({ title: "provider past the maximum output, JSON", cases: generating.filter((c) => !c.stream), outcomes: ["complete"], ignoreMaxOutput: true, numRuns: 1, concurrent: false });
