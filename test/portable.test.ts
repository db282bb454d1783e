/**
 * @allowance/core and @allowance/verifier run outside Node (a browser inspector page, an edge
 * runtime): only the files that are Node's by nature may import a Node built-in or use Buffer, and
 * a browser bundle of the main entries resolves no Node module at all (the package's `#platform`
 * import picks node:crypto under the "node" condition and portable code otherwise).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { build } from "esbuild";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");

/** The files that may use Node, each for a reason of its own. */
const NODE_ONLY: Readonly<Record<string, string>> = {
  "packages/core/src/ed25519/node.ts": "the node:crypto Ed25519 backend",
  "packages/core/src/platform/node.ts": "the Node platform: node:crypto hashing, Buffer base64",
  "packages/core/src/platform/node-buffer.ts": "Buffer views for the two Node files above",
  "packages/verifier/src/file.ts": "@allowance/verifier/file, revocations in a file (node:fs)",
  "packages/verifier/src/fastify.ts": "@allowance/verifier/fastify, for a Node web framework",
};

function sources(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts"))
    .map((file) => join(dir, file));
}

/** Runtime imports of `node:` modules (type-only imports are erased) and uses of `Buffer`. */
function nodeUses(file: string): string[] {
  const text = readFileSync(join(root, file), "utf8");
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      const typeOnly = ts.isImportDeclaration(node)
        ? node.importClause?.isTypeOnly === true
        : node.isTypeOnly;
      if (!typeOnly && isNodeModule(node.moduleSpecifier.text))
        found.push(`imports ${node.moduleSpecifier.text}`);
    }
    if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === "require")) &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteral(node.arguments[0]) &&
      isNodeModule(node.arguments[0].text)
    )
      found.push(`loads ${node.arguments[0].text}`);
    if (ts.isIdentifier(node) && node.text === "Buffer") found.push("uses Buffer");
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const BUILTINS = new Set(["buffer", "crypto", "fs", "http", "os", "path", "url", "util", "stream"]);
function isNodeModule(specifier: string): boolean {
  return specifier.startsWith("node:") || BUILTINS.has(specifier.split("/")[0] as string);
}

describe("core and the verifier outside Node", () => {
  it("import no Node built-in and use no Buffer, except in the files that are Node's by nature", () => {
    const files = [...sources("packages/core/src"), ...sources("packages/verifier/src")];
    expect(files.length).toBeGreaterThan(20);
    const offenders = files
      .filter((file) => !Object.hasOwn(NODE_ONLY, file))
      .flatMap((file) => nodeUses(file).map((use) => `${file} ${use}`));
    expect(offenders).toEqual([]);
  });

  it("the scan finds what it looks for, in each file it allows", () => {
    for (const file of Object.keys(NODE_ONLY)) expect(nodeUses(file), file).not.toEqual([]);
  });

  const browserBundle = (entries: readonly string[]) =>
    build({
      entryPoints: entries.map((entry) => join(root, entry)),
      bundle: true,
      write: false,
      outdir: "out",
      format: "esm",
      platform: "browser",
      conditions: ["@allowance/source"],
      metafile: true,
      logLevel: "silent",
    });

  it("bundle for the browser from the main entries and @allowance/core/format, with no Node module", async () => {
    const result = await browserBundle([
      "packages/core/src/index.ts",
      "packages/core/src/format.ts",
      "packages/verifier/src/index.ts",
    ]);
    const inputs = Object.keys(result.metafile.inputs).map((path) =>
      relative(root, join(process.cwd(), path)),
    );
    // The portable platform, not the Node one, and no Node module anywhere in the graph.
    expect(inputs).toContain("packages/core/src/platform/portable.ts");
    expect(
      inputs.filter((path) => path.includes("platform/node") || path.startsWith("node:")),
    ).toEqual([]);
    for (const file of result.outputFiles) expect(file.text).not.toMatch(/\bBuffer\b|node:/);
  });

  it("the same bundle of @allowance/core/node fails: it needs node:crypto", async () => {
    await expect(browserBundle(["packages/core/src/node.ts"])).rejects.toThrow(/node:crypto/);
  });
});
