"""Selective annotation: which rows to annotate (with an LLM or a person) under a budget.

Fit-then-map selectors: ``sel.fit(ds)`` ranks the rows, then ``ds.map(sel, batched=True,
with_indices=True)`` adds ``{output}`` (True for the ``budget`` chosen rows) and ``{output}_rank``
(0 = first pick; None for rows a diversity strategy does not pick).

Strategies:
- ``random``: a seeded permutation;
- ``entropy`` (maximum entropy), ``least_confidence``, ``margin`` (smallest gap between the two most
  likely labels): from a column of label distributions (an :class:`Annotator`'s ``label_probs``, or a
  student's predictions);
- ``kmeans``: one row per cluster of the embeddings (the row nearest each centroid), ``budget`` clusters;
- ``vote_k`` (Su et al. 2023, stage 1): on the k-nearest-neighbour graph of the embeddings, greedily
  pick the row with most votes from its unpicked neighbours, each vote discounted by ``rho`` to the
  power of the number of the voter's neighbours already picked (diverse *and* representative).

>>> import numpy as np
>>> sel = Selector("margin", budget=1, probs_column="p").fit({"p": [[0.9, 0.1], [0.55, 0.45]]})
>>> sel({"p": [[0.9, 0.1], [0.55, 0.45]]}, indices=[0, 1])["selected"]
[False, True]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._versions import library_versions
from ..columns import check_columns
from ..errors import InvalidParameterError, NotFittedError

_FORMAT_VERSION = 1
STRATEGIES = ("random", "entropy", "least_confidence", "margin", "kmeans", "vote_k")
_UNCERTAINTY = ("entropy", "least_confidence", "margin")
_DIVERSITY = ("kmeans", "vote_k")


def uncertainty(probs: np.ndarray, strategy: str) -> np.ndarray:
    """Higher = more uncertain, per row of a ``(rows, labels)`` probability matrix."""
    p = np.clip(np.asarray(probs, dtype=float), 0.0, 1.0)
    if strategy == "entropy":
        return -(p * np.log(np.where(p > 0, p, 1.0))).sum(-1)
    if strategy == "least_confidence":
        return 1.0 - p.max(-1)
    if strategy == "margin":
        top = np.sort(p, axis=-1)
        return -(top[:, -1] - top[:, -2])
    raise InvalidParameterError(f"{strategy!r} is not an uncertainty strategy: {list(_UNCERTAINTY)}.")


def knn(x: np.ndarray, k: int, *, chunk: int = 2048) -> np.ndarray:
    """The ``k`` nearest neighbours (cosine) of every row, itself excluded: ``(rows, k)`` indices."""
    x = np.asarray(x, dtype=np.float32)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = min(k, len(x) - 1)
    out = np.empty((len(x), k), dtype=np.int64)
    for s in range(0, len(x), chunk):
        sim = x[s:s + chunk] @ x.T
        sim[np.arange(sim.shape[0]), np.arange(s, s + sim.shape[0])] = -np.inf
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, part, 1), axis=1)
        out[s:s + chunk] = np.take_along_axis(part, order, 1)
    return out


def vote_k(x: np.ndarray, budget: int, *, k: int = 10, rho: float = 10.0) -> list[int]:
    """Vote-k's graph stage (Su et al. 2023): ``budget`` row indices in pick order."""
    n = len(x)
    nbr = knn(x, k)
    covered = np.zeros(n)  # per voter: how many of its neighbours are picked
    weight = np.ones(n)  # rho ** -covered, and 0 once the voter itself is picked
    score = np.zeros(n)
    np.add.at(score, nbr.ravel(), np.repeat(weight, nbr.shape[1]))
    voters: list[list[int]] = [[] for _ in range(n)]
    for v, row in enumerate(nbr):
        for u in row:
            voters[u].append(v)
    picked: list[int] = []
    alive = np.ones(n, dtype=bool)
    for _ in range(min(budget, n)):
        u = int(np.argmax(np.where(alive, score, -np.inf)))
        picked.append(u)
        alive[u] = False
        score[nbr[u]] -= weight[u]  # a picked row votes no more
        weight[u] = 0.0
        for v in voters[u]:  # each row that has u as a neighbour now counts one more picked neighbour
            covered[v] += 1
            if alive[v]:
                new = rho ** -covered[v]
                score[nbr[v]] += new - weight[v]
                weight[v] = new
    return picked


