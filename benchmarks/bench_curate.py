"""Curation speed: MinHash near-dedup vs datasketch's MinHashLSH (same run, same recall), and
classifier / neighbour consistency on embedded rows.

    python benchmarks/bench_curate.py --texts 100000 --rows 100000 --runs 3

Near-dedup: ``--texts`` short texts (10-30 words drawn from the Rotten Tomatoes vocabulary, or
random words when the data cannot be fetched) with 1% planted near-copies (1-3 word edits). Both
sides use character 5-gram shingles of the same normalized text, 128 permutations and the same
band layout (datasketch's weights 0.05/0.95 at threshold 0.7); datasketch is timed from MinHash
construction to the last query, without verification (generous to it); ours includes exact
verification and clustering. Recall is over planted pairs whose exact Jaccard is >= 0.7.

Consistency: ``--rows`` x 384 unit vectors around 50 cluster centres (two classes), 10% of labels
flipped; timed from the embedding column of an in-memory Dataset to fitted per-row results.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

import _common


def _texts(n: int, seed: int = 0):
    try:
        from realdata import _rotten_tomatoes_all

        vocab = sorted({w for t, _ in _rotten_tomatoes_all() for w in t.split()})
    except BaseException:  # no registry: random words
        rng = random.Random(seed)
        vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(20000)]
    rng = random.Random(seed)
    base = [" ".join(rng.choices(vocab, k=rng.randint(10, 30))) for _ in range(n - n // 100)]
    sources = rng.sample(range(len(base)), n // 100)
    copies = []
    for i in sources:
        w = base[i].split()
        for _ in range(rng.randint(1, 3)):
            j = rng.randrange(len(w))
            op = rng.random()
            if op < 0.4:
                w[j] = rng.choice(vocab)
            elif op < 0.7 and len(w) > 5:
                del w[j]
            else:
                w.insert(j, rng.choice(vocab))
        copies.append(" ".join(w))
    return base + copies, [(s, len(base) + k) for k, s in enumerate(sources)]


def bench_minhash(n: int) -> dict:
    from datasketch import MinHash, MinHashLSH

    from synth_datasets.curate import NearDuplicates
    from synth_datasets.curate.minhash import normalize

    texts, planted = _texts(n)
    thr = 0.7

    def shingles(t):
        t = normalize(t)
        return {t[i:i + 5] for i in range(len(t) - 4)} if len(t) >= 5 else {t}

    true = []
    for a, b in planted:
        sa, sb = shingles(texts[a]), shingles(texts[b])
        if len(sa & sb) / len(sa | sb) >= thr:
            true.append((a, b))
    near = NearDuplicates(threshold=thr)
    t0 = time.perf_counter()
    anchor, pairs, _ = near.clusters(texts)
    ours_s = time.perf_counter() - t0
    ours_recall = float(np.mean([anchor[a] == anchor[b] for a, b in true]))
    ours_removed = int((anchor != np.arange(len(texts))).sum())

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=thr, num_perm=128, weights=(0.05, 0.95))
    sigs = []
    for i, t in enumerate(texts):
        m = MinHash(num_perm=128)
        m.update_batch([s.encode() for s in shingles(t)])
        lsh.insert(i, m)
        sigs.append(m)
    cand = {i: set(lsh.query(m)) - {i} for i, m in enumerate(sigs)}
    ds_s = time.perf_counter() - t0
    ds_recall = float(np.mean([b in cand[a] for a, b in true]))
    return {"texts": len(texts), "planted_pairs_above_threshold": len(true), "bands_rows": [near.bands, near.rows],
            "ours_s": round(ours_s, 2), "ours_recall": round(ours_recall, 4), "ours_removed": ours_removed,
            "datasketch_s": round(ds_s, 2), "datasketch_candidate_recall": round(ds_recall, 4),
            "speedup": round(ds_s / ours_s, 1)}


def bench_consistency(n: int, d: int = 384) -> dict:
    from datasets import Dataset

    from synth_datasets.curate import ClassifierConsistency, NeighbourConsistency

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, d)).astype(np.float32)
    c = rng.integers(0, 50, n)
    x = centres[c] + rng.normal(scale=1.5, size=(n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    clean = np.where(c % 2 == 0, "a", "b")
    flipped = rng.random(n) < 0.1
    noisy = np.where(flipped, np.where(clean == "a", "b", "a"), clean)
    ds = Dataset.from_dict({"emb": x, "label": noisy.tolist()})
    out = {"rows": n, "dim": d}
    for name, obj in [("classifier_consistency", ClassifierConsistency(embedding_column="emb")),
                      ("neighbour_consistency", NeighbourConsistency(embedding_column="emb", k=10))]:
        t0 = time.perf_counter()
        obj.fit(ds)
        s = time.perf_counter() - t0
        flag = ~obj.keep_mask
        tp = int((flag & flipped).sum())
        out[name] = {"fit_s": round(s, 2), "precision": round(tp / max(int(flag.sum()), 1), 3),
                     "recall": round(tp / int(flipped.sum()), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=100_000)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3, help="repetitions; times are medians (contenders alternate)")
    args = ap.parse_args()
    minhash = [bench_minhash(args.texts) for _ in range(args.runs)]
    consistency = [bench_consistency(args.rows) for _ in range(args.runs)]
    res = {"runs": args.runs, "minhash": _medians(minhash), "consistency": _medians(consistency)}
    _common.write_result("curate", res)


def _medians(results: list[dict]) -> dict:
    """The first result, with every timing replaced by the median over all results (and the list kept)."""
    out = dict(results[0])
    for k, v in list(out.items()):
        if isinstance(v, dict):
            out[k] = _medians([r[k] for r in results])
        elif k.endswith("_s"):
            out[k] = _common.median([r[k] for r in results])
            out[k + "_runs"] = [r[k] for r in results]
    if "ours_s" in out and "datasketch_s" in out:
        out["speedup"] = round(out["datasketch_s"] / out["ours_s"], 2)
    return out


if __name__ == "__main__":
    main()
