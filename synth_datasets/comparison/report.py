"""Summaries, the markdown card section and the plots of a comparison."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["summarize", "interval", "markdown_section", "plot_metric", "write_outputs"]

#: how each value reads in the tables (higher is better for all but self-BLEU)
LABELS = {
    "rows": "rows kept",
    "tstr_accuracy": "TSTR accuracy",
    "tstr_macro_f1": "TSTR macro-F1",
    "label_faithfulness": "label faithfulness",
    "distinct_2": "distinct-2",
    "self_bleu": "self-BLEU (lower = more diverse)",
    "embedding_mean_pairwise_distance": "embedding mean distance",
    "vendi_score": "Vendi score",
    "judge_mean": "judge score (1-5)",
}


def interval(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, sample sd and 95% t-interval of the mean over the finite values (NaN where undefined).

    >>> r = interval([1.0, 2.0, 3.0])
    >>> r["n"], r["mean"], r["std"], round(r["ci_high"] - r["mean"], 3)   # t(0.975, 2) * 1 / sqrt(3)
    (3, 2.0, 1.0, 2.484)
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return {"n": 0, "mean": math.nan, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    from scipy.stats import t  # scipy comes with scikit-learn (a dependency)

    std = float(x.std(ddof=1))
    half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def summarize(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], *, baseline: str) -> list[dict[str, Any]]:
    """One row per (variant, metric) over seeds, with the paired difference (same generation, same
    seed) to the ``baseline`` curator's variant.

    >>> rows = [{"variant": v, "generation": "g", "curator": v, "seed": s, "acc": a}
    ...         for v, accs in (("none", [0.6, 0.7]), ("clf", [0.65, 0.72])) for s, a in zip((0, 1), accs)]
    >>> s = summarize(rows, ["acc"], baseline="none")
    >>> [(r["variant"], round(r["mean"], 3), r["delta_mean"] and round(r["delta_mean"], 3)) for r in s]
    [('none', 0.65, None), ('clf', 0.685, 0.035)]
    """
    variants: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        variants.setdefault(r["variant"], []).append(r)
    base = {(r["generation"], r["seed"]): r for r in rows if r["curator"] == baseline}
    out = []
    for variant, rs in variants.items():
        for key in keys:
            row = {"variant": variant, "generation": rs[0]["generation"], "curator": rs[0]["curator"], "metric": key,
                   **interval([r[key] for r in rs]), "values": [float(r[key]) for r in rs],
                   "seeds": [r["seed"] for r in rs]}
            if rs[0]["curator"] == baseline:
                row.update(delta_mean=None, delta_std=None, delta_ci_low=None, delta_ci_high=None)
            else:
                d = interval([r[key] - base[(r["generation"], r["seed"])][key] for r in rs
                              if (r["generation"], r["seed"]) in base])
                row.update(delta_mean=d["mean"], delta_std=d["std"], delta_ci_low=d["ci_low"],
                           delta_ci_high=d["ci_high"])
            out.append(row)
    return out


def _fmt(v: float | None, digits: int) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.{digits}f}"


def _digits(key: str) -> int:
    return 0 if key == "rows" else 1 if key in ("vendi_score",) else 3


def _cell(s: Mapping[str, Any]) -> str:
    d = _digits(s["metric"])
    if s["n"] == 0:
        return "n/a"
    return _fmt(s["mean"], d) + ("" if not math.isfinite(s["std"]) else f" ± {_fmt(s['std'], d)}")


def _delta_cell(s: Mapping[str, Any]) -> str:
    if s["delta_mean"] is None:
        return "(baseline)"
    d = _digits(s["metric"])
    if not math.isfinite(s["delta_mean"]):
        return "n/a"
    lo, hi = s["delta_ci_low"], s["delta_ci_high"]
    sign = "+" if s["delta_mean"] >= 0 else ""
    ci = f" [{_fmt(lo, d)}, {_fmt(hi, d)}]" if math.isfinite(lo) else ""
    clear = math.isfinite(lo) and (lo > 0 or hi < 0)
    text = f"{sign}{_fmt(s['delta_mean'], d)}{ci}"
    return f"**{text}**" if clear else text


def markdown_section(record: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """The card section: setup, mean ± sd over seeds per variant, paired differences to the baseline
    with 95% intervals (bold where the interval excludes 0), and the plots."""
    keys, summary = record["keys"], record["summary"]
    by = {(s["variant"], s["metric"]): s for s in summary}
    variants = list(dict.fromkeys(s["variant"] for s in summary))
    real = record["real_test"]
    seeds = record["seeds"]
    lines = ["## Compare: which technique helped", "",
             f"{len(variants)} variants x {len(seeds)} seeds ({', '.join(map(str, seeds))}). Each generation ran once "
             "per seed; every curator was applied to those same rows, so curation variants differ only in curation "
             f"and their differences to `{record['baseline']}` are paired by seed. TSTR: a "
             f"{record['classifier']} classifier on all-MiniLM-L6-v2 embeddings trained on the synthetic rows, tested "
             f"on {real['rows']} real rows ({', '.join(f'{k}: {v}' for k, v in real['labels'].items())})"
             + (f"; synthetic labels mapped {record['label_map']}." if record.get("label_map") else "."), "",
             "Mean ± sd over seeds:", "",
             "| variant | " + " | ".join(LABELS.get(k, k) for k in keys) + " |",
             "|" + " --- |" * (len(keys) + 1)]
    for v in variants:
        lines.append(f"| {v} | " + " | ".join(_cell(by[(v, k)]) for k in keys) + " |")
    if any(s["delta_mean"] is not None for s in summary):
        lines += ["", f"Difference to `{record['baseline']}` on the same seed: mean [95% t-interval over seeds]; "
                      "bold where the interval excludes 0:", "",
                  "| variant | " + " | ".join(LABELS.get(k, k) for k in keys) + " |", "|" + " --- |" * (len(keys) + 1)]
        for v in variants:
            if by[(v, keys[0])]["delta_mean"] is not None:
                lines.append(f"| {v} | " + " | ".join(_delta_cell(by[(v, k)]) for k in keys) + " |")
    if plots:
        lines += ["", *[f"![{LABELS.get(k, k)}]({p})" for k, p in plots.items()]]
    if record.get("command"):
        lines += ["", "Reproduce:", "", "```", record["command"], "```"]
    return "\n".join(lines) + "\n"


def plot_metric(summary: Sequence[Mapping[str, Any]], metric: str, path: str | Path) -> Path:
    """One PNG: per variant, the value of each seed (dots) and the mean with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = [s for s in summary if s["metric"] == metric]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1.5), 3.6), dpi=100)
    for i, s in enumerate(rows):
        vals = [v for v in s["values"] if math.isfinite(v)]
        jitter = np.linspace(-0.12, 0.12, len(vals)) if len(vals) > 1 else np.zeros(len(vals))
        ax.scatter(i + jitter, vals, s=14, color="0.55", zorder=2, label="one seed" if i == 0 else None)
        if s["n"]:
            lo, hi = s["ci_low"], s["ci_high"]
            err = [[s["mean"] - lo], [hi - s["mean"]]] if math.isfinite(lo) else None
            ax.errorbar([i], [s["mean"]], yerr=err, fmt="o", color="C0", capsize=5, zorder=3,
                        label="mean, 95% interval" if i == 0 else None)
    ax.set_xticks(range(len(rows)), [s["variant"] for s in rows], rotation=30 if len(rows) > 4 else 0, ha="right"
                  if len(rows) > 4 else "center")
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title(f"{LABELS.get(metric, metric)} per variant")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def _finite(v: Any) -> Any:
    """NaN and infinities as None (JSON has no NaN)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Mapping):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def write_outputs(record: dict[str, Any], folder: Path | None) -> tuple[str, dict[str, Path]]:
    """``compare.md``, ``compare.json`` and ``plots/<metric>.png`` into ``folder`` (when given); the
    markdown either way."""
    from ..secrets import scrub

    if folder is None:
        return markdown_section(record), {}
    folder = Path(folder)
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    plots = {k: plot_metric(record["summary"], k, folder / "plots" / f"{k}.png") for k in record["keys"]}
    markdown = markdown_section(record, {k: f"plots/{k}.png" for k in plots})
    (folder / "compare.md").write_text(scrub(markdown), encoding="utf-8")
    text = json.dumps(_finite(record), indent=1, default=str, allow_nan=False)
    (folder / "compare.json").write_text(scrub(text), encoding="utf-8")
    return markdown, plots
