"""Picking demonstrations at scale: 100,000 rows from a 10,000-row pool, after embedding.

    OMP_NUM_THREADS=1 python benchmarks/bench_demos.py --rows 100000 --pool 10000

Random unit vectors stand in for the embeddings (384-d, as all-MiniLM-L6-v2): the time to pick does not
depend on what the vectors mean. Timed per strategy, over the whole dataset in map-sized batches
(``--batch``), everything :meth:`Demonstrations.select` does after embedding the queries: per-row
seeded RNGs, the same-label mask (``--same-label``: two labels), the relevance matrix product and the
pick (``nearest``: top-k by ``argpartition``; ``diverse``: MMR over each row's ``candidates`` most
relevant rows). Baseline in the same run: MMR over the whole pool (``candidates`` = pool size: one
pool-wide matrix product per step, what ``diverse`` did before), timed on ``--baseline-rows`` rows
and reported per row. Contenders alternate,
``--repeats`` times; medians. Also timed: the relevance products alone (the floor of an exact search)
and rows that share ``--shared-queries`` distinct queries (through :meth:`Demonstrations.by_query`,
which picks once per distinct query and label). Results: ``benchmarks/results/demos.json``.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

import _common

from synth_datasets.prompts import Demonstrations
from synth_datasets.seeding import derive_seed


def fitted(strategy: str, emb: np.ndarray, labels: list[str] | None, candidates: int) -> Demonstrations:
    d = Demonstrations(k=3, strategy=strategy, query="{{ q }}", candidates=candidates,
                       label_column="label" if labels else None, same_label="label" if labels else None)
    d.pool = {"items": [f"demo {i}" for i in range(len(emb))], "labels": labels, "size": len(emb),
              "sha256": f"bench-{len(emb)}-{bool(labels)}", "embeddings": emb, "source": {"source": "bench"}}
    return d


def pick_all(d: Demonstrations, queries: np.ndarray, row_labels: list[str] | None, batch: int) -> float:
    """Seconds to pick demos for every row, batch by batch (what map does after embedding)."""
    t0 = time.perf_counter()
    for lo in range(0, len(queries), batch):
        q = queries[lo:lo + batch]
        rngs = ([random.Random(derive_seed(0, str(i), "demos")) for i in range(lo, lo + len(q))]
                if d.strategy != "nearest" else [None] * len(q))
        mask = None
        if row_labels is not None:
            codes, pool_codes = d._label_codes()
            want = [codes[f'"{x}"'] for x in row_labels[lo:lo + len(q)]]
            mask = np.array(want, dtype=np.int64)[:, None] == pool_codes[None, :]
        picks = d.choose(q, mask, rngs)
        assert len(picks) == len(q) and all(len(p) == d.k for p in picks)
    return time.perf_counter() - t0


def pick_shared(d: Demonstrations, table: np.ndarray, ids: np.ndarray, row_labels: list[str] | None,
                batch: int) -> float:
    """Seconds to pick for every row when rows share queries (row i asks query ``ids[i]``, e.g. "a {genre}
    film" over a few genres): :meth:`Demonstrations.by_query` picks once per distinct (query, label)."""
    def embed(texts):
        return table[[int(t[1:]) for t in texts]]

    t0 = time.perf_counter()
    for lo in range(0, len(ids), batch):
        texts = [f"q{i}" for i in ids[lo:lo + batch]]
        wanted = [f'"{x}"' for x in row_labels[lo:lo + batch]] if row_labels is not None else None
        picks = d.by_query(texts, wanted, embed=embed)
        assert len(picks) == len(texts)
    return time.perf_counter() - t0


def matmul_floor(emb: np.ndarray, queries: np.ndarray, batch: int) -> float:
    """Seconds for the relevance products alone (queries x pool), the floor of an exact search."""
    t0 = time.perf_counter()
    for lo in range(0, len(queries), batch):
        queries[lo:lo + batch] @ emb.T
    return time.perf_counter() - t0


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--pool", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=1000, help="rows per map batch")
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--baseline-rows", type=int, default=2000, help="rows timed for full-pool MMR")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--same-label", action="store_true", help="restrict demos to the row's label (2 labels)")
    ap.add_argument("--shared-queries", type=int, default=50,
                    help="distinct queries in the shared-query case (a query per genre, say)")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    emb, queries = unit(rng, args.pool, args.dim), unit(rng, args.rows, args.dim)
    labels = [("a", "b")[i % 2] for i in range(args.pool)] if args.same_label else None
    row_labels = [("a", "b")[i % 2] for i in range(args.rows)] if args.same_label else None
    contenders = {
        "nearest": (fitted("nearest", emb, labels, args.candidates), args.rows),
        "diverse": (fitted("diverse", emb, labels, args.candidates), args.rows),
        "diverse_full_pool_baseline": (fitted("diverse", emb, labels, args.pool), args.baseline_rows),
    }
    table = unit(rng, args.shared_queries, args.dim)
    ids = np.random.default_rng(1).integers(0, args.shared_queries, args.rows)
    runs = {name: (lambda d=d, n=n: pick_all(d, queries[:n], row_labels[:n] if row_labels else None, args.batch), n)
            for name, (d, n) in contenders.items()}
    runs["matmul_floor"] = (lambda: matmul_floor(emb, queries, args.batch), args.rows)
    for strategy in ("nearest", "diverse"):
        runs[f"{strategy}_shared_{args.shared_queries}_queries"] = (
            lambda d=contenders[strategy][0]: pick_shared(d, table, ids, row_labels, args.batch), args.rows)
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, (fn, _) in runs.items():
            times[name].append(fn())
    res = {name: {"rows": n, "median_s": round(_common.median(times[name]), 3),
                  "us_per_row": round(1e6 * _common.median(times[name]) / n, 2), "runs_s": [round(t, 3) for t in times[name]]}
           for name, (_, n) in runs.items()}
    base = res["diverse_full_pool_baseline"]["us_per_row"]
    res["diverse_speedup_vs_full_pool_mmr"] = round(base / res["diverse"]["us_per_row"], 1)
    res["diverse_full_pool_extrapolated_s"] = round(base * args.rows / 1e6, 1)
    _common.write_result("demos" + ("_same_label" if args.same_label else ""), {"args": vars(args), "results": res})


if __name__ == "__main__":
    main()
