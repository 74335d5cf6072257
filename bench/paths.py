"""Where the benchmark's parts are: the project, the interpreter that runs every process,
the results folder."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PY = sys.executable
