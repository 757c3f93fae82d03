"""S3 (error-extrapolating loop) on the embedded model with real Rotten Tomatoes rows: round records,
the budget following the downstream model's per-class validation errors, demos drawn from the
misclassified real rows, resume after a kill and a call-free rerun.

Tiny sizes (2 rounds x 6 rows, 24 new tokens): the machine's two cores are shared."""

import json

import pytest
from datasets import Dataset
from sklearn.linear_model import LogisticRegression

from synth_datasets import LLM, Recipe, Template, run_and_publish
from synth_datasets.embeddings import embed_texts_cached
from synth_datasets.errors import InvalidParameterError
from synth_datasets.generate import S3
from synth_datasets.generate.targeted import allocate

from realdata import rotten_tomatoes

NAMES = {"fresh": "a positive movie review", "rotten": "a negative movie review"}
KW = dict(label_names=NAMES, per_round=6, demos=2, max_rounds=2, max_new_tokens=24, seed=0)


def _data():
    rows = rotten_tomatoes(40, seed=3)
    val = Dataset.from_list(rows[:30])          # the small real labelled validation set
    first = Dataset.from_list(rows[30:36])      # the rows so far (disjoint from validation)
    return val, first


def _recipe(llm, folder):
    val, first = _data()
    return Recipe("s3", source=first, seed=0).loop(S3(llm, validation=val, checkpoint_dir=folder, **KW), name="s3")


def test_s3_targets_errors_and_resumes(embedded_llm, tmp_path, monkeypatch):
    val, first = _data()
    folder = tmp_path / "ckpt"
    real_step = S3.step

    def killed_in_round_2(self, state, r):
        if r == 1:
            raise KeyboardInterrupt("killed in round 2")
        return real_step(self, state, r)

    monkeypatch.setattr(S3, "step", killed_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        _recipe(embedded_llm, folder).run()
    (run_dir,) = folder.iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "round-0000.json", "round-0000.rows.json"]
    first_rows = json.loads((run_dir / "round-0000.rows.json").read_text())
    assert "validation" in json.loads((run_dir / "config.json").read_text())
    assert val[0]["text"] not in (run_dir / "config.json").read_text()  # the real rows stay out of provenance

    monkeypatch.setattr(S3, "step", real_step)
    before = embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"]
    ds, record = run_and_publish(_recipe(embedded_llm, folder), tmp_path / "out")
    rounds = record.steps[0].rounds
    assert [(r["round"], r["resumed"]) for r in rounds] == [(0, True), (1, False)]
    calls = embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"] - before
    assert calls == rounds[1]["made"] == 6  # only round 2's prompts were sent
    assert ds.to_list()[:len(first_rows)] == first_rows and ds.num_rows == sum(r["kept"] for r in rounds)
    assert ds.column_names == ["text", "label", "round"] and set(ds["label"]) <= {"fresh", "rotten"}

    n_val = {c: val["label"].count(c) for c in ("fresh", "rotten")}
    for r in rounds:
        m, budget = r["metrics"], r["conditions"]["budget"]
        assert r["made"] == sum(budget.values()) == sum(m["made_per_class"].values()) == 6
        assert r["kept"] == sum(m["kept_per_class"].values()) == r["made"] - m["failed"]
        assert all(m["kept_per_class"][c] <= budget[c] for c in budget)
        # the budget follows the validation errors of the model trained before the round
        errors = {c: n_val[c] - round(m["val_accuracy_per_class"][c] * n_val[c]) for c in ("fresh", "rotten")}
        assert budget == allocate(errors, 6)
        worst = min(m["val_accuracy_per_class"], key=m["val_accuracy_per_class"].get)
        assert budget[worst] == max(budget.values())
        assert [len(d) for d in r["conditions"]["demos"].values()] == [budget["fresh"], budget["rotten"]]
        for c, picks in r["conditions"]["demos"].items():  # demos are real validation rows of their class
            assert all(len(p) == min(2, n_val[c]) and all(val[i]["label"] == c for i in p) for p in picks)
    # round 2 starts from the model trained with round 1's rows
    assert rounds[1]["metrics"]["val_accuracy_per_class"] == rounds[0]["metrics"]["val_accuracy_per_class_after"]
    assert rounds[1]["metrics"]["train_rows"] == first.num_rows + rounds[0]["kept"]

    # round 1's demos are the validation rows misclassified by a classifier trained on the first rows
    x = embed_texts_cached(first["text"])
    clf = LogisticRegression(C=1.0, max_iter=1000, random_state=0).fit(x, first["label"])
    predicted = clf.predict(embed_texts_cached(val["text"]))
    wrong = {c: {i for i, (p, y) in enumerate(zip(predicted, val["label"])) if y == c and p != y} for c in n_val}
    acc = {c: round((n_val[c] - len(wrong[c])) / n_val[c], 4) for c in n_val}
    assert rounds[0]["metrics"]["val_accuracy_per_class"] == acc
    for c, picks in rounds[0]["conditions"]["demos"].items():
        if wrong[c]:
            assert all(set(p) <= wrong[c] for p in picks)

    card = (tmp_path / "out" / "README.md").read_text()
    assert f"| 1 | {rounds[1]['made']} | {rounds[1]['kept']} |" in card and val[0]["text"] not in card

    # a rerun of the finished loop reads every round back: no model call, not even a cache lookup
    before = embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"]
    again, rec = _recipe(embedded_llm, folder).run()
    assert again.to_list() == ds.to_list() and all(r["resumed"] for r in rec.steps[0].rounds)
    assert embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"] == before


