"""Selective annotation on real Rotten Tomatoes snippets: which ``--budget`` rows should the LLM label?

The embedded model (or ``--model``; zero-shot Annotator, the prompt of bench_annotate.py) labels the whole pool once;
its scores go to the response cache, so every strategy below reads the same LLM labels and the loop's
own annotation calls are cache hits. For each strategy and seed: ``--budget`` rows of the pool, a
student (all-MiniLM-L6-v2 embeddings + logistic regression) trained on their *LLM* labels, its accuracy
on a disjoint test split with the *real* labels.

Strategies: random; k-means and vote-k on the embeddings; entropy / least confidence / margin of a
student trained on a random seed of ``--seed-size`` LLM labels (one round); LLMAAA (ActiveAnnotator:
the same seed, then ``--rounds`` rounds of student entropy). References (not selection under the
budget): the LLM's own entropy (needs the whole pool labelled first), the whole pool's LLM labels,
and random rows with their real labels.

Then the time to select ``--budget`` rows out of ``--timing-rows`` random 384-d rows (``--timing-rows 0``:
skipped; it does not depend on the model).

Each strategy's accuracy minus random's, paired by seed, with a 95% t-interval over the seeds (the LLM
labels are the same for every seed: the interval covers the selection's randomness, not the labels').
Results: ``benchmarks/results/select.json`` (``select-<model>.json`` for another ``--model``).

    python benchmarks/bench_select.py --pool 1000 --seeds 0 1 2 3 4 --cache /tmp/rt-scores.sqlite
    python benchmarks/bench_select.py --pool 600 --seeds 0 1 2 3 4 --cache /tmp/rt-scores.sqlite \
        --model qwen2.5-coder-1.5b --batch-size 128 --timing-rows 0     # the 1.5B labels the pool
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import _common
from _common import write_result
from bench_annotate import VERBALIZERS, template
from realdata import rotten_tomatoes

from synth_datasets import ActiveAnnotator, Annotator, Selector
from synth_datasets.embeddings import embed_texts_cached
from synth_datasets.generate.active import pick_uncertain, student_proba
from synth_datasets.generate.annotate import _softmax
from synth_datasets.generate.select import uncertainty

LABELS = ["fresh", "rotten"]


def student_accuracy(x, y_llm, rows, x_test, y_test) -> float:
    rows = np.asarray([i for i in rows if y_llm[i] >= 0], dtype=np.int64)
    p = student_proba(x[rows], y_llm[rows], x_test, len(LABELS))
    return float("nan") if p is None else float((p.argmax(1) == y_test).mean())


def timing(n: int, budget: int, seed_size: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    probs = rng.dirichlet([2.0, 2.0], size=n)
    cols = {"emb": x, "p": probs.tolist()}
    out = {"rows": n, "budget": budget}
    for name, sel in (("random", Selector("random", budget=budget)),
                      ("entropy", Selector("entropy", budget=budget, probs_column="p")),
                      ("vote_k (graph on a 20,000-row pool)", Selector("vote_k", budget=budget, embedding_column="emb")),
                      ("kmeans", Selector("kmeans", budget=budget, embedding_column="emb"))):
        t0 = time.perf_counter()
        sel.fit(cols)
        out[name] = round(time.perf_counter() - t0, 2)
        print("timing", name, out[name], flush=True)
    # one LLMAAA round: fit the student on the labels so far, score every unlabelled row, take the top
    seen = rng.choice(n, seed_size, replace=False)
    y = rng.integers(0, 2, seed_size)
    t0 = time.perf_counter()
    rest = np.setdiff1d(np.arange(n), seen)
    pick_uncertain(student_proba(x[seen], y, x[rest], 2), rest, budget, "entropy", rng)
    out["LLMAAA round (student fit + score + pick)"] = round(time.perf_counter() - t0, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--seed-size", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=None, help="response cache (shared with bench_annotate.py)")
    ap.add_argument("--timing-rows", type=int, default=100_000, help="0: skip the selection timing")
    _common.add_model_option(ap, what="the annotator")
    ap.add_argument("--batch-size", type=int, default=32, help="rows per scoring call of a local model "
                                                                "(128 suits the 1.5B)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    data = rotten_tomatoes(None, seed=7)
    pool, test = data[:a.pool], data[a.pool:a.pool + a.test]
    gold = np.array([LABELS.index(r["label"]) for r in pool])
    y_test = np.array([LABELS.index(r["label"]) for r in test])
    t0 = time.perf_counter()
    x = np.asarray(embed_texts_cached([r["text"] for r in pool]), dtype=np.float32)
    x_test = np.asarray(embed_texts_cached([r["text"] for r in test]), dtype=np.float32)
    print(f"embedded {a.pool + a.test} rows in {time.perf_counter() - t0:.0f} s", flush=True)

    llm = _common.make_llm(a.model, batch_size=a.batch_size, cache=a.cache or False)
    ann = Annotator(llm, LABELS, template(None), verbalizers=VERBALIZERS)
    texts = [r["text"] for r in pool]
    t0 = time.perf_counter()
    z = np.zeros((a.pool, 2))
    y_llm = np.full(a.pool, -1)
    step = max(64, a.batch_size)  # rows per logits call (64 before --batch-size; a larger batch gets a chunk)
    for s in range(0, a.pool, step):
        zs, errs = ann.logits({"text": texts[s:s + step]})
        z[s:s + step] = zs
        y_llm[s:s + step] = [-1 if e else int(v) for v, e in zip(zs.argmax(1), errs)]
        print(f"annotated {min(s + step, a.pool)}/{a.pool} ({time.perf_counter() - t0:.0f} s)", flush=True)
    result = {"model": _common.model_slug(a.model),
              "pool": a.pool, "test": a.test, "budget": a.budget, "seed_size": a.seed_size, "rounds": a.rounds,
              "seeds": a.seeds, "llm_accuracy_on_pool": float((y_llm == gold).mean()),
              "llm_errors": int((y_llm < 0).sum()), "annotate_s": round(time.perf_counter() - t0, 1),
              "test_majority_share": float(max(np.mean(y_test == 0), np.mean(y_test == 1)))}
    print(json.dumps(result), flush=True)
    cols = {"text": texts, "emb": x}
    llm_entropy = uncertainty(_softmax(z), "entropy")
    vote_k_rows = Selector("vote_k", budget=a.budget, embedding_column="emb").fit(cols).selected_indices

    per: dict[str, list[float]] = {}
    for seed in a.seeds:
        rng = np.random.default_rng(seed)
        picks = {"random": rng.permutation(a.pool)[:a.budget],
                 "kmeans": Selector("kmeans", budget=a.budget, embedding_column="emb", seed=seed).fit(cols)
                 .selected_indices,
                 "vote_k": vote_k_rows}
        for strategy in ("entropy", "least_confidence", "margin"):
            picks[strategy] = ActiveAnnotator(ann, budget=a.budget, embedding_column="emb", seed_size=a.seed_size,
                                              rounds=1, strategy=strategy, seed=seed).fit(cols).selected_indices
        active = ActiveAnnotator(ann, budget=a.budget, embedding_column="emb", seed_size=a.seed_size,
                                 rounds=a.rounds, strategy="entropy", seed=seed).fit(cols)
        picks["llmaaa_active"] = active.selected_indices
        picks["ref: llm_entropy (whole pool labelled)"] = np.argsort(-llm_entropy)[:a.budget]
        for name, rows in picks.items():
            assert len(set(int(i) for i in rows)) == a.budget, (name, len(rows))
            per.setdefault(name, []).append(student_accuracy(x, y_llm, rows, x_test, y_test))
        per.setdefault("ref: whole pool, LLM labels", []).append(
            student_accuracy(x, y_llm, np.arange(a.pool), x_test, y_test))
        per.setdefault("ref: random rows, real labels", []).append(
            student_accuracy(x, gold, picks["random"], x_test, y_test))
        per.setdefault("llm_label_accuracy_on_random_rows", []).append(float((y_llm[picks["random"]] == gold[
            picks["random"]]).mean()))
        per.setdefault("llm_label_accuracy_on_llmaaa_rows", []).append(float((y_llm[picks["llmaaa_active"]] == gold[
            np.asarray(picks["llmaaa_active"])]).mean()))
        print(seed, {k: round(v[-1], 4) for k, v in per.items()}, flush=True)
    rand = np.array(per["random"])
    table = {}
    for name, v in per.items():
        v = np.array(v)
        table[name] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                       "min": float(v.min()), "max": float(v.max()), "per_seed": [round(float(t), 4) for t in v],
                       "minus_random_mean": float((v - rand).mean()), "seeds_above_random": int((v > rand).sum()),
                       "minus_random_ci95": _common.t_interval(v - rand)["ci95"]}
    result["accuracy"] = table
    result["llmaaa_rounds_last_seed"] = active.describe()["per_round"]
    if a.timing_rows:
        result["timing_selection"] = timing(a.timing_rows, a.budget, a.seed_size)
    write_result(_common.result_name("select", a.model), result)


if __name__ == "__main__":
    main()
