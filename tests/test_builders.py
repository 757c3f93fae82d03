"""Builders end to end on the embedded model: movie-reviews and qa-pairs, a user's own builder script,
--from-provenance, a Hub round-trip of a built dataset, and one clear error per bad input."""

import json
import shlex
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard
from PIL import Image

import builders
from builders import movie_reviews
from synth_datasets.cli import _builder_from_provenance, _builder_parser, main, run_build
from synth_datasets.curate.minhash import normalize
from synth_datasets.io import file_sha256
from synth_datasets.llm import embedded_model_path
from synth_datasets.metrics.diversity import diversity

TOKEN = "hf_TESTSENTINEL_builders_0123456789abcdef"
PARAMS = {"n": 6}  # the builder's own token budget (from the longest asked length): the published setting


def _rows(folder):
    return pq.read_table(Path(folder) / "data").to_pylist()


@pytest.fixture(scope="module")
def movie(embedded_llm, tmp_path_factory):
    out = tmp_path_factory.mktemp("movie") / "movie-reviews"
    ds, res = run_build(builders.load("movie-reviews"), dict(PARAMS), out=str(out), llm=embedded_llm,
                        command="synth-datasets build movie-reviews --n 6")
    return ds, res, out


def test_movie_reviews_end_to_end(movie):
    ds, res, out = movie
    prov = json.loads((out / "provenance.json").read_text())
    steps = prov["steps"]
    assert [s["name"] for s in steps] == ["conditions", "generate", "truncated", "length", "dedup"]
    assert steps[1]["rows_out"] == 6 and steps[-1]["rows_out"] == ds.num_rows == len(_rows(out)) >= 1
    assert all(a["rows_out"] == b["rows_in"] for a, b in zip(steps, steps[1:]))  # rows after every step
    assert steps[1]["usage"]["requests"] + steps[1]["usage"]["cache_hits"] == 6
    # seeds, model file hash, sampling parameters and the template, as run
    gen = steps[1]["describe"]
    assert gen["llm"]["identity"]["sha256"] == file_sha256(embedded_model_path())
    assert gen["params"] == {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 224, "seed": 0, "stop": [],
                             "logprobs": False}
    assert gen["template"]["user"] == movie_reviews.TEMPLATE.user and steps[0]["describe"]["seed"] == 0
    assert prov["params"] == {"n": 6, "seed": 0, "n_per_row": 1, "max_new_tokens": None, "batch_size": 128,
                              "min_words": 10, "max_words": 200, "model": None, "model_name": None, "examples": None,
                              "realness_gate": True}
    assert prov["builder"] == {"name": "movie-reviews", "path": "builders/movie_reviews.py", "registered": True,
                               "sha256": file_sha256(movie_reviews.__file__), "file": "builder.py"}
    assert (out / "builder.py").read_bytes() == Path(movie_reviews.__file__).read_bytes()
    assert prov["reproduce"] == ("synth-datasets build movie-reviews --n 6 --seed 0 --n-per-row 1 --batch-size 128 "
                                 "--min-words 10 --max-words 200 --realness-gate --out ../movie-reviews-reproduced")
    # the rows keep the promises of the steps
    rows = _rows(out)
    assert all(10 <= len(r["review"].split()) <= 200 and r["review_error"] is None for r in rows)
    assert all(r["review_finish_reason"] == "stop" for r in rows)  # truncated reviews were dropped
    assert len({normalize(r["review"]) for r in rows}) == len(rows)
    label = load_dataset(str(out), split="train").features["label"]  # a ClassLabel over the builder's labels
    assert label.names == movie_reviews.LABELS and {r["label"] for r in rows} <= {0, 1}
    assert prov["metrics"]["diversity"]["distinct_1"] == pytest.approx(diversity(ds["review"])["distinct_1"])
    # the card says all of it to a person
    card = (out / "README.md").read_text()
    assert gen["llm"]["identity"]["sha256"] in card and movie_reviews.TEMPLATE.user in card
    assert prov["reproduce"] in card
    assert "synth-datasets build --from-provenance provenance.json --out ../movie-reviews-reproduced" in card
    assert "| generate | map | 6 | 6 | 100.0% |" in card
    assert "| `label` | ClassLabel (positive, negative) | condition sampled by step `conditions`" in card
    # the generator's line names sampling parameters; a filter's parameters are not "sampling"
    assert "- Sampling: temperature=0.8, top_p=0.95" in card
    assert "- Parameters: column=review, min_chars=None" in card and "- Sampling: column=" not in card
    for name in ("lengths.png", "labels_label.png", "labels_style.png", "steps.png"):
        with Image.open(out / "report" / name) as im:
            im.load()
            assert im.size == (640, 400)


