export { EXIT, buildProgram, main } from "./program.js";
export { describeDemo, runDemo } from "./demo.js";
export type { DemoResult } from "./demo.js";
