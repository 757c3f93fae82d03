"""Faithfulness of synthetic data (survey §3.3.1), in plain numpy / scikit-learn:

- agreement with references: accuracy, macro-F1, and SQuAD exact match / token F1;
- label faithfulness: does an out-of-fold classifier on the text agree with the generated label?
- distributional fidelity against a real set: precision, recall, density, coverage (Naeem et al.,
  2020) on embeddings, and MAUVE (Pillutla et al., 2021), a divergence-frontier score;
- an LLM judge with a fixed 1-5 rubric (:class:`JudgeScorer`, in :mod:`.judge`, re-exported here).

Distances are computed in row chunks (memory O(chunk x n)); nothing is an O(n^2) Python loop.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from synth_datasets.embeddings import embed_texts, out_of_fold_proba
from synth_datasets.metrics._checks import check_int as _check_int
from synth_datasets.metrics._checks import check_list as _check_list
from synth_datasets.metrics._checks import check_matrix as _check_matrix
from synth_datasets.metrics._checks import check_texts as _check_texts
from synth_datasets.errors import InvalidParameterError
from synth_datasets.metrics.judge import DEFAULT_RUBRIC, JudgeScorer, judge_score, parse_rating  # noqa: F401 (re-exported)

__all__ = [
    "normalize_answer", "exact_match", "token_f1", "reference_agreement", "label_faithfulness",
    "prdc", "mauve", "mauve_from_histograms", "parse_rating", "JudgeScorer", "judge_score",
    "DEFAULT_RUBRIC", "embeddings_from", "accuracy_macro_f1",
]

# --- inputs ----------------------------------------------------------------------------------

def embeddings_from(texts, embeddings, *, prefix: str = "", n: int | None = None) -> np.ndarray:
    """A float matrix from exactly one of ``texts`` (embedded with MiniLM) or ``embeddings`` (checked); errors
    name the arguments ``{prefix}texts`` / ``{prefix}embeddings``; with ``n``, one row per label is required.

    >>> embeddings_from(None, [[1, 0], [0, 1]], n=2).shape
    (2, 2)
    """
    if (texts is None) == (embeddings is None):
        raise InvalidParameterError(f"pass exactly one of {prefix}texts= or {prefix}embeddings=")
    if texts is not None:
        x = np.asarray(embed_texts(_check_texts(texts, f"{prefix}texts")), dtype=np.float64)
    else:
        x = _check_matrix(embeddings, f"{prefix}embeddings")
    if n is not None and x.shape[0] != n:
        raise InvalidParameterError(f"{prefix}{'texts' if texts is not None else 'embeddings'} has {x.shape[0]} "
                                    f"rows but there are {n} labels: pass one row per label")
    return x


# --- agreement with references -------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """SQuAD v1.1 normalization: lowercase, drop punctuation, drop articles a/an/the, squeeze spaces.

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    """
    s = "".join(ch for ch in s.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", s).split())


def _refs(reference) -> list[str]:
    return [reference] if isinstance(reference, str) else list(reference)


def exact_match(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 if the normalized prediction equals any normalized reference, else 0.0 (SQuAD v1.1).

    >>> exact_match("the Beatles", ["Beatles", "John"])
    1.0
    """
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(r) for r in _refs(references)))


def _f1(pred: list[str], ref: list[str]) -> float:
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: str | Sequence[str]) -> float:
    """Best bag-of-tokens F1 over the references after SQuAD v1.1 normalization (0.0 when either side
    normalizes to nothing, as in the v1.1 script).

    >>> round(token_f1("a red car", "the red bus"), 4)
    0.5
    """
    p = normalize_answer(prediction).split()
    return max(_f1(p, normalize_answer(r).split()) for r in _refs(references))


def accuracy_macro_f1(predictions: list, references: list) -> tuple[float, float]:
    """Accuracy, and macro-F1 over the labels seen in either list (scikit-learn's default; an F1 with
    an empty denominator cannot occur for those labels).

    >>> accuracy_macro_f1(["a", "b", "b"], ["a", "b", "a"])
    (0.6666666666666666, 0.6666666666666666)
    """
    ids: dict[Any, int] = {}
    p = np.fromiter((ids.setdefault(v, len(ids)) for v in predictions), dtype=np.int64, count=len(predictions))
    r = np.fromiter((ids.setdefault(v, len(ids)) for v in references), dtype=np.int64, count=len(references))
    k = len(ids)
    tp = np.bincount(r[p == r], minlength=k)
    f1 = 2 * tp / (np.bincount(p, minlength=k) + np.bincount(r, minlength=k))
    return float((p == r).mean()), float(f1.mean())


