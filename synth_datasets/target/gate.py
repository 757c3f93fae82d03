"""How close to real: a faithfulness gate (rows a real-vs-synthetic discriminator cannot tell from the
sample are kept, or weighted) and the held-out measurement the card reports (TSTR/TRTR, distance).

The discriminator is a class-balanced logistic regression on all-MiniLM-L6-v2 embeddings, real sample
(label 1) against the synthetic rows (label 0), trained out-of-fold: every synthetic row's P(real) comes
from a model that never saw it. A row a model cannot tell from real scores near 0.5; an obviously
machine-made one near 0.

>>> from datasets import Dataset
>>> real = ["A quietly moving film.", "Sharp, funny and humane.", "Too long by half.", "A dull, lifeless remake."] * 3
>>> gate = RealnessGate(real_texts=real, folds=3)
>>> syn = Dataset.from_dict({"text": real[:6] + ["ERROR 404 page not found"] * 6})
>>> kept = syn.filter(gate.fit(syn), batched=True, with_indices=True)   # doctest: +SKIP
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

import numpy as np

from ..curate import FittedFilter
from ..errors import InvalidParameterError

__all__ = ["RealnessGate", "RealnessWeights", "CloseToReal", "discriminator_scores"]

_FORMAT = 1


def _embed(texts: Sequence[str]) -> np.ndarray:
    from ..embeddings import embed_texts_cached

    return np.asarray(embed_texts_cached(list(texts), disk=False), dtype=np.float64)


def discriminator_scores(real: np.ndarray, synthetic: np.ndarray, *, folds: int = 5, seed: int = 0,
                         C: float = 1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """``(p_synthetic, p_real_rows, auc)``: the out-of-fold P(real) of each synthetic row and of each real
    row from a class-balanced logistic regression (real vs synthetic embeddings), and the discriminator's
    out-of-fold ROC AUC over both sets (0.5: it cannot tell them apart; 1.0: it always can).

    >>> rng = np.random.default_rng(0)
    >>> p, p_real, auc = discriminator_scores(rng.normal(0, 1, (30, 4)), rng.normal(3, 1, (30, 4)), folds=3)
    >>> bool(auc > 0.95 and p.mean() < 0.2 < 0.8 < p_real.mean())
    True
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    x = np.r_[real, synthetic]
    y = np.r_[np.ones(len(real), dtype=int), np.zeros(len(synthetic), dtype=int)]
    folds = min(folds, len(real), len(synthetic))
    if folds < 2:
        raise InvalidParameterError(f"the discriminator needs at least 2 real and 2 synthetic rows (got {len(real)} "
                                    f"and {len(synthetic)}).")
    p = np.zeros(len(y))
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y):
        clf = LogisticRegression(C=C, max_iter=1000, class_weight="balanced").fit(x[train], y[train])
        p[test] = clf.predict_proba(x[test])[:, 1]
    return p[len(real):], p[:len(real)], float(roc_auc_score(y, p))