def test_published_reviews_are_rarely_truncated_and_the_card_says_how_many_were(movie):
    """Issue 10: with the builder's token budget, under 5% of the published reviews end at the limit
    (those that still do at generation are dropped, and the card reports both shares)."""
    ds, res, out = movie
    prov = res.provenance
    published = [r["review_finish_reason"] for r in _rows(out)]
    assert published.count("length") / len(published) < 0.05
    made = prov["steps"][1]["finish_reasons"]["review_finish_reason"]
    assert sum(made.values()) == 6
    dropped = prov["steps"][2]
    assert dropped["rows_in"] - dropped["rows_out"] >= made.get("length", 0)  # every cut review is gone
    t = prov["quality"]["truncated"]["review"]
    assert t["generated"] == {"rows": 6, "length": made.get("length", 0), "share": round(made.get("length", 0) / 6, 4)}
    assert t["published"]["length"] == 0
    card = (out / "README.md").read_text()
    assert (f"**Truncated** `review`: 0 of {ds.num_rows} published rows (0.0%) end at `max_new_tokens`" in card
            and f"at generation {made.get('length', 0)} of 6" in card)
    assert movie_reviews.token_budget() >= 100 * 1.4 * 1.5  # the longest asked length, with margin


def test_from_provenance_repeats_the_rows_from_the_cache(movie, embedded_llm, tmp_path):
    ds, _, out = movie
    prov = json.loads((out / "provenance.json").read_text())
    builder = _builder_from_provenance(prov, str(out / "provenance.json"))
    params = vars(_builder_parser(builder, prov["params"]).parse_args([]))  # what the CLI parses from the file
    params = {k: params[k] for k in builder.parameters()}
    assert params == prov["params"]
    before = dict(embedded_llm.stats)
    again, res = run_build(builder, params, out=str(tmp_path / "again"), llm=embedded_llm)
    assert _rows(tmp_path / "again") == _rows(out)
    assert embedded_llm.stats["requests"] == before["requests"]  # no model call: every answer was cached
    assert res.provenance["usage"]["cache_hits"] == 6 and res.provenance["params"] == prov["params"]
    assert res.provenance["usage"]["row_completion_tokens"] == prov["usage"]["row_completion_tokens"] > 0


def test_built_dataset_round_trips_through_the_hub(movie, hub_server):
    ds, _, out = movie
    res = builders_push(out, "test-user/movie-reviews")
    assert hub_server.commits("test-user/movie-reviews")[0]["oid"] == res.commit
    assert load_dataset("test-user/movie-reviews", split="train").to_list() == _rows(out)
    card = DatasetCard.load("test-user/movie-reviews")
    prov = json.loads((out / "provenance.json").read_text())
    assert card.data.synth_datasets["params"] == prov["params"]
    assert card.data.synth_datasets["builder"]["sha256"] == prov["builder"]["sha256"]


def builders_push(out, repo):
    from synth_datasets.hub import push_folder

    return push_folder(out, repo, token=TOKEN)


