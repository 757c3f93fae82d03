"""Target-aware generation (issue 26 parts 1-2): the --examples loader and its errors, length targets,
per-label real demos in the prompt, the realness gate on real Rotten Tomatoes rows vs obviously other
texts, and the text-classification builder end to end on the embedded model (card: attributes, TSTR)."""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, load_dataset

import builders
from builders import movie_reviews, text_classification
from realdata import rotten_tomatoes
from synth_datasets.cli import _builder_parser, run_build
from synth_datasets.errors import InvalidParameterError, MissingColumnError
from synth_datasets.target import CloseToReal, RealnessGate, RealnessWeights, load_examples


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def _sample(n=40, seed=0):
    return rotten_tomatoes(n, seed=seed)


# -- the loader and its errors (no model) -----------------------------------------------------------
@pytest.mark.parametrize("case, error, message", [
    ("missing", InvalidParameterError, "no such file"),
    ("suffix", InvalidParameterError, "cannot read a .txt file"),
    ("column", MissingColumnError, "column 'label' is not in it. Current columns: ['text', 'sentiment']"),
    ("empty_text", InvalidParameterError, "row 3 has no text in 'text'"),
    ("few", InvalidParameterError, "has 10 rows; it takes 20 to 200"),
    ("many", InvalidParameterError, "has 201 rows; it takes 20 to 200 labelled rows: pass a random sample"),
    ("label", InvalidParameterError, "row 5 has label 'meh', not one of ['positive', 'negative']"),
    ("one_row_label", InvalidParameterError, "labels ['negative'] have fewer than 2 rows"),
    ("hub", InvalidParameterError, "neither a file nor a Hub dataset in the local cache"),
])
def test_examples_errors_name_the_file_column_and_row(tmp_path, case, error, message):
    rows = [{"text": f"review number {i} was fine", "label": "fresh" if i % 2 else "rotten"} for i in range(30)]
    path = tmp_path / "real.jsonl"
    if case == "missing":
        path = tmp_path / "nope.csv"
    elif case == "suffix":
        path = tmp_path / "real.txt"
        path.write_text("x")
    elif case == "column":
        _write(path, [{"text": r["text"], "sentiment": r["label"]} for r in rows])
    elif case == "empty_text":
        rows[3]["text"] = "  "
        _write(path, rows)
    elif case == "few":
        _write(path, rows[:10])
    elif case == "many":
        _write(path, rows * 6 + rows[:21])
    elif case == "label":
        rows[5]["label"] = "meh"
        _write(path, rows)
    elif case == "one_row_label":
        _write(path, [{**r, "label": "fresh"} for r in rows[:25]] + [{"text": "bad", "label": "rotten"}])
    elif case == "hub":
        path = "nobody/not-cached-dataset"
    else:
        _write(path, rows)
    with pytest.raises(error) as e:
        load_examples(path, labels=["positive", "negative"], label_map=movie_reviews.RT_LABELS)
    assert message in str(e.value)


def test_examples_split_is_stratified_and_maps_labels(tmp_path):
    rows = _sample(40)
    ex = load_examples(_write(tmp_path / "rt.csv", rows), labels=["positive", "negative"],
                       label_map=movie_reviews.RT_LABELS, held_out=0.3)
    assert len(ex.train["text"]) + len(ex.test["text"]) == 40
    assert not set(ex.train["text"]) & set(ex.test["text"])  # held-out rows are not in the train part
    real = Counter(movie_reviews.RT_LABELS[r["label"]] for r in rows)
    held = Counter(ex.test["label"])
    assert set(held) == {"positive", "negative"}
    assert all(held[y] == round(0.3 * real[y]) for y in real)  # 30% of each label
    d = ex.describe()
    assert d["name"] == "rt.csv" and d["rows"] == 40 and d["label_map"] == {"fresh": "positive", "rotten": "negative"}
    assert "/" not in d["name"] and len(d["sha256"]) == 64