#: above this many rows k-means runs on mini-batches (measured on 100,000 384-d rows, 200 clusters, a loaded
#: 2-core machine: full k-means 228 s, mini-batch 58-69 s; BENCHMARKS.md "Selective annotation")
MINIBATCH_ROWS = 20_000


def kmeans_pick(x: np.ndarray, budget: int, *, seed: int = 0) -> list[int]:
    """One row per k-means cluster (``budget`` clusters): the row nearest each centroid, largest clusters
    first. Mini-batch k-means above :data:`MINIBATCH_ROWS` rows."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    x = np.asarray(x, dtype=np.float32)
    budget = min(budget, len(x))
    if len(x) > MINIBATCH_ROWS:
        km = MiniBatchKMeans(n_clusters=budget, n_init=1, batch_size=4096, max_iter=20, random_state=seed).fit(x)
    else:
        km = KMeans(n_clusters=budget, n_init=1, max_iter=100, random_state=seed).fit(x)
    d = ((x - km.cluster_centers_[km.labels_]) ** 2).sum(-1)
    sizes = np.bincount(km.labels_, minlength=budget)
    picks = []
    for c in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            picks.append(int(members[np.argmin(d[members])]))
    return picks


def check_fitted_indices(obj, fitted, indices: Sequence[int] | None, *, name: str, what: str) -> None:
    """A fitted row marker's map call: fitted first, ``with_indices=True``, indices within the fitted rows."""
    usage = f"ds.map({name}, batched=True, with_indices=True)"
    if fitted is None:
        raise NotFittedError(f"{type(obj).__name__} must be fitted first: {name}.fit(ds), then {usage}.")
    if indices is None:
        raise InvalidParameterError(f"{type(obj).__name__} marks rows by their index: pass with_indices=True, as in "
                                    f"{usage}.")
    if len(indices) and max(indices) >= obj.fitted_rows_:
        raise InvalidParameterError(f"Row {max(indices)} is past the {obj.fitted_rows_} rows the {what} was "
                                    "fitted on: fit it on the same dataset you map.")


