"""Indirect evaluation (survey §3.3.2): train a small classifier on the synthetic set, test it on a
real one (TSTR); with a real training set too, the same classifier trained on it (TRTR) and the ratio.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from synth_datasets.embeddings import embed_texts_cached
from synth_datasets.errors import InvalidParameterError
from synth_datasets.metrics._checks import check_list as _check_list
from synth_datasets.metrics._checks import check_texts as _check_texts
from synth_datasets.metrics.faithfulness import accuracy_macro_f1, embeddings_from

__all__ = ["make_classifier", "tstr"]

CLASSIFIERS = ("logreg", "knn")


def make_classifier(classifier: Any = "logreg", *, seed: int = 0):
    """A fresh scikit-learn classifier: ``"logreg"`` (LogisticRegression, C=1, max_iter=1000),
    ``"knn"`` (5 nearest neighbours, cosine), or a clone of any scikit-learn estimator you pass."""
    from sklearn.base import clone, is_classifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    if classifier == "logreg":
        return LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    if classifier == "knn":
        return KNeighborsClassifier(n_neighbors=5, metric="cosine")
    if not isinstance(classifier, str) and is_classifier(classifier):
        return clone(classifier)
    raise InvalidParameterError(f"classifier={classifier!r}: use one of {CLASSIFIERS} or a scikit-learn classifier")


def _fit_score(x_train, y_train, x_test, y_test, classifier, seed) -> tuple[float, float]:
    if len(set(y_train)) < 2:
        raise InvalidParameterError(f"the training set has a single label {y_train[0]!r}: a classifier needs >= 2")
    # integer ids in sorted label order: the classifier sees the classes in scikit-learn's own order
    ordered = sorted(set(y_train) | set(y_test), key=lambda v: (type(v).__name__, v))
    ids = {v: i for i, v in enumerate(ordered)}
    clf = make_classifier(classifier, seed=seed).fit(x_train, np.array([ids[v] for v in y_train]))
    inverse = list(ids)
    predicted = [inverse[i] for i in clf.predict(x_test)]
    return accuracy_macro_f1(predicted, list(y_test))


def _cached(texts, embeddings, name: str, n: int):
    """``(None, embeddings)`` for texts alone (embedded through the content-hash cache); else unchanged."""
    if texts is None or embeddings is not None:
        return texts, embeddings
    texts = _check_texts(texts, f"{name}texts")
    if len(texts) != n:
        raise InvalidParameterError(f"{name}texts has {len(texts)} rows but there are {n} labels: pass one row per label")
    return None, embed_texts_cached(texts)


def tstr(*, train_labels: Sequence, test_labels: Sequence, train_texts: Sequence[str] | None = None,
         train_embeddings=None, test_texts: Sequence[str] | None = None, test_embeddings=None,
         real_train_labels: Sequence | None = None, real_train_texts: Sequence[str] | None = None,
         real_train_embeddings=None, classifier: Any = "logreg", seed: int = 0,
         cache: bool = True) -> dict[str, float]:
    """Train on synthetic, test on real.

    Each set is given as texts (embedded with the packaged all-MiniLM-L6-v2) or as embeddings, with
    its labels. Returns ``tstr_accuracy`` and ``tstr_macro_f1`` (macro over the labels in the test set
    or the predictions), ``n_train``, ``n_test`` and ``unseen_test_labels`` (test labels absent from
    the synthetic set, which the classifier can never predict). With a real training set, also
    ``trtr_accuracy``, ``trtr_macro_f1``, ``n_real_train`` and the ratios ``accuracy_ratio`` and
    ``macro_f1_ratio`` (TSTR / TRTR; NaN when TRTR is 0).

    With ``cache=True`` (default) texts are embedded through
    :func:`synth_datasets.embeddings.embed_texts_cached`: a set already embedded (same texts, same
    encoder) is read from memory or from the cache folder on disk instead of being embedded again, so
    comparing many synthetic variants against one real test set embeds the test set once.

    >>> x = np.r_[np.eye(2)[[0] * 10], np.eye(2)[[1] * 10]] + 0.01
    >>> y = ["a"] * 10 + ["b"] * 10
    >>> tstr(train_embeddings=x, train_labels=y, test_embeddings=x, test_labels=y)["tstr_accuracy"]
    1.0
    """
    train_labels = _check_list(train_labels, "train_labels")
    test_labels = _check_list(test_labels, "test_labels")
    if cache:  # texts -> cached embeddings (the checks below still name the argument and row)
        train_texts, train_embeddings = _cached(train_texts, train_embeddings, "train_", len(train_labels))
        test_texts, test_embeddings = _cached(test_texts, test_embeddings, "test_", len(test_labels))
        if real_train_labels is not None:
            real_train_texts, real_train_embeddings = _cached(real_train_texts, real_train_embeddings, "real_train_",
                                                              len(_check_list(real_train_labels, "real_train_labels")))
    x_train = embeddings_from(train_texts, train_embeddings, prefix="train_", n=len(train_labels))
    x_test = embeddings_from(test_texts, test_embeddings, prefix="test_", n=len(test_labels))
    real_given = any(v is not None for v in (real_train_labels, real_train_texts, real_train_embeddings))
    if real_given:
        real_train_labels = _check_list(real_train_labels, "real_train_labels")
        x_real = embeddings_from(real_train_texts, real_train_embeddings, prefix="real_train_",
                                 n=len(real_train_labels))
    for name, x in (("test", x_test), ("real_train", x_real if real_given else None)):
        if x is not None and x.shape[1] != x_train.shape[1]:
            raise InvalidParameterError(f"{name} features have dimension {x.shape[1]} but train features "
                                        f"{x_train.shape[1]}: embed every set with the same model")
    make_classifier(classifier, seed=seed)  # a bad classifier fails before any training
    out: dict[str, float] = {}
    out["tstr_accuracy"], out["tstr_macro_f1"] = _fit_score(x_train, train_labels, x_test, test_labels,
                                                            classifier, seed)
    out["n_train"], out["n_test"] = len(train_labels), len(test_labels)
    out["unseen_test_labels"] = len(set(test_labels) - set(train_labels))
    if real_given:
        out["trtr_accuracy"], out["trtr_macro_f1"] = _fit_score(x_real, real_train_labels, x_test, test_labels,
                                                                classifier, seed)
        out["n_real_train"] = len(real_train_labels)
        for m in ("accuracy", "macro_f1"):
            trtr = out[f"trtr_{m}"]
            out[f"{m}_ratio"] = out[f"tstr_{m}"] / trtr if trtr > 0 else math.nan
    return out
