/** Writes packages/cli/src/inspector-html.ts from scripts/inspector.ts: `pnpm inspector` (node --import tsx scripts/build-inspector.ts). */
import { writeFileSync } from "node:fs";
import { INSPECTOR_MODULE_PATH, buildInspector, renderInspectorModule } from "./inspector.js";

const build = buildInspector();
const text = renderInspectorModule(build);
writeFileSync(INSPECTOR_MODULE_PATH, text);
const page = Buffer.byteLength(build.beforeToken + build.afterToken);
console.log(
  `wrote ${INSPECTOR_MODULE_PATH}: page ${page} bytes (script ${build.scriptBytes}, style ${build.styleBytes}), from ${build.inputs.length} source files`,
);
