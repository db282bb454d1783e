"""Tests run from the repository root or from python/; the package is imported from source."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PYTHON_DIR = Path(__file__).resolve().parent.parent
REPO = PYTHON_DIR.parent
SPEC_VECTORS = REPO / "spec" / "vectors"

if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))


class TypeScript:
    """The TypeScript packages in a child process: one JSON request and answer per line."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is needed for the interop tests")
        self.process = subprocess.Popen(
            [node, "--conditions=@allowance/source", "--import", "tsx", "python/tests/interop.ts"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.next_id = 0

    def __call__(self, op: str, **fields: Any) -> dict[str, Any]:
        self.next_id += 1
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps({"id": self.next_id, "op": op, **fields}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            pytest.fail("the TypeScript interop process ended")
        reply = json.loads(line)
        assert reply["id"] == self.next_id
        if "error" in reply:
            pytest.fail(f"TypeScript raised a non-Allowance error on {op}: {reply['error']}")
        return reply

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def ts():
    side = TypeScript()
    yield side
    side.close()
