"""The small base every curator shares: configuration state, counts, reason columns, row alignment.

A subclass writes only its decision (the datatrove habit):

- a :class:`Filter` implements ``decide(batch, indices) -> list[str | None]`` (None = keep, else the
  drop reason, a short code such as ``"too_short"``) and optionally ``annotate(batch, indices) ->
  dict[str, list]`` for score columns (``decide`` then sees them in the batch);
- a :class:`FittedFilter` implements ``_fit(ds) -> (reasons, columns)``: one decision and score per row
  of the dataset it was fitted on; map-time lookups are done by the base;
- a :class:`Mapper` implements ``transform(batch, indices) -> dict[str, list]`` (new or replaced
  columns), e.g. re-weighting and relabelling.

Counts. The base counts decisions of the calls made *in this process* (``obj.stats``). ``datasets``
may serve a cached result (then no call happens) or run the callable in worker processes
(``num_proc > 1``, whose counts stay there), so in-process counts can be missing or partial;
``describe()`` reports them only when they are known: from ``fit`` (exact, whole dataset), from
:meth:`Filter.counts` (recomputed from the ``<name>_reason`` column written by :meth:`Filter.mark`),
or from in-process calls (``counts_source`` says which).
"""

from __future__ import annotations

import collections
import copy
from collections import Counter
from typing import Any, Sequence

import numpy as np

from .._versions import library_versions
from ..columns import check_columns  # noqa: F401 (curators import it from here)
from ..errors import EmptyDatasetError, InvalidParameterError, NotFittedError
from ..seeding import batch_size_of, check_batched

KEEP = None


def check_range(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                integer: bool = False, allow_none: bool = False) -> None:
    """Validate a numeric parameter, with a message that gives the allowed range."""
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    ok = ok and not isinstance(value, bool)
    if ok and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        ok = False
    if not ok:
        kind = "an integer" if integer else "a number"
        rng = f" in [{lo}, {hi}]" if lo is not None and hi is not None else (
            f" >= {lo}" if lo is not None else (f" <= {hi}" if hi is not None else ""))
        raise InvalidParameterError(f"{name}={value!r} must be {kind}{rng}: fix the parameter.")


class Curator:
    """Configuration state (pickled for the fingerprint), ``describe()`` and in-process counts.

    Subclasses set ``_FORMAT`` (bump it when a change to the code changes results: ``datasets``
    does not see edits to a class body) and store their parameters as attributes named in
    ``_PARAMS``. Runtime attributes (counts, lazy models) start with ``_rt_`` and are never pickled.
    """

    _FORMAT = 1
    _PARAMS: tuple[str, ...] = ()
    name: str = "curator"

    def _init_runtime(self) -> None:
        self._rt_stats: Counter = Counter()
        self._rt_counts_source: str | None = None

    # -- contract 2: configuration-only state -------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"format": self._FORMAT, "type": type(self).__qualname__,
                **{k: v for k, v in self.__dict__.items() if not k.startswith("_rt_")}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        state.pop("type", None)
        self.__dict__.update(state)
        self._init_runtime()

    def __copy__(self):
        new = type(self).__new__(type(self))
        new.__setstate__(copy.deepcopy(self.__getstate__()))
        return new

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._PARAMS}

    # -- counts --------------------------------------------------------------------------------
    @property
    def stats(self) -> Counter:
        """Counts of this process's calls (see the module docstring for when they are partial)."""
        return self._rt_stats

    def _record(self, reasons: Sequence[str | None]) -> None:
        st = self._rt_stats
        st["total"] += len(reasons)
        for r in reasons:
            if r is None:
                st["kept"] += 1
            else:
                st["dropped"] += 1
                st[f"dropped_{r}"] += 1
        if self._rt_counts_source is None:
            self._rt_counts_source = "in-process calls"

    # -- contract 4 ----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Type, parameters, format version, library versions and, when known, the counts."""
        d: dict[str, Any] = {"type": type(self).__name__, "name": self.name, "format": self._FORMAT,
                             "params": _jsonable(self.params()), "library": library_versions()}
        d.update(self._describe_extra())
        if self._rt_stats.get("total"):
            d["counts"] = dict(self._rt_stats)
            d["counts_source"] = self._rt_counts_source
        return d

    def _describe_extra(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in (sorted(v, key=str) if isinstance(v, (set, frozenset)) else v)]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    describe = getattr(v, "describe", None)
    return describe() if callable(describe) else repr(v)


