"""ActiveAnnotator: the LLMAAA loop (LLM labels a seed, a student picks the next rows by uncertainty)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from datasets import Dataset

from realdata import rotten_tomatoes_embeddings
from synth_datasets import LLM, ActiveAnnotator, Annotator
from synth_datasets.errors import InvalidParameterError, NotFittedError
from synth_datasets.generate.select import uncertainty

TEMPLATE = "Is the following movie review positive or negative? Answer with one word.\n\nReview: {{ text }}"
VERBALIZERS = {"fresh": "positive", "rotten": "negative"}


def test_bad_configuration_is_refused_before_any_call():
    ann = Annotator(LLM("http://127.0.0.1:9/v1", model="m"), ["fresh", "rotten"], TEMPLATE, verbalizers=VERBALIZERS)
    with pytest.raises(InvalidParameterError, match="exactly one of text_column"):
        ActiveAnnotator(ann, budget=10)
    with pytest.raises(InvalidParameterError, match="seed_size=9"):
        ActiveAnnotator(ann, budget=10, text_column="text", seed_size=9, rounds=2)
    with pytest.raises(InvalidParameterError, match="strategy='kmeans'"):
        ActiveAnnotator(ann, budget=10, text_column="text", strategy="kmeans")
    active = ActiveAnnotator(ann, budget=10, text_column="text")
    with pytest.raises(InvalidParameterError, match="budget=10 is more than the 3 rows"):
        active.fit({"text": ["a", "b", "c"]})
    with pytest.raises(NotFittedError, match="fitted first"):
        active({"text": ["a"]}, indices=[0])
    assert ActiveAnnotator(ann, budget=200, text_column="text", rounds=5).seed_size == 33


@pytest.mark.slow
def test_loop_on_real_reviews(embedded_llm, tmp_path):
    rows, x = rotten_tomatoes_embeddings(40, seed=11)
    ds = Dataset.from_dict({"text": [r["text"] for r in rows], "emb": x.astype(np.float32).tolist()})
    ann = Annotator(embedded_llm, ["fresh", "rotten"], TEMPLATE, verbalizers=VERBALIZERS)
    active = ActiveAnnotator(ann, budget=12, embedding_column="emb", seed_size=4, rounds=2, seed=3)
    before = dict(embedded_llm.stats)
    active.fit(ds)
    scored = sum(embedded_llm.stats[k] - before.get(k, 0) for k in ("requests", "cache_hits"))
    assert scored == 12  # the LLM saw the budget's rows, no more
    out = ds.map(active, batched=True, batch_size=16, with_indices=True)
    rounds = np.array([-1 if r is None else r for r in out["selected_round"]])
    assert out["selected"].count(True) == 12 and [int((rounds == r).sum()) for r in range(3)] == [4, 4, 4]
    assert all((lab is None) == (not sel) for lab, sel in zip(out["label"], out["selected"]))
    recs = active.describe()["per_round"]
    assert [r["picked"] for r in recs] == [4, 4, 4] and recs[-1]["annotated_total"] == 12
    assert all(sum(r["labels"].values()) + r["errors"] == r["picked"] for r in recs)

    # the labels are the annotator's own on those rows
    picked = np.flatnonzero(rounds >= 0)
    direct = ds.select(picked).map(ann, batched=True)
    assert direct["label"] == [out["label"][i] for i in picked]
    assert np.allclose(direct["label_probs"], [out["label_probs"][i] for i in picked], atol=1e-6)

    # round 1 = the 4 rows of highest entropy under a logistic regression fitted on round 0's LLM labels
    from sklearn.linear_model import LogisticRegression

    seed_rows = np.flatnonzero(rounds == 0)
    y = [out["label"][i] for i in seed_rows]
    if len(set(y)) == 2:  # (with one label only the loop picks at random, as its record says)
        clf = LogisticRegression(max_iter=1000).fit(x[seed_rows].astype(np.float32), y)
        rest = np.flatnonzero(rounds != 0)
        u = uncertainty(clf.predict_proba(x[rest].astype(np.float32)), "entropy")
        assert set(rest[np.argsort(-u)[:4]]) == set(np.flatnonzero(rounds == 1))
        assert recs[1]["by"] == "student entropy"

    # the fitted loop pickles to its config and results, and maps the same in a new copy
    again = pickle.loads(pickle.dumps(active))
    assert again.selected_indices == active.selected_indices
    assert len(pickle.dumps(active)) < 200_000  # no live model inside (the model alone is ~500 MB in fp32)
    with pytest.raises(InvalidParameterError, match="with_indices=True"):
        active(ds[:2])

    # the card records the loop: strategy, per-round counts, labels + verbalizers, the prompt verbatim
    import json

    from synth_datasets import publish

    publish(out.remove_columns(["emb"]), tmp_path / "pub", steps=[active], report=False)
    card = (tmp_path / "pub" / "README.md").read_text()
    assert "Review: {{ text }}" in card and '"verbalizers": {' in card and '"calibration": null' in card
    prov = json.loads((tmp_path / "pub" / "provenance.json").read_text())
    (step,) = prov["steps"]
    assert step["describe"]["strategy"] == "entropy" and step["describe"]["per_round"] == recs
    assert '"per_round": [' in card and f'"annotated_total": {recs[-1]["annotated_total"]}' in card
