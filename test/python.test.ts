/**
 * The Python implementation (python/) is part of the test command: its pytest suite reads every
 * file of spec/vectors and checks interop with these packages both ways. It runs on Debian's own
 * interpreter, /usr/bin/python3, for which python3-cryptography and python3-pytest install (another
 * python3 may come first on PATH). In CI a missing interpreter or package fails the run; elsewhere
 * the test is skipped, and its name says why.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const PYTHON = "/usr/bin/python3";
const root = join(import.meta.dirname, "..");
const ci = process.env.CI === "true";

function missing(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is not installed`;
  const probe = spawnSync(PYTHON, ["-c", "import cryptography, pytest"], { encoding: "utf8" });
  if (probe.status !== 0)
    return `python3-cryptography or python3-pytest is missing (${probe.stderr.trim().split("\n").pop() ?? ""})`;
  return undefined;
}

const reason = missing();

describe("the Python implementation (python/)", () => {
  if (reason !== undefined && !ci) {
    it.skip(`skipped: ${reason}; apt-get install python3-cryptography python3-pytest`, () => {});
    return;
  }

  it("passes its pytest suite: every spec vector, interop with TypeScript both ways", () => {
    expect(reason, "CI must run the Python tests").toBeUndefined();
    const run = spawnSync(
      PYTHON,
      ["-m", "pytest", "-q", "-p", "no:cacheprovider", "python/tests"],
      {
        cwd: root,
        encoding: "utf8",
        env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
        timeout: 600_000,
      },
    );
    expect(run.error, String(run.error)).toBeUndefined();
    expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
    // pytest's last line, e.g. "357 passed in 9.1s": nothing failed, and in CI nothing was skipped.
    const summary = run.stdout.trim().split("\n").pop() ?? "";
    expect(summary).toMatch(/^\d+ passed/);
    if (ci) expect(summary).not.toMatch(/skipped/);
  }, 600_000);
});