class Selector:
    """Ranks rows for annotation under a ``budget`` (fit-then-map; see the module docstring).

    Args:
        strategy (`str`): one of ``random``, ``entropy``, ``least_confidence``, ``margin``, ``kmeans``, ``vote_k``.
        budget (`int`): how many rows to select.
        probs_column (`str`): label distributions, for the uncertainty strategies.
        embedding_column (`str`) or text_column (`str`): vectors, or texts embedded with all-MiniLM-L6-v2,
            for ``kmeans`` and ``vote_k``.
        output (`str`, defaults to ``"selected"``): the selection column (``{output}_rank`` beside it).
        seed (`int`, defaults to 0); k (`int`, defaults to 10) and rho (`float`, defaults to 10) for vote-k;
        pool (`int`, defaults to 20,000): vote-k builds its exact k-NN graph on at most this many rows (a
        seeded random pool; the rest are not picked), as its cost grows with the square of the rows.
    """

    def __init__(self, strategy: str = "random", *, budget: int, probs_column: str | None = None,
                 embedding_column: str | None = None, text_column: str | None = None, output: str = "selected",
                 seed: int = 0, k: int = 10, rho: float = 10.0, pool: int = 20_000):
        if strategy not in STRATEGIES:
            raise InvalidParameterError(f"strategy={strategy!r} must be one of {list(STRATEGIES)}.")
        if not isinstance(budget, int) or budget < 1:
            raise InvalidParameterError(f"budget={budget!r} must be an integer >= 1.")
        if strategy in _UNCERTAINTY and not probs_column:
            raise InvalidParameterError(f"strategy={strategy!r} needs probs_column= (a column of label "
                                        "distributions, e.g. an Annotator's 'label_probs').")
        if strategy in _DIVERSITY and not (embedding_column or text_column):
            raise InvalidParameterError(f"strategy={strategy!r} needs embedding_column= or text_column=.")
        if k < 1 or rho <= 1.0:
            raise InvalidParameterError(f"k={k} must be >= 1 and rho={rho} > 1.")
        self.strategy, self.budget, self.output, self.seed = strategy, budget, output, seed
        self.probs_column, self.embedding_column, self.text_column = probs_column, embedding_column, text_column
        self.k, self.rho, self.pool = k, rho, pool
        self.ranks_: np.ndarray | None = None  # per fitted row: rank, or -1 when not ranked
        self.fitted_rows_: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k != "ranks_"}
        state["format"] = _FORMAT_VERSION
        state["ranks_"] = None if self.ranks_ is None else self.ranks_.tolist()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        ranks = state.pop("ranks_")
        self.__dict__.update(state)
        self.ranks_ = None if ranks is None else np.asarray(ranks, dtype=np.int64)

    def _column(self, ds, name: str) -> list:
        cols = ds.column_names if hasattr(ds, "column_names") else list(ds)
        check_columns(cols, [name], "Selector")
        return list(ds[name])

    def fit(self, ds) -> "Selector":
        """Rank the rows of ``ds`` (a ``datasets.Dataset`` or a dict of columns)."""
        n = ds.num_rows if hasattr(ds, "num_rows") else len(next(iter(ds.values())))
        if n == 0:
            raise InvalidParameterError("Cannot select from an empty dataset.")
        rng = np.random.default_rng(self.seed)
        if self.strategy == "random":
            order = rng.permutation(n)
        elif self.strategy in _UNCERTAINTY:
            probs = self._column(ds, self.probs_column)
            missing = [i for i, p in enumerate(probs) if p is None]
            u = np.full(n, -np.inf)
            ok = np.array([i for i in range(n) if probs[i] is not None], dtype=np.int64)
            if len(ok):
                u[ok] = uncertainty(np.array([probs[i] for i in ok], dtype=float), self.strategy)
            order = np.lexsort((rng.random(n), -u))  # most uncertain first; ties broken at random
            if missing:  # rows without a distribution (annotation errors) come last
                order = np.concatenate([order[~np.isin(order, missing)], np.asarray(missing)])
        else:
            x = self._vectors(ds)
            index = np.arange(n)
            if self.strategy == "vote_k" and n > self.pool:
                index = np.sort(rng.choice(n, self.pool, replace=False))
            sub = x[index]
            picks = vote_k(sub, self.budget, k=self.k, rho=self.rho) if self.strategy == "vote_k" \
                else kmeans_pick(sub, self.budget, seed=self.seed)
            order = index[np.asarray(picks, dtype=np.int64)]
        ranks = np.full(n, -1, dtype=np.int64)
        ranks[order] = np.arange(len(order))
        self.ranks_, self.fitted_rows_ = ranks, n
        return self

    def _vectors(self, ds) -> np.ndarray:
        if self.embedding_column:
            x = np.asarray(self._column(ds, self.embedding_column), dtype=np.float32)
            if x.ndim != 2:
                raise InvalidParameterError(f"Column {self.embedding_column!r} must hold equal-length vectors.")
            return x
        from ..embeddings import embed_texts_cached

        return np.asarray(embed_texts_cached([str(t) for t in self._column(ds, self.text_column)]), dtype=np.float32)

    @property
    def selected_indices(self) -> list[int]:
        """The chosen rows' indices in pick order."""
        if self.ranks_ is None:
            raise NotFittedError("Call fit(ds) before reading the selection.")
        ranked = np.flatnonzero((self.ranks_ >= 0) & (self.ranks_ < self.budget))
        return [int(i) for i in ranked[np.argsort(self.ranks_[ranked])]]

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        check_fitted_indices(self, self.ranks_, indices, name="sel", what="selector")
        r = self.ranks_[np.asarray(indices, dtype=np.int64)]
        out = dict(batch)
        out[self.output] = [bool(0 <= x < self.budget) for x in r]
        out[f"{self.output}_rank"] = [int(x) if x >= 0 else None for x in r]
        return out

    def describe(self) -> dict[str, Any]:
        d = {"type": "Selector", "format": _FORMAT_VERSION, "strategy": self.strategy, "budget": self.budget,
             "output": self.output, "seed": self.seed, "probs_column": self.probs_column,
             "embedding_column": self.embedding_column, "text_column": self.text_column,
             "fitted_rows": self.fitted_rows_, "selected": None if self.ranks_ is None else len(self.selected_indices),
             "library": library_versions()}
        if self.strategy == "vote_k":
            d.update(k=self.k, rho=self.rho, pool=self.pool)
        if self.text_column:
            from ..embeddings import embedding_model_identity

            d["embedding_model"] = embedding_model_identity()
        return d