def test_s3_checks(tmp_path):
    llm = LLM(cache=tmp_path / "c.sqlite")
    val = {"text": ["A joy.", "Dull.", "Great fun.", "Awful."], "label": ["fresh", "rotten", "fresh", "rotten"]}
    with pytest.raises(InvalidParameterError, match=r"validation lacks the column\(s\) \['label'\]"):
        S3(llm, validation={"text": val["text"]})
    with pytest.raises(InvalidParameterError, match="1 class"):
        S3(llm, validation={"text": ["a", "b"], "label": ["x", "x"]})
    with pytest.raises(InvalidParameterError, match="validation row 1"):
        S3(llm, validation={"text": ["a", None], "label": ["x", "y"]})
    with pytest.raises(InvalidParameterError, match="only"):
        S3(llm, validation=val, template=Template(user="{{ topic }}"))
    s3 = S3(llm, validation=val, checkpoint_dir=tmp_path)
    with pytest.raises(InvalidParameterError, match=r"label\(s\) \['neutral'\]"):
        s3.run(Dataset.from_dict({"text": ["ok", "fine"], "label": ["fresh", "neutral"]}))
    with pytest.raises(InvalidParameterError, match="lacks the column"):
        s3.run(Dataset.from_dict({"review": ["ok"], "label": ["fresh"]}))
    other = S3(llm, validation={**val, "label": ["fresh", "rotten", "rotten", "rotten"]}, checkpoint_dir=tmp_path)
    first = Dataset.from_dict({"text": ["ok", "bad"], "label": ["fresh", "rotten"]})
    assert s3.fingerprint(first) != other.fingerprint(first)  # another validation set, other checkpoints
    assert allocate({"a": 1, "b": 2, "c": 0}, 4) == {"a": 1, "b": 3, "c": 0}
    assert llm._backend is None  # nothing above loaded the model


def test_explore_instruct_tree(embedded_llm, tmp_path):
    from synth_datasets.curate import rouge_l, rouge_tokens
    from synth_datasets.generate import ExploreInstruct

    roots = Dataset.from_dict({"task": ["text rewriting"]})
    loop = ExploreInstruct(embedded_llm, k=2, max_rounds=2, max_new_tokens=32, instruction_tokens=24, seed=0,
                           checkpoint_dir=tmp_path)
    tree = loop.run(roots)
    r0 = loop.rounds[0]
    assert r0.conditions == {"frontier": ["text rewriting"]} and r0.made >= r0.kept
    assert r0.made == r0.metrics["proposed_depth"] + r0.metrics["proposed_breadth"]
    assert r0.metrics["proposed_depth"] <= 2 and r0.metrics["proposed_breadth"] <= 1
    rows = tree.to_list()
    assert tree.num_rows == sum(r.kept for r in loop.rounds) and tree.column_names == list(ExploreInstruct.columns)
    paths = {"text rewriting"} | {r["path"] for r in rows}
    for r in rows:  # every node hangs under a node of the level above, made in the round before
        assert r["parent"] in paths and r["path"] == f"{r['parent']} > {r['task']}"
        assert r["depth"] == r["round"] + 1 == r["path"].count(" > ") and r["how"] in ("depth", "breadth")
    if len(loop.rounds) == 2:  # round 2 expands exactly the nodes round 1 kept
        assert loop.rounds[1].conditions["frontier"] == [r["path"] for r in rows if r["round"] == 0]
    else:
        assert r0.kept == 0
    pool = [rouge_tokens("text rewriting")]
    for r in rows:  # the ROUGE-L rule against every node before it
        assert max(rouge_l(rouge_tokens(r["task"]), p) for p in pool) <= 0.7, r["task"]
        pool.append(rouge_tokens(r["task"]))
    last = loop.rounds[-1].metrics
    assert last["nodes"] == 1 + tree.num_rows and last["max_depth"] == max([0] + list(tree["depth"]))
    assert last["leaves"] == ExploreInstruct.coverage(
        [{"task": "text rewriting", "parent": None, "path": "text rewriting", "depth": 0}] + rows)["leaves"]
    assert sum(i is not None for i in tree["instruction"]) == tree.num_rows - sum(
        r.metrics.get("failed_instructions", 0) for r in loop.rounds)
    with pytest.raises(InvalidParameterError, match="'task' column"):
        loop.run(Dataset.from_dict({"domain": ["x"]}))
