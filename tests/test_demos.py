"""Demonstrations: fit on a pool of real Rotten Tomatoes snippets, then pick k demos per row
(random, balanced, nearest, diverse/MMR), and Self-Prompting's synthetic pool made by the model."""

import itertools
import pickle

import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from datasets.fingerprint import Hasher
from realdata import rotten_tomatoes

from synth_datasets import LLM, Conditions, Demonstrations, InvalidParameterError, TaskSpec, fit_explained, fit_synthetic
from synth_datasets.embeddings import embed_texts
from synth_datasets.errors import EmptyDatasetError, MissingColumnError, NotFittedError

QUERIES = ["a thrilling and clever heist film", "a boring, lifeless romantic comedy",
           "a moving documentary about music", "an ugly mess of a sequel", "the actors are wonderful"]


@pytest.fixture(scope="module")
def pool():
    return Dataset.from_list(rotten_tomatoes(120, seed=3))


@pytest.fixture(scope="module")
def rows():
    return Dataset.from_dict({"id": list(range(20)), "query": QUERIES * 4, "label": ["positive", "negative"] * 10})


def test_random_demos_distinct_seeded_per_row_and_same_label(pool, rows):
    d = Demonstrations(k=3, seed=1, item="[{{ label }}] {{ text }}").fit(pool)
    a = rows.map(d, batched=True, batch_size=3)
    b = rows.map(d, batched=True, batch_size=20)
    assert a["demos_ids"] == b["demos_ids"]
    assert all(len(set(ids)) == 3 for ids in a["demos_ids"])
    assert len({tuple(ids) for ids in a["demos_ids"]}) == 20  # rows with the same query still differ
    first = a[0]
    assert first["demos"] == "\n\n".join(f"[{pool[j]['label']}] {pool[j]['text']}" for j in first["demos_ids"])
    other_seed = rows.map(Demonstrations(k=3, seed=2).fit(pool), batched=True)
    assert other_seed["demos_ids"] != a["demos_ids"]
    same = Demonstrations(k=4, label_column="label", same_label="label",
                          label_map={"positive": "fresh", "negative": "rotten"}).fit(pool)
    out = rows.map(same, batched=True)
    for row in out:
        want = {"positive": "fresh", "negative": "rotten"}[row["label"]]
        assert [pool[j]["label"] for j in row["demos_ids"]] == [want] * 4


def test_balanced_demos_alternate_labels(pool, rows):
    d = Demonstrations(k=4, strategy="balanced", label_column="label", seed=0).fit(pool)
    out = rows.map(d, batched=True, batch_size=6)
    for ids in out["demos_ids"]:
        labels = [pool[j]["label"] for j in ids]
        assert sorted(labels) == ["fresh", "fresh", "rotten", "rotten"] and len(set(ids)) == 4
        assert labels[0] != labels[1]  # round-robin


def test_nearest_matches_a_brute_force_reference(pool, rows):
    d = Demonstrations(k=3, strategy="nearest", query="{{ query }}").fit(pool)
    out = rows.map(d, batched=True, batch_size=7)
    emb = embed_texts(pool["text"])
    sims = embed_texts(out["query"]) @ emb.T
    for ids, s in zip(out["demos_ids"], sims):
        ref = [int(j) for j in np.argsort(-s, kind="stable")[:3]]
        assert ids == ref[::-1]  # most similar shown last, next to the task
    # a pool text as the query finds itself, and same_label restricts the neighbours
    probe = Dataset.from_dict({"query": [pool[5]["text"]], "label": [pool[5]["label"]]})
    assert probe.map(d, batched=True)[0]["demos_ids"][-1] == 5
    fresh_only = Demonstrations(k=3, strategy="nearest", query="{{ query }}", label_column="label",
                                same_label="label").fit(pool)
    got = probe.map(fresh_only, batched=True)[0]["demos_ids"]
    assert got[-1] == 5 and all(pool[j]["label"] == pool[5]["label"] for j in got)


def reference_mmr(rel, emb, k, lam):
    chosen = []
    for _ in range(k):
        best, best_score = None, -np.inf
        for j in range(len(rel)):
            if j in chosen:
                continue
            red = max((float(emb[j] @ emb[c]) for c in chosen), default=0.0)
            score = lam * rel[j] - (1 - lam) * red
            if score > best_score:
                best, best_score = j, score
        chosen.append(best)
    return chosen


