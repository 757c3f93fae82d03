"""Annotation on real Rotten Tomatoes snippets with the embedded model.

- zero-shot and few-shot (4 random labelled demonstrations, the same for every row) accuracy and
  expected calibration error of Annotator's scoring pass, before and after a temperature fitted on
  ``--calibrate`` other labelled rows;
- time per row of the scoring pass vs generating the label (greedy, ``max_new_tokens`` 2 and 8) on
  the same prompts, same batch size.

    python benchmarks/bench_annotate.py --rows 200 --few-rows 200 --cache /tmp/rt-scores.sqlite
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import ROOT, write_result
from realdata import rotten_tomatoes

from synth_datasets import LLM, Annotator, Template
from synth_datasets.llm import ChatRequest, SamplingParams

VERBALIZERS = {"fresh": "positive", "rotten": "negative"}
ASK = "Is the following movie review positive or negative? Answer with one word.\n\n"


def template(demos: list[dict] | None) -> Template:
    shots = "".join(f"Review: {d['text']}\nAnswer: {VERBALIZERS[d['label']]}\n\n" for d in demos or [])
    return Template(user=ASK + shots.replace("{", "{{ '{' }}") + "Review: {{ text }}\nAnswer:")


def variant(llm: LLM, tmpl: Template, test: list[dict], cal: list[dict]) -> dict:
    """Score the test rows once; fit a temperature on the calibration rows; both ECEs from the same scores."""
    import numpy as np

    from synth_datasets.generate.annotate import _softmax, expected_calibration_error

    ann = Annotator(llm, ["fresh", "rotten"], tmpl, verbalizers=VERBALIZERS)
    t0 = time.perf_counter()
    z, errors = ann.logits({"text": [r["text"] for r in test]})
    secs = time.perf_counter() - t0
    fit = ann.calibrate({"text": [r["text"] for r in cal], "gold": [r["label"] for r in cal]}, "gold")
    gold = np.array([ann.labels.index(r["label"]) for r in test])
    out = {"rows": len(test), "errors": sum(e is not None for e in errors), "s_per_row": secs / len(test),
           "temperature": fit["temperature"], "calibration_rows": fit["rows"]}
    for name, t in (("", 1.0), ("_calibrated", fit["temperature"])):
        p = _softmax(z, t)
        correct = p.argmax(-1) == gold
        out["accuracy"] = float(correct.mean())
        out[f"ece{name}"] = expected_calibration_error(p.max(-1), correct)
        out[f"mean_confidence{name}"] = float(p.max(-1).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200, help="test rows, zero-shot")
    ap.add_argument("--few-rows", type=int, default=200, help="test rows, few-shot (the first of the same rows)")
    ap.add_argument("--calibrate", type=int, default=50)
    ap.add_argument("--timing-rows", type=int, default=32)
    ap.add_argument("--timing-reps", type=int, default=3)
    ap.add_argument("--timing-only", action="store_true", help="rerun only the timing; keep the rest of results/annotate.json")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    ap.add_argument("--cache", default=None, help="response cache for the scores (bench_select.py shares it)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    llm = LLM(batch_size=32, cache=a.cache or False)
    data = rotten_tomatoes(None, seed=7)  # the pool of bench_select.py starts with the same rows
    test, cal, demos = data[:a.rows], data[-a.calibrate - 4:-4], data[-4:]
    result = {"rows": a.rows, "calibration_rows": a.calibrate, "majority_share":
              max(sum(r["label"] == x for r in test) for x in VERBALIZERS) / a.rows}
    if a.timing_only:
        result = json.loads((ROOT / "benchmarks" / "results" / "annotate.json").read_text())
        result.pop("machine", None)
    else:
        result["few_shot_4_random"] = variant(llm, template(demos), test[:a.few_rows], cal)
        print("few_shot_4_random", result["few_shot_4_random"], flush=True)
        result["zero_shot"] = variant(llm, template(None), test, cal)
        print("zero_shot", result["zero_shot"], flush=True)
    # scoring pass vs generating the label on the same prompts (no cache: both really computed; the
    # model loaded first; contenders alternate, medians of --timing-reps)
    llm = LLM(batch_size=32, cache=False)
    llm.backend._load()
    ann = Annotator(llm, ["fresh", "rotten"], template(None), verbalizers=VERBALIZERS)
    sub = {"text": [r["text"] for r in test[:a.timing_rows]]}
    reqs = [ChatRequest.of(template(None).render({"text": t}), 0) for t in sub["text"]]
    runs: dict[str, list[float]] = {"score": [], "generate_2": [], "generate_8": []}
    for _ in range(a.timing_reps):
        t0 = time.perf_counter()
        ann.logits(sub)
        runs["score"].append((time.perf_counter() - t0) / len(reqs))
        for m in (2, 8):
            t0 = time.perf_counter()
            llm.generate(reqs, SamplingParams(temperature=0.0, max_new_tokens=m))
            runs[f"generate_{m}"].append((time.perf_counter() - t0) / len(reqs))
    timing = {"rows": len(reqs), "reps": a.timing_reps, "runs_s_per_row": runs}
    score_s = statistics.median(runs["score"])
    timing["score_s_per_row"] = score_s
    for m in (2, 8):
        timing[f"generate_{m}_s_per_row"] = statistics.median(runs[f"generate_{m}"])
        timing[f"speedup_vs_generate_{m}"] = timing[f"generate_{m}_s_per_row"] / score_s
    print("timing", timing, flush=True)
    result["timing"] = timing
    write_result("annotate", result)


if __name__ == "__main__":
    main()
