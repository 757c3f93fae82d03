"""Combined evidence for label noise: one noise score per row from several signals the library already
computes, each an estimate of the probability of the row's own label:

- ``classifier``: the out-of-fold probability of a student on embeddings (logistic regression, or
  ``head="mlp"``; cross-partition training, as :class:`~synth_datasets.curate.ClassifierConsistency`);
- ``neighbours``: the share of the ``k`` nearest neighbours carrying the row's label
  (:class:`~synth_datasets.curate.NeighbourConsistency`);
- any ``probs_columns``: columns holding one probability per label (in ``labels`` order), e.g. the
  LLM's own label distribution from scoring the label verbalizations
  (:class:`~synth_datasets.generate.Annotator`'s ``<output>_probs``).

How the signals become one score (``combine=``):

- ``"learned"`` (default): a logistic regression on the signals (the log-odds of each signal's
  probability of the row's label, and the label itself), fitted on flips *simulated on the data
  itself*: ``simulate`` times, a copy of the labels gets a random ``inject`` share of its labels
  flipped, every signal is computed again on the copy (classifier retrained out-of-fold, neighbour
  vote recounted; ``probs_columns`` are label-independent and are only read at the new label), and the
  combiner learns which signal pattern separates the injected flips from the rest. No clean label is
  needed; the combiner's weights are in ``describe()["combiner"]`` (absent when no draw could be
  fitted, e.g. on a few dozen rows: the score is then the rank average). The score is its
  probability that the row's label was flipped. On 2,000 Rotten Tomatoes snippets with 20% flips:
  F1 0.534 (embedding signals) and 0.617 (+ the embedded LLM's label probability) against 0.516 and
  0.592 rank-averaged, and cleanlab's 0.496 (benchmarks/bench_noise.py, BENCHMARKS.md).
- ``"rank"``: the average of the signals' ranks (rank averaging: no signal needs calibrating against
  another), scaled to [0, 1].

High = likely mislabelled. How many rows are flagged is estimated from the data: confident
learning's count of label issues (:func:`~synth_datasets.curate.confidence.confident_flags`)
on the signals' averaged class distribution; the rows with the highest scores, that many, are flagged
``noisy_label``. With ``rounds=2`` (default) the classifier is then trained again, fold by fold,
without the rows flagged in the first round (prune and retrain: a student trained on cleaner labels
separates the flipped rows better), and the score and count are computed again from its probabilities.

>>> from datasets import Dataset
>>> import numpy as np
>>> x = np.r_[np.tile([1.0, 0.0], (10, 1)), np.tile([0.0, 1.0], (10, 1))] + np.random.default_rng(0).normal(0, .05, (20, 2))
>>> ds = Dataset.from_dict({"emb": x.tolist(), "label": ["a"] * 9 + ["b"] + ["b"] * 10})
>>> ns = NoiseScore(embedding_column="emb", k=5, folds=2, C=100.0).fit(ds)
>>> [i for i, keep in enumerate(ns.keep_mask) if not keep]
[9]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import FittedFilter, check_range
from .confidence import EmbeddingInputs, confident_flags, knn


def rank_average(*scores: np.ndarray) -> np.ndarray:
    """The mean of each score's rank (ties share their mean rank), scaled to [0, 1].

    >>> rank_average(np.array([0.1, 0.9, 0.5]), np.array([3.0, 2.0, 1.0])).tolist()
    [0.5, 0.75, 0.25]
    """
    from scipy.stats import rankdata

    n = len(scores[0])
    r = np.mean([rankdata(s) for s in scores], axis=0)
    return (r - 1) / max(n - 1, 1)


class NoiseScore(EmbeddingInputs, FittedFilter):
    """One noise score per row from the out-of-fold classifier probability of its label, the share of
    its neighbours that agree and any ``probs_columns`` (see the module docstring); rows whose score is
    among the estimated number of label issues are flagged ``noisy_label``. ``describe()`` records the
    estimated noise rate, the number flagged, the score cut and (``combine="learned"``) the combiner's
    features and coefficients.

    >>> ns = NoiseScore(labels=["fresh", "rotten"], probs_columns=["llm_probs"]).fit(ds)   # doctest: +SKIP
    >>> clean = ds.filter(ns, batched=True, with_indices=True)                            # doctest: +SKIP

    Columns: ``<name>_score`` (combined, high = likely wrong), ``<name>_classifier`` (probability of
    the row's label) and ``<name>_neighbours`` (share of neighbours with the row's label).
    """

    _PARAMS = ("column", "label_column", "embedding_column", "labels", "folds", "seed", "C", "k", "method",
               "rounds", "probs_columns", "support_only", "id_column", "head", "combine", "simulate", "inject")
    name = "noise"

    def __init__(self, *, column: str | None = None, label_column: str = "label", embedding_column: str | None = None,
                 labels: Sequence | None = None, folds: int = 5, seed: int = 0, C: float = 1.0, k: int = 50,
                 method: str = "auto", rounds: int = 2, probs_columns: Sequence[str] = (), support=None,
                 support_only: bool = False, id_column: str | None = None, head: str = "logistic",
                 combine: str = "learned", simulate: int = 3, inject: float = 0.1, name: str | None = None):
        check_range("folds", folds, 2, integer=True)
        check_range("simulate", simulate, 1, integer=True)
        check_range("inject", inject, 0.01, 0.5)
        if combine not in ("learned", "rank"):
            from ..errors import InvalidParameterError
            raise InvalidParameterError(f"combine={combine!r} must be 'learned' (a combiner fitted on simulated flips) "
                                        "or 'rank' (rank averaging).")
        self._init_head(head)
        self.combine, self.simulate, self.inject = combine, simulate, inject
        check_range("C", C, 1e-12)
        check_range("k", k, 1, integer=True)
        check_range("rounds", rounds, 1, 2, integer=True)
        self.rounds = rounds
        from ..errors import InvalidParameterError
        if isinstance(probs_columns, str):
            probs_columns = [probs_columns]
        self.probs_columns = list(probs_columns)
        if self.probs_columns and labels is None:
            raise InvalidParameterError(f"probs_columns={self.probs_columns!r} needs labels= (the order of the "
                                        "probabilities in each row): pass the labels the probabilities are for.")
        self._init_inputs(column, label_column, embedding_column, labels)
        self._init_support(support, support_only)
        if method not in ("auto", "exact", "ivf"):
            from ..errors import InvalidParameterError
            raise InvalidParameterError(f"method={method!r} must be 'auto', 'exact' or 'ivf'.")
        self.folds, self.seed, self.C, self.k, self.method, self.id_column = folds, seed, C, k, method, id_column
        self._fitted = None
        self._estimate: dict | None = None
        self._combiner: dict | None = None
        super().__init__(name=name)

    score_suffixes = ("score", "classifier", "neighbours")

    def _describe_extra(self):
        d = self._embedding_identity()
        d["signals"] = ["classifier", "neighbours", *self.probs_columns]
        d["combine"] = "rank average" if self.combine == "rank" else \
            "logistic regression on the signals' log-odds, fitted on flips simulated on the data"
        if self._combiner is not None:
            d["combiner"] = self._combiner
        if self._estimate is not None:
            d.update(self._estimate)
        return d

    def signals(self, ds) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        """``(own, dist, y)`` of the first round: per signal, the probability of each row's own label and
        the (n, classes) class distribution; ``y`` the label indices (classes sorted)."""
        own, dist, yi, _ = self._signals(ds)
        return own, dist, yi

    def _signals(self, ds):
        y = self._read_labels(ds)
        x = np.asarray(self._read_embeddings(ds), dtype=np.float64)
        sx, sy = self._support_arrays()
        classes = sorted(set(y) | set(sy or []), key=str)
        idx = {c: i for i, c in enumerate(classes)}
        yi = np.array([idx[v] for v in y])
        syi = None if sy is None else np.array([idx[v] for v in sy])
        smallest = int(np.bincount(yi, minlength=len(classes)).min())
        if not self.support_only and smallest < self.folds:
            from ..errors import InvalidParameterError
            raise InvalidParameterError(f"NoiseScore: folds={self.folds} is more than the size of the smallest class "
                                        f"({smallest} rows): lower folds or add rows.")
        nn, _ = knn(x, min(self.k, len(y) - 1), method=self.method)
        extra = {col: self._probs(ds, col, classes) for col in self.probs_columns}
        ctx = (x, sx, syi, nn, extra, len(classes))
        own, dist = self._signals_at(ctx, yi, self.seed)
        return own, dist, yi, ctx

    def _signals_at(self, ctx, yi, seed):
        """Every signal for the labels ``yi`` (class indices): ``(own, dist)``."""
        x, sx, syi, nn, extra, n_classes = ctx
        p = self._oof(x, yi, np.ones(len(yi), dtype=bool), sx, syi, n_classes, seed)
        share = np.stack([(yi[nn] == c).mean(1) for c in range(n_classes)], axis=1)
        rows = np.arange(len(yi))
        own, dist = {"classifier": p[rows, yi], "neighbours": share[rows, yi]}, {"classifier": p, "neighbours": share}
        for col, q in extra.items():
            own[col], dist[col] = q[rows, yi], q
        return own, dist

    def _probs(self, ds, col, classes) -> np.ndarray:
        """An (n, classes) matrix from a column of per-label probabilities in ``labels`` order."""
        from ..errors import InvalidParameterError
        from .base import check_columns

        check_columns(ds.column_names, [col], type(self).__name__)
        vals = ds[col]
        for i, v in enumerate(vals):
            if v is None or len(v) != len(self.labels):
                raise InvalidParameterError(f"NoiseScore: row {i} of column {col!r} holds {v!r}, not one probability "
                                            f"per label of {self.labels}: fix the column or drop the row.")
        q = np.asarray(vals, dtype=np.float64)
        if not np.isfinite(q).all() or (q < 0).any():
            raise InvalidParameterError(f"NoiseScore: column {col!r} has negative or non-finite probabilities.")
        order = [self.labels.index(c) for c in classes]
        q = q[:, order]
        return q / np.maximum(q.sum(1, keepdims=True), 1e-12)

    @staticmethod
    def _features(own, yi, n_classes):
        f = [np.log(np.clip(v, 1e-3, 1 - 1e-3) / np.clip(1 - v, 1e-3, 1 - 1e-3)) for v in own.values()]
        return np.column_stack(f + [np.eye(n_classes)[yi][:, 1:]])

    def _fit_combiner(self, ctx, yi):
        """A logistic regression from the signals to "this label was flipped", fitted on flips injected
        into copies of the labels (see the module docstring)."""
        from sklearn.linear_model import LogisticRegression

        n_classes = ctx[-1]
        feats, target = [], []
        for r in range(self.simulate):
            rng = np.random.default_rng([self.seed, 7919, r])
            hit = rng.random(len(yi)) < self.inject
            ys = yi.copy()
            ys[hit] = (yi[hit] + rng.integers(1, n_classes, hit.sum())) % n_classes
            if not self.support_only and np.bincount(ys, minlength=n_classes).min() < self.folds:
                continue                       # too few rows of a class left to cross-partition this draw
            own, _ = self._signals_at(ctx, ys, self.seed + 1 + r)
            feats.append(self._features(own, ys, n_classes))
            target.append(hit)
        target = np.concatenate(target) if target else np.zeros(0, dtype=bool)
        if target.all() or not target.any():
            return None
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(np.vstack(feats), target)
        return clf

    def _score(self, own, yi, n_classes, clf):
        if clf is None:
            return rank_average(*[1.0 - v for v in own.values()])
        return clf.predict_proba(self._features(own, yi, n_classes))[:, 1]

    def _flag(self, own, dist, yi, clf):
        score = self._score(own, yi, len(dist["classifier"][0]), clf)
        issues = int(confident_flags(np.mean(list(dist.values()), axis=0), yi).sum())
        order = np.argsort(-score, kind="stable")
        flag = np.zeros(len(yi), dtype=bool)
        flag[order[:issues]] = True
        return score, flag, issues, order

    def _oof(self, x, yi, keep, sx, sy, n_classes, seed):
        """Out-of-fold probabilities, each fold's model trained without the rows not in ``keep``
        (and with the support rows, or on them alone with ``support_only``)."""
        from sklearn.model_selection import StratifiedKFold

        from ..embeddings import make_head

        p = np.zeros((len(yi), n_classes))
        if self.support_only:
            clf = make_head(self.head, C=self.C, rows=len(sy), seed=seed).fit(sx, sy)
            p[:, clf.classes_] = clf.predict_proba(x)
            return p
        for train, test in StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=seed).split(x, yi):
            train = train[keep[train]]
            xt, yt = (x[train], yi[train]) if sx is None else (np.r_[x[train], sx], np.r_[yi[train], sy])
            if len(set(yt.tolist())) < 2:
                return None
            clf = make_head(self.head, C=self.C, rows=len(yt), seed=seed).fit(xt, yt)
            p[np.ix_(test, clf.classes_)] = clf.predict_proba(x[test])
        return p

    def _fit(self, ds):
        own, dist, yi, ctx = self._signals(ds)
        x, sx, sy, _, _, n_classes = ctx
        clf = self._fit_combiner(ctx, yi) if self.combine == "learned" else None
        self._combiner = None if clf is None else {
            "features": [f"logit p({k})" for k in own] + [f"label={c}" for c in range(1, n_classes)],
            "coef": [round(float(v), 4) for v in clf.coef_[0]], "intercept": round(float(clf.intercept_[0]), 4),
            "simulate": self.simulate, "inject": self.inject}
        score, flag, issues, order = self._flag(own, dist, yi, clf)
        first = issues
        if self.rounds == 2 and not self.support_only and issues:
            p = self._oof(x, yi, ~flag, sx, sy, n_classes, self.seed)
            if p is not None:
                own["classifier"], dist["classifier"] = p[np.arange(len(yi)), yi], p
                score, flag, issues, order = self._flag(own, dist, yi, clf)
        self._estimate = {"estimated_noise_rate": round(issues / len(yi), 6), "flagged": issues,
                          "score_cut": round(float(score[order[issues - 1]]), 6) if issues else None,
                          "rounds": self.rounds, "first_round_flagged": first}
        return flag.astype(np.int16), ["noisy_label"], {
            f"{self.name}_score": score, f"{self.name}_classifier": own["classifier"],
            f"{self.name}_neighbours": own["neighbours"]}