def test_diverse_is_mmr_and_more_diverse_than_nearest(pool, rows):
    d = Demonstrations(k=4, strategy="diverse", query="{{ query }}", mmr_lambda=0.5).fit(pool)
    out = rows.select(range(5)).map(d, batched=True)
    emb = embed_texts(pool["text"])
    rel = embed_texts(out["query"]) @ emb.T
    for ids, r in zip(out["demos_ids"], rel):
        assert ids == reference_mmr(r, emb, 4, 0.5)
    near = rows.select(range(5)).map(Demonstrations(k=4, strategy="nearest", query="{{ query }}").fit(pool),
                                     batched=True)

    def spread(idss):
        return np.mean([float(emb[a] @ emb[b]) for ids in idss for a, b in itertools.combinations(ids, 2)])
    assert spread(out["demos_ids"]) < spread(near["demos_ids"])
    # no query: a seeded first demo, then farthest-first (over the whole pool: candidates >= its 120 rows)
    free = Demonstrations(k=3, strategy="diverse", seed=4, candidates=120).fit(pool)
    a = rows.map(free, batched=True, batch_size=4)["demos_ids"]
    assert a == rows.map(free, batched=True, batch_size=20)["demos_ids"] and len({x[0] for x in a}) > 5
    for ids in a:
        second = int(np.argmin(emb[ids[0]] @ emb.T))
        assert ids[1] == second


def test_diverse_over_top_candidates_is_mmr_restricted_to_them(pool, rows):
    """MMR runs over each row's `candidates` most relevant allowed pool rows: the same picks as the
    brute-force MMR over exactly those rows, vectorized over the batch, with same_label applied."""
    d = Demonstrations(k=3, strategy="diverse", query="{{ query }}", candidates=12, label_column="label",
                       same_label="label", label_map={"positive": "fresh", "negative": "rotten"}).fit(pool)
    out = rows.map(d, batched=True, batch_size=6)
    emb = embed_texts(pool["text"])
    rel = embed_texts(out["query"]) @ emb.T
    labels = np.array(pool["label"])
    for ids, r, want in zip(out["demos_ids"], rel, out["label"]):
        ok = np.flatnonzero(labels == {"positive": "fresh", "negative": "rotten"}[want])
        top = np.sort(ok[np.argsort(-r[ok], kind="stable")[:12]])
        assert ids == [int(top[j]) for j in reference_mmr(r[top], emb[top], 3, 0.5)]
    full = Demonstrations(k=3, strategy="diverse", query="{{ query }}", candidates=120).fit(pool)
    small = Demonstrations(k=3, strategy="diverse", query="{{ query }}", candidates=30).fit(pool)
    assert Hasher.hash(full) != Hasher.hash(small) and "candidates" not in Demonstrations().__getstate__()
    with pytest.raises(InvalidParameterError, match="candidates=0"):
        Demonstrations(strategy="diverse", candidates=0)


def test_fingerprint_and_map_cache(pool, tmp_path):
    d = Demonstrations(k=2, strategy="nearest", query="{{ query }}", label_column="label").fit(pool)
    d2 = Demonstrations(k=2, strategy="nearest", query="{{ query }}", label_column="label").fit(pool)
    assert Hasher.hash(d) == Hasher.hash(d2) == Hasher.hash(pickle.loads(pickle.dumps(d)))
    assert Hasher.hash(Demonstrations(k=3, strategy="nearest", query="{{ query }}", label_column="label").fit(pool)) \
        != Hasher.hash(d)
    assert Hasher.hash(Demonstrations(k=2, strategy="nearest", query="{{ query }}", label_column="label").fit(
        pool.select(range(60)))) != Hasher.hash(d)
    Dataset.from_dict({"query": QUERIES}).save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    first = ds.map(d, batched=True)
    second = ds.map(d2, batched=True)
    assert second.cache_files == first.cache_files and second["demos"] == first["demos"]
    desc = d.describe()
    assert desc["pool"]["size"] == 120 and set(desc["pool"]["labels"]) == {"fresh", "rotten"}
    assert desc["embeddings"]["name"].endswith("all-MiniLM-L6-v2") and desc["strategy"] == "nearest"


def test_bad_input_is_named():
    with pytest.raises(InvalidParameterError, match="query="):
        Demonstrations(strategy="nearest")
    with pytest.raises(InvalidParameterError, match="label_column"):
        Demonstrations(strategy="balanced")
    with pytest.raises(NotFittedError, match="fit"):
        Dataset.from_dict({"x": [1]}).map(Demonstrations(), batched=True)
    with pytest.raises(MissingColumnError, match="'text'.*'review'"):
        Demonstrations().fit({"review": ["a"]})
    with pytest.raises(EmptyDatasetError):
        Demonstrations().fit({"text": []})
    with pytest.raises(InvalidParameterError, match="row 1"):
        Demonstrations().fit({"text": ["ok", None]})
    d = Demonstrations(label_column="label", same_label="label").fit({"text": ["a", "b"], "label": ["x", "y"]})
    with pytest.raises(InvalidParameterError, match="Row 0.*'z'"):
        Dataset.from_dict({"label": ["z"]}).map(d, batched=True, with_indices=True)
    with pytest.raises(MissingColumnError, match="'label'"):
        Dataset.from_dict({"other": ["z"]}).map(d, batched=True)


