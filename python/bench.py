"""Verification time of the 5-link story (spec/vectors/valid-five-link-story.json), Python beside
TypeScript, measured the same way: many verifications of the same token after a warm-up, the median
of several batches. Run from anywhere: /usr/bin/python3 python/bench.py [--rounds N].

The TypeScript figure is the packages' `verify` run from source through tsx (no build, no prefix
cache), in a child process; it is skipped if node is not on PATH."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from allowance import import_jwks, verify  # noqa: E402

VECTOR = REPO / "spec" / "vectors" / "valid-five-link-story.json"

# The same loop in TypeScript. The clock option is a function of epoch milliseconds in the current
# API and was a number of seconds before it: the script tries the first, then the second.
TS_SCRIPT = r"""
import { readFileSync } from "node:fs";
import { importJwks } from "@allowance/core";
import { verify } from "@allowance/verifier";
const vector = JSON.parse(readFileSync(process.argv[1], "utf8"));
const rounds = Number(process.argv[2]);
const roots = await importJwks(vector.roots);
let options = { roots, now: () => vector.now * 1000 };
try { verify(vector.token, options); } catch (error) {
  if (!(error instanceof TypeError)) throw error;
  options = { roots, now: vector.now };
}
const batch = () => {
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) verify(vector.token, options);
  return Number(process.hrtime.bigint() - start) / 1000 / rounds;
};
for (let i = 0; i < 3; i++) batch();
const runs = Array.from({ length: 7 }, batch).sort((a, b) => a - b);
console.log(JSON.stringify({ microseconds: runs[3] }));
"""


def python_figure(rounds: int) -> float:
    vector = json.loads(VECTOR.read_text())
    roots = import_jwks(vector["roots"])

    def now() -> int:
        return vector["now"] * 1000

    def batch() -> float:
        start = time.perf_counter_ns()
        for _ in range(rounds):
            verify(vector["token"], roots=roots, now=now)
        return (time.perf_counter_ns() - start) / 1000 / rounds

    for _ in range(3):
        batch()
    return statistics.median(batch() for _ in range(7))


def typescript_figure(rounds: int) -> float | None:
    node = shutil.which("node")
    if node is None:
        return None
    run = subprocess.run(
        [node, "--conditions=@allowance/source", "--import", "tsx", "--input-type=module",
         "-e", TS_SCRIPT, str(VECTOR), str(rounds)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(run.stdout.strip().splitlines()[-1])["microseconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500, help="verifications per batch")
    rounds = parser.parse_args().rounds
    token = json.loads(VECTOR.read_text())["token"]
    py = python_figure(rounds)
    ts = typescript_figure(rounds)
    print(f"verify, 5-link story ({len(token)} characters), median of 7 batches of {rounds}:")
    print(f"  Python {sys.version.split()[0]} (cryptography/OpenSSL): {py:8.1f} µs")
    if ts is None:
        print("  TypeScript: node not found")
    else:
        print(
            f"  TypeScript (node:crypto, from source): {ts:8.1f} µs"
            f"   Python/TypeScript {py / ts:.2f}×"
        )


if __name__ == "__main__":
    main()
