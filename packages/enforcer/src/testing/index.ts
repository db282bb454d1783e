/**
 * @allowance/enforcer/testing: the ledger vectors (spec/enforcement.md §9) and the runner that
 * plays them, so that a ledger of your own can prove it keeps the rule every ledger keeps:
 *
 *   const report = await runLedgerVectors(() => new MyLedger());
 *   expect(report.failures).toEqual([]);
 *
 * ReferenceLedger is the rule over plain maps, the model the vectors were generated from.
 */
export { LEDGER_VECTORS } from "./ledger-vectors.js";
export { ReferenceLedger } from "./reference-ledger.js";
export { accountsOfRoot, compareStep, runLedgerVectors, runStep, stepRoot } from "./vectors.js";
export type {
  LedgerVector,
  StepRun,
  VectorFailure,
  VectorLineSet,
  VectorOutcome,
  VectorReport,
  VectorStep,
  VectorStepInput,
} from "./vectors.js";
