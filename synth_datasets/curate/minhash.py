"""Vectorized MinHash-LSH (numpy): shingles, signatures, banding, candidate pairs, exact verification.

No per-text Python loop in the hot path: all texts are concatenated into one code-point array,
k-shingles are rolling hashes over it, signatures are ``np.minimum.reduceat`` over permuted shingle
hashes (chunked to bound memory), and LSH buckets are found by sorting band keys. Results match the
definition: the candidate pairs are the pairs that share a band, and ``exact`` verification keeps a
pair only when the Jaccard similarity of the two shingle sets is at least the threshold.

>>> texts = ["the cat sat on the mat today", "the cat sat on the mat today!", "something else entirely"]
>>> sh = shingle_sets(texts, ngram=5)
>>> pairs = candidate_pairs(signatures(sh, num_perm=64, seed=1), bands=16, rows=4)
>>> [(int(a), int(b)) for a, b in pairs]
[(0, 1)]
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Sequence

import numpy as np

_MASK32 = np.uint64(0xFFFFFFFF)
_WS = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalize(text: str, *, punctuation: bool = False) -> str:
    """NFKC, lower case, whitespace collapsed (and punctuation removed when ``punctuation`` is True)."""
    t = unicodedata.normalize("NFKC", text).lower()
    if punctuation:
        t = _PUNCT.sub(" ", t)
    return _WS.sub(" ", t).strip()


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer, then the high 32 bits."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * np.uint64(0xBF58476D1CE4E5B9)
        h = h ^ (h >> np.uint64(27))
        h = h * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    return (h >> np.uint64(32)).astype(np.uint32)


class ShingleSets:
    """Per-text sorted unique shingle hashes, stored flat: ``hashes[offsets[i]:offsets[i+1]]``."""

    def __init__(self, hashes: np.ndarray, offsets: np.ndarray):
        self.hashes, self.offsets = hashes, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i]:self.offsets[i + 1]]

    def jaccard(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Exact Jaccard similarity of the shingle sets of each pair (a[i], b[i])."""
        out = np.empty(len(a))
        for k, (i, j) in enumerate(zip(a.tolist(), b.tolist())):
            x, y = self[i], self[j]
            inter = len(np.intersect1d(x, y, assume_unique=True))
            union = len(x) + len(y) - inter
            out[k] = inter / union if union else 1.0
        return out