class RealnessGate(FittedFilter):
    """Keeps the synthetic rows a real-vs-synthetic discriminator finds plausible as real.

    Fit-then-filter: ``gate.fit(ds)`` scores every row (out-of-fold P(real), see the module), then
    ``ds.filter(gate, batched=True, with_indices=True)`` drops rows whose P(real) is below that of the
    ``real_quantile`` least real-looking real rows (their own out-of-fold P(real): a row is kept when it
    looks at least as real as the 90% most typical real rows, whatever the discriminator's scale), or
    below a fixed ``threshold`` when one is given (reason ``looks_synthetic``), but never more than
    ``max_drop`` of the rows (the least real-looking first). ``ds.map(gate.mark, batched=True, with_indices=True)`` adds ``realness_p_real`` and the reason.
    ``describe()`` records the discriminator's AUC (how far the set is from real), the rows dropped and
    the sample's name and size (its texts are part of the configuration, so the fingerprint follows them).

    Args:
        real_texts (`list[str]`): the real sample (the part not held out for measuring).
        column (`str`, *optional*): the synthetic text column (default: the declared text column).
        real_quantile (`float`, defaults to 0.1): the cut, as a quantile of the real rows' own P(real).
        threshold (`float`, *optional*): a fixed lowest P(real) kept instead.
        max_drop (`float`, defaults to 0.5): the largest share of rows dropped (of each label's rows when
            ``label_column`` is given, so no class is emptied: on BBC News one class fell to 22 of 100 rows
            under the overall cap).
        label_column (`str`, *optional*): the label column, for the per-label cap.
        folds (`int`, defaults to 5), seed (`int`, defaults to 0), C (`float`, defaults to 1.0): the discriminator.
        sample_name (`str`, *optional*): how ``describe()`` names the sample (a file name or Hub id).
    """

    _FORMAT = _FORMAT
    _PARAMS = ("column", "real_quantile", "threshold", "max_drop", "folds", "seed", "C", "sample_name", "label_column")
    name = "realness"

    def __init__(self, *, real_texts: Sequence[str], column: str | None = None, real_quantile: float = 0.1,
                 threshold: float | None = None, max_drop: float = 0.5, folds: int = 5, seed: int = 0, C: float = 1.0,
                 sample_name: str | None = None, label_column: str | None = None, name: str | None = None):
        from ..curate.base import check_range

        if isinstance(real_texts, str) or len(real_texts) < 2 or not all(isinstance(t, str) and t for t in real_texts):
            raise InvalidParameterError("real_texts= must be a list of at least 2 non-empty real texts.")
        check_range("threshold", threshold, 0.0, 1.0, allow_none=True)
        check_range("real_quantile", real_quantile, 0.0, 1.0)
        self.real_quantile, self.cut = real_quantile, None
        check_range("max_drop", max_drop, 0.0, 1.0)
        check_range("folds", folds, 2, integer=True)
        check_range("C", C, 1e-12)
        self.real_texts, self.column, self.threshold, self.max_drop = list(real_texts), column, threshold, max_drop
        self.folds, self.seed, self.C, self.sample_name = folds, seed, C, sample_name
        self.label_column = label_column
        self.auc: float | None = None
        self.id_column = None
        self._fitted = None
        super().__init__(name=name)

    @property
    def score_columns(self) -> list[str]:
        return [f"{self.name}_p_real"]

    def _describe_extra(self) -> dict[str, Any]:
        from ..embeddings import embedding_model_identity

        d = {"embeddings": embedding_model_identity(), "real_rows": len(self.real_texts),
             "discriminator": "class-balanced logistic regression, real vs synthetic, out-of-fold"}
        if self.auc is not None:
            d["discriminator_auc"] = round(self.auc, 4)
        if self.cut is not None:
            d["p_real_cut"] = round(self.cut, 4)
        return d

    def _scores(self, ds) -> np.ndarray:
        from ..columns import resolve_text_column

        col = resolve_text_column(ds, self.column, type(self).__name__)
        p, p_real, self.auc = discriminator_scores(_embed(self.real_texts), _embed(list(ds[col])), folds=self.folds,
                                                   seed=self.seed, C=self.C)
        self.cut = float(np.quantile(p_real, self.real_quantile)) if self.threshold is None else float(self.threshold)
        return p

    def _fit(self, ds):
        if ds.num_rows < 2:  # nothing to tell apart: keep the row, and say so
            self.auc = None
            return np.zeros(ds.num_rows, dtype=np.int16), ["looks_synthetic"], {f"{self.name}_p_real": [None] * ds.num_rows}
        p = self._scores(ds)
        drop = p < self.cut
        groups = [np.arange(len(p))]
        if self.label_column is not None:  # the cap holds within each label: no class is emptied
            from ..columns import check_columns

            check_columns(ds.column_names, [self.label_column], type(self).__name__)
            labels = np.asarray([str(v) for v in ds[self.label_column]])
            groups = [np.flatnonzero(labels == y) for y in dict.fromkeys(labels)]
        for rows in groups:
            cap = int(self.max_drop * len(rows))
            if drop[rows].sum() > cap:  # keep all but the ``cap`` least real-looking
                drop[rows] = False
                drop[rows[np.argsort(p[rows], kind="stable")[:cap]]] = True
        return drop.astype(np.int16), ["looks_synthetic"], {f"{self.name}_p_real": p}


