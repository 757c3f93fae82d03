"""``Conditions``: condition-value pairs sampled per row (AttrPrompt-style attributed prompts)."""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import InvalidParameterError
from ..seeding import check_batched, derive_seed, derive_unit, row_keys
from .pools import Pool

_FORMAT_VERSION = 1
DESIGNS = ("random", "balanced", "latin")
_MAX_GRID = 1_000_000  # combinations listed for design='balanced' / the all-excluded check
_MAX_ATTEMPTS = 256  # redraws of an excluded row


class Conditions:
    """Adds one column per attribute, each value drawn from its pool.

    Map-callable, ``batched=True``; returns only the new columns, one value per row. Each draw is a
    pure function of (``seed``, row key, attribute), where the row key is the row's index when
    ``with_indices=True`` is passed to ``map``, the value of ``key_column`` if given, and otherwise a
    hash of the row's content; so a resumed run, another batch size or ``num_proc`` draw the same values.

    Args:
        seed (`int`, defaults to 0): seed of the draws.
        weights (`dict[str, list[float]]`, *optional*): relative weight of each value of an attribute.
        key_column (`str`, *optional*): column that identifies a row.
        exclude (`list[dict]`, *optional*): value combinations that must not co-occur, each a dict
            attribute -> value (or a list of values, any of which matches), e.g.
            ``[{"label": "negative", "style": "enthusiastic"}]``. A row whose draw matches a rule is
            drawn again (seeded by its key and attempt), which is sampling from the allowed combinations.
        design (`str`, defaults to ``"random"``): how rows cover the grid of the finite attributes
            (lists, :class:`LLMValues`, :class:`ConceptTree`; :class:`RandomWords` is always drawn per row):
            ``"random"``: independent draws (with ``weights``); ``"balanced"``: row ``i`` gets the allowed
            combination at position ``i mod m`` of a seeded permutation of all ``m`` of them, a new
            permutation every ``m`` rows, so every combination comes before any repeats;
            ``"latin"``: each attribute walks its own seeded permutation of its values (every value of
            every attribute before repeats, pairings random, as a Latin hypercube), for grids too large
            to cover; a row whose latin draw is excluded gets the attributes its rules name drawn again
            at random (the other attributes stay balanced). Both designs need
            ``ds.map(conditions, batched=True, with_indices=True)``.
        **pools: attribute name -> list of values, or a :class:`~synth_datasets.prompts.pools.Pool`:
            :class:`LLMValues` (values an LLM lists from a description), :class:`ConceptTree` (leaves
            of a topic tree, with coverage), :class:`RandomWords` (TinyStories-style words per row).
            A pool object is made on first use and recorded verbatim by ``describe()``.

    Example:
        >>> from datasets import Dataset
        >>> c = Conditions(label=["positive", "negative"], style=["calm", "intense"], seed=0)
        >>> ds = Dataset.from_dict({"id": [0, 1, 2]}).map(c, batched=True)
        >>> ds.column_names
        ['id', 'label', 'style']
        >>> c.combinations()[:2]
        [{'label': 'positive', 'style': 'calm'}, {'label': 'positive', 'style': 'intense'}]
    """

    def __init__(self, seed: int = 0, *, weights: Mapping[str, Sequence[float]] | None = None,
                 key_column: str | None = None, exclude: Sequence[Mapping[str, Any]] | None = None,
                 design: str = "random", **pools: Sequence[Any]):
        if not pools:
            raise InvalidParameterError("Conditions needs at least one attribute, e.g. Conditions(label=['a', 'b']).")
        if not isinstance(seed, int) or seed < 0:
            raise InvalidParameterError(f"seed={seed!r} must be a non-negative integer.")
        self.pools = {}
        for name, values in pools.items():
            if isinstance(values, Pool):
                self.pools[name] = values
                continue
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
                raise InvalidParameterError(f"Attribute {name!r} needs a non-empty list of values, got {values!r}.")
            self.pools[name] = list(values)
        self.weights = {}
        for name, w in (weights or {}).items():
            if name not in self.pools:
                raise InvalidParameterError(f"weights given for {name!r}, which is not an attribute: {sorted(self.pools)}.")
            if isinstance(self.pools[name], Pool):
                raise InvalidParameterError(f"weights given for {name!r}, whose values come from {self.pools[name]!r}: "
                                            "weights apply to a list of values only; drop them.")
            w = [float(x) for x in w]
            if len(w) != len(self.pools[name]) or any(x < 0 for x in w) or sum(w) <= 0:
                raise InvalidParameterError(f"weights[{name!r}] must be {len(self.pools[name])} non-negative "
                                            "numbers with a positive sum.")
            self.weights[name] = w
        self.seed = seed
        self.key_column = key_column
        if design not in DESIGNS:
            raise InvalidParameterError(f"design={design!r}: use one of {list(DESIGNS)}.")
        if design != "random" and self.weights:
            raise InvalidParameterError(f"weights= apply to design='random'; design={design!r} gives every value "
                                        "the same share. Drop weights= or use design='random'.")
        self.design = design
        self._runtime: dict[Any, Any] = {}
        self.exclude = self._check_exclude(exclude)

    def _check_exclude(self, exclude: Sequence[Mapping[str, Any]] | None) -> list[dict[str, list]]:
        if exclude is None:
            return []
        if isinstance(exclude, Mapping):
            exclude = [exclude]
        rules = []
        for r, rule in enumerate(exclude):
            if not isinstance(rule, Mapping) or len(rule) < 1:
                raise InvalidParameterError(f"exclude[{r}]={rule!r} must be a dict attribute -> value(s), e.g. "
                                            "{'label': 'negative', 'style': 'enthusiastic'}.")
            out = {}
            for name, v in rule.items():
                if name not in self.pools:
                    raise InvalidParameterError(f"exclude[{r}] names {name!r}, which is not an attribute: "
                                                f"{sorted(self.pools)}.")
                vals = list(v) if isinstance(v, (list, tuple, set, frozenset)) else [v]
                pool = self.pools[name]
                if not isinstance(pool, Pool):
                    unknown = [x for x in vals if x not in pool]
                    if unknown:
                        raise InvalidParameterError(f"exclude[{r}]: {unknown[0]!r} is not a value of {name!r} "
                                                    f"({pool!r}). Fix the rule.")
                out[name] = vals
            rules.append(out)
        self.exclude = rules
        finite = all(not isinstance(p, Pool) for p in self.pools.values())
        if rules and finite and self._grid_size() <= _MAX_GRID and not self._allowed():
            raise InvalidParameterError(f"exclude= rules out every combination of {sorted(self.pools)}. Remove a rule.")
        return rules

    def __getstate__(self) -> dict[str, Any]:
        state = {"format": _FORMAT_VERSION, "pools": self.pools, "weights": self.weights, "seed": self.seed,
                 "key_column": self.key_column}
        if self.exclude or self.design != "random":  # older configurations keep their fingerprint
            state.update(exclude=self.exclude, design=self.design)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.pools, self.weights = state["pools"], state["weights"]
        self.seed, self.key_column = state["seed"], state["key_column"]
        self.exclude, self.design = state.get("exclude", []), state.get("design", "random")
        self._runtime = {}

    # -- combinations ------------------------------------------------------------------------------
    def _finite_names(self) -> list[str]:
        return [n for n, p in self.pools.items() if not (isinstance(p, Pool) and not p.finite)]

    def _values(self, name: str) -> list[Any]:
        p = self.pools[name]
        return p.values() if isinstance(p, Pool) else p

    def _grid_size(self) -> int:
        return math.prod(len(self._values(n)) for n in self._finite_names())

    def excluded(self, row: Mapping[str, Any]) -> bool:
        """Whether a (partial) assignment matches an ``exclude`` rule (every attribute of the rule present)."""
        return any(all(n in row and row[n] in vals for n, vals in rule.items()) for rule in self.exclude)

    def _allowed(self) -> list[tuple]:
        """The allowed combinations of the finite attributes (in grid order), computed once."""
        if "allowed" not in self._runtime:
            names = self._finite_names()
            if self._grid_size() > _MAX_GRID:
                raise InvalidParameterError(
                    f"The grid of {names} has {self._grid_size():,} combinations (more than {_MAX_GRID:,}): too many "
                    "to list. Use design='latin' (every value of each attribute before repeats) or 'random'.")
            grid = itertools.product(*(self._values(n) for n in names))
            self._runtime["allowed"] = [c for c in grid if not self.excluded(dict(zip(names, c)))]
        return self._runtime["allowed"]

    def _perm(self, tag: str, size: int, cycle: int) -> np.ndarray:
        """A seeded permutation of range(size) for one cycle of a design (a few kept per process)."""
        k = (tag, size, cycle)
        perms = self._runtime.setdefault("perms", {})
        if k not in perms:
            if len(perms) >= 64:
                perms.pop(next(iter(perms)))
            perms[k] = np.random.default_rng(derive_seed(self.seed, "design", tag, cycle)).permutation(size)
        return perms[k]

    def _design_row(self, index: int) -> dict[str, Any]:
        names = self._finite_names()
        if self.design == "balanced":
            allowed = self._allowed()
            if not allowed:
                raise InvalidParameterError("exclude= rules out every combination. Remove a rule.")
            m = len(allowed)
            return dict(zip(names, allowed[int(self._perm("balanced", m, index // m)[index % m])]))
        out = {}
        for n in names:
            vals = self._values(n)
            m = len(vals)
            out[n] = vals[int(self._perm(f"latin-{n}", m, index // m)[index % m])]
        return out

    def _pick(self, name: str, key: str, index: int | None = None, attempt: int = 0) -> Any:
        values = self.pools[name]
        u = derive_unit(self.seed, key, name) if attempt == 0 else derive_unit(self.seed, key, name, attempt)
        if isinstance(values, Pool):
            return values.pick(u=u, seed=self.seed, name=name, key=key, index=index)
        w = self.weights.get(name)
        if w is None:
            return values[int(u * len(values))]
        cum = list(itertools.accumulate(w))
        return values[min(len(values) - 1, bisect.bisect_right(cum, u * cum[-1]))]

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        check_batched(batch, "Conditions")
        clash = sorted(set(self.pools) & set(batch))
        if clash:
            raise InvalidParameterError(
                f"Column {clash[0]!r} already exists; Conditions would overwrite it. Rename the attribute "
                f"or remove the column (ds.remove_columns({clash!r})).")
        keys = row_keys(batch, indices, self.key_column)
        if indices is None:
            if self.design != "random":
                raise InvalidParameterError(f"design={self.design!r} assigns combinations by row index: use "
                                            "ds.map(conditions, batched=True, with_indices=True).")
            needy = [n for n, p in self.pools.items() if isinstance(p, Pool) and p.needs_index]
            if needy:
                raise InvalidParameterError(
                    f"Attribute {needy[0]!r} ({self.pools[needy[0]]!r}) draws by row index: use "
                    "ds.map(conditions, batched=True, with_indices=True).")
        rows = [self._row(k, None if indices is None else int(i))
                for k, i in zip(keys, indices if indices is not None else [None] * len(keys))]
        return {name: [r[name] for r in rows] for name in self.pools}

    def _row(self, key: str, index: int | None) -> dict[str, Any]:
        """One row's values: the design's (or independent draws), drawn again while excluded."""
        if self.design != "random":
            row = self._design_row(index)
            row.update({n: self._pick(n, key, index) for n in self.pools if n not in row})
        else:
            row = {n: self._pick(n, key, index) for n in self.pools}
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            if not self.excluded(row):
                return row
            if self.design == "latin":  # redraw only what the matched rules name: the others stay balanced
                hit = {n for rule in self.exclude if all(row.get(a) in v for a, v in rule.items()) for n in rule}
                row.update({n: self._pick(n, key, index, attempt) for n in hit})
            else:  # all of them: sampling from the allowed combinations
                row = {n: self._pick(n, key, index, attempt) for n in self.pools}
        if not self.excluded(row):
            return row
        raise InvalidParameterError(
            f"Row {key!r}: {_MAX_ATTEMPTS} draws all matched exclude= rules; the rules leave almost no allowed "
            "combination. Loosen the rules, or list the allowed values per attribute instead.")

    def combinations(self) -> list[dict[str, Any]]:
        """Every allowed combination of values, ``exclude`` rules applied (for coverage checks or a
        full-grid dataset)."""
        names = list(self.pools)
        for n in names:
            if isinstance(self.pools[n], Pool) and not self.pools[n].finite:
                raise InvalidParameterError(f"Attribute {n!r} ({self.pools[n]!r}) has no finite list of values to combine.")
        pools = [self.pools[n].values() if isinstance(self.pools[n], Pool) else self.pools[n] for n in names]
        return [dict(zip(names, combo)) for combo in itertools.product(*pools)
                if not self.excluded(dict(zip(names, combo)))]

    def coverage(self, rows: Any) -> dict[str, Any]:
        """How much of the allowed grid the rows (a Dataset or dict of columns) cover: ``combinations``
        (allowed), ``covered`` (distinct allowed combinations seen), ``share``, ``excluded_rows`` (rows
        matching a rule) and, per attribute, how often each value occurs.

        >>> c = Conditions(a=[0, 1], b=["x", "y"], exclude=[{"a": 1, "b": "y"}], design="balanced")
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"id": [0, 1, 2]}).map(c, batched=True, with_indices=True)
        >>> c.coverage(ds)["share"]
        1.0
        """
        names = list(self.pools)
        cols = {n: list(rows[n]) for n in names}
        seen = list(zip(*(cols[n] for n in names)))
        allowed = {tuple(json.dumps(c[n], sort_keys=True, default=str) for n in names) for c in self.combinations()}
        got = {tuple(json.dumps(v, sort_keys=True, default=str) for v in r) for r in seen}
        return {"combinations": len(allowed), "covered": len(got & allowed),
                "share": round(len(got & allowed) / max(1, len(allowed)), 4),
                "excluded_rows": sum(self.excluded(dict(zip(names, r))) for r in seen),
                "values": {n: dict(Counter(json.dumps(v, default=str) if not isinstance(v, str) else v
                                           for v in cols[n])) for n in names}}

    def describe(self) -> dict[str, Any]:
        pools = {k: v.describe() if isinstance(v, Pool) else v for k, v in self.pools.items()}
        return {"type": "Conditions", "pools": pools, "weights": self.weights, "seed": self.seed,
                "key_column": self.key_column, "design": self.design, "exclude": self.exclude,
                "keyed_by": f"column {self.key_column!r}" if self.key_column else "row content, or index with with_indices=True"}

    def __repr__(self) -> str:
        return f"Conditions(seed={self.seed}, {', '.join(f'{k}={v!r}' for k, v in self.pools.items())})"
