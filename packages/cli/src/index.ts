export { EXIT, buildProgram, main } from "./program.js";
export { describeDemo, describeStep, describeTree, runDemo, styleFor } from "./demo.js";
export type { DemoBudgetNode, DemoOptions, DemoResult, DemoStep, Style } from "./demo.js";
