"""Decontamination speed: ``curate.Decontaminate`` against a pure-Python set of word tuples (same run).

    OMP_NUM_THREADS=1 python benchmarks/bench_decontaminate.py                 # 80k x 25 words vs 100k rows
    python benchmarks/bench_decontaminate.py --reference-rows 8000 --rows 10000 --runs 1   # a quick look

Reference: ``--reference-rows`` texts of ``--words`` words (~1M distinct 13-grams at the defaults);
dataset: ``--rows`` texts, 1% of which quote 13-20 consecutive words of a reference text inside other
words. Words are Zipf-distributed over a 50,000-word vocabulary of random letter strings (seeded), so
every size is available offline. Three timings per side, medians:

- index: ours builds the sorted n-gram hash array (``Decontaminate(reference)``); the baseline builds a
  dict from each 13-word tuple to its first reference row (the same normalisation, in Python).
- check: ours is ``dec.fit(ds)`` (every row's n-grams looked up with ``np.searchsorted``) plus
  ``ds.filter(dec, batched=True, with_indices=True)`` (each timed, medians summed); the baseline looks every row's tuples up in the
  dict and keeps the rows with none.

The decisions of both sides are compared row by row (they must be identical).
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
import unicodedata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, write_result  # noqa: E402

from synth_datasets import curate  # noqa: E402


def make_texts(n_ref: int, n_rows: int, words: int, seed: int = 0, vocab: int = 50_000):
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(2, 10, size=vocab)
    lexicon = np.array(["".join(rng.choice(letters, size=k)) for k in lengths])
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()

    def texts(n):
        ks = rng.integers(max(1, words - 10), words + 11, size=n)
        ids = rng.choice(vocab, size=int(ks.sum()), p=p)
        out, pos = [], 0
        for k in ks:
            out.append(" ".join(lexicon[ids[pos:pos + k]]))
            pos += k
        return out

    reference, rows = texts(n_ref), texts(n_rows)
    planted = rng.choice(n_rows, size=n_rows // 100, replace=False)
    for i in planted.tolist():
        src = reference[int(rng.integers(n_ref))].split()
        if len(src) < 13:
            continue
        k = int(rng.integers(13, min(20, len(src)) + 1))
        s = int(rng.integers(0, len(src) - k + 1))
        rows[i] = f"{rows[i][:40]} {' '.join(src[s:s + k]).upper()}, {rows[i][40:]}"
    return reference, rows


_APOS = re.compile("['\u2019\u2018`\u00b4]")
_NOT_WORD = re.compile(r"[^\w\s]|_")


def naive_words(text: str) -> list[str]:
    return _NOT_WORD.sub(" ", _APOS.sub("", unicodedata.normalize("NFKC", text).lower())).split()


def naive_grams(w: list[str], n: int):
    return [tuple(w[i:i + n]) for i in range(len(w) - n + 1)] if len(w) >= n else ([tuple(w)] if w else [])


def naive_index(reference, n):
    idx: dict[tuple, int] = {}
    for j, t in enumerate(reference):
        for g in naive_grams(naive_words(t), n):
            idx.setdefault(g, j)
    return idx


def naive_keep(rows, idx, n):
    return [not any(g in idx for g in naive_grams(naive_words(t), n)) for t in rows]


def timed(fn, runs):
    times, value = [], None
    for _ in range(runs):
        value = None
        gc.collect()
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return value, times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference-rows", type=int, default=80_000)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--words", type=int, default=25, help="mean words per text (uniform +-10)")
    ap.add_argument("--n", type=int, default=13)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    from datasets import Dataset

    t0 = time.perf_counter()
    reference, rows = make_texts(a.reference_rows, a.rows, a.words)
    ds = Dataset.from_dict({"text": rows})
    print(f"made the texts in {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    dec, ours_index = timed(lambda: curate.Decontaminate(reference, n=a.n), a.runs)

    _, ours_fit = timed(lambda: dec.fit(ds), a.runs)
    kept, ours_filter = timed(lambda: ds.filter(dec, batched=True, with_indices=True, batch_size=10_000), a.runs)
    ours_check = [f + g for f, g in zip(ours_fit, ours_filter)]
    idx, naive_index_t = timed(lambda: naive_index(reference, a.n), a.runs)
    keep, naive_check_t = timed(lambda: naive_keep(rows, idx, a.n), a.runs)
    same = dec.keep_mask.tolist() == keep
    d = dec.describe()
    res = {
        "reference_rows": a.reference_rows, "reference_ngrams": d["reference"]["ngrams"], "rows": a.rows, "n": a.n,
        "dropped": int((~dec.keep_mask).sum()), "kept": kept.num_rows, "same_decisions_as_naive": same,
        "ours": {"index_s": median(ours_index), "check_s": median(ours_check), "fit_s": median(ours_fit),
                 "filter_s": median(ours_filter), "runs": [ours_index, ours_fit, ours_filter]},
        "naive": {"index_s": median(naive_index_t), "check_s": median(naive_check_t),
                  "runs": [naive_index_t, naive_check_t], "dict_entries": len(idx)},
    }
    res["speedup"] = {"index": round(res["naive"]["index_s"] / res["ours"]["index_s"], 1),
                      "check": round(res["naive"]["check_s"] / res["ours"]["check_s"], 1),
                      "total": round((res["naive"]["index_s"] + res["naive"]["check_s"])
                                     / (res["ours"]["index_s"] + res["ours"]["check_s"]), 1)}
    write_result("decontaminate", res)
    if not same:
        raise SystemExit("the decisions differ from the naive baseline")


if __name__ == "__main__":
    main()