def test_length_targets_from_a_known_sample(tmp_path):
    # every text: 2 sentences, 12 words; the targets follow exactly
    rows = [{"text": "The film looks lovely and moves fast. I enjoyed all of it.", "label": y}
            for y in ["a", "b"] * 15]
    t = load_examples(_write(tmp_path / "s.jsonl", rows)).length()
    assert (t.words_low, t.words_high, t.words_p95, t.sentences) == (12, 12, 12, 2)
    assert t.max_new_tokens == 26 and t.stop == ("\n\n",)  # ceil(12 x 1.4 x 1.5), one paragraph: stop there
    assert t.phrase == "2 sentences, 12 to 12 words"
    # word counts 10, 20, ..., 100 in both labels; multi-paragraph texts: no stop rule
    rows = [{"text": ("word " * (10 * k)).strip() + "\n\nend.", "label": y} for k in range(1, 11) for y in "ab"]
    ex = load_examples(_write(tmp_path / "m.jsonl", rows))
    words = np.array([len(x.split()) for x in ex.train["text"]])
    t = ex.length()
    assert (t.words_low, t.words_high) == (round(np.percentile(words, 20)), round(np.percentile(words, 80)))
    assert t.words_low < t.words_high and t.stop == ()
    assert t.max_new_tokens == int(np.ceil(max(round(np.percentile(words, 95)), t.words_high) * 1.4 * 1.5))


# -- demos of the row's label, in the prompt (no model call) --------------------------------------
def test_per_label_demos_are_in_the_prompt(tmp_path, embedded_llm):
    path = _write(tmp_path / "rt.csv", _sample(40))
    before = dict(embedded_llm.stats)
    r = movie_reviews.recipe(n=6, examples=str(path), llm=embedded_llm)
    names = [s.name for s in r.steps]
    assert names == ["conditions", "demos", "generate", "drop-demos", "trim", "truncated", "length", "dedup", "copied-demos", "realness",
                     "close-to-real"]
    ex = load_examples(path, labels=movie_reviews.LABELS, label_map=movie_reviews.RT_LABELS)
    by_label = {y: {t for t, v in zip(ex.train["text"], ex.train["label"]) if v == y} for y in movie_reviews.LABELS}
    ds = Dataset.from_dict({"id": list(range(6))})
    ds = ds.map(r.steps[0].fn, batched=True).map(r.steps[1].fn, batched=True, with_indices=True)
    gen = r.steps[2].fn
    for row in ds:
        prompt = gen.template.render(row)[-1]["content"]
        shown = [t for t in by_label["positive"] | by_label["negative"] if t in prompt]
        assert len(shown) == 4 and all(t in by_label[row["label"]] for t in shown)  # 4 demos, all of its label
        assert not any(t in prompt for t in ex.test["text"])  # never a held-out row
        assert f"Length: {ex.length().phrase}." in prompt
    assert gen.params.max_new_tokens == ex.length().max_new_tokens and tuple(gen.params.stop) == ("\n\n",)
    assert dict(embedded_llm.stats) == before  # building the recipe called no model


# -- the gate: a real discriminator on real rows vs obviously other texts -------------------------
OTHER = ["Traceback (most recent call last): File \"main.py\", line {i}, in <module> KeyError: 'id{i}'",
         "Preheat the oven to {i}0 degrees. Mix two cups of flour with one egg and a pinch of salt.",
         "Invoice #{i}: 3 x USB cable, 2 x HDMI adapter. Total due within 30 days of receipt.",
         "def add_{i}(a, b):\n    return a + b  # adds two numbers",
         "Meeting moved to room {i} on Tuesday at 10am; bring the quarterly budget slides."]


