"""compare() and `synth-datasets compare`: generations x curators x seeds, measured.

The table's numbers are checked against a direct computation with the metrics on the same rows; the
plots are decoded; bad configurations fail before any generation (a counting generation proves it).
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from realdata import rotten_tomatoes
from synth_datasets import Recipe, Template, TextGenerator, compare, curate
from synth_datasets.cli import main
from synth_datasets.comparison import apply_curators
from synth_datasets.embeddings import embed_texts_cached
from synth_datasets.errors import InvalidParameterError
from synth_datasets.metrics.diversity import diversity
from synth_datasets.metrics.downstream import tstr
from synth_datasets.metrics.faithfulness import label_faithfulness
from synth_datasets.metrics.judge import judge_score

LABEL_MAP = {"positive": "fresh", "negative": "rotten"}


@pytest.fixture(scope="module")
def rt():
    """Real Rotten Tomatoes rows: a small test set, and a disjoint pool standing in for synthetic rows."""
    rows = rotten_tomatoes(160, seed=3)
    test = Dataset.from_list(rows[:60])
    pool = Dataset.from_list([{"text": r["text"], "label": "positive" if r["label"] == "fresh" else "negative"}
                              for r in rows[60:]])
    return test, pool


def _direct(texts, labels, real_test, seed, generated):
    """The same measures, computed straight from the metric functions (rows without text left out;
    NaN where a label has fewer than 2 rows, as compare() reports it), on the embeddings of the
    ``generated`` texts (compare embeds each generation once and measures every variant with them)."""
    pairs = [(t.strip(), y) for t, y in zip(texts, labels) if t and t.strip()]
    texts, labels = [t for t, _ in pairs], [y for _, y in pairs]
    if min(Counter(labels).values(), default=0) < 2 or len(set(labels)) < 2:
        return {"rows": len(texts), "tstr_accuracy": math.nan, "label_faithfulness": math.nan}
    all_texts = [(t or "").strip() for t in generated]
    full = embed_texts_cached(all_texts)
    x = full[[all_texts.index(t) for t in texts]]
    mapped = [LABEL_MAP[y] for y in labels]
    t = tstr(train_embeddings=x, train_labels=mapped, test_texts=list(real_test["text"]),
             test_labels=list(real_test["label"]), seed=seed)
    d = diversity(texts, embeddings=x, ngram_orders=(2,), seed=seed)
    return {"rows": len(texts), "tstr_accuracy": t["tstr_accuracy"], "tstr_macro_f1": t["tstr_macro_f1"],
            "label_faithfulness": label_faithfulness(mapped, embeddings=x, seed=seed)["overall"],
            "distinct_2": d["distinct_2"], "self_bleu": d["self_bleu"],
            "embedding_mean_pairwise_distance": d["embedding_mean_pairwise_distance"], "vendi_score": d["vendi_score"]}


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_tiny_generation_compare_matches_direct_metrics(embedded_llm, rt, tmp_path):
    """8 generated rows per seed x 2 seeds, three curators; every table value equals the metric
    computed directly on the same rows, and the generation ran once per seed, not once per variant."""
    real_test, _ = rt
    calls = []

    def reviews(seed: int) -> Recipe:
        calls.append(seed)
        gen = TextGenerator(embedded_llm, Template(user="Write a {{ label }} one-sentence movie review."),
                            output="text", seed=seed, temperature=0.8, max_new_tokens=24)
        r = Recipe("tiny", source=Dataset.from_dict({"id": list(range(8))}), text_column="text")
        r.map(lambda b: {"label": ["positive" if i % 2 == 0 else "negative" for i in b["id"]]}, name="labels")
        r.map(gen, name="generate")
        return r

    res = compare({"tiny": reviews}, curators={"none": None, "exact": curate.ExactDuplicates(column="text"),
                                               "clf": functools.partial(curate.ClassifierConsistency, column="text",
                                                                        folds=2)},
                  seeds=(0, 1), real_test=real_test, label_map=LABEL_MAP, output_dir=tmp_path / "cmp", progress=False,
                  metrics=("tstr", "label_faithfulness", "diversity", "judge"), judge_llm=embedded_llm)
    assert calls == [0, 1]
    per_seed = res.per_seed.to_list()
    assert [(r["variant"], r["seed"]) for r in per_seed] == [(v, s) for s in (0, 1) for v in ("none", "exact", "clf")]
    for seed in (0, 1):
        ds, _ = reviews(seed).run(progress=False)  # the response cache gives the same rows
        for name, cur in (("none", None), ("exact", curate.ExactDuplicates(column="text")),
                          ("clf", curate.ClassifierConsistency(column="text", folds=2, seed=seed))):
            if cur is not None:
                cur.fit(ds)
            kept = ds if cur is None else ds.filter(cur, batched=True, with_indices=True)
            want = _direct(kept["text"], kept["label"], real_test, seed, ds["text"])
            texts = [t.strip() for t in kept["text"] if t and t.strip()]
            if "rows" in want and len(want) > 3:  # measured (not NaN): the judge's mean rating, read directly
                want["judge_mean"] = judge_score(embedded_llm, texts, seed=seed)["judge_mean"]
            got = next(r for r in per_seed if r["variant"] == name and r["seed"] == seed)
            for k, v in want.items():
                assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True), (name, seed, k)
    assert any(math.isfinite(r["judge_mean"]) and 1 <= r["judge_mean"] <= 5 for r in per_seed)  # ratings were parsed
    # the summary: mean, sample sd and the paired difference to "none"
    s = {(r["variant"], r["metric"]): r for r in res.summary.to_list()}
    for v in ("none", "clf"):  # over the seeds where the value is defined (NaN: too few rows of a label)
        vals = [r["tstr_accuracy"] for r in per_seed if r["variant"] == v and not math.isnan(r["tstr_accuracy"])]
        assert s[(v, "tstr_accuracy")]["n"] == len(vals)
        assert s[(v, "tstr_accuracy")]["mean"] == pytest.approx(np.mean(vals) if vals else math.nan, nan_ok=True)
        if len(vals) > 1:
            assert s[(v, "tstr_accuracy")]["std"] == pytest.approx(np.std(vals, ddof=1))
    base = [r["rows"] for r in per_seed if r["variant"] == "none"]
    clf = [r["rows"] for r in per_seed if r["variant"] == "clf"]
    assert s[("clf", "rows")]["delta_mean"] == pytest.approx(np.mean(np.subtract(clf, base)))
    assert s[("none", "rows")]["delta_mean"] is None
    # files: plots decode as PNGs, json holds the same numbers, the card section lists every variant
    folder = tmp_path / "cmp"
    for key in ("rows", "tstr_accuracy", "label_faithfulness", "vendi_score"):
        w, h = _png_size(folder / "plots" / f"{key}.png")
        assert w > 300 and h > 200
    record = json.loads((folder / "compare.json").read_text())
    nan_as_none = [None if math.isnan(r["tstr_accuracy"]) else r["tstr_accuracy"] for r in per_seed]
    assert [r["tstr_accuracy"] for r in record["per_seed"]] == nan_as_none  # JSON has no NaN: null
    assert record["generations"]["tiny"]["0"]["rows"] == 8
    assert record["curators"]["clf"]["tiny"]["1"][0]["type"] == "ClassifierConsistency"
    md = (folder / "compare.md").read_text()
    assert md == res.markdown
    for v in ("none", "exact", "clf"):
        assert f"| {v} |" in md
    assert "![TSTR accuracy](plots/tstr_accuracy.png)" in md


def test_curators_are_fresh_per_seed_and_mappers_relabel(rt):
    """A curator instance is copied (the caller's stays unfitted); StudentRelabel maps (same rows,
    labels changed exactly as a direct fit says)."""
    _, pool = rt
    ds = pool.select(range(80))
    given = curate.StudentRelabel(column="text", folds=3)
    out, described = apply_curators(ds, given, seed=0)
    assert given._fitted is None
    direct = curate.StudentRelabel(column="text", folds=3).fit(ds)
    assert out.num_rows == ds.num_rows
    assert list(out["label"]) == direct.new_labels
    assert described[0]["type"] == "StudentRelabel"
    # a class is made per seed with that seed
    _, d0 = apply_curators(ds, curate.ClassifierConsistency, seed=0)
    _, d1 = apply_curators(ds, curate.ClassifierConsistency, seed=1)
    assert (d0[0]["params"]["seed"], d1[0]["params"]["seed"]) == (0, 1)


def test_curator_that_drops_everything_is_a_row_not_a_crash(rt):
    real_test, pool = rt
    res = compare({"pool": pool.select(range(40))}, curators={"none": None, "all": lambda b: [False] * len(b["text"])},
                  seeds=(0,), real_test=real_test, label_map=LABEL_MAP, metrics=("tstr",), progress=False)
    rows = {r["variant"]: r for r in res.per_seed.to_list()}
    assert rows["all"]["rows"] == 0 and math.isnan(rows["all"]["tstr_accuracy"])
    assert rows["none"]["rows"] == 40 and 0 < rows["none"]["tstr_accuracy"] <= 1
    assert "| all | 0 | n/a |" in res.markdown


@pytest.mark.parametrize("kwargs, message", [
    (dict(metrics=("tstr", "bleu")), "metrics="),
    (dict(metrics=("judge",)), "judge_llm"),
    (dict(seeds=(0, 0)), "seeds="),
    (dict(seeds=()), "seeds="),
    (dict(curators={"bad/name": None}), "bad/name"),
    (dict(curators={"x": 42}), "curator 'x'"),
    (dict(label_map={"positive": "good"}), "'good'"),
    (dict(real_label_column="sentiment"), "'sentiment'"),
    (dict(baseline="nope"), "baseline='nope'"),
])
def test_bad_configuration_fails_before_any_generation(rt, kwargs, message):
    real_test, pool = rt
    calls = []

    def gen(seed):
        calls.append(seed)
        return pool

    options = dict(curators={"none": None}, seeds=(0, 1), real_test=real_test, label_map=LABEL_MAP, progress=False)
    options.update(kwargs)
    with pytest.raises(InvalidParameterError, match=message.replace("(", r"\(")):
        compare({"g": gen}, **options)
    assert calls == []


def test_a_recipe_or_non_empty_output_folder_fails_early(rt, tmp_path):
    real_test, pool = rt
    with pytest.raises(InvalidParameterError, match="seed -> Recipe"):
        compare({"g": Recipe("x", source=pool)}, real_test=real_test, label_map=LABEL_MAP)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(InvalidParameterError, match="not empty"):
        compare({"g": lambda s: 1 / 0}, real_test=real_test, label_map=LABEL_MAP, output_dir=tmp_path / "full")


BUILDER = '''
from datasets import Dataset
from synth_datasets import Recipe

def recipe(*, n: int = 40, seed: int = 0, data: str = ""):
    """Rows of a parquet file, shuffled by the seed (a stand-in for a generating builder)."""
    ds = Dataset.from_parquet(data).shuffle(seed=seed).select(range(n))
    return Recipe("pool", source=ds, seed=seed, text_column="text")
'''


def test_cli_one_command_writes_table_and_plots(rt, tmp_path, capsys):
    real_test, pool = rt
    pool.to_parquet(tmp_path / "pool.parquet")
    real_test.to_parquet(tmp_path / "test.parquet")
    (tmp_path / "pool_builder.py").write_text(BUILDER)
    argv = ["compare", str(tmp_path / "pool_builder.py"), "--n", "60", "--data", str(tmp_path / "pool.parquet"),
            "--seeds", "0", "1", "--curators", "none", "NearDuplicates:threshold=0.5", "ClassifierConsistency:folds=3",
            "--real-test", str(tmp_path / "test.parquet"), "--label-map", "positive=fresh", "negative=rotten",
            "--metrics", "tstr", "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    record = json.loads((tmp_path / "out" / "compare.json").read_text())
    variants = ["none", "NearDuplicates:threshold=0.5", "ClassifierConsistency:folds=3"]
    assert [r["variant"] for r in record["per_seed"]] == variants * 2
    clf = record["curators"]["ClassifierConsistency:folds=3"]["default"]
    assert [clf[s][0]["params"]["seed"] for s in ("0", "1")] == [0, 1]  # made per seed
    for seed in (0, 1):  # the "none" row equals TSTR computed directly on the builder's rows
        ds = pool.shuffle(seed=seed).select(range(60))
        t = tstr(train_texts=list(ds["text"]), train_labels=[LABEL_MAP[y] for y in ds["label"]],
                 test_texts=list(real_test["text"]), test_labels=list(real_test["label"]), seed=seed)
        got = next(r for r in record["per_seed"] if r["variant"] == "none" and r["seed"] == seed)
        assert got["tstr_accuracy"] == pytest.approx(t["tstr_accuracy"])
    assert _png_size(tmp_path / "out" / "plots" / "tstr_accuracy.png")[0] > 300
    assert "## Compare: which technique helped" in capsys.readouterr().out
    assert record["command"].startswith("synth-datasets compare ")


@pytest.mark.parametrize("extra, message", [
    (["--curators", "Bogus"], "'Bogus' is not a curator"),
    (["--curators", "NearDuplicates:thresh=0.5"], "no option 'thresh'"),
    (["--bogus-param", "3"], "unknown option '--bogus-param'"),
    (["--vary", "colour=1,2"], "--vary"),
])
def test_cli_errors_name_the_bad_option(rt, tmp_path, capsys, extra, message):
    real_test, pool = rt
    pool.to_parquet(tmp_path / "pool.parquet")
    real_test.to_parquet(tmp_path / "test.parquet")
    (tmp_path / "pool_builder.py").write_text(BUILDER)
    argv = ["compare", str(tmp_path / "pool_builder.py"), "--data", str(tmp_path / "pool.parquet"),
            "--real-test", str(tmp_path / "test.parquet"), "--label-map", "positive=fresh", "negative=rotten", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_decontaminate_drops_rows_quoting_the_real_test_set_in_every_variant(rt, tmp_path):
    real_test, pool = rt
    quotes = [{"text": "As a critic put it: " + real_test[i]["text"], "label": "positive"} for i in range(0, 40, 5)]
    planted = Dataset.from_list(quotes + pool.to_list()[:52])  # 8 rows quoting a real test row, 52 clean ones
    planted.to_parquet(tmp_path / "pool.parquet")
    real_test.to_parquet(tmp_path / "test.parquet")
    (tmp_path / "pool_builder.py").write_text(BUILDER)
    long_enough = sum(len(real_test[i]["text"].split()) >= 13 for i in range(0, 40, 5))
    assert long_enough >= 5
    common = ["compare", str(tmp_path / "pool_builder.py"), "--n", "60", "--data", str(tmp_path / "pool.parquet"),
              "--seeds", "0", "--curators", "none", "ExactDuplicates", "--metrics", "tstr",
              "--real-test", str(tmp_path / "test.parquet"), "--label-map", "positive=fresh", "negative=rotten"]
    assert main([*common, "--decontaminate", "--out", str(tmp_path / "dec")]) == 0
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    dec = json.loads((tmp_path / "dec" / "compare.json").read_text())
    plain = json.loads((tmp_path / "plain" / "compare.json").read_text())
    assert [r["rows"] for r in plain["per_seed"]] == [60, 60]
    assert [r["rows"] for r in dec["per_seed"]] == [60 - long_enough] * 2  # every quote of 13+ words found
    steps = dec["curators"]["ExactDuplicates"]["default"]["0"]
    assert [s["type"] for s in steps] == ["Decontaminate", "ExactDuplicates"]
    assert steps[0]["reference"]["name"] == "test.parquet" and steps[0]["reference"]["rows"] == 60


def test_cli_config_file(rt, tmp_path):
    real_test, pool = rt
    pool.to_parquet(tmp_path / "pool.parquet")
    real_test.to_parquet(tmp_path / "test.parquet")
    (tmp_path / "pool_builder.py").write_text(BUILDER)
    cfg = {"builder": str(tmp_path / "pool_builder.py"), "params": {"n": 50, "data": str(tmp_path / "pool.parquet")},
           "curators": [None, {"NearDuplicates": {"threshold": 0.5}}], "seeds": [2], "metrics": ["diversity"],
           "real_test": str(tmp_path / "test.parquet"), "label_map": LABEL_MAP, "out": str(tmp_path / "out")}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert main(["compare", str(tmp_path / "c.json")]) == 0
    record = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert [r["variant"] for r in record["per_seed"]] == ["none", "NearDuplicates:threshold=0.5"]
    assert record["per_seed"][0]["rows"] == 50 and "distinct_2" in record["per_seed"][0]
    (tmp_path / "bad.json").write_text(json.dumps({**cfg, "sedes": [1]}))
    with pytest.raises(InvalidParameterError, match="unknown key 'sedes'"):
        from synth_datasets.comparison.cli import main as compare_main

        compare_main([str(tmp_path / "bad.json")])


def test_cli_vary_makes_one_generation_per_value(rt, tmp_path):
    """--vary n=30,50: two generations, each with every curator; the rows column says which is which."""
    real_test, pool = rt
    pool.to_parquet(tmp_path / "pool.parquet")
    real_test.to_parquet(tmp_path / "test.parquet")
    (tmp_path / "pool_builder.py").write_text(BUILDER)
    assert main(["compare", str(tmp_path / "pool_builder.py"), "--data", str(tmp_path / "pool.parquet"),
                 "--vary", "n=30,50", "--curators", "none", "ExactDuplicates", "--seeds", "0", "--metrics", "tstr",
                 "--real-test", str(tmp_path / "test.parquet"), "--label-map", "positive=fresh", "negative=rotten",
                 "--out", str(tmp_path / "out")]) == 0
    record = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert [(r["variant"], r["rows"]) for r in record["per_seed"]] == [
        ("n=30+none", 30), ("n=30+ExactDuplicates", 30), ("n=50+none", 50), ("n=50+ExactDuplicates", 50)]
    # each generation's curators are compared with that generation's own "none"
    s = {(r["variant"], r["metric"]): r for r in record["summary"]}
    assert s[("n=50+ExactDuplicates", "rows")]["delta_mean"] == 0