class RealnessWeights(RealnessGate):
    """The gate as weights instead of drops: ``ds.map(weights, batched=True, with_indices=True)`` after
    ``fit`` adds ``realness_p_real`` and ``realness_weight`` = P(real) / P(synthetic) (the density ratio
    the discriminator estimates), scaled to mean 1 and clipped to [0.05, 20], for a weighted training loss.
    """

    @property
    def score_columns(self) -> list[str]:
        return [f"{self.name}_p_real", f"{self.name}_weight"]

    def _fit(self, ds):
        p = self._scores(ds)
        ratio = np.clip(p, 1e-3, 1 - 1e-3) / np.clip(1 - p, 1e-3, 1 - 1e-3)
        w = np.clip(ratio / ratio.mean(), 0.05, 20.0)
        return np.zeros(len(p), dtype=np.int16), ["looks_synthetic"], {f"{self.name}_p_real": p,
                                                                        f"{self.name}_weight": w / w.mean()}

    def __call__(self, batch, indices=None):  # a map-callable: the score columns, every row kept
        return {k: v for k, v in self.annotate(batch, indices).items()}


class CloseToReal:
    """Measures the finished rows against a held-out real sample, for the card; changes no row.

    Fit-then-map (``Recipe.fit_map``): ``fit(ds)`` computes, with the packaged MiniLM embeddings and a
    logistic regression: **TSTR** (trained on the synthetic rows, tested on the held-out real rows),
    **TSTR at equal size** (trained on a seeded, label-stratified subsample as large as the real train
    part), **TRTR** (trained on the real train part) and their ratios; the **distance**: precision /
    recall / density / coverage of the synthetic rows against all real rows (k nearest neighbours), a
    real-vs-synthetic discriminator's out-of-fold AUC, and the mean pairwise embedding distance of both
    sets (diversity). ``describe()["results"]`` holds them; the card prints them as "How close to real".
    The map itself returns no column.

    Args:
        train (`dict`): the real train part ``{"text": [...], "label": [...]}``.
        test (`dict`): the held-out real part, same shape.
        column (`str`, *optional*): the synthetic text column (default: the declared text column).
        label_column (`str`, defaults to ``"label"``): the synthetic label column.
        sample (`dict`, *optional*): how the sample is described (``Examples.describe()``).
        seed (`int`, defaults to 0); k (`int`, defaults to 5): neighbours for precision/recall.
    """

    def __init__(self, *, train: Mapping[str, Sequence], test: Mapping[str, Sequence], column: str | None = None,
                 label_column: str = "label", sample: Mapping[str, Any] | None = None, seed: int = 0, k: int = 5):
        for part, d in (("train", train), ("test", test)):
            if not isinstance(d, Mapping) or len(d.get("text") or []) < 2 or len(d["text"]) != len(d.get("label") or []):
                raise InvalidParameterError(f"{part}= must be {{'text': [...], 'label': [...]}} with at least 2 rows.")
        self.train = {"text": list(train["text"]), "label": list(train["label"])}
        self.test = {"text": list(test["text"]), "label": list(test["label"])}
        self.column, self.label_column, self.sample, self.seed, self.k = column, label_column, dict(sample or {}), seed, k
        self.results: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT, "train": self.train, "test": self.test, "column": self.column,
                "label_column": self.label_column, "sample": self.sample, "seed": self.seed, "k": self.k,
                "results": self.results}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        self.__dict__.update(state)

    def fit(self, ds) -> "CloseToReal":
        from ..columns import check_columns, resolve_text_column
        from ..metrics import mean_pairwise_distance, prdc, tstr

        col = resolve_text_column(ds, self.column, type(self).__name__)
        check_columns(ds.column_names, [self.label_column], type(self).__name__)
        texts, labels = list(ds[col]), [str(v) for v in ds[self.label_column]]
        res: dict[str, Any] = {"synthetic_rows": len(texts), "real_train_rows": len(self.train["text"]),
                               "held_out_rows": len(self.test["text"])}
        if len(set(labels)) < 2 or len(texts) < 4:
            self.results = {**res, "skipped": "fewer than 4 rows or 2 labels left to train on"}
            return self
        xs, xtr, xte = _embed(texts), _embed(self.train["text"]), _embed(self.test["text"])
        ytr, yte = [str(v) for v in self.train["label"]], [str(v) for v in self.test["label"]]
        full = tstr(train_embeddings=xs, train_labels=labels, test_embeddings=xte, test_labels=yte,
                    real_train_embeddings=xtr, real_train_labels=ytr, seed=self.seed)
        res.update({k: full[k] for k in ("tstr_accuracy", "tstr_macro_f1", "trtr_accuracy", "trtr_macro_f1",
                                         "accuracy_ratio", "macro_f1_ratio")})
        sub = self._same_size(labels, len(ytr))
        if sub is not None and len({labels[i] for i in sub}) >= 2:
            same = tstr(train_embeddings=xs[sub], train_labels=[labels[i] for i in sub], test_embeddings=xte,
                        test_labels=yte, seed=self.seed)
            res["tstr_accuracy_same_size"] = same["tstr_accuracy"]
            res["accuracy_ratio_same_size"] = (same["tstr_accuracy"] / full["trtr_accuracy"]
                                               if full["trtr_accuracy"] else None)
        real = np.r_[xtr, xte]
        k = min(self.k, len(real) - 1, len(xs) - 1)
        if k >= 1:
            res.update({f"{m}": v for m, v in prdc(real, xs, k=k).items()})
            res["prdc_k"] = k
        _, _, res["discriminator_auc"] = discriminator_scores(real, xs, folds=5, seed=self.seed)
        res["mean_pairwise_distance_synthetic"] = float(mean_pairwise_distance(xs))
        res["mean_pairwise_distance_real"] = float(mean_pairwise_distance(real))
        self.results = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}
        return self

    def _same_size(self, labels: list[str], n: int) -> list[int] | None:
        """A seeded subsample of ``n`` synthetic rows with the labels' shares kept (None: fewer rows than n)."""
        if len(labels) <= n:
            return None
        rng = random.Random(self.seed)
        by: dict[str, list[int]] = {}
        for i, y in enumerate(labels):
            by.setdefault(y, []).append(i)
        out = []
        for y, idx in sorted(by.items()):
            rng.shuffle(idx)
            out += idx[:max(1, round(n * len(idx) / len(labels)))]
        return sorted(out)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        """``ds.map(obj, batched=True)``: no new column (the measurement is in ``describe()``)."""
        return {}

    def describe(self) -> dict[str, Any]:
        from .._versions import library_versions
        from ..embeddings import embedding_model_identity

        return {"type": "CloseToReal", "format": _FORMAT, "sample": self.sample, "seed": self.seed, "k": self.k,
                "classifier": "logistic regression on all-MiniLM-L6-v2 embeddings",
                "embeddings": embedding_model_identity(), "results": self.results, "library": library_versions()}