def test_realness_gate_keeps_real_rows_and_drops_other_texts():
    real = [r["text"] for r in _sample(60, seed=1)]
    held = [r["text"] for r in _sample(200, seed=2)[:12] if r["text"] not in real][:10]
    other = [OTHER[i % 5].format(i=i) for i in range(10)]
    ds = Dataset.from_dict({"text": held + other})
    gate = RealnessGate(real_texts=real, seed=0).fit(ds)
    marked = ds.map(gate.mark, batched=True, with_indices=True)
    kept = ds.filter(gate, batched=True, with_indices=True)["text"]
    assert sum(t in kept for t in held) >= 8 and sum(t in kept for t in other) <= 2
    assert {r for r, t in zip(marked["realness_reason"], marked["text"]) if t in other} <= {"looks_synthetic", None}
    p = np.array(marked["realness_p_real"])
    assert p[:10].mean() > p[10:].mean() + 0.2
    d = gate.describe()
    assert d["discriminator_auc"] > 0.6 and d["counts"]["dropped"] == 20 - len(kept) and d["real_rows"] == 60
    assert all((v < d["p_real_cut"]) == (t not in kept) for v, t in zip(p, ds["text"]))  # dropped iff below the cut
    # at most max_drop of the rows go, the least real-looking first
    capped = RealnessGate(real_texts=real, threshold=0.99, max_drop=0.25).fit(ds)
    assert (~capped.keep_mask).sum() == 5 and not (~capped.keep_mask)[:10].any()
    # with a label column the cap holds within each label: the all-"other" class keeps half its rows
    labelled = ds.add_column("label", ["a"] * 10 + ["b"] * 10)
    per_label = RealnessGate(real_texts=real, threshold=0.99, max_drop=0.5, label_column="label").fit(labelled)
    assert (~per_label.keep_mask)[:10].sum() == 5 and (~per_label.keep_mask)[10:].sum() == 5
    gone = np.flatnonzero(~per_label.keep_mask[10:]) + 10  # the least real-looking of "b" go
    assert set(gone) == set(np.argsort(p[10:], kind="stable")[:5] + 10)
    with pytest.raises(MissingColumnError, match="'topic'"):
        RealnessGate(real_texts=real, label_column="topic").fit(ds)
    # as weights: real-looking rows weigh more, nothing is dropped
    w = RealnessWeights(real_texts=real).fit(ds)
    out = ds.map(w, batched=True, with_indices=True)
    assert out.num_rows == 20 and np.mean(out["realness_weight"][:10]) > 3 * np.mean(out["realness_weight"][10:])


def test_rows_copying_a_demo_are_dropped_before_the_gate(tmp_path):
    from synth_datasets import Recipe
    from synth_datasets.target import add_realness_steps

    ex = load_examples(_write(tmp_path / "rt.jsonl", _sample(60, seed=4)))
    long_train = [t for t in ex.train["text"] if len(t.split()) >= 16][:3]
    fresh = [r["text"] for r in _sample(400, seed=9) if r["text"] not in ex.train["text"]][:12]
    copies = ["Honestly: " + t for t in long_train]  # a demo copied inside a new sentence
    rows = {"text": fresh + copies, "label": ["positive"] * (len(fresh) + len(copies))}
    r = Recipe("t", source=Dataset.from_dict(rows), text_column="text")
    add_realness_steps(r, ex, column="text", gate=False)
    assert [s.name for s in r.steps] == ["copied-demos", "close-to-real"]
    ds, record = r.run()
    assert sorted(ds["text"]) == sorted(fresh) and len(long_train) == 3
    step = record.steps[0]
    assert step.rows_in - step.rows_out == 3 and "shown as demos" in step.describe["reference"]["name"]


def test_close_to_real_measures_against_held_out_rows():
    rows = _sample(300, seed=3)
    train = {"text": [r["text"] for r in rows[:40]], "label": [r["label"] for r in rows[:40]]}
    test = {"text": [r["text"] for r in rows[40:140]], "label": [r["label"] for r in rows[40:140]]}
    good = Dataset.from_dict({"text": [r["text"] for r in rows[140:]], "label": [r["label"] for r in rows[140:]]})
    noise = Dataset.from_dict({"text": good["text"], "label": [["fresh", "rotten"][i % 2] for i in range(160)]})
    a = CloseToReal(train=train, test=test, column="text").fit(good).results
    b = CloseToReal(train=train, test=test, column="text").fit(noise).results
    assert a["trtr_accuracy"] == b["trtr_accuracy"] and a["synthetic_rows"] == 160 and a["held_out_rows"] == 100
    assert a["tstr_accuracy_same_size"] is not None and a["real_train_rows"] == 40
    assert a["tstr_accuracy"] > b["tstr_accuracy"] + 0.1  # real labelled rows train better than shuffled labels
    assert a["discriminator_auc"] < 0.75 and 0 < a["precision"] <= 1  # real vs real: hard to tell apart


# -- the text-classification builder ---------------------------------------------------------------
def _tc_params(path, n=8):
    return {"task": "movie review snippet", "labels": ["fresh", "rotten"], "n": n, "examples": str(path),
            "label_descriptions": ["fresh=the critic liked the film"], "dimensions": 2, "values": 3}