class Filter(Curator):
    """A row filter: ``ds.filter(f, batched=True)`` keeps rows, ``ds.map(f.mark, batched=True)`` adds
    the ``<name>_reason`` column (None = kept) and the score columns, so what would be removed and
    why stays inspectable. Both accept ``with_indices=True`` (fitted filters need it, or an
    ``id_column``). After ``mark``, ``ds.filter(f, batched=True)`` reuses the recorded score columns
    instead of recomputing them, so the filter decides on exactly the recorded scores.

    Subclasses implement :meth:`decide` (and :meth:`annotate` for score columns).
    """

    def __init__(self, *, name: str | None = None):
        if name is not None and (not isinstance(name, str) or not name.isidentifier()):
            raise InvalidParameterError(f"name={name!r} must be an identifier-like string (used as column prefix).")
        if name is not None:
            self.name = name
        self._init_runtime()

    @property
    def reason_column(self) -> str:
        return f"{self.name}_reason"

    #: the suffixes of the columns :meth:`annotate` adds (``<name>_<suffix>``); a subclass whose columns are
    #: not named that way overrides :attr:`score_columns` instead
    score_suffixes: tuple[str, ...] = ()

    @property
    def score_columns(self) -> list[str]:
        """Columns :meth:`annotate` adds (none by default)."""
        return [f"{self.name}_{s}" for s in self.score_suffixes]

    def annotate(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        return {}

    def decide(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> list[str | None]:
        raise NotImplementedError

    def _evaluate(self, batch, indices):
        check_batched(batch, type(self).__name__)
        cols = self.score_columns
        if cols and all(c in batch for c in cols):
            extra: dict[str, list] = {}        # recorded by an earlier mark(): decide on those
            view = batch
        else:
            extra = self.annotate(batch, indices)
            view = collections.ChainMap(extra, batch) if extra else batch
        reasons = list(self.decide(view, indices))
        if len(reasons) != batch_size_of(batch):
            raise RuntimeError(f"{type(self).__name__}.decide returned {len(reasons)} decisions for "
                               f"{batch_size_of(batch)} rows: this is a bug in the filter.")
        self._record(reasons)
        return reasons, extra

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> list[bool]:
        """``ds.filter(f, batched=True[, with_indices=True])``: True = keep."""
        reasons, _ = self._evaluate(batch, indices)
        return [r is None for r in reasons]

    @property
    def score_types(self) -> dict[str, Any]:
        """pyarrow types of the score columns (so a first batch of None values does not fix a null type)."""
        return {}

    def mark(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, Any]:
        """``ds.map(f.mark, batched=True[, with_indices=True])``: ``<name>_reason`` plus score columns
        (typed arrow arrays)."""
        reasons, extra = self._evaluate(batch, indices)
        return with_columns(batch, {**extra, self.reason_column: reasons},
                            {**self.score_types, self.reason_column: "string"})

    def counts(self, ds) -> dict[str, int]:
        """Counts recomputed from the ``<name>_reason`` column of a marked dataset (exact whatever
        ``datasets`` did: cache hit or worker processes); also what ``describe()`` reports from now on."""
        check_columns(ds.column_names, [self.reason_column], f"{type(self).__name__}.counts")
        c = Counter(ds[self.reason_column])
        out = Counter({"total": sum(c.values()), "kept": c.pop(None, 0)})
        out["dropped"] = out["total"] - out["kept"]
        for r, k in sorted(c.items()):
            out[f"dropped_{r}"] = k
        self._rt_stats, self._rt_counts_source = out, "reason column"
        return dict(out)

    def is_kept(self, batch: dict[str, list]) -> list[bool]:
        """``ds.filter(f.is_kept, batched=True)`` on a marked dataset: keep rows whose reason is None."""
        return [r is None for r in batch[self.reason_column]]


class RowAligned:
    """Mixin for fitted curators whose result is one value per row of the fitted dataset.

    Rows are found by position (``with_indices=True``) or by an ``id_column``. Using the callable on
    a dataset of another size, or without positions, is a clear error.
    """

    id_column: str | None = None
    _fitted: dict[str, Any] | None = None

    def _require_fitted(self) -> dict[str, Any]:
        if self._fitted is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call .fit(ds) first, then ds.map/ds.filter.")
        return self._fitted

    def _ids_of(self, ds) -> list | None:
        if self.id_column is None:
            return None
        check_columns(ds.column_names, [self.id_column], type(self).__name__)
        ids = list(ds[self.id_column])
        if len(set(ids)) != len(ids):
            dup = next(v for v, k in Counter(ids).items() if k > 1)
            raise InvalidParameterError(f"id_column {self.id_column!r} has duplicate value {dup!r}: ids must be "
                                        "unique (add an id column, e.g. with ds.map(..., with_indices=True)).")
        return ids

    def _positions(self, batch: dict[str, list], indices: Sequence[int] | None) -> np.ndarray:
        f = self._require_fitted()
        if self.id_column is not None:
            if "_rt_pos" not in self.__dict__:
                self._rt_pos = {v: i for i, v in enumerate(f["ids"])}
            try:
                return np.array([self._rt_pos[v] for v in batch[self.id_column]], dtype=np.int64)
            except KeyError as e:
                raise InvalidParameterError(f"{type(self).__name__}: id {e.args[0]!r} was not in the dataset it was "
                                            "fitted on: fit on the same dataset you map.") from None
        if indices is None:
            raise InvalidParameterError(
                f"{type(self).__name__} decides per row of the dataset it was fitted on and needs row positions: "
                "call ds.filter(obj, batched=True, with_indices=True) (or ds.map(obj.mark, ..., with_indices=True)), "
                "or pass id_column=.")
        pos = np.asarray(indices, dtype=np.int64)
        if len(pos) and (pos.min() < 0 or pos.max() >= f["n"]):
            raise InvalidParameterError(f"{type(self).__name__} was fitted on {f['n']} rows but got row index "
                                        f"{int(pos.max())}: fit on the same dataset you map.")
        return pos


class FittedFilter(RowAligned, Filter):
    """A filter decided at ``fit`` time for every row; ``decide``/``annotate`` look the rows up.

    ``_fit(ds)`` returns ``(codes, reasons, columns)``: an int array (0 = keep, k = ``reasons[k-1]``),
    the reason strings, and per-row score arrays named like :attr:`score_columns`. The fitted arrays
    are part of the pickled state, so refitting on other data changes the fingerprint.
    """

    def fit(self, ds) -> "FittedFilter":
        if ds.num_rows == 0:
            raise EmptyDatasetError(f"{type(self).__name__}.fit got an empty dataset: nothing to curate.")
        ids = self._ids_of(ds)
        codes, reasons, columns = self._fit(ds)
        codes = np.asarray(codes, dtype=np.int16)
        self._fitted = {"n": int(ds.num_rows), "codes": codes, "reasons": list(reasons),
                        "columns": {k: _compact(v) for k, v in columns.items()}, "ids": ids}
        self._rt_pos_reset()
        c = Counter(codes.tolist())
        st = Counter({"total": len(codes), "kept": c.get(0, 0), "dropped": len(codes) - c.get(0, 0)})
        for k, r in enumerate(reasons, 1):
            if c.get(k):
                st[f"dropped_{r}"] = c[k]
        self._rt_stats, self._rt_counts_source = st, "fit"
        return self

    @property
    def score_types(self):
        cols = (self._fitted or {}).get("columns", {})
        return {k: ("int64" if v.dtype.kind in "iu" else "float64") for k, v in cols.items()
                if isinstance(v, np.ndarray) and v.dtype.kind in "iuf"}

    def _rt_pos_reset(self) -> None:
        self.__dict__.pop("_rt_pos", None)

    def _fit(self, ds) -> tuple[np.ndarray, list[str], dict[str, Any]]:
        raise NotImplementedError

    def annotate(self, batch, indices=None):
        pos = self._positions(batch, indices)
        cols = self._fitted["columns"]
        return {c: _take(cols[c], pos) for c in self.score_columns if c in cols}

    def decide(self, batch, indices=None):
        pos = self._positions(batch, indices)
        f = self._fitted
        reasons = [None] + f["reasons"]
        return [reasons[c] for c in f["codes"][pos].tolist()]

    def _record(self, reasons):  # fit already counted every row exactly
        if self._rt_counts_source != "fit":
            super()._record(reasons)

    @property
    def keep_mask(self) -> np.ndarray:
        """Boolean per fitted row: kept."""
        return self._require_fitted()["codes"] == 0


class Mapper(Curator):
    """A map-callable that adds or replaces columns: ``ds.map(m, batched=True[, with_indices=True])``."""

    def __init__(self, *, name: str | None = None):
        if name is not None:
            self.name = name
        self._init_runtime()

    def transform(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        raise NotImplementedError

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        check_batched(batch, type(self).__name__)
        return self.transform(batch, indices)


def typed(columns: dict[str, Any], types: dict[str, Any]) -> dict[str, Any]:
    """Columns as pyarrow arrays with the declared types (a type may be given as a name: "string",
    "float64", "int64", "bool"); undeclared columns are inferred."""
    import pyarrow as pa

    out = {}
    for k, v in columns.items():
        t = types.get(k)
        if isinstance(t, str):
            t = pa.type_for_alias(t)
        out[k] = pa.array(v, type=t) if t is not None else pa.array(v)
    return out


def with_columns(batch, new: dict[str, Any], types: dict[str, Any]):
    """The batch plus ``new`` columns as a typed pyarrow Table (what ``map`` needs so that a first
    batch of None values does not fix a null column type). A returned table replaces the batch, so it
    carries the input columns too; ``map(remove_columns=...)`` is not applied to it (call
    ``.remove_columns`` afterwards). A plain dict batch (a direct call) gets a dict of lists back."""
    source = getattr(batch, "pa_table", None)
    size = len(next(iter(new.values()))) if new else 0
    if source is None or source.num_rows != size:
        return {**({} if source is None else {}), **{k: list(v) for k, v in new.items()}}
    table = source
    for name, arr in typed(new, types).items():
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, arr)
        else:
            table = table.append_column(name, arr)
    return table


def _compact(v: Any):
    """Per-row arrays: numpy where the values are numbers, lists otherwise."""
    if isinstance(v, np.ndarray):
        return v
    v = list(v)
    if v and all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in v):
        return np.asarray(v)
    return v


def _take(col, pos: np.ndarray) -> list:
    if isinstance(col, np.ndarray):
        return col[pos].tolist()
    return [col[i] for i in pos.tolist()]
