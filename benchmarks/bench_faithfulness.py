"""Distributional fidelity at scale: our prdc() and mauve() against the reference packages, same run.

Data: two sets of embedding-like vectors (a 48-d latent Gaussian mixture mapped to --dim and
L2-normalized, the fake set mildly shifted), so PCA keeps a realistic number of components.
Reported: wall time per call (median of --runs), peak extra memory of one prdc call (tracemalloc sees
numpy buffers), and the values side by side.

    python benchmarks/bench_faithfulness.py --n 20000 --dim 384 --mauve-n 5000 --runs 3

Reference packages: `prdc` (dense n x n distance matrices, float32 here so they fit in memory) and
`mauve-text` (faiss k-means). `pip install prdc mauve-text faiss-cpu`.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

import _common


def _data(n: int, dim: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(0).normal(size=(48, dim))
    centers = np.random.default_rng(1).normal(size=(20, 48)) * 2
    z = centers[rng.integers(0, 20, size=n)] + rng.normal(size=(n, 48)) + shift
    x = z @ w + rng.normal(size=(n, dim)) * 2
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _timed(fn, runs: int):
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return _common.median(times), times, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="rows per set for prdc")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--mauve-n", type=int, default=5000, help="rows per set for MAUVE (buckets = n/10)")
    ap.add_argument("--kmeans-redo", type=int, default=5)
    ap.add_argument("--kmeans-iter", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-reference-prdc", action="store_true")
    args = ap.parse_args()

    import contextlib
    import io

    import mauve as mauve_text
    from prdc import compute_prdc

    from synth_datasets.metrics import mauve, prdc

    real, fake = _data(args.n, args.dim, 10, 0.0), _data(args.n, args.dim, 11, 0.15)
    result: dict = {"n": args.n, "dim": args.dim, "k": args.k}

    tracemalloc.start()
    prdc(real[:2000], fake[:2000], k=args.k)
    tracemalloc.reset_peak()
    prdc(real, fake, k=args.k)
    result["prdc_ours_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    tracemalloc.stop()
    med, times, ours = _timed(lambda: prdc(real, fake, k=args.k), args.runs)
    result["prdc_ours_s"], result["prdc_ours_runs_s"], result["prdc_ours"] = round(med, 2), [round(t, 2) for t in times], ours
    if not args.skip_reference_prdc:
        r32, f32 = real.astype(np.float32), fake.astype(np.float32)
        with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sizes
            med, times, ref = _timed(lambda: compute_prdc(r32, f32, args.k), args.runs)
        result["prdc_package_s"], result["prdc_package_runs_s"] = round(med, 2), [round(t, 2) for t in times]
        result["prdc_package"] = {k: float(v) for k, v in ref.items()}
        result["prdc_max_abs_diff"] = max(abs(ours[k] - float(ref[k])) for k in ours)

    p, q = real[:args.mauve_n], fake[:args.mauve_n]
    kw = dict(kmeans_n_init=args.kmeans_redo, kmeans_max_iter=args.kmeans_iter)
    med, times, ours = _timed(lambda: mauve(p, q, **kw), args.runs)
    result.update(mauve_n=args.mauve_n, mauve_buckets=ours["num_buckets"], mauve_kmeans=kw,
                  mauve_ours_s=round(med, 2), mauve_ours_runs_s=[round(t, 2) for t in times],
                  mauve_ours=round(ours["mauve"], 4))
    med, times, ref = _timed(lambda: mauve_text.compute_mauve(
        p_features=p, q_features=q, kmeans_num_redo=args.kmeans_redo, kmeans_max_iter=args.kmeans_iter), args.runs)
    result.update(mauve_package_s=round(med, 2), mauve_package_runs_s=[round(t, 2) for t in times],
                  mauve_package=round(ref.mauve, 4))
    _common.write_result("faithfulness", result)


if __name__ == "__main__":
    main()