@pytest.mark.parametrize("change, message", [
    ({"labels": ["fresh"]}, "give at least two labels"),
    ({"labels": ["fresh", "Fresh"]}, "lists ['Fresh', 'fresh'] more than once"),
    ({"task": "  "}, "--task is empty"),
    ({"label_descriptions": ["stale=old"]}, "names 'stale', which is not one of --labels"),
    ({"examples": "COLUMNS"}, "column 'label' is not in it"),
])
def test_text_classification_bad_input_fails_before_any_model_call(tmp_path, embedded_llm, change, message):
    path = _write(tmp_path / "rt.csv", _sample(30))
    params = {**_tc_params(path), **change}
    if params["examples"] == "COLUMNS":
        params["examples"] = str(_write(tmp_path / "x.jsonl", [{"text": r["text"]} for r in _sample(30)]))
    before = dict(embedded_llm.stats)
    with pytest.raises((InvalidParameterError, MissingColumnError)) as e:
        builders.load("text-classification").recipe(llm=embedded_llm, **params)
    assert message in str(e.value)
    assert dict(embedded_llm.stats) == before


def test_text_classification_options_parse_lists(tmp_path):
    b = builders.load("text-classification")
    args = vars(_builder_parser(b, {}).parse_args(["--task", "news article", "--labels", "sport", "tech", "--n", "3",
                                                   "--label-descriptions", "tech=gadgets and software"]))
    assert args["labels"] == ["sport", "tech"] and args["label_descriptions"] == ["tech=gadgets and software"]
    cmd = b.command({"task": "news article", "labels": ["sport", "tech"], "n": 3}, out="o")
    assert cmd == "synth-datasets build text-classification --task 'news article' --labels sport tech --n 3 --out o"


def test_text_classification_end_to_end(tmp_path, embedded_llm):
    path = _write(tmp_path / "rt.csv", _sample(40))
    out = tmp_path / "tc"
    ds, res = run_build(builders.load("text-classification"), _tc_params(path, n=12), out=str(out), llm=embedded_llm)
    prov = res.provenance
    steps = {s["name"]: s for s in prov["steps"]}
    assert list(steps) == ["conditions", "attributes", "demos", "generate", "drop-demos", "trim", "truncated", "length", "dedup",
                           "llm-label", "noise", "copied-demos", "realness", "close-to-real"]
    usage = steps["attributes"]["usage"]
    assert steps["generate"]["rows_out"] == 12 and usage["requests"] + usage["cache_hits"] == 5  # 1 + 2 labels x 2
    ex = load_examples(path, labels=["fresh", "rotten"])
    published = load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train")
    assert published.features["label"] == ClassLabel(names=["fresh", "rotten"])
    assert {"text", "label"} <= set(published.column_names) and "demos" not in published.column_names
    assert published.num_rows == ds.num_rows >= 1
    attrs = steps["attributes"]["describe"]["params"]
    assert len(attrs["dimensions"]) == 2 and set(attrs["values"]) == {"fresh", "rotten"}
    assert attrs["descriptions"] == {"fresh": "the critic liked the film"}
    card = (out / "README.md").read_text()
    for dim in attrs["dimensions"]:
        assert dim in card
    first = attrs["values"]["fresh"][attrs["dimensions"][0]][0]
    assert first in card
    results = steps["close-to-real"]["describe"]["results"]
    assert "## How close to real" in card
    assert f"Against **rt.csv** (40 real rows; {len(ex.test['text'])} held out" in card
    if "tstr_accuracy" in results:
        assert f"**{results['tstr_accuracy']:.4g}** accuracy on the held-out rows (TSTR)" in card
        assert 0 <= results["tstr_accuracy"] <= 1 and 0 < results["trtr_accuracy"] <= 1
    else:
        assert "not measured" in card
    # every published text was generated for its label with that label's attributes
    names = published.features["label"].names
    for row in published:
        assert row["attributes"].split("; ")[0].split(": ", 1)[1] in attrs["values"][names[row["label"]]][
            attrs["dimensions"][0]]


def test_movie_reviews_with_examples_publishes(tmp_path, embedded_llm):
    """The whole --examples path of movie-reviews, published: no `length` condition column is made then, so
    none is declared (it used to crash the report after every row had been generated)."""
    path = _write(tmp_path / "rt.csv", _sample(40))
    out = tmp_path / "mr"
    ds, res = run_build(builders.load("movie-reviews"), {"n": 6, "examples": str(path), "max_new_tokens": 24},
                        out=str(out), llm=embedded_llm)
    assert "length" not in ds.column_names and (out / "README.md").is_file()
    assert res.provenance["card"]["label_columns"] == ["label", "style"]
    assert "## How close to real" in (out / "README.md").read_text()
