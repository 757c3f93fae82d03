"""Which column holds a dataset's text: declared by the dataset itself, or passed explicitly.

A built dataset declares its text column in its features: the column's ``Value`` carries the id
:data:`TEXT_ID` (``datasets`` keeps a feature's id through ``map``, ``filter``, ``select``, parquet
and ``load_dataset``, so the declaration travels with the data). ``Recipe.run`` and ``publish``
declare the recipe's ``text_column``; :func:`declare_text_column` does it by hand.

Curators and metrics that read a text take ``column=None`` by default and resolve it with
:func:`resolve_text_column`: an explicit ``column=`` wins; else the declared text column; else a
column named ``text``; else a clear error listing the columns.

>>> from datasets import Dataset
>>> ds = declare_text_column(Dataset.from_dict({"review": ["Great fun."], "label": ["pos"]}), "review")
>>> declared_text_column(ds), resolve_text_column(ds, None, "Length")
('review', 'review')
>>> texts_of(ds.filter(lambda r: True))
['Great fun.']
"""

from __future__ import annotations

import functools
import json
from typing import Any

from .errors import InvalidParameterError, MissingColumnError

__all__ = ["TEXT_ID", "declare_text_column", "declared_text_column", "resolve_text_column", "texts_of", "check_columns",
           "check_new_columns"]

#: the feature id that marks a dataset's text column
TEXT_ID = "synth-datasets:text"


def declare_text_column(ds, column: str):
    """``ds`` with ``column`` declared as its text column (a metadata change: no data is rewritten).
    A text column declared before is undeclared."""
    from datasets import Value

    if column not in ds.column_names:
        raise MissingColumnError(f"declare_text_column: column {column!r} is not in the dataset. Current columns: "
                                 f"{sorted(ds.column_names)}. Pass the column that holds the text.")
    feature = ds.features[column]
    if not isinstance(feature, Value) or feature.dtype not in ("string", "large_string"):
        raise InvalidParameterError(f"declare_text_column: column {column!r} is {feature}, not a string column: "
                                    "declare the column that holds the text.")
    if declared_text_column(ds) == column:
        return ds
    features = ds.features.copy()
    for name, f in features.items():
        if getattr(f, "id", None) == TEXT_ID:
            features[name] = Value(f.dtype)
    features[column] = Value(feature.dtype, id=TEXT_ID)
    return _with_features(ds, features, column)


def _with_features(ds, features, column: str):
    """``ds`` with new feature metadata and the same Arrow data (what ``cast_column`` does for decodable
    features; ``cast`` would rewrite every row only to change an id)."""
    import copy

    try:
        from datasets.arrow_dataset import update_metadata_with_features
        from datasets.fingerprint import Hasher

        new = copy.deepcopy(ds)
        new._info.features = features
        new._data = update_metadata_with_features(new._data, features)
        new._fingerprint = Hasher.hash([ds._fingerprint, "declare_text_column", column])
        return new
    except (ImportError, AttributeError):  # another datasets layout: the public, rewriting path
        return ds.cast(features)


@functools.lru_cache(maxsize=64)
def _declared_in_metadata(raw: bytes) -> str | None:
    try:
        features = json.loads(raw)["info"]["features"]
    except (ValueError, KeyError, TypeError):
        return None
    return next((name for name, f in features.items() if isinstance(f, dict) and f.get("id") == TEXT_ID), None)


def declared_text_column(data: Any) -> str | None:
    """The text column ``data`` declares (a ``Dataset``, its ``Features``, a batch that ``map``/``filter``
    passes, or a pyarrow Table), or None. A plain dict batch declares nothing."""
    features = getattr(data, "features", None)
    if features is None and isinstance(data, dict) and all(hasattr(v, "id") for v in data.values()):
        features = data  # a Features mapping
    if features is not None and hasattr(features, "items"):
        return next((name for name, f in features.items() if getattr(f, "id", None) == TEXT_ID), None)
    table = getattr(data, "pa_table", None)
    if table is None and hasattr(data, "schema") and hasattr(data, "column_names"):
        table = data
    meta = getattr(getattr(table, "schema", None), "metadata", None) or {}
    raw = meta.get(b"huggingface")
    return _declared_in_metadata(raw) if raw else None