def reference_agreement(predictions: Sequence, references: Sequence) -> dict[str, float]:
    """Agreement of generated labels/answers with references, as fractions in [0, 1].

    - single references: ``accuracy`` (exact equality) and ``macro_f1`` (over the labels in either
      list); when both sides are strings also ``exact_match`` and ``token_f1`` (SQuAD v1.1);
    - several references per row (a list of strings each): ``exact_match`` and ``token_f1``, the best
      over that row's references.

    >>> reference_agreement(["pos", "neg", "pos"], ["pos", "pos", "pos"])["accuracy"]
    0.6666666666666666
    """
    predictions, references = _check_list(predictions, "predictions"), _check_list(references, "references")
    if len(predictions) != len(references):
        raise InvalidParameterError(f"predictions has {len(predictions)} rows but references has "
                                    f"{len(references)}: pass one reference per prediction")
    multi = [isinstance(r, (list, tuple)) for r in references]
    out: dict[str, float] = {}
    if not any(multi):
        out["accuracy"], out["macro_f1"] = accuracy_macro_f1(predictions, references)
    if any(multi) or all(isinstance(v, str) for v in predictions + references):
        for i, (p, r) in enumerate(zip(predictions, references)):
            if not isinstance(p, str):
                raise InvalidParameterError(f"predictions[{i}] is {type(p).__name__}: answers must be strings")
            if not isinstance(r, str) and (not isinstance(r, (list, tuple)) or not r
                                           or not all(isinstance(x, str) for x in r)):
                raise InvalidParameterError(f"references[{i}] must be a string or a non-empty list of strings")
        out["exact_match"] = float(np.mean([exact_match(p, r) for p, r in zip(predictions, references)]))
        out["token_f1"] = float(np.mean([token_f1(p, r) for p, r in zip(predictions, references)]))
    out["n"] = len(predictions)
    return out


# --- label faithfulness --------------------------------------------------------------------

def label_faithfulness(labels: Sequence, *, texts: Sequence[str] | None = None, embeddings=None,
                       folds: int = 5, seed: int = 0, C: float = 1.0) -> dict[str, Any]:
    """How often the label agrees with what the text says, judged by an auxiliary classifier.

    A logistic regression on the embeddings (all-MiniLM-L6-v2 when ``texts`` are given) is trained by
    stratified ``folds``-fold cross-partition, so every row is predicted by a model that never saw it.
    ``overall`` is the share of rows whose out-of-fold predicted label equals the given label;
    ``per_class[c]`` the same share among the rows labelled ``c`` (the classifier's recall on c);
    ``mean_label_proba`` the mean out-of-fold probability of the given label; ``folds`` the folds used.

    A class with fewer rows than ``folds`` cannot be split that many ways: ``folds`` is then lowered to
    the size of the smallest class, with a warning (a class of a single row is an error: no model can
    be trained without it).

    >>> x = np.r_[np.eye(2)[[0] * 10], np.eye(2)[[1] * 10]] + 0.01
    >>> label_faithfulness(["a"] * 10 + ["b"] * 10, embeddings=x, folds=2)["overall"]
    1.0
    """
    labels = _check_list(labels, "labels")
    x = embeddings_from(texts, embeddings, n=len(labels))
    folds = _fit_folds(labels, folds)
    proba, classes = out_of_fold_proba(x, labels, folds=folds, seed=seed, C=C)
    y = np.array([classes.index(v) for v in labels])
    agree = proba.argmax(1) == y
    return {
        "overall": float(agree.mean()),
        "per_class": {c: float(agree[y == i].mean()) for i, c in enumerate(classes)},
        "support": {c: int((y == i).sum()) for i, c in enumerate(classes)},
        "mean_label_proba": float(proba[np.arange(len(y)), y].mean()),
        "n": len(labels),
        "folds": folds,
    }


def _fit_folds(labels: list, folds: int) -> int:
    """``folds``, lowered (with a warning) to the size of the smallest class when that is smaller."""
    import warnings

    _check_int(folds, "folds", 2)
    counts = Counter(labels)
    if None in counts or len(counts) < 2:
        return folds  # out_of_fold_proba names the problem
    label, smallest = min(counts.items(), key=lambda kv: kv[1])
    label = label.item() if hasattr(label, "item") else label  # numpy scalars print as np.str_('b')
    if smallest < 2:
        raise InvalidParameterError(f"label {label!r} has a single row, so no out-of-fold classifier can learn it: "
                                    "add rows of that class or drop it before measuring label faithfulness")
    if smallest < folds:
        warnings.warn(f"label faithfulness: folds={folds} lowered to {smallest}, the size of the smallest class "
                      f"({label!r}); add rows of that class for a steadier estimate", UserWarning, stacklevel=3)
        return smallest
    return folds


# --- precision / recall / density / coverage (Naeem et al., 2020) ----------------------------

