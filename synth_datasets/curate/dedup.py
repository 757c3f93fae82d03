"""Exact and near-duplicate removal (fit, then filter), keeping one row per cluster: the first.

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"text": ["A  good film.", "a good film.", "the cat sat on the warm mat all day",
...                                  "the cat sat on the warm mat all day long", "unrelated"]})
>>> exact = ExactDuplicates(column="text").fit(ds)
>>> list(ds.filter(exact, batched=True, with_indices=True)["text"])
['A  good film.', 'the cat sat on the warm mat all day', 'the cat sat on the warm mat all day long', 'unrelated']
>>> near = NearDuplicates(column="text", threshold=0.7).fit(ds)
>>> list(ds.map(near.mark, batched=True, with_indices=True)["near_dup_reason"])
[None, 'near_duplicate', None, 'near_duplicate', None]
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from ..columns import TextColumn, check_column_option
from ..errors import InvalidParameterError
from .base import FittedFilter, check_columns, check_range
from .minhash import (candidate_pairs, components, estimated_jaccard, normalize, optimal_bands, shingle_sets,
                      signatures)


def _texts(ds, column: str, who: str) -> list[str]:
    check_columns(ds.column_names, [column], who)  # resolved by TextColumn._text_column
    texts = list(ds[column])
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidParameterError(f"{who}: column {column!r} row {i} is {type(t).__name__}, not a string: "
                                        "drop failed rows first (e.g. with curate.Truncated).")
    return texts


# (false positive, false negative) weights for choosing bands x rows when pairs are verified exactly:
# at threshold 0.7 and 128 permutations this gives 21 x 6 (a pair at J=0.7 collides with p=0.93;
# datasketch's default 0.5/0.5 gives 14 x 9, p=0.44).
LSH_WEIGHTS_VERIFIED = {"fp_weight": 0.05, "fn_weight": 0.95}


class ExactDuplicates(TextColumn, FittedFilter):
    """Exact duplicates after normalization (NFKC, lower case, whitespace collapsed; ``punctuation=True``
    also ignores punctuation), hashed with blake2b. The first row of each group is kept; the others get
    reason ``exact_duplicate`` and the column ``<name>_of`` holds the kept row's position."""

    _PARAMS = ("column", "punctuation", "id_column")
    name = "exact_dup"

    def __init__(self, *, column: str | None = None, punctuation: bool = False, id_column: str | None = None,
                 name: str | None = None):
        check_column_option(column)
        self.column, self.punctuation, self.id_column = column, punctuation, id_column
        self._fitted = None
        super().__init__(name=name)

    @property
    def score_columns(self):
        return [f"{self.name}_of"]

    def _fit(self, ds):
        texts = _texts(ds, self._text_column(ds), type(self).__name__)
        first: dict[bytes, int] = {}
        of = np.empty(len(texts), dtype=np.int64)
        for i, t in enumerate(texts):
            h = hashlib.blake2b(normalize(t, punctuation=self.punctuation).encode(), digest_size=16).digest()
            of[i] = first.setdefault(h, i)
        codes = (of != np.arange(len(texts))).astype(np.int16)
        return codes, ["exact_duplicate"], {f"{self.name}_of": np.where(codes == 1, of, -1)}