def test_movie_reviews_v2_rotation_covering_conditions_and_real_demos(embedded_llm, tmp_path):
    """v2: rotated wordings, latin-covered conditions without the excluded pair, nearest real demos of the
    row's label from a local pool file (fresh/rotten mapped), first-paragraph stop; checked before work."""
    from datasets import Dataset
    from realdata import rotten_tomatoes

    from builders import movie_reviews_v2 as v2
    from synth_datasets.errors import InvalidParameterError

    pool = tmp_path / "rt.jsonl"
    pool.write_text("".join(json.dumps(r) + "\n" for r in rotten_tomatoes(30, seed=5)))
    b = builders.load("movie-reviews-v2")
    out = tmp_path / "v2"
    ds, _ = run_build(b, {"n": 6, "demos": 2, "demo_pool": str(pool), "max_new_tokens": 32}, out=str(out),
                      llm=embedded_llm, command="synth-datasets build movie-reviews-v2 --n 6")
    prov = json.loads((out / "provenance.json").read_text())
    steps = {s["name"]: s for s in prov["steps"]}
    assert list(steps) == ["conditions", "demos", "generate", "truncated", "length", "dedup"]
    assert steps["generate"]["rows_out"] == 6 and steps["generate"]["describe"]["params"]["stop"] == ["\n\n"]
    cond = steps["conditions"]["describe"]
    assert cond["design"] == "latin" and cond["exclude"] == [{"label": ["negative"], "style": ["enthusiastic"]}]
    assert steps["demos"]["describe"]["pool"]["size"] == 30 and steps["demos"]["describe"]["strategy"] == "nearest"
    # the conditions and demos as the recipe made them (before generation): recomputed from the steps
    r = b.recipe(n=6, demos=2, demo_pool=str(pool), max_new_tokens=32, llm=embedded_llm)
    pre = r.steps[0].fn, r.steps[1].fn
    base = Dataset.from_dict({"id": list(range(6))}).map(pre[0], batched=True, with_indices=True)
    base = base.map(pre[1], batched=True, with_indices=True)
    assert sorted(base["template_id"][:3]) == sorted(v2.WORDINGS)  # every wording before repeats
    assert sorted(set(base["genre"])) == sorted(base["genre"])  # 6 distinct genres of 12
    assert not any(lab == "negative" and st == "enthusiastic" for lab, st in zip(base["label"], base["style"]))
    rt = {r_["text"]: r_["label"] for r_ in rotten_tomatoes(30, seed=5)}
    want = {"positive": "fresh", "negative": "rotten"}
    for lab, shown in zip(base["label"], base["demos"]):
        texts = shown.split("\n\n")
        assert len(texts) == 2 and all(rt[t] == want[lab] for t in texts)
    prompt = v2.rotation(True).render(base[0])[-1]["content"]
    assert prompt.startswith("Real reviews of this kind") and base[0]["genre"] in prompt
    assert ds.num_rows == steps["dedup"]["rows_out"] and set(ds.column_names) >= {"review", "genre", "template_id"}
    with pytest.raises(InvalidParameterError, match="--demos needs --demo-pool"):
        b.recipe(n=2, demos=2, llm=embedded_llm)
    with pytest.raises(InvalidParameterError, match="needs 'text' and 'label'"):
        (tmp_path / "bad.csv").write_text("review,stars\nok,3\n")
        b.recipe(n=2, demos=1, demo_pool=str(tmp_path / "bad.csv"), llm=embedded_llm)


def test_qa_pairs_chain(embedded_llm, tmp_path):
    ds, res = run_build(builders.load("qa-pairs"), {"n": 2, "max_new_tokens": 20}, out=str(tmp_path / "qa"),
                        llm=embedded_llm)
    steps = res.provenance["steps"]
    assert [s["name"] for s in steps] == ["conditions", "qa-chain", "dedup"]
    assert all(a["rows_out"] == b["rows_in"] for a, b in zip(steps, steps[1:]))
    stats = steps[1]["stats"]  # every sub-step's rows, as run
    assert stats["question.rows_in"] == 2 and stats["answer.rows_out"] == stats["question-length.rows_out"]
    calls = steps[1]["usage"]["requests"] + steps[1]["usage"]["cache_hits"]
    assert calls == 2 + stats["answer.rows_in"]  # questions for every row, answers for the rows the gate kept
    assert ds.num_rows == steps[2]["rows_out"] <= stats["answer.rows_out"]
    assert all(len(q.split()) >= 4 for q in ds["question"]) and all(a is not None for a in ds["answer"])
    card = (tmp_path / "qa" / "README.md").read_text()
    assert builders.qa_pairs.QUESTION.user in card and builders.qa_pairs.ANSWER.user in card
    # the card shows the chain's sub-steps with their rows, in order
    lines = card.splitlines()
    at = lines.index("| sub-step | rows in | rows out | dropped (gate) | skipped (an input failed) |")
    links = lines[at + 2:at + 5]
    assert links[0] == "| `question` | 2 | 2 | 0 | 0 |"
    assert links[-1] == (f"| `answer` | {stats['answer.rows_in']} | {stats['answer.rows_out']} | 0 | "
                         f"{stats.get('answer.skipped', 0)} |")
    assert links[1] == (f"| `question-length` | 2 | {stats['question-length.rows_out']} | "
                        f"{stats['question-length.dropped']} | 0 |")


