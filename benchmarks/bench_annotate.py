"""Annotation on real Rotten Tomatoes snippets with the embedded model.

- zero-shot and few-shot (4 random labelled demonstrations, the same for every row) accuracy and
  expected calibration error of Annotator's scoring pass, before and after a temperature fitted on
  ``--calibrate`` other labelled rows;
- time per row of the scoring pass vs generating the label (greedy, ``max_new_tokens`` 2 and 8) on
  the same prompts, same batch size.

    python benchmarks/bench_annotate.py --rows 200
"""

from __future__ import annotations

import argparse
import time

from _common import write_result
from realdata import rotten_tomatoes

from synth_datasets import LLM, Annotator, Template
from synth_datasets.generate.annotate import annotation_report
from synth_datasets.llm import ChatRequest, SamplingParams

VERBALIZERS = {"fresh": "positive", "rotten": "negative"}
ASK = "Is the following movie review positive or negative? Answer with one word.\n\n"


def template(demos: list[dict] | None) -> Template:
    shots = "".join(f"Review: {d['text']}\nAnswer: {VERBALIZERS[d['label']]}\n\n" for d in demos or [])
    return Template(user=ASK + shots.replace("{", "{{ '{' }}") + "Review: {{ text }}\nAnswer:")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--calibrate", type=int, default=50)
    ap.add_argument("--timing-rows", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    from datasets import Dataset

    llm = LLM(batch_size=32, cache=False)
    llm.backend._load()
    data = rotten_tomatoes(a.rows + a.calibrate + 4, seed=7)
    test, cal, demos = data[:a.rows], data[a.rows:a.rows + a.calibrate], data[-4:]
    ds = Dataset.from_dict({"text": [r["text"] for r in test], "gold": [r["label"] for r in test]})
    cal_ds = Dataset.from_dict({"text": [r["text"] for r in cal], "gold": [r["label"] for r in cal]})
    result = {"rows": a.rows, "calibration_rows": a.calibrate, "majority_share":
              max(sum(r["label"] == x for r in test) for x in VERBALIZERS) / a.rows}
    for name, tmpl in (("zero_shot", template(None)), ("few_shot_4_random", template(demos))):
        ann = Annotator(llm, ["fresh", "rotten"], tmpl, verbalizers=VERBALIZERS)
        t0 = time.perf_counter()
        before = annotation_report(ds.map(ann, batched=True, batch_size=32), "label", "gold")
        secs = time.perf_counter() - t0
        fit = ann.calibrate(cal_ds, "gold")
        after = annotation_report(ds.map(ann, batched=True, batch_size=32), "label", "gold")
        result[name] = {"accuracy": before["accuracy"], "ece": before["ece"], "ece_calibrated": after["ece"],
                        "temperature": fit["temperature"], "s_per_row": secs / a.rows}
        print(name, result[name], flush=True)
    # scoring pass vs generating the label on the same prompts
    ann = Annotator(llm, ["fresh", "rotten"], template(None), verbalizers=VERBALIZERS)
    sub = ds.select(range(min(a.timing_rows, a.rows)))
    t0 = time.perf_counter()
    ann.logits(sub.to_dict())
    score_s = (time.perf_counter() - t0) / sub.num_rows
    reqs = [ChatRequest.of(template(None).render({"text": t}), 0) for t in sub["text"]]
    timing = {"score_s_per_row": score_s}
    for m in (2, 8):
        t0 = time.perf_counter()
        llm.generate(reqs, SamplingParams(temperature=0.0, max_new_tokens=m))
        timing[f"generate_{m}_s_per_row"] = (time.perf_counter() - t0) / sub.num_rows
        timing[f"speedup_vs_generate_{m}"] = timing[f"generate_{m}_s_per_row"] / score_s
    result["timing"] = timing
    write_result("annotate", result)


if __name__ == "__main__":
    main()