class NearDuplicates(TextColumn, FittedFilter):
    """Near duplicates by MinHash-LSH (vectorized numpy, see :mod:`.minhash`).

    Texts are normalized, cut into ``ngram``-shingles (characters by default, ``unit="word"`` for
    words), MinHashed with ``num_perm`` permutations, banded (``bands`` x ``rows`` chosen for
    ``threshold`` by datasketch's rule, weighing false negatives 0.95 when pairs are verified exactly,
    unless given), and candidate pairs are verified: ``"exact"``
    (default) keeps a pair only if the exact Jaccard of the shingle sets is >= ``threshold``;
    ``"minhash"`` uses the signature estimate; ``None`` keeps every LSH collision. Rows linked by
    verified pairs form clusters; the first row of each cluster is kept, the others get reason
    ``near_duplicate``, ``<name>_of`` (the kept row's position) and ``<name>_jaccard`` (exact Jaccard with
    that row; through a chain of near duplicates it can be below ``threshold``).

    ``reference`` (texts, e.g. the seeds or an existing dataset) adds clusters' anchors that are never
    output: a row near a reference text is dropped with reason ``near_reference`` (``<name>_of`` is then
    ``-1 - reference position``).
    """

    _PARAMS = ("column", "threshold", "ngram", "unit", "num_perm", "bands", "rows", "verify", "seed", "id_column",
               "punctuation")
    name = "near_dup"

    def __init__(self, *, column: str | None = None, threshold: float = 0.7, ngram: int = 5, unit: str = "char",
                 num_perm: int = 128, bands: int | None = None, rows: int | None = None, verify: str | None = "exact",
                 seed: int = 1, reference: Sequence[str] | None = None, punctuation: bool = False,
                 id_column: str | None = None, name: str | None = None):
        check_range("threshold", threshold, 0.0, 1.0)
        if threshold == 0.0:
            raise InvalidParameterError("threshold=0.0 would link every pair: use a value in (0, 1].")
        check_range("ngram", ngram, 1, integer=True)
        check_range("num_perm", num_perm, 2, 4096, integer=True)
        if unit not in ("char", "word"):
            raise InvalidParameterError(f"unit={unit!r} must be 'char' or 'word'.")
        if verify not in ("exact", "minhash", None):
            raise InvalidParameterError(f"verify={verify!r} must be 'exact', 'minhash' or None.")
        if (bands is None) != (rows is None):
            raise InvalidParameterError("give both bands= and rows=, or neither (then they are chosen for threshold).")
        if bands is None:  # exact verification removes false positives, so weigh false negatives more
            bands, rows = optimal_bands(float(threshold), num_perm,
                                        **(LSH_WEIGHTS_VERIFIED if verify == "exact" else {}))
        check_range("bands", bands, 1, integer=True)
        check_range("rows", rows, 1, integer=True)
        if bands * rows > num_perm:
            raise InvalidParameterError(f"bands*rows={bands * rows} exceeds num_perm={num_perm}: lower them.")
        if reference is not None and (isinstance(reference, str) or not all(isinstance(t, str) for t in reference)):
            raise InvalidParameterError("reference must be a list of strings (e.g. seed texts).")
        check_column_option(column)
        self.column, self.threshold, self.ngram, self.unit = column, threshold, ngram, unit
        self.num_perm, self.bands, self.rows, self.verify, self.seed = num_perm, bands, rows, verify, seed
        self.punctuation, self.id_column = punctuation, id_column
        self.reference = list(reference) if reference is not None else []
        self._fitted = None
        super().__init__(name=name)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "reference_size": len(self.reference)}

    @property
    def score_columns(self):
        return [f"{self.name}_of", f"{self.name}_jaccard"]

    def clusters(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For ``reference + texts``: cluster anchor per text, verified pairs, and their similarity."""
        anchor, pairs, sim, _ = self._clusters(texts)
        return anchor, pairs, sim

    def _clusters(self, texts):
        norm = [normalize(t, punctuation=self.punctuation) for t in list(self.reference) + list(texts)]
        sh = shingle_sets(norm, ngram=self.ngram, unit=self.unit)
        sig = signatures(sh, num_perm=self.num_perm, seed=self.seed)
        pairs = candidate_pairs(sig, bands=self.bands, rows=self.rows)
        if self.verify == "exact":
            sim = sh.jaccard(pairs[:, 0], pairs[:, 1])
        else:
            sim = estimated_jaccard(sig, pairs)
        if self.verify is not None:
            ok = sim >= self.threshold
            pairs, sim = pairs[ok], sim[ok]
        return components(len(norm), pairs), pairs, sim, sh

    def _fit(self, ds):
        texts = _texts(ds, self._text_column(ds), type(self).__name__)
        r = len(self.reference)
        anchor, _, _, sh = self._clusters(texts)
        pos = np.arange(len(texts)) + r
        anchor = anchor[r:]
        codes = np.where(anchor == pos, 0, np.where(anchor < r, 2, 1)).astype(np.int16)
        of = np.where(codes == 0, -1, np.where(anchor < r, -1 - anchor, anchor - r))
        # exact Jaccard with the kept row (or reference text) each dropped row stands for; through a
        # chain of near duplicates it can be below the threshold
        sim = np.full(len(texts), np.nan)
        gone = np.flatnonzero(codes)
        sim[gone] = sh.jaccard(pos[gone], anchor[gone])
        return codes, ["near_duplicate", "near_reference"], {f"{self.name}_of": of,
                                                            f"{self.name}_jaccard": np.round(sim, 6)}

    def annotate(self, batch, indices=None):
        out = super().annotate(batch, indices)
        key = f"{self.name}_jaccard"
        out[key] = [None if v != v else v for v in out[key]]  # nan -> None in the column
        return out