def test_card_shows_sub_step_counts_only_when_they_cover_the_step():
    """A chain object reused in the same process keeps counting: counts that do not match the step's rows
    are not this run's, and a curator's counts (``total``, ``dropped_*``) are not sub-steps."""
    from synth_datasets.hub.card import _links

    ok = {"rows_in": 4, "stats": {"q.rows_in": 4, "q.rows_out": 4, "gate.rows_in": 4, "gate.rows_out": 3,
                                  "gate.dropped": 1, "a.rows_in": 3, "a.rows_out": 3, "a.skipped": 1}}
    assert [(x["name"], x["rows_in"], x["rows_out"], x["dropped"], x["skipped"]) for x in _links(ok)] == [
        ("q", 4, 4, 0, 0), ("gate", 4, 3, 1, 0), ("a", 3, 3, 0, 1)]
    assert _links({**ok, "rows_in": 2}) == []  # counts of two runs
    assert _links({"rows_in": 4, "stats": {"total": 4, "dropped_truncated": 1}}) == []
    assert _links({"rows_in": 4, "stats": None}) == [] and _links({"rows_in": 4}) == []


USER_BUILDER = '''"""Numbered notes (a builder with no model)."""
from datasets import Dataset
from synth_datasets import Recipe

NAME = "notes"


def add_text(batch):
    return {"text": [f"note number {i} says {'hello ' * (i % 3 + 1)}".strip() for i in batch["id"]]}


def recipe(*, n: int = 4, shout: bool = False):
    r = Recipe(NAME, source=lambda: Dataset.from_dict({"id": list(range(n))}), license="mit")
    r.map(add_text, name="text")
    if shout:
        r.map(lambda b: {"text": [t.upper() for t in b["text"]]}, name="shout")
    return r
'''


