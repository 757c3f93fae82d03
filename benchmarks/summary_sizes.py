"""Which technique helps at which model size: one markdown table from the ablation benchmarks' result files.

    python benchmarks/summary_sizes.py                      # 135M (default files) vs qwen2.5-coder-1.5b
    python benchmarks/summary_sizes.py --large qwen2.5-coder-0.5b --results DIR

Proposed runs at 1.5B, each small enough for ~12 minutes on 2 quiet cores and still giving an interval
(estimates, not measured: tokens per row from tiny runs (``--rows 4`` of bench_prompting.py with the 1.5B;
the others with the 135M) priced with what BENCHMARKS.md measured for the 1.5B in bfloat16 on 2 quiet
cores: ~4.4 ms per prompt token and ~14 ms per new token at batch 128, i.e. ~58 new tokens/s with the
builder's prompts and 1.5 s per movie-review row in ``build movie-reviews --n 400``; the scoring passes of
noise/select at ~0.2-0.4 s per row; plus load, embeddings and fits). Run the 135M with the same options
(minus ``--model``/``--batch-size``) for a like-for-like column; the 135M's documented runs use more rows/seeds.

    # prompting: ~11 min (documented --rows 100: ~16 min). 5 variants x 60 rows; per row ~1.6 s (baseline),
    # ~2.0 s (TaskSpec), ~2.2 s (demos, ~180-token prompts), ~1.0 s (rotation: a third cached from the
    # baseline), + ~45 s listing genres (one stream) + ~2 min measures
    SYNTH_DATASETS_CACHE=/tmp/bench-prompting-cache OMP_NUM_THREADS=2 python benchmarks/bench_prompting.py \
        --model qwen2.5-coder-1.5b --rows 60 --threads 2
    # S3: ~8 min (documented --seeds 0 1 2: ~24 min). Per seed 128 one-shot + 96 S3 (rounds of 32) + 96
    # few-shot rows at the 60-token cap; one seed: the interval is the bootstrap of the training rows
    SYNTH_DATASETS_CACHE=/tmp/bench-s3-cache OMP_NUM_THREADS=2 python benchmarks/bench_s3.py \
        --model qwen2.5-coder-1.5b --batch-size 128 --seeds 0 --threads 2
    # compare: ~10 min (documented --n 400 --seeds 0 1 2: ~32 min). 3 x 100 builder rows at ~1.5 s + ~30 s
    # of curation/measures per seed; 3 seeds for the t-interval (2 would give t = 12.7)
    OMP_NUM_THREADS=2 python benchmarks/bench_compare.py --model qwen2.5-coder-1.5b --batch-size 128 \
        --n 100 --seeds 0 1 2 --threads 2
    # noise (label probability): ~9 min, 6-11 (documented --llm-rows 2000: ~11 min, up to ~14). One
    # scoring pass of 1,500 rows; flip seeds are nearly free (~5 s each), so 5 of them for the t-interval
    OMP_NUM_THREADS=2 python benchmarks/bench_noise.py --model qwen2.5-coder-1.5b --batch-size 128 \
        --llm-rows 1500 --seeds 0 1 2 3 4
    # selective annotation: ~5 min (BENCHMARKS.md's command, --pool 600: ~7 min with the model-free
    # selection timing, which --timing-rows 0 skips). One scoring pass of 600 rows; 5 seeds
    OMP_NUM_THREADS=2 python benchmarks/bench_select.py --model qwen2.5-coder-1.5b --batch-size 128 \
        --pool 600 --test 1000 --budget 200 --seeds 0 1 2 3 4 --threads 2 --timing-rows 0 \
        --cache /tmp/rt-scores.sqlite
    # target-aware build (bench_build_vs_real.py, one build each, no interval): the 1.5B's files exist; the
    # 135M's column needs --model smollm2-135m --n 400 and --n 400 --examples 100

Rows: each technique of bench_prompting.py (TaskSpec + LLM genres + random words, demos nearest/diverse,
template rotation: TSTR on all generated rows minus the builder's baseline prompt, +- 1.96 bootstrap sd),
bench_s3.py (S3 and random real demos vs one-shot, S3 vs random demos: TSTR difference, t-interval over
seeds, or +- 1.96 bootstrap sd with fewer than 3 seeds), bench_compare.py (each curator vs none: paired TSTR
accuracy difference, t-interval over seeds), bench_noise.py --llm-rows (the LLM's label probability added
to NoiseScore vs the embedding signals alone, and alone vs cleanlab: flip-detection F1 difference,
t-interval over flip seeds), bench_select.py (LLMAAA and the other strategies vs random rows: student
accuracy difference, t-interval over seeds) and bench_build_vs_real.py (``--examples E`` vs plain at the
same ``--n``: TSTR difference, one build each, so no interval). Verdict per size: "helps" / "hurts" when
the 95% interval lies above / below 0, "no clear effect" when it covers 0, "no interval" when the benchmark
reports none; a missing results file reads "not run". Below the table, the settings each file was run
with. Files: ``benchmarks/results/<name>.json`` for the embedded 135M and ``<name>-<model>.json`` for
another model (``build_vs_real-<model>-n<N>-ex<E>.json`` for both).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import _common

PROMPTING = {"b_spec": "TaskSpec + LLM-listed genres + random words (AttrPrompt-style conditions)",
             "c_nearest": "TaskSpec + 3 real demos, nearest (KATE)",
             "c_diverse": "TaskSpec + 3 real demos, diverse (MMR)", "d_rotation": "template rotation (3 wordings)"}
S3 = {"s3_minus_one_shot": "S3 (targeted rounds) vs one-shot",
      "few_shot_random_minus_one_shot": "random real demos vs one-shot",
      "s3_minus_few_shot_random": "S3 vs random real demos"}
CURATORS = ("NearDuplicates", "ClassifierConsistency", "NeighbourConsistency", "StudentRelabel", "NoiseScore")
NOISE = ("+ LLM in NoiseScore vs embedding signals alone", "LLM alone vs cleanlab on classifier probabilities")
SELECT = {"llmaaa_active": "LLMAAA (ActiveAnnotator: seed rows, then rounds of student entropy)",
          "entropy": "student entropy, one round", "kmeans": "k-means", "vote_k": "vote-k"}


def load(results: Path, name: str):
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def t_or_none(values):
    return _common.t_interval(values)["ci95"] if len(values) >= 2 else None


# --- one extractor per benchmark: model -> {row key: (effect, [lo, hi] or None) or a string} ---------------

def prompting(results: Path, model) -> dict:
    r = load(results, _common.result_name("prompting", model))
    if r is None:
        return {}
    out, variants = {}, r.get("variants", {})
    base = (variants.get("a_baseline") or {}).get("all_rows") or {}
    for name in PROMPTING:
        d = (r.get("vs_baseline") or {}).get(name)
        a = (variants.get(name) or {}).get("all_rows")
        if d:
            out[name] = (d["tstr_minus_baseline"], d.get("ci95"))
        elif a is None:
            continue
        elif "tstr" not in a or "tstr" not in base:
            out[name] = "skipped (too few rows of a label)"
        else:  # an older file: normal approximation from the two bootstrap sds
            half = 1.96 * math.hypot(a["tstr_boot"]["sd"], base["tstr_boot"]["sd"])
            eff = a["tstr"] - base["tstr"]
            out[name] = (eff, [eff - half, eff + half])
    return out


def s3(results: Path, model) -> dict:
    r = load(results, _common.result_name("s3", model))
    if r is None:
        return {}
    out = {}
    for key in S3:
        d = r["summary"].get(key)
        if d is None:  # an older file: recompute the difference from the per-seed TSTR
            first, other = key.split("_minus_")
            per = [v[first]["tstr"] - v[other]["tstr"] for v in r["per_seed"].values()]
            d = {"mean": sum(per) / len(per), "per_seed": per}
        out[key] = (d["mean"], d.get("ci95") or t_or_none(d["per_seed"]))
    return out


def compare(results: Path, model) -> dict:
    r = load(results, _common.result_name("compare", model))
    if r is None:
        return {}
    out = {}
    for row in r.get("summary", []):
        if row.get("metric") != "tstr_accuracy" or row.get("delta_mean") is None:
            continue
        lo, hi = row.get("delta_ci_low"), row.get("delta_ci_high")
        out[row["variant"]] = ((row["delta_mean"], [lo, hi] if _finite(lo) and _finite(hi) else None)
                               if _finite(row["delta_mean"]) else "no rows kept")
    return out


def noise(results: Path, model) -> dict:
    r = load(results, _common.result_name("bench_noise_llm", model))
    if r is None:
        return {}
    out = {}
    for name, d in (r.get("differences") or {}).items():
        out[name] = (d["mean"], d.get("ci95"))
    return out


def select(results: Path, model) -> dict:
    r = load(results, _common.result_name("select", model))
    if r is None:
        return {}
    acc, out = r["accuracy"], {}
    rand = acc["random"]["per_seed"]
    for name in SELECT:
        if name in acc:
            d = [a - b for a, b in zip(acc[name]["per_seed"], rand)]
            out[name] = (acc[name]["minus_random_mean"], acc[name].get("minus_random_ci95") or t_or_none(d))
    return out


def build_vs_real(results: Path, model) -> dict:
    """(n, E) -> (TSTR with --examples E minus plain, None), for the largest n built both ways; and the same
    without the realness gate where the file has it."""
    runs = {}
    for p in results.glob(f"build_vs_real-{_common.model_slug(model)}-n*-ex*.json"):
        m = re.fullmatch(rf"build_vs_real-{re.escape(_common.model_slug(model))}-n(\d+)-ex(\d+)\.json", p.name)
        if m:
            runs[int(m[1]), int(m[2])] = json.loads(p.read_text())
    out = {}
    for (n, e), r in runs.items():
        plain = runs.get((n, 0))
        if e == 0 or plain is None:
            continue
        out[f"--examples {e} vs plain (n={n})"] = (r["tstr_accuracy"] - plain["tstr_accuracy"], None)
        if "without_gate" in r:
            out[f"--examples {e}, no realness gate, vs plain (n={n})"] = (
                r["without_gate"]["tstr_accuracy"] - plain["tstr_accuracy"], None)
    return out


# --- the table ---------------------------------------------------------------------------------------------

def cell(v) -> str:
    if v is None:
        return "not run"
    if isinstance(v, str):
        return v
    eff, ci = v
    return f"{eff:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else f"{eff:+.3f} (no interval)"


def verdict(v) -> str:
    if v is None:
        return "not run"
    if isinstance(v, str):
        return "n/a"
    eff, ci = v
    if not ci:
        return "no interval"
    return "helps" if ci[0] > 0 else "hurts" if ci[1] < 0 else "no clear effect"


def rows(results: Path, models: dict[str, str]) -> list[tuple[str, str, dict]]:
    """[(technique, measure, {size label: value or None})]."""
    got = {size: {"prompting": prompting(results, m), "s3": s3(results, m), "compare": compare(results, m),
                  "noise": noise(results, m), "select": select(results, m), "build": build_vs_real(results, m)}
           for size, m in models.items()}

    def per(bench, key):
        return {size: got[size][bench].get(key) for size in models}

    out = []
    for key, what in PROMPTING.items():
        out.append((f"prompting: {what}", "TSTR, all rows, vs builder prompt", per("prompting", key)))
    for key, what in S3.items():
        out.append((f"S3: {what}", "TSTR, mean over seeds", per("s3", key)))
    extra = sorted({k for size in models for k in got[size]["compare"]} - set(CURATORS))
    for key in (*CURATORS, *extra):
        out.append((f"compare: curator {key}", "TSTR accuracy vs none, paired by seed", per("compare", key)))
    for key in NOISE:
        out.append((f"noise filter: {key}", "flip-detection F1, 20% flips", per("noise", key)))
    for key, what in SELECT.items():
        out.append((f"selective annotation: {what} vs random", "student accuracy, same budget", per("select", key)))
    builds = sorted({k for size in models for k in got[size]["build"]}) or ["--examples vs plain"]
    for key in builds:
        out.append((f"target-aware build: {key}", "TSTR of the published rows", per("build", key)))
    return out


def settings(results: Path, model) -> list[str]:
    """What each of the model's result files was run with (rows, seeds), one line each."""
    out = []
    r = load(results, _common.result_name("prompting", model))
    if r:
        o = r.get("options", {})
        out.append(f"prompting: {o.get('rows')} rows per variant, seed {o.get('seed')}, "
                   f"{o.get('max_new_tokens')} new tokens at most")
    r = load(results, _common.result_name("s3", model))
    if r:
        a = r.get("args", {})
        out.append(f"S3: {a.get('total')} rows per contender, seeds {a.get('seeds')}")
    r = load(results, _common.result_name("compare", model))
    if r:
        n = re.search(r"--n (\d+)", r.get("command", ""))
        out.append(f"compare: n={n[1] if n else '?'} per seed, seeds {r.get('seeds')}")
    r = load(results, _common.result_name("bench_noise_llm", model))
    if r:
        seeds = r.get("seeds") or [int(k) for k in r.get("per_seed", {})]
        out.append(f"noise: {r.get('rows')} rows scored, flip seeds {seeds}")
    r = load(results, _common.result_name("select", model))
    if r:
        out.append(f"select: pool {r.get('pool')}, budget {r.get('budget')}, seeds {r.get('seeds')}")
    builds = sorted(p.name for p in results.glob(f"build_vs_real-{_common.model_slug(model)}-n*-ex*.json"))
    if builds:
        out.append(f"target-aware build: {', '.join(builds)}")
    return out


def markdown(results: Path, models: dict[str, str]) -> str:
    sizes = list(models)
    head = ["technique", "measure (difference to the baseline)", *[f"{s} effect [95%]" for s in sizes], "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for technique, measure, values in rows(results, models):
        v = "; ".join(f"{s}: {verdict(values[s])}" for s in sizes)
        lines.append("| " + " | ".join([technique, measure, *[cell(values[s]) for s in sizes], v]) + " |")
    for size, model in models.items():
        ran = settings(results, model)
        lines += ["", f"{size} ({_common.model_slug(model)}): " + ("; ".join(ran) if ran else "no results yet") + "."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(_common.ROOT / "benchmarks" / "results"), help="folder of result files")
    ap.add_argument("--large", default="qwen2.5-coder-1.5b", help="the larger model's name (its files' suffix)")
    ap.add_argument("--large-label", default="1.5B", help="its column's label")
    a = ap.parse_args()
    print(markdown(Path(a.results), {"135M": _common.DEFAULT_MODEL, a.large_label: a.large}))


if __name__ == "__main__":
    main()
