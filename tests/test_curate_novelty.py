"""Novelty: ROUGE-L equals the rouge-score package (Self-Instruct's scorer) and the filter equals
Self-Instruct's greedy loop computed directly with it, on real snippets with planted near-copies."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasets import Dataset, load_from_disk

from realdata import rotten_tomatoes
from synth_datasets import curate
from synth_datasets.errors import InvalidParameterError


@pytest.fixture(scope="module")
def texts():
    rng = random.Random(5)
    base = [r["text"] for r in rotten_tomatoes(260, seed=11)]
    out = list(base)
    for t in rng.sample(base, 60):  # near-copies: drop or swap a word or two, at random positions
        w = t.split()
        for _ in range(rng.randint(1, 2)):
            i = rng.randrange(len(w))
            if rng.random() < 0.5 and len(w) > 4:
                del w[i]
            else:
                w[i] = rng.choice(["film", "movie", "truly", "quite"])
        out.insert(rng.randrange(len(out) + 1), " ".join(w))
    return out


def test_rouge_l_equals_rouge_score(texts):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rng = random.Random(0)
    pairs = [(rng.choice(texts), rng.choice(texts)) for _ in range(400)] + [(texts[0], texts[0]), ("", "a b"),
                                                                           ("Hello, World!", "hello world")]
    for a, b in pairs:
        ours = curate.rouge_l(curate.rouge_tokens(a), curate.rouge_tokens(b))
        assert ours == pytest.approx(scorer.score(a, b)["rougeL"].fmeasure, abs=1e-12)


def test_novelty_equals_self_instruct_loop(texts, tmp_path):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    reference, pool = texts[:40], texts[40:]
    kept, expected = [], []
    for t in pool:  # Self-Instruct: keep if ROUGE-L <= 0.7 with every seed and every kept instruction
        scores = [scorer.score(t, o)["rougeL"].fmeasure for o in reference + kept]
        ok = max(scores) <= 0.7
        expected.append(None if ok else ("similar_to_reference" if max(scores[:len(reference)], default=0) > 0.7
                                         else "similar_to_kept"))
        if ok:
            kept.append(t)
    assert 30 <= sum(r is not None for r in expected) <= 80  # the planted copies, mostly
    Dataset.from_dict({"text": pool}).save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    nov = curate.Novelty(reference=reference, threshold=0.7).fit(ds)
    m = ds.map(nov.mark, batched=True, batch_size=64, with_indices=True)
    assert list(m["novelty_reason"]) == expected
    assert list(ds.filter(nov, batched=True, with_indices=True)["text"]) == kept
    for i, (r, s, j) in enumerate(zip(m["novelty_reason"], m["novelty_score"], m["novelty_of"])):
        if r is not None:
            other = reference[-1 - j] if j < 0 else pool[j]
            assert s == pytest.approx(scorer.score(pool[i], other)["rougeL"].fmeasure, abs=1e-6) and s > 0.7
    assert nov.stats["dropped"] == sum(r is not None for r in expected)
    assert nov.describe()["params"]["reference_size"] == 40


def test_exact_novelty_and_errors():
    ds = Dataset.from_dict({"text": ["Seed task one.", "seed  TASK one.", "new task", "New task"]})
    nov = curate.Novelty(reference=["seed task one."], method="exact").fit(ds)
    assert list(ds.map(nov.mark, batched=True, with_indices=True)["novelty_reason"]) == [
        "similar_to_reference", "similar_to_reference", None, "similar_to_kept"]
    with pytest.raises(InvalidParameterError, match="threshold=7 must be a number in"):
        curate.Novelty(threshold=7)
    with pytest.raises(InvalidParameterError, match="method='bleu'"):
        curate.Novelty(method="bleu")
    with pytest.raises(InvalidParameterError, match="reference must be a list of strings"):
        curate.Novelty(reference="seed")
    assert curate.lcs_length("abcbdab", "bdcaba") == 4 and curate.lcs_length([], [1]) == 0
    assert np.isclose(curate.rouge_l(["a"], ["a"]), 1.0)
