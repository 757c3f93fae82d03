"""Confidence signals on embeddings (survey §3.2.1): agreement with an auxiliary classifier trained
with cross-partition training (MCKD / Yu et al.), and agreement with nearest neighbours (Seedat et al.).

Both are fit-then-filter: ``fit(ds)`` embeds the texts (packaged MiniLM) or reads an embedding column,
computes one score per row, and stores only the per-row results; then ``ds.filter(obj, batched=True,
with_indices=True)`` drops the flagged rows and ``ds.map(obj.mark, ..., with_indices=True)`` records
the reason and the scores.

>>> from datasets import Dataset
>>> import numpy as np
>>> x = np.r_[np.tile([1.0, 0.0], (10, 1)), np.tile([0.0, 1.0], (10, 1))] + np.random.default_rng(0).normal(0, .05, (20, 2))
>>> ds = Dataset.from_dict({"emb": x.tolist(), "label": ["a"] * 9 + ["b"] + ["b"] * 10})
>>> nc = NeighbourConsistency(embedding_column="emb", k=5).fit(ds)
>>> [i for i, keep in enumerate(nc.keep_mask) if not keep]
[9]
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..columns import TextColumn, check_column_option, resolve_text_column
from ..embeddings import embed_texts_cached, embedding_model_identity, out_of_fold_proba
from ..errors import InvalidParameterError
from .base import FittedFilter, check_columns, check_range


class EmbeddingInputs(TextColumn):
    """Shared inputs: labels (validated against ``labels`` when given) and embeddings (a column, or the
    texts of ``column`` embedded with the packaged all-MiniLM-L6-v2; None = the dataset's declared text
    column, else ``text``)."""

    column: str | None = None
    label_column: str = "label"
    embedding_column: str | None = None
    labels: list | None = None
    support: dict | None = None
    support_only: bool = False
    head: str = "logistic"

    def _init_head(self, head: str) -> None:
        from ..embeddings import check_head

        check_head(head)
        self.head = head

    def _init_support(self, support, support_only: bool) -> None:
        """Keep a small real labelled set (``support``: a Dataset with the same text or embedding column
        and label column) as plain lists: part of the configuration, so the fingerprint follows it."""
        who = type(self).__name__
        if not isinstance(support_only, bool):
            raise InvalidParameterError(f"support_only={support_only!r} must be True or False.")
        if support is None:
            if support_only:
                raise InvalidParameterError(f"{who}: support_only=True needs support= (a small real labelled dataset).")
            self.support, self.support_only = None, False
            return
        if not hasattr(support, "column_names"):
            raise InvalidParameterError(f"{who}: support= must be a datasets.Dataset of real labelled rows, got "
                                        f"{type(support).__name__}.")
        if support.num_rows == 0:
            raise InvalidParameterError(f"{who}: support= is empty: pass a few real labelled rows.")
        labels = self._read_labels(support, who=f"{who} (support=)", min_classes=2 if support_only else 1)
        if self.embedding_column is not None:
            check_columns(support.column_names, [self.embedding_column], f"{who} (support=)")
            data = {"embeddings": _vectors(support, self.embedding_column).tolist()}
        else:
            data = {"texts": list(support[resolve_text_column(support, self.column, f"{who} (support=)")])}
        self.support, self.support_only = {"labels": labels, **data}, support_only

    def _support_arrays(self):
        if self.support is None:
            return None, None
        s = self.support
        x = np.asarray(s["embeddings"]) if "embeddings" in s else embed_texts_cached(s["texts"], disk=False)
        return x, s["labels"]

    def _support_summary(self) -> dict[str, Any]:
        from collections import Counter

        s = self.support
        return {"rows": len(s["labels"]), "labels": dict(sorted(Counter(map(str, s["labels"])).items())),
                "support_only": self.support_only}

    def _init_inputs(self, column, label_column, embedding_column, labels):
        if labels is not None and (isinstance(labels, str) or len(set(labels)) < 2):
            raise InvalidParameterError(f"labels={labels!r} must list at least 2 distinct label values.")
        check_column_option(column)
        self.column, self.label_column, self.embedding_column = column, label_column, embedding_column
        self.labels = list(labels) if labels is not None else None

    def _read_labels(self, ds, *, who: str | None = None, min_classes: int = 2) -> list:
        who = who or type(self).__name__
        check_columns(ds.column_names, [self.label_column], who)
        y = list(ds[self.label_column])
        allowed = set(self.labels) if self.labels is not None else None
        for i, v in enumerate(y):
            if v is None or (allowed is not None and v not in allowed):
                raise InvalidParameterError(
                    f"{who}: label {v!r} in row {i} of column {self.label_column!r} is not one of "
                    f"{self.labels if allowed is not None else 'the labels'}: fix or drop the row, or pass labels=.")
        if len(set(y)) < min_classes:
            raise InvalidParameterError(f"{who}: column {self.label_column!r} has a single label {y[0]!r}: "
                                        "a consistency check needs at least 2 classes.")
        return y

    def _read_embeddings(self, ds) -> np.ndarray:
        who = type(self).__name__
        if self.embedding_column is not None:
            check_columns(ds.column_names, [self.embedding_column], who)
            x = _vectors(ds, self.embedding_column)
            if x is None or x.ndim != 2:
                raise InvalidParameterError(f"{who}: column {self.embedding_column!r} must hold one fixed-length "
                                            "vector per row.")
            return x
        return embed_texts_cached(list(ds[self._text_column(ds)]), disk=False)  # fit, then map: embedded once

    def proba(self, ds) -> tuple[np.ndarray, list, list]:
        """Out-of-fold class probabilities (cross-partition training), the classes, and the labels."""
        y = self._read_labels(ds)
        x = self._read_embeddings(ds)
        sx, sy = self._support_arrays()
        p, classes = out_of_fold_proba(x, y, folds=self.folds, seed=self.seed, C=self.C, support_x=sx,
                                       support_labels=sy, support_only=self.support_only, head=self.head)
        return p, classes, y

    def _embedding_identity(self) -> dict[str, Any]:
        d: dict[str, Any] = {"embeddings": {"column": self.embedding_column} if self.embedding_column
                             else embedding_model_identity()}
        if self.support is not None:
            d["support"] = self._support_summary()
        return d

    def _describe_thresholds(self, rule: str) -> dict[str, Any]:
        """The embedding identity, plus the flagging ``rule`` and per-class thresholds once fitted."""
        d = self._embedding_identity()
        if getattr(self, "_thresholds", None) is not None:
            d["rule"] = rule
            d["thresholds"] = dict(self._thresholds)
        return d


class ClassifierConsistency(EmbeddingInputs, FittedFilter):
    """Agreement between each row's label and an auxiliary logistic-regression classifier on its
    embedding, with cross-partition training: rows are split into ``folds`` stratified folds and each
    fold is scored by a model trained on the others, so no row is judged by a model that saw it
    (:func:`synth_datasets.embeddings.out_of_fold_proba`).

    Which rows are flagged ``classifier_disagrees``:

    - default (``min_confidence=None``): confident learning's per-class thresholds (Northcutt et al.,
      2021). Each class ``j`` gets the threshold ``t_j`` = the mean out-of-fold probability of ``j``
      over the rows labelled ``j`` (its mean self-confidence); a row is flagged when another class
      ``j`` reaches its own threshold (``p_j >= t_j``) and is the likeliest such class. A row the
      classifier merely gets wrong is kept unless the classifier is as sure of the other class as it
      typically is of that class's own rows. The thresholds chosen are in ``describe()["thresholds"]``.
    - ``min_confidence=x``: flagged whenever the classifier predicts another label with probability
      >= ``x``. With two labels, ``x <= 0.5`` drops every row the classifier gets wrong: on 400
      *correctly* labelled Rotten Tomatoes snippets (MiniLM + logistic regression, ~73% accurate)
      ``min_confidence=0.5`` drops 109 rows, the default 64; with 20% of 2,000 labels flipped the
      default finds the flips with precision 0.43 / recall 0.62 (0.38 / 0.69 at 0.5).

    ``support=`` (a few dozen real labelled rows, the survey's D_sup; same column names): every fold's
    classifier also trains on them, or, with ``support_only=True``, one classifier trained on them
    alone scores every row. ``describe()["support"]`` records its size and labels (not its rows).
    ``head="mlp"`` swaps the logistic regression for a one-hidden-layer MLP (see
    :class:`~synth_datasets.curate.StudentRelabel`: no more accurate here, ~24x slower to fit).

    Columns: ``<name>_predicted``, ``<name>_confidence`` (the probability of the row's own label) and
    ``<name>_predicted_confidence``.
    """

    _PARAMS = ("column", "label_column", "embedding_column", "labels", "folds", "seed", "C", "min_confidence",
               "support_only", "id_column", "head")
    name = "clf_consistency"

    def __init__(self, *, column: str | None = None, label_column: str = "label", embedding_column: str | None = None,
                 labels: Sequence | None = None, folds: int = 5, seed: int = 0, C: float = 1.0,
                 min_confidence: float | None = None, support=None, support_only: bool = False,
                 id_column: str | None = None, head: str = "logistic", name: str | None = None):
        check_range("folds", folds, 2, integer=True)
        check_range("min_confidence", min_confidence, 0.0, 1.0, allow_none=True)
        check_range("C", C, 1e-12)
        self._init_head(head)
        self._init_inputs(column, label_column, embedding_column, labels)
        self._init_support(support, support_only)
        self.folds, self.seed, self.C, self.min_confidence, self.id_column = folds, seed, C, min_confidence, id_column
        self._fitted = None
        self._thresholds: dict | None = None
        super().__init__(name=name)

    score_suffixes = ("predicted", "confidence", "predicted_confidence")

    def _describe_extra(self):
        return self._describe_thresholds("confident learning: flagged when another class reaches its per-class "
                                         "threshold (the mean out-of-fold probability of that class over its own rows)")

    def _fit(self, ds):
        p, classes, y = self.proba(ds)
        idx = {c: i for i, c in enumerate(classes)}
        yi = np.array([idx[v] for v in y])
        pred = p.argmax(1)
        rows = np.arange(len(y))
        if self.min_confidence is None:
            t = confident_thresholds(p, yi)
            self._thresholds = {str(c): round(float(v), 6) for c, v in zip(classes, t)}
            flag = confident_flags(p, yi, t)
        else:
            self._thresholds = None
            flag = (pred != yi) & (p[rows, pred] >= self.min_confidence)
        return flag.astype(np.int16), ["classifier_disagrees"], {
            f"{self.name}_predicted": [classes[i] for i in pred.tolist()],
            f"{self.name}_confidence": p[rows, yi], f"{self.name}_predicted_confidence": p[rows, pred]}


def confident_thresholds(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Confident learning's per-class thresholds: for each class, the mean predicted probability of that
    class over the rows labelled with it (its mean self-confidence). A class no row carries gets 1.0.

    >>> confident_thresholds(np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]]), np.array([0, 0, 1]))
    array([0.8, 0.8])
    """
    return np.array([p[y == j, j].mean() if (y == j).any() else 1.0 for j in range(p.shape[1])])


def confident_flags(p: np.ndarray, y: np.ndarray, t: np.ndarray | None = None) -> np.ndarray:
    """Confident learning's rule: row ``i`` is flagged when some other class ``j`` reaches its own
    threshold (``p[i, j] >= t[j]``, default :func:`confident_thresholds`) and is the likeliest such class.

    >>> confident_flags(np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.3, 0.7]]), np.array([0, 0, 0, 1])).tolist()
    [False, False, True, False]
    """
    t = confident_thresholds(p, y) if t is None else t
    confident = p >= t[None, :]
    best = np.where(confident, p, -1.0).argmax(1)
    return confident.any(1) & (best != y)


def _vectors(ds, column: str) -> np.ndarray | None:
    """An (n, d) float32 array from a list/array column, straight from Arrow (no per-row Python)."""
    import pyarrow as pa

    col = ds.with_format("arrow")[column]
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if isinstance(col, pa.ChunkedArray):
        col = pa.concat_arrays(col.chunks)
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        return None
    if col.null_count:
        raise InvalidParameterError(f"column {column!r} has {col.null_count} missing vectors: embed or drop those rows.")
    n = len(col)
    flat = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if n == 0 or flat.size % n or (not pa.types.is_fixed_size_list(col.type)
                                   and len(set(np.diff(col.offsets.to_numpy()).tolist())) > 1):
        return None
    return flat.reshape(n, flat.size // n)


def knn(x: np.ndarray, k: int, *, method: str = "auto", chunk: int = 2048, seed: int = 0,
        nprobe: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours by cosine similarity (self excluded): ``(indices, similarities)``, each (n, k).

    ``method="exact"``: chunked matrix products and top-k with torch (threaded BLAS), O(chunk * n)
    memory, n^2 * d work. ``method="ivf"``: an inverted-file index (FAISS's IVF idea): k-means cells
    (sqrt(n) of them, trained on a sample), and the rows of each cell search the ``nprobe`` cells whose
    centres are nearest to their own cell's centre: n * (nprobe / sqrt(n)) * n * d work, approximate
    (neighbour recall measured in benchmarks/bench_curate.py). ``"auto"``: exact up to 20,000 rows.
    """
    n = x.shape[0]
    if k >= n:
        raise InvalidParameterError(f"k={k} must be smaller than the number of rows ({n}).")
    if method not in ("auto", "exact", "ivf"):
        raise InvalidParameterError(f"method={method!r} must be 'auto', 'exact' or 'ivf'.")
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    xn = np.ascontiguousarray(xn, dtype=np.float32)
    if method == "ivf" or (method == "auto" and n > 20_000):
        return _knn_ivf(xn, k, seed=seed, nprobe=nprobe)
    return _knn_exact(xn, k, chunk)


def _knn_ivf(xn: np.ndarray, k: int, *, seed: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    # Many small products: threads only add synchronisation (and stall badly on a busy machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _knn_ivf_run(torch, xn, k, seed=seed, nprobe=nprobe)
    finally:
        torch.set_num_threads(threads)


def _knn_ivf_run(torch, xn, k, *, seed, nprobe):
    n = xn.shape[0]
    cells = max(1, int(np.sqrt(n)))
    nprobe = min(nprobe, cells)
    rng = np.random.default_rng(seed)
    sample = xn[rng.choice(n, size=min(n, 40 * cells), replace=False)]
    t = torch.from_numpy(xn)
    centres = torch.from_numpy(sample[rng.choice(len(sample), size=cells, replace=False)].copy())
    with torch.inference_mode():
        s = torch.from_numpy(sample)
        for _ in range(10):  # spherical k-means on the sample
            assign = (s @ centres.T).argmax(1)
            onehot = torch.zeros(cells, len(s))
            onehot[assign, torch.arange(len(s))] = 1.0
            sums = onehot @ s                          # per-cell sums as one matrix product
            empty = torch.bincount(assign, minlength=cells) == 0
            sums[empty] = centres[empty]
            centres = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-12)
        assign = torch.cat([(t[i:i + 65536] @ centres.T).argmax(1) for i in range(0, n, 65536)]).numpy()
        probe = torch.topk(centres @ centres.T, nprobe, dim=1).indices.numpy()
        order = np.argsort(assign, kind="stable")       # rows sorted by cell: each cell is a slice
        bounds = np.searchsorted(assign[order], np.arange(cells + 1))
        ts = t[torch.from_numpy(order)]
        idx = np.empty((n, k), dtype=np.int64)
        sim = np.empty((n, k), dtype=np.float32)
        for c in range(cells):
            lo, hi = bounds[c], bounds[c + 1]
            if hi == lo:
                continue
            cand = np.concatenate([np.arange(bounds[p], bounds[p + 1]) for p in probe[c]])
            if len(cand) <= k + 1:  # tiny cells: fall back to every row
                cand = np.arange(n)
            block = ts[lo:hi] @ ts[torch.from_numpy(cand)].T
            v, i = torch.topk(block, k + 1, dim=1, sorted=True)
            got = cand[i.numpy()]                        # positions in sorted order
            v = v.numpy()
            v[got == np.arange(lo, hi)[:, None]] = -np.inf  # drop self, keep the k best others
            keep = np.argsort(-v, axis=1, kind="stable")[:, :k]
            rows = order[lo:hi]
            idx[rows] = order[np.take_along_axis(got, keep, 1)]
            sim[rows] = np.take_along_axis(v, keep, 1)
    return idx, sim


def _knn_exact(xn: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    n = xn.shape[0]
    t = torch.from_numpy(xn)
    idx = np.empty((n, k), dtype=np.int64)
    sim = np.empty((n, k), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, n, chunk):
            e = min(s + chunk, n)
            block = t[s:e] @ t.T
            block[torch.arange(e - s), torch.arange(s, e)] = -float("inf")
            v, i = torch.topk(block, k, dim=1, sorted=True)
            idx[s:e], sim[s:e] = i.numpy(), v.numpy()
    return idx, sim


class NeighbourConsistency(EmbeddingInputs, FittedFilter):
    """The share of a row's ``k`` nearest neighbours (cosine on embeddings, self excluded) that carry
    the same label (Seedat et al.). Which rows are flagged ``neighbours_disagree``:

    - default (``min_agreement=None``): confident learning's per-class thresholds on the neighbour
      vote (the share of neighbours carrying each class): class ``j``'s threshold is the mean share of
      ``j`` among the neighbours of rows labelled ``j``; a row is flagged when another class reaches
      its threshold and is the likeliest such class (:func:`confident_flags`). Recorded in
      ``describe()["thresholds"]``.
    - ``min_agreement=x``: flagged when the share of neighbours with the row's own label is below ``x``.

    Columns: ``<name>_agreement`` and ``<name>_majority`` (the most common
    neighbour label; ties go to the label of the nearest neighbour among the tied ones).
    Neighbours are exact up to 20,000 rows and from an IVF index above (``method``, see :func:`knn`).
    """

    _PARAMS = ("column", "label_column", "embedding_column", "labels", "k", "min_agreement", "method", "id_column")
    name = "knn_consistency"

    def __init__(self, *, column: str | None = None, label_column: str = "label", embedding_column: str | None = None,
                 labels: Sequence | None = None, k: int = 10, min_agreement: float | None = None, method: str = "auto",
                 id_column: str | None = None, name: str | None = None):
        check_range("k", k, 1, integer=True)
        if method not in ("auto", "exact", "ivf"):
            raise InvalidParameterError(f"method={method!r} must be 'auto', 'exact' or 'ivf'.")
        self.method = method
        check_range("min_agreement", min_agreement, 0.0, 1.0, allow_none=True)
        self._init_inputs(column, label_column, embedding_column, labels)
        self.k, self.min_agreement, self.id_column = k, min_agreement, id_column
        self._fitted = None
        self._thresholds: dict | None = None
        super().__init__(name=name)

    score_suffixes = ("agreement", "majority")

    def _describe_extra(self):
        return self._describe_thresholds("confident learning on the neighbour vote: flagged when another class's "
                                         "share of the neighbours reaches its per-class threshold (the mean share "
                                         "over its own rows)")

    def vote(self, ds) -> tuple[np.ndarray, list, list]:
        """``(shares, classes, labels)``: the share of each row's ``k`` neighbours carrying each class."""
        y = self._read_labels(ds)
        x = self._read_embeddings(ds)
        classes = sorted(set(y), key=str)
        idx = {c: i for i, c in enumerate(classes)}
        yi = np.array([idx[v] for v in y])
        nn, _ = knn(x, self.k, method=self.method)
        ny = yi[nn]
        return np.stack([(ny == c).mean(1) for c in range(len(classes))], axis=1), classes, y

    def _fit(self, ds):
        y = self._read_labels(ds)
        x = self._read_embeddings(ds)
        classes = sorted(set(y), key=str)
        yi = np.array([classes.index(v) for v in y]) if len(classes) < 64 else \
            np.array([{c: i for i, c in enumerate(classes)}[v] for v in y])
        nn, _ = knn(x, self.k, method=self.method)
        ny = yi[nn]                                   # (n, k) neighbour labels, nearest first
        agree = (ny == yi[:, None]).mean(1)
        counts = np.stack([(ny == c).sum(1) for c in range(len(classes))], axis=1)
        top = counts.max(1, keepdims=True)
        # tie-break: the nearest neighbour whose label has the top count
        tied = counts[np.arange(len(y))[:, None], ny] == top
        majority = ny[np.arange(len(y)), tied.argmax(1)]
        if self.min_agreement is None:
            share = counts / self.k
            t = confident_thresholds(share, yi)
            self._thresholds = {str(c): round(float(v), 6) for c, v in zip(classes, t)}
            flag = confident_flags(share, yi, t)
        else:
            self._thresholds = None
            flag = agree < self.min_agreement
        return flag.astype(np.int16), ["neighbours_disagree"], {
            f"{self.name}_agreement": agree, f"{self.name}_majority": [classes[i] for i in majority.tolist()]}
