"""Novelty against a reference set and against what is already kept: the ROUGE-L rule of
Self-Instruct (a new text is kept only if its ROUGE-L F-measure with every reference text and every
text kept before it is <= ``threshold``, 0.7 in the paper), or exact matches after normalization.

ROUGE-L here equals the ``rouge-score`` package (Self-Instruct's scorer, no stemming; checked in
tests): same tokenizer (lower case, runs of ``[a-z0-9]``), LCS by a bit-parallel algorithm, and
F = 2·LCS / (|a| + |b|). It is fast because most pairs are never scored: an upper bound on LCS (the
shared token multiset, from two sparse matrix products) rules them out first.

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"text": ["Write a poem about the sea.", "Write a poem about the sea!",
...                                  "List three prime numbers.", "Translate hello into French."]})
>>> nov = Novelty(reference=["Translate 'hello' into French."]).fit(ds)
>>> list(ds.map(nov.mark, batched=True, with_indices=True)["novelty_reason"])
[None, 'similar_to_kept', None, 'similar_to_reference']
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..columns import TextColumn, check_column_option
from ..errors import InvalidParameterError
from .base import FittedFilter, check_range
from .minhash import normalize

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenizer (no stemming): lower case, non-alphanumerics are separators."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence (bit-parallel, Hyyrö 2004): O(len(b)) big-int ops."""
    if not a or not b:
        return 0
    masks: dict = {}
    for i, t in enumerate(a):
        masks[t] = masks.get(t, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for t in b:
        u = v & masks.get(t, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_l(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F-measure of two token lists (symmetric)."""
    return 2 * lcs_length(a, b) / (len(a) + len(b)) if a and b else 0.0


def _count_matrix(token_lists, vocab):
    rows, cols, vals = [], [], []
    for i, toks in enumerate(token_lists):
        counts: dict[int, int] = {}
        for t in toks:
            j = vocab.setdefault(t, len(vocab))
            counts[j] = counts.get(j, 0) + 1
        rows += [i] * len(counts)
        cols += list(counts)
        vals += list(counts.values())
    return rows, cols, vals


def _upper_bound_pairs(toks_a, toks_b, threshold, *, upper_only=False, chunk=2048):
    """Pairs (i, j) whose ROUGE-L could exceed ``threshold``: LCS <= min(C_a·B_b, B_a·C_b)."""
    from scipy.sparse import csr_matrix

    vocab: dict[str, int] = {}
    ra, ca, va = _count_matrix(toks_a, vocab)
    rb, cb, vb = _count_matrix(toks_b, vocab)
    shape = len(vocab)
    C_a = csr_matrix((va, (ra, ca)), shape=(len(toks_a), shape), dtype=np.float32)
    C_b = csr_matrix((vb, (rb, cb)), shape=(len(toks_b), shape), dtype=np.float32)
    B_a, B_b = (C_a > 0).astype(np.float32), (C_b > 0).astype(np.float32)
    la = np.array([len(t) for t in toks_a], dtype=np.float64)
    lb = np.array([len(t) for t in toks_b], dtype=np.float64)
    out = []
    for s in range(0, len(toks_a), chunk):
        e = min(s + chunk, len(toks_a))
        u = (C_a[s:e] @ B_b.T).minimum(B_a[s:e] @ C_b.T).tocoo()
        i, j = u.row + s, u.col
        ok = 2 * u.data / (la[i] + lb[j]) > threshold
        if upper_only:
            ok &= j < i
        out.append(np.stack([i[ok], j[ok]], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


class Novelty(TextColumn, FittedFilter):
    """Drop rows too similar to a reference set (e.g. the seeds, an existing dataset) or, with
    ``against_kept``, to a row kept before them, in dataset order (Self-Instruct's bootstrap rule).

    ``method="rouge_l"``: similar means ROUGE-L F > ``threshold``; ``method="exact"``: the normalized
    text (NFKC, lower case, whitespace collapsed) is identical. Reasons: ``similar_to_reference``,
    ``similar_to_kept``. Columns: ``<name>_score`` (the highest ROUGE-L with a reference or kept row among
    the pairs that could exceed the threshold; None when no pair could) and ``<name>_of`` (the most
    similar row's position, or ``-1 - reference position``; None when none).
    """

    _PARAMS = ("column", "threshold", "method", "against_kept", "id_column")
    name = "novelty"

    def __init__(self, *, column: str | None = None, reference: Sequence[str] = (), threshold: float = 0.7,
                 method: str = "rouge_l", against_kept: bool = True, id_column: str | None = None,
                 name: str | None = None):
        check_range("threshold", threshold, 0.0, 1.0)
        if method not in ("rouge_l", "exact"):
            raise InvalidParameterError(f"method={method!r} must be 'rouge_l' or 'exact'.")
        if isinstance(reference, str) or not all(isinstance(t, str) for t in reference):
            raise InvalidParameterError("reference must be a list of strings (e.g. seed instructions).")
        check_column_option(column)
        self.column, self.reference, self.threshold, self.method = column, list(reference), threshold, method
        self.against_kept, self.id_column = against_kept, id_column
        self._fitted = None
        super().__init__(name=name)

    def params(self):
        return {**super().params(), "reference_size": len(self.reference)}

    @property
    def score_columns(self):
        return [f"{self.name}_score", f"{self.name}_of"]

    @property
    def score_types(self):
        return {f"{self.name}_score": "float64", f"{self.name}_of": "int64"}

    def _fit(self, ds):
        col = self._text_column(ds)
        texts = list(ds[col])
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InvalidParameterError(f"Novelty: column {col!r} row {i} is {type(t).__name__}, "
                                            "not a string: drop failed rows first.")
        if self.method == "exact":
            return self._fit_exact(texts)
        return self._fit_rouge(texts)

    def _fit_exact(self, texts):
        ref = {normalize(t): j for j, t in reversed(list(enumerate(self.reference)))}
        seen: dict[str, int] = {}
        n = len(texts)
        codes, of, score = np.zeros(n, np.int16), [None] * n, [None] * n
        for i, t in enumerate(texts):
            k = normalize(t)
            if k in ref:
                codes[i], of[i], score[i] = 1, -1 - ref[k], 1.0
            elif self.against_kept and k in seen:
                codes[i], of[i], score[i] = 2, seen[k], 1.0
            else:
                seen.setdefault(k, i)
        return codes, ["similar_to_reference", "similar_to_kept"], {f"{self.name}_score": score,
                                                                     f"{self.name}_of": of}

    def _fit_rouge(self, texts):
        toks = [rouge_tokens(t) for t in texts]
        rtoks = [rouge_tokens(t) for t in self.reference]
        n, thr = len(toks), self.threshold
        cand: list[list[int]] = [[] for _ in range(n)]   # j >= 0: earlier row; j < 0: -1 - reference
        if rtoks:
            for i, j in _upper_bound_pairs(toks, rtoks, thr).tolist():
                cand[i].append(-1 - j)
        if self.against_kept:
            for i, j in _upper_bound_pairs(toks, toks, thr, upper_only=True).tolist():
                cand[i].append(j)
        kept = np.ones(n, dtype=bool)
        codes, of, score = np.zeros(n, np.int16), [None] * n, [None] * n
        for i in range(n):
            best, best_j = -1.0, None
            for j in cand[i]:
                if j >= 0 and not kept[j]:
                    continue
                s = rouge_l(toks[i], rtoks[-1 - j] if j < 0 else toks[j])
                if s > best:
                    best, best_j = s, j
            if best >= 0:
                score[i], of[i] = round(best, 6), best_j
            if best > thr:
                kept[i] = False
                codes[i] = 1 if best_j < 0 else 2  # type: ignore[operator]
        return codes, ["similar_to_reference", "similar_to_kept"], {f"{self.name}_score": score,
                                                                     f"{self.name}_of": of}
