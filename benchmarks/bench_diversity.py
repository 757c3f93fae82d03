"""Speed of the diversity metric against its reference implementations (same run, medians).

    python benchmarks/bench_diversity.py                      # all three parts, defaults below
    python benchmarks/bench_diversity.py --only self_bleu --bleu-n 10000 --bleu-ref-sample 20

1. self-BLEU on N texts: ours (all N hypotheses) vs the reference loop of nltk ``sentence_bleu`` calls
   (each hypothesis against the N-1 others, smoothing method1). The nltk loop over all N would take
   hours, so it scores a random sample of k hypotheses, each against all N-1 others: a hypothesis'
   cost does not depend on how many other hypotheses are scored, so the full loop's time is
   (time of k) * N / k. That extrapolation is linear in N, *not* a shortcut in the O(N^2) work: every
   sampled call still reads all N-1 references. Values are compared on the sampled hypotheses.
2. Vendi on N x d embeddings: ours (d x d dual form) vs vendi-score's n x n path (``score_X``:
   K = X X^T, then eigvalsh of an n x n matrix, O(n^3) time and O(n^2) memory). The n x n path at
   N = 50,000 needs a 20 GB kernel, so it runs at smaller n, its time is fitted as c * n^3 on the
   largest sizes and extrapolated; ours runs at every size up to N. Peak memory via tracemalloc.
3. distinct-n (n=1..4) and compression ratio on 10k / 100k / 1M short texts: seconds, linear growth.

Texts are synthetic (Zipf-distributed words over a 20,000-word vocabulary, 5 to 30 words each,
seeded), so every size is available without downloading anything.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, write_result  # noqa: E402

from synth_datasets.metrics.diversity import (  # noqa: E402
    _bleu_per_text, _encode, compression_ratio, diversity, ngram_stats, self_bleu, vendi_score)


def zipf_texts(n: int, seed: int = 0, vocab: int = 20_000) -> list[str]:
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)])
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    lengths = rng.integers(5, 31, size=n)
    ids = rng.choice(vocab, size=int(lengths.sum()), p=p)
    out, pos = [], 0
    for length in lengths:
        out.append(" ".join(words[ids[pos:pos + length]]))
        pos += length
    return out


def timed(fn, runs: int):
    times, value = [], None
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return median(times), times, value


def bench_self_bleu(n: int, k: int, runs: int) -> dict:
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    texts = zipf_texts(n, seed=1)
    ours_s, ours_all, ours = timed(lambda: self_bleu(texts), runs)
    per_text = _bleu_per_text(*_encode(texts), len(texts))
    toks = [t.lower().split() for t in texts]
    smooth = SmoothingFunction().method1
    sample = np.random.default_rng(0).choice(n, size=k, replace=False)
    ref_times, max_abs = [], 0.0
    for _ in range(max(1, runs // 2)):
        t0 = time.perf_counter()
        ref = [sentence_bleu(toks[:i] + toks[i + 1:], toks[i], weights=(0.25,) * 4, smoothing_function=smooth)
               for i in sample]
        ref_times.append(time.perf_counter() - t0)
        max_abs = max(max_abs, float(np.max(np.abs(np.asarray(ref) - per_text[sample]))))
    ref_full = median(ref_times) * n / k
    return {"n": n, "ours_s": ours_s, "ours_runs_s": ours_all, "self_bleu": ours,
            "nltk_sample_hypotheses": k, "nltk_sample_s": median(ref_times),
            "nltk_full_loop_extrapolated_s": ref_full, "speedup": ref_full / ours_s,
            "max_abs_diff_on_sample": max_abs}


def peak_mb(fn):
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def bench_vendi(n: int, d: int, ref_sizes: list[int], runs: int) -> dict:
    from vendi_score import vendi

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(200, d))
    x = centers[rng.integers(0, 200, size=n)] + 0.5 * rng.normal(size=(n, d))  # clustered, like text
    rows = []
    for m in ref_sizes:
        xm = x[:m]
        ref_s, _, ref_v = timed(lambda: vendi.score_X(xm), max(1, runs // 2))
        ours_s, _, ours_v = timed(lambda: vendi_score(xm), runs)
        rows.append({"n": m, "vendi_score_X_s": ref_s, "ours_s": ours_s, "ref_value": float(ref_v),
                     "ours_value": ours_v, "rel_diff": abs(ours_v - ref_v) / ref_v,
                     "ref_peak_mb": peak_mb(lambda: vendi.score_X(xm)), "ours_peak_mb": peak_mb(lambda: vendi_score(xm))})
    big = [r for r in rows if r["n"] >= ref_sizes[-1] // 2] or rows
    c = median([r["vendi_score_X_s"] / r["n"] ** 3 for r in big])
    ours_s, ours_all, ours_v = timed(lambda: vendi_score(x), runs)
    dual_s, _, dual_v = timed(lambda: vendi.score_dual(x), runs)
    ref_extrap = c * n ** 3
    return {"n": n, "d": d, "by_size": rows, "ours_s": ours_s, "ours_runs_s": ours_all, "ours_value": ours_v,
            "ours_peak_mb": peak_mb(lambda: vendi_score(x)),
            "vendi_score_dual_s": dual_s, "vendi_score_dual_value": float(dual_v),
            "n_by_n_extrapolated_s": ref_extrap, "n_by_n_kernel_gb": n * n * 8 / 1e9,
            "speedup_vs_n_by_n": ref_extrap / ours_s}


def bench_lexical(sizes: list[int], runs: int) -> dict:
    rows = []
    for n in sizes:
        texts = zipf_texts(n, seed=2)
        d_s, _, _ = timed(lambda: ngram_stats(texts, (1, 2, 3, 4)), runs)
        c_s, _, ratio = timed(lambda: compression_ratio(texts), runs)
        all_s, _, _ = timed(lambda: diversity(texts), 1)
        rows.append({"n": n, "tokens": sum(len(t.split()) for t in texts), "distinct_entropy_1to4_s": d_s,
                     "compression_s": c_s, "compression_ratio": ratio, "diversity_all_lexical_s": all_s,
                     "distinct_us_per_text": d_s / n * 1e6, "compression_us_per_text": c_s / n * 1e6})
    return {"by_size": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["self_bleu", "vendi", "lexical"])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bleu-n", type=int, default=10_000)
    ap.add_argument("--bleu-ref-sample", type=int, default=20)
    ap.add_argument("--vendi-n", type=int, default=50_000)
    ap.add_argument("--vendi-d", type=int, default=384)
    ap.add_argument("--vendi-ref-sizes", type=int, nargs="+", default=[1000, 2000, 4000, 6000])
    ap.add_argument("--lexical-sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    a = ap.parse_args()
    result = {}
    if a.only in (None, "self_bleu"):
        result["self_bleu"] = bench_self_bleu(a.bleu_n, a.bleu_ref_sample, a.runs)
    if a.only in (None, "vendi"):
        result["vendi"] = bench_vendi(a.vendi_n, a.vendi_d, a.vendi_ref_sizes, a.runs)
    if a.only in (None, "lexical"):
        result["lexical"] = bench_lexical(a.lexical_sizes, a.runs)
    write_result("diversity" + (f"_{a.only}" if a.only else ""), result)


if __name__ == "__main__":
    main()