_CHUNK_ELEMENTS = 1 << 24  # distance block of at most 16M float64 (128 MiB)


def _distances(a: np.ndarray, a2: np.ndarray, b: np.ndarray, b2: np.ndarray, buf: np.ndarray) -> np.ndarray:
    """Euclidean distances, computed as scikit-learn's euclidean_distances does (float64), into ``buf``
    (reused across blocks: no fresh 128 MiB allocation, and its page faults, per block)."""
    d = np.matmul(a, b.T, out=buf[:a.shape[0]])
    d *= -2
    d += a2[:, None]
    d += b2[None, :]
    np.maximum(d, 0, out=d)
    return np.sqrt(d, out=d)


def _knn_radii(x: np.ndarray, x2: np.ndarray, k: int, rows: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other row (the row itself counts as distance 0)."""
    out = np.empty(x.shape[0])
    buf = np.empty((min(rows, x.shape[0]), x.shape[0]))
    for s in range(0, x.shape[0], rows):
        d = _distances(x[s:s + rows], x2[s:s + rows], x, x2, buf)
        d[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = 0.0
        out[s:s + rows] = np.partition(d, k, axis=1)[:, k]
    return out


def prdc(real_embeddings, fake_embeddings, *, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of a fake (synthetic) set against a real one.

    With B(x, r) the ball around x whose radius is the distance to its k-th nearest neighbour within
    its own set (strict inequalities, Euclidean distance on the rows as given):
    precision = share of fake points inside some real ball; recall = share of real points inside some
    fake ball; density = (1/k) x mean number of real balls holding a fake point; coverage = share of
    real balls holding at least one fake point. Equals the ``prdc`` package; memory is O(chunk x n).

    >>> x = np.random.default_rng(0).normal(size=(50, 4))
    >>> prdc(x, x, k=3)
    {'precision': 1.0, 'recall': 1.0, 'density': 1.0, 'coverage': 1.0}
    """
    k = _check_int(k, "k", 1)
    real = _check_matrix(real_embeddings, "real_embeddings", min_rows=k + 1)
    fake = _check_matrix(fake_embeddings, "fake_embeddings", min_rows=k + 1)
    if real.shape[1] != fake.shape[1]:
        raise InvalidParameterError(f"real_embeddings has dimension {real.shape[1]} but fake_embeddings "
                                    f"{fake.shape[1]}: embed both sets with the same model")
    rows = max(1, _CHUNK_ELEMENTS // max(real.shape[0], fake.shape[0]))
    r2, f2 = np.einsum("ij,ij->i", real, real), np.einsum("ij,ij->i", fake, fake)
    real_radii, fake_radii = _knn_radii(real, r2, k, rows), _knn_radii(fake, f2, k, rows)
    balls_per_fake = np.zeros(fake.shape[0], dtype=np.int64)
    recalled = np.zeros(real.shape[0], dtype=bool)
    covered = np.zeros(real.shape[0], dtype=bool)
    buf = np.empty((min(rows, real.shape[0]), fake.shape[0]))
    for s in range(0, real.shape[0], rows):
        d = _distances(real[s:s + rows], r2[s:s + rows], fake, f2, buf)
        inside = d < real_radii[s:s + rows, None]
        balls_per_fake += np.count_nonzero(inside, axis=0)
        covered[s:s + rows] = inside.any(axis=1)
        recalled[s:s + rows] = (d < fake_radii[None, :]).any(axis=1)
    return {"precision": float((balls_per_fake > 0).mean()), "recall": float(recalled.mean()),
            "density": float(balls_per_fake.sum() / (k * fake.shape[0])), "coverage": float(covered.mean())}


# --- MAUVE (Pillutla et al., 2021) ---------------------------------------------------------

def _kl(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """KL(p || r_j) for each row r_j; r > 0 wherever p > 0 (mixtures with weights in (0, 1))."""
    mask = p > 0
    return (p[mask] * np.log(p[mask] / r[:, mask])).sum(axis=1)


def _frontier_integral(p: np.ndarray, q: np.ndarray) -> float:
    total = np.where((p > 0) ^ (q > 0), (p + q) / 4, 0.0)
    both = (p > 0) & (q > 0) & (np.abs(p - q) > 1e-8)
    pb, qb = p[both], q[both]
    total[both] = 0.25 * (pb + qb) - 0.5 * pb * qb * (np.log(pb) - np.log(qb)) / (pb - qb)
    return float(total.sum() * 2)


def _area(p: np.ndarray, q: np.ndarray, weights: np.ndarray, c: float) -> float:
    r = weights[:, None] * p + (1 - weights[:, None]) * q
    curve = np.exp(-c * np.r_[[[0, np.inf]], np.c_[_kl(q, r), _kl(p, r)], [[np.inf, 0]]])
    x, y = curve.T
    # ties (identical histograms) are ordered along the curve, so the area is that of the frontier;
    # mauve-text's bare argsort can order them the other way round (MAUVE(P, P) = 0.75 for 2 buckets)
    i, j = np.lexsort((-y, x)), np.lexsort((-x, y))
    return float(0.5 * (np.trapezoid(y[i], x[i]) + np.trapezoid(x[j], y[j])))


def mauve_from_histograms(p_counts, q_counts, *, discretization: int = 25,
                          scaling_factor: float = 5.0) -> dict[str, float]:
    """MAUVE from two histograms over the same buckets (counts or probabilities).

    ``mauve``: area under the divergence frontier exp(-c KL(Q||R_w)), exp(-c KL(P||R_w)) for
    R_w = wP + (1-w)Q at ``discretization`` weights in [1e-6, 1 - 1e-6] (both orientations averaged);
    ``frontier_integral``; and ``mauve_star`` / ``frontier_integral_star`` on Krichevsky-Trofimov
    smoothed counts (+0.5; Pillutla et al., JMLR 2023).

    >>> mauve_from_histograms([5, 5], [5, 5])["mauve"]
    1.0
    """
    p, q = np.asarray(p_counts, dtype=np.float64), np.asarray(q_counts, dtype=np.float64)
    if p.ndim != 1 or p.shape != q.shape or p.size == 0:
        raise InvalidParameterError(f"histograms must be 1-D and of the same length, got {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise InvalidParameterError("histograms must be non-negative with a positive sum")
    discretization = _check_int(discretization, "discretization", 2)
    w = np.linspace(1e-6, 1 - 1e-6, discretization)
    out = {}
    for suffix, (a, b) in (("", (p, q)), ("_star", (p + 0.5, q + 0.5))):
        a, b = a / a.sum(), b / b.sum()
        out[f"mauve{suffix}"] = _area(a, b, w, scaling_factor)
        out[f"frontier_integral{suffix}"] = _frontier_integral(a, b)
    return out


def mauve(p_features, q_features, *, num_buckets: int | str = "auto", explained_variance: float = 0.9,
          kmeans_n_init: int = 5, kmeans_max_iter: int = 500, discretization: int = 25,
          scaling_factor: float = 5.0, seed: int = 25) -> dict[str, float]:
    """MAUVE between feature sets P (e.g. synthetic) and Q (e.g. real), as the ``mauve-text`` package.

    The union is L2-normalized, reduced by PCA to the components explaining ``explained_variance``,
    and quantized by k-means into ``num_buckets`` ("auto": max(2, round(min(n_p, n_q) / 10))); the two
    histograms then go through :func:`mauve_from_histograms`. k-means is scikit-learn's (``n_init``
    restarts, ``random_state=seed + 2``) where the package uses faiss: with the same cluster
    assignment the numbers are equal; otherwise they differ by the quantization noise of k-means.

    Returns ``mauve``, ``frontier_integral``, ``mauve_star``, ``frontier_integral_star``, ``num_buckets``.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import normalize

    p = _check_matrix(p_features, "p_features")
    q = _check_matrix(q_features, "q_features")
    if p.shape[1] != q.shape[1]:
        raise InvalidParameterError(f"p_features has dimension {p.shape[1]} but q_features {q.shape[1]}")
    if num_buckets == "auto":
        num_buckets = max(2, int(round(min(len(p), len(q)) / 10)))
    num_buckets = _check_int(num_buckets, "num_buckets", 2)
    if num_buckets > len(p) + len(q):
        raise InvalidParameterError(f"num_buckets={num_buckets} exceeds the {len(p) + len(q)} points: lower it")
    if not 0 < explained_variance < 1:
        raise InvalidParameterError(f"explained_variance must be in (0, 1), got {explained_variance!r}")
    data = normalize(np.vstack([q, p]), norm="l2", axis=1)
    pca = PCA(n_components=None, whiten=False, random_state=seed + 1).fit(data)
    keep = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) >= explained_variance)) + 1
    data = pca.transform(data)[:, :keep].astype(np.float32)
    labels = KMeans(num_buckets, n_init=_check_int(kmeans_n_init, "kmeans_n_init", 1),
                    max_iter=_check_int(kmeans_max_iter, "kmeans_max_iter", 1),
                    random_state=seed + 2).fit_predict(data)
    q_counts = np.bincount(labels[:len(q)], minlength=num_buckets)
    p_counts = np.bincount(labels[len(q):], minlength=num_buckets)
    out = mauve_from_histograms(p_counts, q_counts, discretization=discretization, scaling_factor=scaling_factor)
    out["num_buckets"] = num_buckets
    return out