def _columns_of(data: Any) -> list[str]:
    names = getattr(data, "column_names", None)
    return list(names) if names is not None else list(data.keys())


def resolve_text_column(data: Any, column: str | None, who: str) -> str:
    """The text column to read: ``column`` when given (it must exist), else the column ``data``
    declares (:func:`declared_text_column`), else ``"text"``; otherwise a
    :class:`~synth_datasets.errors.MissingColumnError` listing the columns."""
    columns = _columns_of(data)
    if column is not None:
        if column not in columns:
            raise MissingColumnError(f"{who}: column {column!r} is not in the dataset. Current columns: "
                                     f"{sorted(columns)}. Pass the right column name or add the column first.")
        return column
    declared = declared_text_column(data)
    if declared is not None and declared in columns:
        return declared
    if "text" in columns:
        return "text"
    raise MissingColumnError(f"{who}: no column= was given, the dataset has no 'text' column and declares no text "
                             f"column. Current columns: {sorted(columns)}. Pass column= (the column that holds the "
                             "text), or declare it once with synth_datasets.declare_text_column(ds, name).")


def texts_of(ds, column: str | None = None) -> list:
    """The texts of ``ds`` (its declared text column, or ``column``, or ``text``), for metrics that take
    lists: ``diversity.compute(predictions=texts_of(ds))``."""
    return list(ds[resolve_text_column(ds, column, "texts_of")])


class TextColumn:
    """Mixin for curators with a ``column`` option (None = resolved from the data, see the module).

    ``self._text_column(data)`` resolves it and remembers the result (a runtime attribute, not part of
    the fingerprint), which ``describe()`` then reports as ``text_column``.
    """

    column: str | None = None

    def _text_column(self, data: Any) -> str:
        col = resolve_text_column(data, self.column, type(self).__name__)
        self._rt_text_column = col
        return col

    def describe(self) -> dict[str, Any]:
        d = super().describe()  # type: ignore[misc]
        col = self.column or self.__dict__.get("_rt_text_column")
        if col is not None:
            d["text_column"] = col
        return d


def check_column_option(column: Any) -> None:
    """``column`` must be None or a non-empty string."""
    if column is not None and (not isinstance(column, str) or not column):
        raise InvalidParameterError(f"column={column!r} must be a column name, or None for the dataset's text column.")


def check_columns(columns, needed, who: str, *, hint: str = "Pass the right column name or add the column first") -> None:
    """The one "Current columns" check: a :class:`MissingColumnError` (a ``KeyError``) naming ``who``, the first
    column of ``needed`` (None entries skipped) missing from ``columns`` (names, or a batch / dict of
    columns), the columns that exist, and ``hint`` (the next step).

    >>> check_columns(["text"], ["label"], "Demo")
    Traceback (most recent call last):
    ...
    synth_datasets.errors.MissingColumnError: Demo: column 'label' is not in the dataset. Current columns: ['text']. Pass the right column name or add the column first.
    """
    columns = list(columns)
    for c in needed:
        if c is not None and c not in columns:
            raise MissingColumnError(f"{who}: column {c!r} is not in the dataset. Current columns: "
                                     f"{sorted(columns)}. {hint}.")


def check_new_columns(new: "list[str] | tuple[str, ...]", existing, *, hint: str = "Choose another output=") -> None:
    """Refuse to overwrite a column: ``new`` output names that are already in ``existing`` (a batch's
    keys or a list of names) are an :class:`InvalidParameterError` naming the first and listing what exists."""
    existing = list(existing)
    clash = sorted(set(new) & set(existing))
    if clash:
        raise InvalidParameterError(f"Output column {clash[0]!r} already exists. {hint} or remove the column. "
                                    f"Current columns: {sorted(existing)}")
