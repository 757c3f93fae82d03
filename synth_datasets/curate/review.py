"""Human review round-trip (survey §3.2.2, human intervention): export the least-confident rows with
their evidence to a file a person can edit (JSONL or CSV), then merge the corrected labels back by id.

The imported file is validated as a whole before anything is applied: unknown ids, labels outside
the allowed set, missing columns or conflicting duplicates raise :class:`ReviewFileError` listing the
offending lines, and the dataset is left unchanged.

>>> n = export_for_review(ds, "review.csv", confidence_column="clf_consistency_confidence",
...                       evidence_columns=["clf_consistency_predicted"], n=50)          # doctest: +SKIP
>>> # ... a reviewer fills the corrected_label column ...
>>> merge = ReviewedLabels.from_file("review.csv", labels=["fresh", "rotten"]).fit(ds)   # doctest: +SKIP
>>> ds = ds.map(merge, batched=True)                                                       # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..columns import resolve_text_column
from ..errors import EmptyDatasetError, InvalidParameterError, NotFittedError, ReviewFileError
from .base import Mapper, check_columns, with_columns

CORRECTED = "corrected_label"


def _format_of(path: Path, fmt: str | None) -> str:
    fmt = fmt or {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}.get(path.suffix.lower())
    if fmt not in ("jsonl", "csv"):
        raise InvalidParameterError(f"Cannot tell the review file format of {str(path)!r}: use a .jsonl or .csv "
                                    "name, or pass format='jsonl' / 'csv'.")
    return fmt


def export_for_review(ds, path: str | os.PathLike, *, confidence_column: str, n: int = 100, id_column: str = "id",
                      label_column: str = "label", text_column: str | None = None, evidence_columns: Sequence[str] = (),
                      format: str | None = None) -> int:
    """Write the ``n`` least-confident rows (lowest ``confidence_column``, ties in dataset order) to
    ``path`` with columns ``id, text, label, confidence, <evidence...>, corrected_label, note`` (the last
    two empty, for the reviewer). Returns the number of rows written. ``text_column`` defaults to the
    dataset's declared text column, else ``text``."""
    path = Path(path)
    fmt = _format_of(path, format)
    text_column = resolve_text_column(ds, text_column, "export_for_review")
    check_columns(ds.column_names, [id_column, label_column, text_column, confidence_column, *evidence_columns],
                  "export_for_review")
    if not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"n={n!r} must be a positive integer (rows to review).")
    conf = np.array([np.inf if c is None else c for c in ds[confidence_column]], dtype=np.float64)
    order = np.argsort(conf, kind="stable")[:n]
    sub = ds.select(order.tolist())
    rows = []
    for r in sub:
        row = {"id": r[id_column], "text": r[text_column], "label": r[label_column],
               "confidence": r[confidence_column]}
        row.update({c: r[c] for c in evidence_columns})
        row.update({CORRECTED: None, "note": None})
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["id", CORRECTED])
            w.writeheader()
            w.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    os.replace(tmp, path)
    return len(rows)


def _read(path: Path, fmt: str) -> list[dict[str, Any]]:
    if not path.exists():
        raise ReviewFileError(f"Review file {str(path)!r} does not exist: pass the file written by export_for_review.")
    with open(path, encoding="utf-8", newline="") as f:
        if fmt == "csv":
            return [dict(r) for r in csv.DictReader(f)]
        out = []
        for k, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as e:
                    raise ReviewFileError(f"{path}: line {k} is not valid JSON ({e}). Fix the line; nothing was applied.") from e
        return out


