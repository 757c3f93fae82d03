"""Two tiny curation steps the shipped builders use: exact deduplication and a word-count filter.

Minimal on purpose (the full curators live in ``synth_datasets.curate``); each keeps the four
contracts: batched filter-callable, configuration-only pickling, fit-then-filter, ``describe()``.

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"t": ["A  b", "a b", "c d e", None]})
>>> dd = ExactDuplicates(column="t").fit(ds)
>>> ds.filter(dd, batched=True, with_indices=True)["t"]
['A  b', 'c d e']
>>> ds.filter(WordCount(column="t", min_words=3), batched=True)["t"]
['c d e']
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from typing import Any, Sequence

from synth_datasets._versions import library_versions
from synth_datasets.errors import InvalidParameterError

_FORMAT_VERSION = 1
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Case-folded, whitespace-collapsed, stripped."""
    return _SPACE.sub(" ", text).strip().casefold()


class ExactDuplicates:
    """Keeps the first row of each normalized text; drops the rest and rows whose text is None.

    Fit, then filter: ``ds.filter(dd.fit(ds), batched=True, with_indices=True)``.
    """

    def __init__(self, *, column: str = "text"):
        if not isinstance(column, str) or not column:
            raise InvalidParameterError("ExactDuplicates(column=...) must be a column name.")
        self.column = column
        self.keep: list[bool] | None = None
        self.stats: Counter = Counter()

    def fit(self, ds) -> "ExactDuplicates":
        if self.column not in ds.column_names:
            raise InvalidParameterError(f"ExactDuplicates: column {self.column!r} is not in the dataset. Current "
                                        f"columns: {ds.column_names}.")
        seen: set[str] = set()
        keep = []
        for t in ds[self.column]:
            h = hashlib.sha256(normalize(t).encode()).hexdigest() if isinstance(t, str) else None
            keep.append(h is not None and h not in seen)
            if h is not None:
                seen.add(h)
        self.keep = keep
        missing = sum(not isinstance(t, str) for t in ds[self.column])
        self.stats = Counter(total=len(keep), kept=sum(keep), dropped_duplicate=len(keep) - sum(keep) - missing,
                             dropped_missing_text=missing)
        return self

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> list[bool]:
        if self.keep is None:
            raise InvalidParameterError("ExactDuplicates is not fitted: call .fit(ds) first.")
        if indices is None:
            raise InvalidParameterError("ExactDuplicates needs row positions: ds.filter(dd, batched=True, "
                                        "with_indices=True).")
        return [self.keep[i] for i in indices]

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "column": self.column, "keep": self.keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.column, self.keep, self.stats = state["column"], state["keep"], Counter()

    def describe(self) -> dict[str, Any]:
        return {"type": "ExactDuplicates", "format": _FORMAT_VERSION, "column": self.column,
                "normalization": "casefold, collapse whitespace, strip", "counts": dict(self.stats),
                "library": library_versions()}


class WordCount:
    """Keeps rows whose text has ``min_words`` to ``max_words`` whitespace-separated words (None dropped)."""

    def __init__(self, *, column: str = "text", min_words: int = 0, max_words: int | None = None):
        if not isinstance(min_words, int) or min_words < 0 or (max_words is not None and max_words < min_words):
            raise InvalidParameterError(f"WordCount bounds min_words={min_words!r}, max_words={max_words!r}: need "
                                        "0 <= min_words <= max_words.")
        self.column, self.min_words, self.max_words = column, min_words, max_words
        self.stats: Counter = Counter()

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> list[bool]:
        if self.column not in batch:
            raise InvalidParameterError(f"WordCount: column {self.column!r} is not in the dataset. Current columns: "
                                        f"{sorted(batch)}.")
        out = []
        for t in batch[self.column]:
            n = len(t.split()) if isinstance(t, str) else -1
            reason = ("missing_text" if n < 0 else "too_few_words" if n < self.min_words
                      else "too_many_words" if self.max_words is not None and n > self.max_words else None)
            self.stats["total"] += 1
            self.stats["kept" if reason is None else f"dropped_{reason}"] += 1
            out.append(reason is None)
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "column": self.column, "min_words": self.min_words,
                "max_words": self.max_words}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.column, self.min_words, self.max_words = state["column"], state["min_words"], state["max_words"]
        self.stats = Counter()

    def describe(self) -> dict[str, Any]:
        return {"type": "WordCount", "format": _FORMAT_VERSION, "column": self.column, "min_words": self.min_words,
                "max_words": self.max_words, "counts": dict(self.stats), "library": library_versions()}
