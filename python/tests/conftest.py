"""Tests run from the repository root or from python/; the package is imported from source."""

import sys
from pathlib import Path

PYTHON_DIR = Path(__file__).resolve().parent.parent
REPO = PYTHON_DIR.parent
SPEC_VECTORS = REPO / "spec" / "vectors"

if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))
