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


# --- the model a benchmark runs on (``--model``) --------------------------------------------------------

#: what ``--model`` defaults to: the embedded SmolLM2-135M-Instruct, built as ``LLM()`` (the very model,
#: options and response-cache keys the benchmarks used before ``--model`` existed)
DEFAULT_MODEL = "smollm2-135m"


def is_default_model(model) -> bool:
    return model in (None, "", DEFAULT_MODEL)


def model_slug(model) -> str:
    """The model's name as results record it and file names carry it: a named model as is, a file or
    folder by its name without the suffix, anything else with odd characters replaced."""
    import re

    if is_default_model(model):
        return DEFAULT_MODEL
    text = str(model).rstrip("/")
    if "://" not in text and ("/" in text or text.endswith(".gguf")):
        text = Path(text).stem if text.endswith(".gguf") else Path(text).name
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def add_model_option(ap, *, what: str = "the generator") -> None:
    ap.add_argument("--model", default=DEFAULT_MODEL,
                    help=f"model for {what}: a named model (e.g. qwen2.5-coder-1.5b), a .gguf file or a model "
                         f"folder (default: {DEFAULT_MODEL}, the embedded model); results of another model go to "
                         "a results file with its name in it")


def make_llm(model, **options):
    """``LLM()`` for the default model (exactly what the benchmarks built before), else ``LLM(model)``."""
    from synth_datasets import LLM

    return LLM(None if is_default_model(model) else model, **options)


def result_name(base: str, model) -> str:
    """``base`` for the default model (the file the 135M results have always had), else ``base-<model>``."""
    return base if is_default_model(model) else f"{base}-{model_slug(model)}"


def t_interval(values) -> dict:
    """Mean and 95% t-interval of the mean of ``values`` (``ci95`` None with fewer than 2 values)."""
    import math

    v = [float(x) for x in values if x is not None and math.isfinite(float(x))]
    if not v:
        return {"n": 0, "mean": None, "ci95": None, "ci95_kind": None}
    mean = sum(v) / len(v)
    if len(v) < 2:
        return {"n": 1, "mean": mean, "ci95": None, "ci95_kind": None}
    from scipy.stats import t

    half = float(t.ppf(0.975, len(v) - 1)) * statistics.stdev(v) / math.sqrt(len(v))
    return {"n": len(v), "mean": mean, "ci95": [mean - half, mean + half], "ci95_kind": f"t over {len(v)} seeds"}