def add_realness_steps(recipe: Any, examples: Any, *, column: str, seed: int = 0, gate: bool = True,
                       label_column: str = "label") -> Any:
    """The last steps of a recipe aimed at a real sample: rows sharing a 13-word span with the sample's train
    part dropped (``copied-demos``, :class:`~synth_datasets.curate.Decontaminate`: a copied demo is the user's
    own text, not a new one; 15% of the 1.5B model's BBC News rows copied from their demos), the
    :class:`RealnessGate` (``realness``) on the sample's train part (at most half of each ``label_column``
    class dropped; left out when ``gate`` is False), then :class:`CloseToReal` (``close-to-real``) against its
    held-out part. Returns ``recipe``. ``examples``: what :func:`~synth_datasets.target.load_examples` returned."""
    from ..curate import Decontaminate

    recipe.fit_filter(Decontaminate(list(examples.train["text"]), n=13, column=column, examples=0,
                                    reference_name=f"{examples.name} (the sample's train part, shown as demos)"),
                      name="copied-demos", with_indices=True, desc="Dropping rows that copy a demo")
    if gate:
        recipe.fit_filter(RealnessGate(real_texts=examples.train["text"], column=column, seed=seed,
                                       sample_name=examples.name, label_column=label_column),
                          name="realness", with_indices=True, desc="Realness gate")
    recipe.fit_map(CloseToReal(train=examples.train, test=examples.test, column=column, sample=examples.describe(),
                               seed=seed),
                   name="close-to-real", desc="Measuring against the held-out sample")
    return recipe