def test_self_prompting_synthetic_pool_then_demos_in_a_spec(embedded_llm, tmp_path):
    llm = LLM(batch_size=32, cache=tmp_path / "c.sqlite")
    llm._backend, llm._backend_pid = embedded_llm.backend, embedded_llm._backend_pid
    spec = TaskSpec("movie review", label_type="sentiment", format="Output only the review, one sentence.")
    d = Demonstrations(k=2, strategy="balanced", label_column="label", item="({{ label }}) {{ text }}")
    fit_synthetic(d, llm, spec, [{"label": "positive"}, {"label": "negative"}], n=2, max_new_tokens=24)
    sent = llm.stats["requests"]
    assert sent == 4 and d.pool["size"] <= 4
    desc = d.describe()["pool"]
    assert desc["source"].startswith("synthetic") and len(desc["texts"]) == d.pool["size"]
    assert desc["template"]["type"] == "TaskSpec" and desc["llm"]["type"] == "LLM"
    assert all(t and isinstance(t, str) for t in desc["texts"])
    again = Demonstrations(k=2, strategy="balanced", label_column="label", item="({{ label }}) {{ text }}")
    fit_synthetic(again, llm, spec, [{"label": "positive"}, {"label": "negative"}], n=2, max_new_tokens=24)
    assert llm.stats["requests"] == sent and again.pool == d.pool  # refit: all from the response cache
    with_demos = TaskSpec("movie review", label_type="sentiment", demos_variable="demos")
    rows = Dataset.from_dict({"id": [0, 1]}).map(Conditions(label=["positive", "negative"]), batched=True)
    rows = rows.map(d, batched=True)
    msg = with_demos.render(rows[0])[-1]["content"]
    assert "Here are some examples:\n(" in msg and rows[0]["demos"] in msg


def test_demos_with_explanations_written_once_by_the_model(embedded_llm, tmp_path):
    """He et al. 2023: the model explains each demo's label once (cached), the explanation is shown."""
    llm = LLM(batch_size=32, cache=tmp_path / "c.sqlite")
    llm._backend, llm._backend_pid = embedded_llm.backend, embedded_llm._backend_pid
    pool = rotten_tomatoes(4, seed=11)
    item = "{{ text }}\nWhy: {{ explanation }}\nLabel: {{ label }}"
    d = Demonstrations(k=2, strategy="balanced", label_column="label", item=item)
    fit_explained(d, pool, llm, tokens=24)
    assert llm.stats["requests"] == 4
    rec = d.describe()["pool"]["explanations"]
    assert rec["explained"] + rec["failed"] == 4 and rec["explained"] == d.pool["size"] >= 3
    assert rec["template"]["user"].startswith("Text: {{ text }}") and rec["llm"]["type"] == "LLM"
    whys = [it.split("\nWhy: ")[1].split("\nLabel: ")[0] for it in d.pool["items"]]
    assert all(w and "\n" not in w for w in whys) and len(set(whys)) == len(whys)
    texts = {r["text"] for r in pool}
    assert all(it.split("\nWhy: ")[0] in texts for it in d.pool["items"])
    out = Dataset.from_dict({"id": [0, 1]}).map(d, batched=True)
    assert all(out[i]["demos"].count("\nWhy: ") == 2 for i in range(2))
    again = Demonstrations(k=2, strategy="balanced", label_column="label", item=item)
    fit_explained(again, pool, llm, tokens=24)
    assert llm.stats["requests"] == 4 and again.pool == d.pool  # explained once: the refit is served by the cache
    plain = Demonstrations(k=2, strategy="balanced", label_column="label").fit(pool)
    assert Hasher.hash(plain) != Hasher.hash(d)
    with pytest.raises(InvalidParameterError, match="item= does not show it"):
        fit_explained(Demonstrations(label_column="label"), pool, llm)
    with pytest.raises(InvalidParameterError, match="set label_column="):
        fit_explained(Demonstrations(item=item), pool, llm)
    with pytest.raises(MissingColumnError, match="fit_explained"):
        Demonstrations(label_column="label", item=item).fit(pool)
    with pytest.raises(InvalidParameterError, match="must be an LLM"):
        fit_explained(Demonstrations(label_column="label", item=item), pool, "gpt")