def test_a_users_builder_script(tmp_path, hub_server, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    script = tmp_path / "my_builder.py"
    script.write_text(USER_BUILDER)
    assert main(["build", str(script), "--n", "5", "--shout", "--out", str(tmp_path / "a")]) == 0
    prov = json.loads((tmp_path / "a" / "provenance.json").read_text())
    # not this machine's path: the file name (the script is outside the working folder), and the script itself
    assert prov["builder"] == {"name": "notes", "path": "my_builder.py", "sha256": file_sha256(script),
                               "registered": False, "file": "builder.py"}
    assert (tmp_path / "a" / "builder.py").read_text() == USER_BUILDER
    assert str(tmp_path) not in (tmp_path / "a" / "README.md").read_text() + json.dumps(prov)
    assert prov["params"] == {"n": 5, "shout": True} and [s["name"] for s in prov["steps"]] == ["text", "shout"]
    assert prov["reproduce"] == "synth-datasets build builder.py --n 5 --shout --out ../notes-reproduced"
    assert _rows(tmp_path / "a")[1] == {"id": 1, "text": "NOTE NUMBER 1 SAYS HELLO HELLO"}
    # the card's commands, as printed, run in the dataset's folder and write beside it
    monkeypatch.chdir(tmp_path / "a")
    assert main(["build", "--from-provenance", "provenance.json", "--out", "../notes-reproduced"]) == 0
    assert _rows(tmp_path / "notes-reproduced") == _rows(tmp_path / "a")
    assert main(shlex.split(prov["reproduce"])[1:] + ["--overwrite"]) == 0
    assert _rows(tmp_path / "notes-reproduced") == _rows(tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["README.md", "builder.py", "data", "provenance.json",
                                                                   "report"]  # nothing written into it
    monkeypatch.chdir(tmp_path)
    assert main(["build", "--from-provenance", str(tmp_path / "a" / "provenance.json"), "--out",
                 str(tmp_path / "b")]) == 0
    assert _rows(tmp_path / "b") == _rows(tmp_path / "a")
    assert main(["build", str(script), "--n", "3", "--push-to-hub", "test-user/notes"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["repo_id"] == "test-user/notes" and summary["rows"] == 3
    assert summary["commit"] == hub_server.commits("test-user/notes")[0]["oid"]
    assert load_dataset("test-user/notes", split="train")["text"][2] == "note number 2 says hello hello hello"
    # the original script changed since: --from-provenance runs the shipped copy, the rows are the recorded ones
    script.write_text(USER_BUILDER.replace("note number", "memo"))
    assert main(["build", "--from-provenance", str(tmp_path / "a" / "provenance.json"), "--out",
                 str(tmp_path / "c")]) == 0
    assert _rows(tmp_path / "c") == _rows(tmp_path / "a")
    # without the shipped copy, the changed script at the recorded path is used, and that is said
    (tmp_path / "a" / "builder.py").unlink()
    monkeypatch.chdir(tmp_path)  # the recorded path (my_builder.py) is relative to the working folder
    capsys.readouterr()
    assert main(["build", "--from-provenance", str(tmp_path / "a" / "provenance.json"), "--out",
                 str(tmp_path / "d")]) == 0
    assert "changed since the recorded run" in capsys.readouterr().err
    assert _rows(tmp_path / "d")[1]["text"] == "MEMO 1 SAYS HELLO HELLO"  # the changed script ran


@pytest.mark.parametrize("args, message", [
    (["build", "no-such-builder", "--out", "{tmp}/o"], "Unknown builder 'no-such-builder'. Known builders: "
                                                      "['magpie', 'movie-reviews', 'movie-reviews-v2', 'qa-pairs', "
                                                      "'support-dialogues', 'text-classification']"),
    (["build", "{tmp}/missing/builder.py", "--out", "{tmp}/o"], "does not exist"),
    (["build", "{tmp}/not_a_builder.py", "--out", "{tmp}/o"], "defines no recipe() function"),
    (["build", "{tmp}/broken.py", "--out", "{tmp}/o"], "has a syntax error on line 1"),
    (["build", "movie-reviews", "--push-to-hub", "user/bad..id"], "Invalid Hub repo id 'user/bad..id'"),
    (["build", "movie-reviews", "--out", "{tmp}/a_file/out"], "is not a writable folder"),
    (["build", "movie-reviews", "--out", "/proc/nope"], "Cannot create /proc/nope"),
    (["build", "movie-reviews", "--out", "{tmp}/busy"], "--overwrite on the command line"),
    (["build", "movie-reviews", "--n", "2"], "Nothing to write: pass --out DIR and/or --push-to-hub"),
    (["build", "movie-reviews", "--n", "0", "--out", "{tmp}/o"], "n=0: nothing to generate"),
    (["build", "movie-reviews", "--push-to-hub", "test-user/x"], "No Hugging Face token found"),
    (["build", "--from-provenance", "{tmp}/nope.json", "--out", "{tmp}/o"], "no such file"),
    (["build", "--from-provenance", "{tmp}/a_file", "--out", "{tmp}/o"], "not a readable JSON file"),
    (["push", "{tmp}", "test-user/x"], "is not a published dataset folder"),
])
def test_bad_input_gets_one_clear_error_and_nothing_is_written(args, message, tmp_path, monkeypatch, capsys):
    for env in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(env, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYNTH_DATASETS_CACHE", str(cache))
    (tmp_path / "not_a_builder.py").write_text("X = 1\n")
    (tmp_path / "broken.py").write_text("def recipe(:\n    pass\n")
    (tmp_path / "a_file").write_text("not json")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    before = sorted(tmp_path.rglob("*"))
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert sorted(tmp_path.rglob("*")) == before  # no output folder, no cache, no temporary files