class ReviewedLabels(Mapper):
    """Corrected labels from a reviewed file, merged back by id: ``ds.map(obj, batched=True)`` after
    ``obj.fit(ds)`` (which checks every id exists). The label column takes the corrected value, the
    old one is kept in ``<label_column>_before_review`` and ``review_reason`` is ``human_corrected``
    (or None). Rows with an empty ``corrected_label`` are left as they are. The corrections are the
    pickled state, so another reviewed file gives another fingerprint."""

    _PARAMS = ("id_column", "label_column", "labels", "source")
    name = "review"

    def __init__(self, corrections: dict, *, labels: Sequence, id_column: str = "id", label_column: str = "label",
                 source: str | None = None, name: str | None = None):
        self.corrections, self.labels = dict(corrections), list(labels)
        self.id_column, self.label_column, self.source = id_column, label_column, source
        self.fitted = False
        super().__init__(name=name)

    @classmethod
    def from_file(cls, path: str | os.PathLike, *, labels: Sequence, id_column: str = "id",
                  label_column: str = "label", format: str | None = None) -> "ReviewedLabels":
        """Read and validate a reviewed file; raise :class:`ReviewFileError` listing every bad line."""
        if isinstance(labels, str) or not labels:
            raise InvalidParameterError("labels must list the allowed label values.")
        path = Path(path)
        rows = _read(path, _format_of(path, format))
        missing = [c for c in ("id", CORRECTED) if rows and c not in rows[0]]
        if missing:
            raise ReviewFileError(f"{path}: column(s) {missing} missing (found {sorted(rows[0])}): keep the columns "
                                  "written by export_for_review; nothing was applied.")
        allowed = {str(v): v for v in labels}
        problems, corrections = [], {}
        for k, r in enumerate(rows, 1):
            v = r.get(CORRECTED)
            if v is None or (isinstance(v, str) and not v.strip()):
                continue
            key = str(v).strip() if isinstance(v, str) else str(v)
            if v not in labels and key not in allowed:
                problems.append(f"row {k} (id {r['id']!r}): invalid label {v!r}")
                continue
            value = v if v in labels else allowed[key]
            if r["id"] in corrections and corrections[r["id"]] != value:
                problems.append(f"row {k} (id {r['id']!r}): conflicting corrections {corrections[r['id']]!r} and {value!r}")
            corrections[r["id"]] = value
        if problems:
            raise ReviewFileError(f"{path}: {len(problems)} problem(s): " + "; ".join(problems[:10])
                                  + f". Allowed labels: {list(labels)}. Fix the file; nothing was applied.")
        return cls(corrections, labels=labels, id_column=id_column, label_column=label_column, source=str(path))

    def fit(self, ds) -> "ReviewedLabels":
        """Check every corrected id is in ``ds`` (ids in the file may be strings where the column holds
        numbers: CSV has no types; they are matched by their text)."""
        if ds.num_rows == 0:
            raise EmptyDatasetError("ReviewedLabels.fit got an empty dataset.")
        check_columns(ds.column_names, [self.id_column, self.label_column], "ReviewedLabels")
        ids = {str(v): v for v in ds[self.id_column]}
        unknown = [k for k in self.corrections if str(k) not in ids]
        if unknown:
            raise ReviewFileError(f"{len(unknown)} id(s) in the review file are not in column {self.id_column!r}: "
                                  f"{unknown[:10]}. Review the dataset you merge into; nothing was applied.")
        self.corrections = {ids[str(k)]: v for k, v in self.corrections.items()}
        self.fitted = True
        return self

    def transform(self, batch, indices=None):
        if not self.fitted:
            raise NotFittedError("ReviewedLabels is not fitted: call .fit(ds) to check the ids, then ds.map(obj, batched=True).")
        old = list(batch[self.label_column])
        new = [self.corrections.get(i, v) for i, v in zip(batch[self.id_column], old)]
        reason = ["human_corrected" if a != b else None for a, b in zip(old, new)]
        self._rt_stats.update(total=len(old), corrected=sum(r is not None for r in reason))
        self._rt_counts_source = self._rt_counts_source or "in-process calls"
        return with_columns(batch, {self.label_column: new, f"{self.label_column}_before_review": old,
                                    "review_reason": reason}, {"review_reason": "string"})

    def params(self):
        return {**super().params(), "corrections": len(self.corrections),
                "by_label": dict(Counter(map(str, self.corrections.values())))}
