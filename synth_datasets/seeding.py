"""Deterministic per-row seeds and keys, so a resumed or re-sharded run draws the same values."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence


def _blob(parts: tuple) -> bytes:
    if all(type(p) in (int, str) for p in parts):  # fast path: the common (seed, row key, sample) case
        return "\x1f".join(f"{type(p).__name__[0]}{p}" for p in parts).encode()
    return json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()


def derive_seed(*parts: Any) -> int:
    """A 31-bit seed from any JSON-able parts (31 bits: every backend accepts it, llama.cpp included).

    >>> derive_seed(0, "row-1", 2) == derive_seed(0, "row-1", 2)
    True
    """
    return int.from_bytes(hashlib.sha256(_blob(parts)).digest()[:8], "big") & 0x7FFFFFFF


def derive_unit(*parts: Any) -> float:
    """A float in [0, 1) from parts (53 bits of a sha256)."""
    return (int.from_bytes(hashlib.sha256(_blob(parts)).digest()[:8], "big") >> 11) / float(1 << 53)


def check_batched(batch: Any, who: str) -> None:
    """Raise a clear error when a batched map-callable is given one row (``ds.map(obj)`` without
    ``batched=True``): ``datasets`` then passes a ``LazyRow`` of scalars.

    >>> check_batched({"text": ["a", "b"]}, "TextGenerator")
    >>> check_batched({"text": "a"}, "TextGenerator")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    synth_datasets.errors.InvalidParameterError: TextGenerator works on batches ...
    """
    row = type(batch).__name__ == "LazyRow" or any(
        v is None or isinstance(v, (str, bytes, int, float, bool, dict)) for v in batch.values())
    if row:
        from .errors import InvalidParameterError

        raise InvalidParameterError(
            f"{who} works on batches but was given a single row (columns {sorted(batch)}): pass "
            "batched=True, as in ds.map(obj, batched=True) or ds.filter(obj, batched=True).")


def batch_size_of(batch: dict[str, list]) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def row_keys(batch: dict[str, list], indices: Sequence[int] | None = None, key_column: str | None = None,
             exclude: Sequence[str] = ()) -> list[str]:
    """A stable key per row of a batch.

    - with ``indices`` (``map(..., with_indices=True)``): the dataset index;
    - with ``key_column``: that column's value;
    - otherwise: a hash of the row's content (columns in ``exclude`` left out), plus the number of
      identical rows before it in the batch, so duplicate rows still get distinct keys.

    Content keys do not depend on batch boundaries or ``num_proc`` as long as rows are distinct.
    """
    n = batch_size_of(batch)
    if indices is not None:
        return [f"i{int(i)}" for i in indices]
    if key_column is not None:
        if key_column not in batch:
            raise KeyError(f"key_column {key_column!r} is not a column. Current columns: {sorted(batch)}")
        return [f"k{json.dumps(v, sort_keys=True, default=str)}" for v in batch[key_column]]
    cols = sorted(c for c in batch if c not in exclude)
    seen: dict[str, int] = {}
    keys = []
    for i in range(n):
        blob = json.dumps([batch[c][i] for c in cols], sort_keys=True, default=str, ensure_ascii=False)
        h = hashlib.sha256(blob.encode()).hexdigest()[:24]
        k = seen.get(h, 0)
        seen[h] = k + 1
        keys.append(f"h{h}:{k}")
    return keys
