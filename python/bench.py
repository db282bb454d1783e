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

# The same loop in TypeScript, in a child process that runs one batch per line it reads, so that
# the two are measured alternately under the same load. The clock option is a function of epoch
# milliseconds in the current API and was a number of seconds before it: it tries the first.
TS_SCRIPT = r"""
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
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
for await (const _ of createInterface({ input: process.stdin })) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) verify(vector.token, options);
  console.log(Number(process.hrtime.bigint() - start) / 1000 / rounds);
}
"""
BATCHES = 9


def python_batch(rounds: int):
    vector = json.loads(VECTOR.read_text())
    roots = import_jwks(vector["roots"])

    def now() -> int:
        return vector["now"] * 1000

    def batch() -> float:
        start = time.perf_counter_ns()
        for _ in range(rounds):
            verify(vector["token"], roots=roots, now=now)
        return (time.perf_counter_ns() - start) / 1000 / rounds

    return batch


def typescript_batch(rounds: int):
    node = shutil.which("node")
    if node is None:
        return None
    child = subprocess.Popen(
        [node, "--conditions=@allowance/source", "--import", "tsx", "--input-type=module",
         "-e", TS_SCRIPT, str(VECTOR), str(rounds)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def batch() -> float:
        assert child.stdin and child.stdout
        child.stdin.write("\n")
        child.stdin.flush()
        return float(child.stdout.readline())

    batch.close = lambda: (child.stdin.close(), child.wait())  # type: ignore[attr-defined]
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500, help="verifications per batch")
    rounds = parser.parse_args().rounds
    token = json.loads(VECTOR.read_text())["token"]
    py, ts = python_batch(rounds), typescript_batch(rounds)
    py_runs, ts_runs = [], []
    for i in range(BATCHES + 2):  # alternating; the first two rounds are a warm-up
        py_runs.append(py())
        if ts is not None:
            ts_runs.append(ts())
    print(f"verify, 5-link story ({len(token)} characters), median of {BATCHES} alternating")
    print(f"batches of {rounds}:")
    median_py = statistics.median(py_runs[2:])
    print(f"  Python {sys.version.split()[0]} (cryptography/OpenSSL): {median_py:8.1f} µs")
    if ts is None:
        print("  TypeScript: node not found")
        return
    ts.close()  # type: ignore[attr-defined]
    median_ts = statistics.median(ts_runs[2:])
    print(f"  TypeScript (node:crypto, from source): {median_ts:8.1f} µs")
    print(f"  Python / TypeScript: {median_py / median_ts:.2f}×")


if __name__ == "__main__":
    main()
