"""Shared bits for the benchmarks: servers on loopback, medians, result files."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fault server lives with the tests

from servers import start_fault_server, start_llama_server, wait_for  # noqa: E402,F401


def median(xs):
    return statistics.median(xs)


def write_result(name: str, result: dict) -> Path:
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{name}.json"
    result = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, **result}
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return path
