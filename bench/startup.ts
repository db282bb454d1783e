/**
 * Start-up of the built `allowance` binary against `node -e 0`, measured in the same run: the
 * cases alternate round by round, so a machine that is busier at one moment slows every case
 * alike; each figure is the median wall time of spawning the process to its exit.
 *
 *   tsc -b && node --import tsx bench/startup.ts [rounds]
 *
 * Targets (issue 15): --help and --version ≤ 1.5× node -e 0; inspect and verify ≤ 2.5×.
 * "import @allowance/verifier" and "import @allowance/core" are there for reference: what those
 * libraries cost on their own, which the CLI's verify path cannot go below.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../packages/cli/dist/bin.js", import.meta.url));
const CLI_DIR = fileURLToPath(new URL("../packages/cli/", import.meta.url));
if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`tsc -b\` first`);
const rounds = Number(process.argv[2] ?? 21);
if (!Number.isSafeInteger(rounds) || rounds < 1)
  throw new RangeError(`rounds must be a positive integer, got ${process.argv[2]}`);

const dir = mkdtempSync(join(tmpdir(), "allowance-startup-"));
const cli = (args: readonly string[]): string => {
  const run = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: "utf8" });
  if (run.status !== 0)
    throw new Error(`allowance ${args.join(" ")} exited ${run.status}: ${run.stderr}`);
  return run.stdout.trim();
};
cli(["keygen", "--out", "root.jwk"]);
cli(["keygen", "--out", "agent.jwk"]);
const token = cli([
  "mint",
  "--key",
  "root.jwk",
  "--to",
  "agent.pub.jwk",
  "--usd",
  "5",
  "--tokens",
  "100k",
  "--expires",
  "1h",
]);

const cases: Readonly<Record<string, readonly string[]>> = {
  "node -e 0": ["-e", "0"],
  "allowance --help": [BIN, "--help"],
  "allowance --version": [BIN, "--version"],
  "allowance inspect": [BIN, "inspect", token],
  "allowance verify": [BIN, "verify", token, "--roots", "root.pub.jwk"],
  "import @allowance/core": ["--input-type=module", "-e", 'await import("@allowance/core")'],
  "import @allowance/verifier": [
    "--input-type=module",
    "-e",
    'await import("@allowance/verifier")',
  ],
};

// The machine's load, before and after: alternating rounds even out a steady load, not a burst.
const load = (): string =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(" ");
const loadBefore = load();
const times = new Map<string, number[]>(Object.keys(cases).map((name) => [name, []]));
for (let round = 0; round < rounds; round++) {
  for (const [name, args] of Object.entries(cases)) {
    const started = process.hrtime.bigint();
    const run = spawnSync(process.execPath, args, {
      cwd: name.startsWith("import") ? CLI_DIR : dir,
      stdio: ["ignore", "ignore", "pipe"],
    });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (run.status !== 0) throw new Error(`${name} exited ${run.status}: ${run.stderr.toString()}`);
    times.get(name)?.push(ms);
  }
}
rmSync(dir, { recursive: true, force: true });

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};
const baseline = median(times.get("node -e 0") ?? []);
const target: Readonly<Record<string, number>> = {
  "allowance --help": 1.5,
  "allowance --version": 1.5,
  "allowance inspect": 2.5,
  "allowance verify": 2.5,
};
console.log(
  `start-up, median of ${rounds} alternating rounds (node ${process.version}; ${cpus().length} cores, load average ${loadBefore} before, ${load()} after)`,
);
for (const [name, values] of times) {
  const ms = median(values);
  const ratio = ms / baseline;
  const goal = target[name];
  console.log(
    `${name.padEnd(28)} ${ms.toFixed(1).padStart(7)} ms  ${ratio.toFixed(2)}×${goal === undefined ? "" : `  (target ≤ ${goal}×: ${ratio <= goal ? "met" : "NOT met"})`}`,
  );
}
