/** A slice of the leak matrix on the SQLite ledger: the law does not depend on the ledger. */
import { SDK_CASES } from "./clients.js";
import { leakMatrix } from "./scenarios.js";

const cases = [...SDK_CASES.openai, ...SDK_CASES.anthropic].filter(
  (c) =>
    c.name === "openai/chat~" || c.name === "anthropic/messages~" || c.name === "openai/embeddings",
);

leakMatrix({
  title: "SQLite ledger",
  cases,
  outcomes: ["complete", "abort", "cut"],
  numRuns: 1,
  world: { ledger: "sqlite" },
});