def shingle_sets(texts: Sequence[str], *, ngram: int = 5, unit: str = "char") -> ShingleSets:
    """Hashed ``ngram``-shingles of each text (characters, or words with ``unit="word"``).

    A text shorter than ``ngram`` units has one shingle: itself. Hashes are 32-bit and stable across
    processes and machines.
    """
    n = len(texts)
    if unit == "char":
        lens = np.fromiter((len(t) for t in texts), dtype=np.int64, count=n)
        sep = "\x00" * ngram
        codes = np.frombuffer((sep.join(texts) + sep).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    else:
        words = [t.split() for t in texts]
        lens = np.fromiter((len(w) for w in words), dtype=np.int64, count=n)
        vocab: dict[str, int] = {}
        flat: list[int] = []
        pad = [0] * ngram
        for w in words:
            flat.extend(vocab.setdefault(x, len(vocab) + 1) for x in w)
            flat.extend(pad)
        ids = np.asarray(flat, dtype=np.uint64)
        # ids depend on first-seen order: replace them by a stable hash of the word itself
        table = np.zeros(len(vocab) + 1, dtype=np.uint64)
        if vocab:
            table[1:] = _word_hashes(tuple(vocab))
        codes = table[ids.astype(np.int64)]
    starts = np.concatenate([[0], np.cumsum(lens + ngram)[:-1]]).astype(np.int64) if n else np.zeros(0, np.int64)
    total = len(codes)
    width = max(total - ngram + 1, 0)
    h = np.zeros(width, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(ngram):
            h = h * np.uint64(0x100000001B3) + codes[j:j + width]
    hashes32 = _mix(h)
    count = np.maximum(lens - ngram + 1, 1)  # windows per text (one for short texts)
    text_of = np.repeat(np.arange(n), count)
    pos = np.arange(len(text_of)) - np.repeat(np.cumsum(count) - count, count) + np.repeat(starts, count)
    vals = hashes32[pos]
    order = np.lexsort((vals, text_of))
    text_of, vals = text_of[order], vals[order]
    keep = np.ones(len(vals), dtype=bool)
    keep[1:] = (vals[1:] != vals[:-1]) | (text_of[1:] != text_of[:-1])
    text_of, vals = text_of[keep], vals[keep]
    offsets = np.searchsorted(text_of, np.arange(n + 1))
    return ShingleSets(vals, offsets.astype(np.int64))


@lru_cache(maxsize=4)
def _word_hashes(words: tuple[str, ...]) -> np.ndarray:
    import xxhash

    return np.fromiter((xxhash.xxh64_intdigest(w) | 1 for w in words), dtype=np.uint64, count=len(words))


def _perms(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    return a, b


def signatures(sh: ShingleSets, *, num_perm: int = 128, seed: int = 1, chunk: int = 4096) -> np.ndarray:
    """MinHash signatures, shape (n, num_perm), uint32: for each permutation ``(a*x + b) >> 32``
    (multiply-shift hashing mod 2**64), the minimum over a text's shingles. Computed in place on
    cache-sized blocks of about ``chunk`` shingles (4096 x 128 x 8 bytes = 4 MB)."""
    a, b = _perms(num_perm, seed)
    a, b = a[None, :], b[None, :]
    n = len(sh)
    sig = np.empty((n, num_perm), dtype=np.uint32)
    offsets = sh.offsets
    buf = np.empty((chunk, num_perm), dtype=np.uint64)
    shift = np.uint64(32)
    t0 = 0
    while t0 < n:  # blocks of whole texts with about `chunk` shingles
        t1 = int(np.searchsorted(offsets, offsets[t0] + chunk, side="right")) - 1
        t1 = min(max(t1, t0 + 1), n)
        lo, hi = offsets[t0], offsets[t1]
        x = sh.hashes[lo:hi].astype(np.uint64)[:, None]
        ph = buf[:hi - lo] if hi - lo <= chunk else np.empty((hi - lo, num_perm), dtype=np.uint64)
        np.multiply(x, a, out=ph)
        np.add(ph, b, out=ph)
        np.right_shift(ph, shift, out=ph)
        sig[t0:t1] = np.minimum.reduceat(ph, (offsets[t0:t1] - lo).astype(np.int64), axis=0)
        t0 = t1
    return sig


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, *, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands*rows <= num_perm minimizing the weighted false positive/negative
    probability mass around ``threshold`` (the rule datasketch's MinHashLSH uses)."""
    best, best_err = (1, num_perm), float("inf")
    lo, hi = np.linspace(0.0, threshold, 201), np.linspace(threshold, 1.0, 201)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(1 - (1 - lo**r) ** b, lo)
            fn = np.trapezoid(1 - (1 - (1 - hi**r) ** b), hi)
            err = fp_weight * fp + fn_weight * fn
            if err < best_err:
                best, best_err = (b, r), err
    return best


def candidate_pairs(sig: np.ndarray, *, bands: int, rows: int) -> np.ndarray:
    """Pairs (i, j), i < j, that share a band bucket; each bucket contributes edges from its smallest
    member to every other member (enough for connected components). Shape (m, 2), int64, unique."""
    n = sig.shape[0]
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    rng = np.random.default_rng(12345)
    mult = rng.integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1)
    edges = []
    for band in range(bands):
        block = sig[:, band * rows:(band + 1) * rows].astype(np.uint64)
        with np.errstate(over="ignore"):
            key = (block * mult[None, :]).sum(axis=1, dtype=np.uint64) ^ (block[:, 0] << np.uint64(32))
        order = np.argsort(key, kind="stable")
        k = key[order]
        start = np.ones(n, dtype=bool)
        start[1:] = k[1:] != k[:-1]
        first = order[np.maximum.accumulate(np.where(start, np.arange(n), 0))]
        member = ~start
        if member.any():
            edges.append(np.stack([first[member], order[member]], axis=1))
    if not edges:
        return np.zeros((0, 2), dtype=np.int64)
    e = np.concatenate(edges).astype(np.int64)
    e = np.sort(e, axis=1)
    return np.unique(e, axis=0)


def estimated_jaccard(sig: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return (sig[pairs[:, 0]] == sig[pairs[:, 1]]).mean(axis=1)


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes; the label is the smallest member index."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(pairs) == 0:
        return np.arange(n)
    g = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    smallest = np.full(lab.max() + 1, n, dtype=np.int64)
    np.minimum.at(smallest, lab, np.arange(n))
    return smallest[lab]
