"""Diversity of a set of texts: lexical (distinct-n, n-gram entropy, self-BLEU, compression ratio)
and semantic (mean pairwise cosine distance, Vendi score) measures, in plain numpy.

Tokens come from one tokenizer, :func:`tokenize` (lowercased whitespace split). Entropies use the
natural log (nats). Nothing is O(n^2) in Python: n-grams become integer ids, counted with numpy.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence

import numpy as np

from synth_datasets.embeddings import embed_texts
from synth_datasets.errors import InvalidParameterError
from synth_datasets.metrics._checks import check_matrix, check_texts

__all__ = [
    "tokenize", "distinct_n", "ngram_entropy", "ngram_stats", "self_bleu", "compression_ratio",
    "mean_pairwise_distance", "vendi_score", "embed_texts", "diversity",
]

_EPSILON = 0.1  # nltk SmoothingFunction().method1 default


def tokenize(text: str) -> list[str]:
    """The tokenizer of every lexical measure here: lowercase, then split on whitespace.

    >>> tokenize("The  cat\\nSat")
    ['the', 'cat', 'sat']
    """
    return text.lower().split()


def _check_texts(texts) -> list[str]:
    return check_texts(texts, "texts")


def _check_orders(orders) -> tuple[int, ...]:
    orders = (orders,) if isinstance(orders, int) else tuple(orders)
    for n in orders:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InvalidParameterError(f"n-gram order must be an integer >= 1, got {n!r}")
    return orders


def _encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of all texts concatenated, and the text index of each token.

    Same tokens as :func:`tokenize`, but split and dictionary-encoded in Arrow's C++ kernels (~7x
    faster than Python on millions of texts). Arrow lowercases some non-ASCII letters differently
    from ``str.lower`` (dotted I, final sigma), so non-ASCII texts are tokenized by Python.
    Ids are dense (0..V-1, in order of first appearance).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(texts, type=pa.large_string())
    is_ascii = pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    if is_ascii.all():
        lists = pc.utf8_split_whitespace(pc.ascii_lower(arr))
    else:
        a_idx, u_idx = np.flatnonzero(is_ascii), np.flatnonzero(~is_ascii)
        lists = pc.utf8_split_whitespace(pc.ascii_lower(arr.take(a_idx)))
        other = pa.array([tokenize(texts[i]) for i in u_idx], type=lists.type)
        lists = pa.concat_arrays([lists, other]).take(np.argsort(np.r_[a_idx, u_idx], kind="stable"))
    tokens, owner = pc.list_flatten(lists), pc.list_parent_indices(lists)
    nonempty = pc.greater(pc.binary_length(tokens), 0)  # Arrow keeps "" at leading/trailing whitespace
    tokens, owner = tokens.filter(nonempty), owner.filter(nonempty)
    return _dense(tokens), owner.to_numpy(zero_copy_only=False).astype(np.int64)


def _dense(values) -> np.ndarray:
    """Dense ids (0..k-1, first-appearance order) of an Arrow or numpy array, by hashing (no sort)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    encoded = pc.dictionary_encode(values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _ngram_ids(ids: np.ndarray, owner: np.ndarray, max_n: int):
    """Yield (n, gram_id, text_of_gram) for n = 1..max_n; n-grams never cross text boundaries.

    An n-gram id is a dense id of the pair (id of its (n-1)-gram prefix, its last token id).
    """
    gram, text, pos = ids, owner, np.arange(ids.size)
    base = int(ids.max(initial=0)) + 1
    yield 1, gram, text
    for n in range(2, max_n + 1):
        last = pos + n - 1
        keep = last < ids.size
        keep[keep] = owner[last[keep]] == text[keep]
        key = gram[keep] * base + ids[last[keep]]
        gram = _dense(key)
        text, pos = text[keep], pos[keep]
        yield n, gram, text


def _counts(gram: np.ndarray) -> np.ndarray:
    """Occurrences of each n-gram: ids are dense, so a bincount (O(m), no sort) has no zero bins."""
    return np.bincount(gram) if gram.size else np.zeros(0, dtype=np.int64)


def distinct_n(texts: Sequence[str], n: int = 1) -> float:
    """Unique n-grams / total n-grams over the whole set (0.0 when there is no n-gram).

    >>> distinct_n(["a b a", "a b"], n=1)
    0.4
    """
    texts, (n,) = _check_texts(texts), _check_orders((n,))
    *_, (_, gram, _) = _ngram_ids(*_encode(texts), n)
    return len(_counts(gram)) / gram.size if gram.size else 0.0


def ngram_entropy(texts: Sequence[str], n: int = 1) -> float:
    """Shannon entropy (nats) of the n-gram frequency distribution over the whole set.

    >>> round(ngram_entropy(["a b", "c d"], n=1), 4)  # log(4)
    1.3863
    """
    texts, (n,) = _check_texts(texts), _check_orders((n,))
    *_, (_, gram, _) = _ngram_ids(*_encode(texts), n)
    return _entropy(_counts(gram))


def ngram_stats(texts: Sequence[str], orders: Sequence[int] = (1, 2, 3, 4)) -> dict[str, float]:
    """``distinct_<n>`` and ``ngram_entropy_<n>`` for every order, tokenizing and counting once.

    >>> ngram_stats(["a b a", "a b"], orders=(1, 2))["distinct_2"]
    0.6666666666666666
    """
    texts, orders = _check_texts(texts), _check_orders(orders)
    return _ngram_stats(*_encode(texts), orders)


def _ngram_stats(ids: np.ndarray, owner: np.ndarray, orders: tuple[int, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for n, gram, _ in _ngram_ids(ids, owner, max(orders)):
        if n in orders:
            counts = _counts(gram)
            out[f"distinct_{n}"] = len(counts) / gram.size if gram.size else 0.0
            out[f"ngram_entropy_{n}"] = _entropy(counts)
    return out


def _entropy(counts: np.ndarray) -> float:
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _closest_ref_lengths(lengths: np.ndarray) -> np.ndarray:
    """For each text, nltk's closest reference length among the OTHER texts (ties -> shorter)."""
    s = np.sort(lengths)
    lo, hi = np.searchsorted(s, lengths, "left"), np.searchsorted(s, lengths, "right")
    pred = np.where(lo > 0, s[np.maximum(lo - 1, 0)], -(10 ** 12))  # longest other < own length
    succ = np.where(hi < s.size, s[np.minimum(hi, s.size - 1)], 10 ** 12)  # shortest other > own
    closest = np.where(lengths - pred <= succ - lengths, pred, succ)
    return np.where(hi - lo >= 2, lengths, closest)  # another text has exactly the same length


def _bleu_per_text(ids: np.ndarray, owner: np.ndarray, n_texts: int, max_n: int = 4) -> np.ndarray:
    """nltk ``sentence_bleu(others, text, weights=(1/max_n,)*max_n, smoothing=method1)`` per text."""
    lengths = np.bincount(owner, minlength=n_texts)
    log_p = np.zeros(n_texts)
    first_numerator = None
    for n, gram, text in _ngram_ids(ids, owner, max_n):
        numerator = np.zeros(n_texts)
        if gram.size:
            # (text, gram) pairs with their count in that text
            pair, count = np.unique(text * (int(gram.max()) + 1) + gram, return_counts=True)
            t, g = pair // (int(gram.max()) + 1), pair % (int(gram.max()) + 1)
            # per gram: the largest count (and its text) and the second largest (0 if none)
            order = np.lexsort((-count, g))
            t, g, count = t[order], g[order], count[order]
            head = np.r_[True, g[1:] != g[:-1]]
            start = np.flatnonzero(head)
            n_grams = int(g.max()) + 1
            max1, arg1, max2 = np.zeros(n_grams, np.int64), np.full(n_grams, -1), np.zeros(n_grams, np.int64)
            max1[g[start]], arg1[g[start]] = count[start], t[start]
            second = start + 1
            has2 = second < g.size
            has2[has2] = g[second[has2]] == g[start[has2]]
            max2[g[start[has2]]] = count[second[has2]]
            ref_max = np.where(arg1[g] == t, max2[g], max1[g])  # max count over the other texts
            numerator = np.bincount(t, weights=np.minimum(count, ref_max), minlength=n_texts)
        denominator = np.maximum(1, lengths - n + 1)
        p = np.where(numerator > 0, numerator, _EPSILON) / denominator
        log_p += np.log(p) / max_n
        if first_numerator is None:
            first_numerator = numerator
    ref = _closest_ref_lengths(lengths)
    safe = np.maximum(lengths, 1)
    bp = np.where(lengths > ref, 1.0, np.exp(1 - ref / safe))
    return np.where(first_numerator > 0, bp * np.exp(log_p), 0.0)  # nltk: no unigram match -> 0


def self_bleu(texts: Sequence[str], *, max_n: int = 4, sample: int | None = None, seed: int = 0) -> float:
    """Mean BLEU of each text against all the other texts as references (higher = less diverse).

    Equals the mean of nltk's ``sentence_bleu(others, text, smoothing_function=method1)`` over the
    (lowercased whitespace) tokens. ``sample=k`` averages over k hypotheses drawn without replacement
    with ``numpy.random.default_rng(seed)``, each still scored against all others.

    >>> self_bleu(["the cat sat on the mat", "the cat sat on the mat"])
    1.0
    """
    texts, (max_n,) = _check_texts(texts), _check_orders((max_n,))
    return _mean_bleu(*_encode(texts), len(texts), max_n, sample, seed)


def _mean_bleu(ids, owner, n_texts: int, max_n: int, sample: int | None, seed: int) -> float:
    if n_texts < 2:
        raise InvalidParameterError("self_bleu needs at least 2 texts (each is scored against the others)")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, (int, np.integer))
                               or sample < 1):
        raise InvalidParameterError(f"self_bleu_sample must be an integer >= 1 or None, got {sample!r}")
    scores = _bleu_per_text(ids, owner, n_texts, max_n)
    if sample is not None and sample < n_texts:
        scores = scores[np.random.default_rng(seed).choice(n_texts, size=sample, replace=False)]
    return float(scores.mean())


def compression_ratio(texts: Sequence[str]) -> float:
    """UTF-8 size of the texts joined with a space over its gzip size (level 9, mtime 0), as in
    Shaib et al. (2024). Higher = more repetitive. Depends slightly on the order of the texts (gzip
    finds repeats within a 32 KiB window); their package writes a gzip file, a few header bytes more.

    >>> compression_ratio(["ab " * 100]) > 10
    True
    """
    data = " ".join(_check_texts(texts)).encode("utf-8")
    return len(data) / len(gzip.compress(data, compresslevel=9, mtime=0))


def _check_embeddings(embeddings, n_texts: int | None = None) -> np.ndarray:
    x = check_matrix(embeddings, "embeddings")
    if n_texts is not None and x.shape[0] != n_texts:
        raise InvalidParameterError(f"embeddings has {x.shape[0]} rows but there are {n_texts} texts")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise InvalidParameterError(f"embeddings row {int(np.flatnonzero(norms == 0)[0])} is all zeros")
    return x / norms


def mean_pairwise_distance(embeddings) -> float:
    """Mean cosine distance over pairs i < j, in O(n d): sum_{i!=j} x_i.x_j = |sum x|^2 - sum |x_i|^2.

    >>> mean_pairwise_distance([[1.0, 0.0], [0.0, 1.0]])
    1.0
    """
    x = _check_embeddings(embeddings)
    n = x.shape[0]
    if n < 2:
        raise InvalidParameterError("mean pairwise distance needs at least 2 embeddings")
    s = x.sum(axis=0)
    return float(1.0 - (s @ s - (x * x).sum()) / (n * (n - 1)))


def _check_q(q) -> float:
    q = math.inf if q == "inf" else q
    if isinstance(q, bool) or not isinstance(q, (int, float)) or math.isnan(q) or q < 0:
        raise InvalidParameterError(f"vendi q must be a number >= 0 (or inf), got {q!r}")
    return q


def vendi_score(embeddings, q: float = 1.0) -> float:
    """Vendi score: exp(Renyi entropy of order q of the eigenvalues of K/n), K the cosine kernel.

    Uses the (d, d) dual X^T X / n when d < n (same nonzero eigenvalues); never forms (n, n) then.
    ``q`` is >= 0 or ``math.inf`` / ``"inf"``.

    >>> round(vendi_score([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), 4)  # two distinct, one repeated
    1.8899
    """
    q, x = _check_q(q), _check_embeddings(embeddings)
    n, d = x.shape
    w = np.linalg.eigvalsh(x.T @ x / n if d < n else x @ x.T / n)
    p = w[w > 1e-12]
    if q == 1:
        h = -(p * np.log(p)).sum()
    elif math.isinf(q):
        h = -np.log(p.max())
    else:
        h = np.log((p ** q).sum()) / (1 - q)
    return float(np.exp(h))


def diversity(texts: Sequence[str], *, embeddings=None, ngram_orders=(1, 2, 3, 4),
              self_bleu_sample: int | None = None, seed: int = 0, vendi_q: float = 1.0,
              embed: bool = False) -> dict[str, float]:
    """All diversity measures of ``texts`` in one flat dict.

    Lexical: ``distinct_<n>``, ``ngram_entropy_<n>`` (nats) per order, ``self_bleu`` (NaN for one
    text), ``compression_ratio``, ``vocabulary_size``, ``type_token_ratio``, ``length_mean`` and
    ``length_std`` (tokens per text, population std). With ``embeddings`` (n, d) or ``embed=True``:
    ``embedding_mean_pairwise_distance`` (NaN for one text) and ``vendi_score`` (order ``vendi_q``).

    >>> d = diversity(["a b c", "a b d"])
    >>> d["distinct_1"], d["vocabulary_size"]
    (0.6666666666666666, 4)
    """
    texts, orders, vendi_q = _check_texts(texts), _check_orders(ngram_orders), _check_q(vendi_q)
    if embed and embeddings is not None:
        raise InvalidParameterError("pass either embeddings or embed=True, not both")
    x = _check_embeddings(embeddings, len(texts)) if embeddings is not None else None
    ids, owner = _encode(texts)
    lengths = np.bincount(owner, minlength=len(texts))
    out: dict[str, float] = _ngram_stats(ids, owner, orders)
    out["self_bleu"] = (_mean_bleu(ids, owner, len(texts), 4, self_bleu_sample, seed)
                        if len(texts) > 1 else math.nan)
    out["compression_ratio"] = compression_ratio(texts)
    vocab = int(ids.max()) + 1 if ids.size else 0  # ids are dense
    out["vocabulary_size"] = vocab
    out["type_token_ratio"] = vocab / ids.size if ids.size else 0.0
    out["length_mean"] = float(lengths.mean())
    out["length_std"] = float(lengths.std())
    if embed:
        x = embed_texts(texts)
    if x is not None:
        out["embedding_mean_pairwise_distance"] = mean_pairwise_distance(x) if len(texts) > 1 else math.nan
        out["vendi_score"] = vendi_score(x, q=vendi_q)
    return out
