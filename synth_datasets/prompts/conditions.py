"""``Conditions``: condition-value pairs sampled per row (AttrPrompt-style attributed prompts)."""

from __future__ import annotations

import bisect
import itertools
from typing import Any, Mapping, Sequence

from ..errors import InvalidParameterError
from ..seeding import check_batched, derive_unit, row_keys
from .pools import Pool

_FORMAT_VERSION = 1


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
                 key_column: str | None = None, **pools: Sequence[Any]):
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

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "pools": self.pools, "weights": self.weights, "seed": self.seed,
                "key_column": self.key_column}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.pools, self.weights = state["pools"], state["weights"]
        self.seed, self.key_column = state["seed"], state["key_column"]

    def _pick(self, name: str, key: str, index: int | None = None) -> Any:
        values = self.pools[name]
        u = derive_unit(self.seed, key, name)
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
            needy = [n for n, p in self.pools.items() if isinstance(p, Pool) and p.needs_index]
            if needy:
                raise InvalidParameterError(
                    f"Attribute {needy[0]!r} ({self.pools[needy[0]]!r}) draws by row index: use "
                    "ds.map(conditions, batched=True, with_indices=True).")
            return {name: [self._pick(name, k) for k in keys] for name in self.pools}
        return {name: [self._pick(name, k, int(i)) for k, i in zip(keys, indices)] for name in self.pools}

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination of values (for coverage checks or a full-grid dataset)."""
        names = list(self.pools)
        for n in names:
            if isinstance(self.pools[n], Pool) and not self.pools[n].finite:
                raise InvalidParameterError(f"Attribute {n!r} ({self.pools[n]!r}) has no finite list of values to combine.")
        pools = [self.pools[n].values() if isinstance(self.pools[n], Pool) else self.pools[n] for n in names]
        return [dict(zip(names, combo)) for combo in itertools.product(*pools)]

    def describe(self) -> dict[str, Any]:
        pools = {k: v.describe() if isinstance(v, Pool) else v for k, v in self.pools.items()}
        return {"type": "Conditions", "pools": pools, "weights": self.weights, "seed": self.seed,
                "key_column": self.key_column,
                "keyed_by": f"column {self.key_column!r}" if self.key_column else "row content, or index with with_indices=True"}

    def __repr__(self) -> str:
        return f"Conditions(seed={self.seed}, {', '.join(f'{k}={v!r}' for k, v in self.pools.items())})"
