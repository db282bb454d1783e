/** Runs the BUILT `allowance` binary as a subprocess, as a user would. `tsc -b` builds it first. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

export const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function allowance(
  args: readonly string[],
  options: { cwd?: string; input?: string } = {},
): Run {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`tsc -b\` before the CLI tests`);
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd: options.cwd,
    input: options.input ?? "",
    encoding: "utf8",
    env: { ...process.env, NO_COLOR: "1" },
    timeout: 30_000,
  });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Parses `--json` output. */
export function json<T = Record<string, unknown>>(run: Run): T {
  return JSON.parse(run.stdout) as T;
}

/** A refusal: the exit code, exactly one line on stderr that matches, and no stack trace anywhere. */
export function expectFailure(run: Run, code: 1 | 2, message: RegExp): void {
  expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code });
  const lines = run.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^allowance: /);
  expect(lines[0]).toMatch(message);
  expect(run.stderr + run.stdout).not.toMatch(/\n\s+at /);
}

export function expectSuccess(run: Run): void {
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
}

export function tempDir(): { dir: string; path: (name: string) => string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "allowance-cli-"));
  return {
    dir,
    path: (name) => join(dir, name),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
