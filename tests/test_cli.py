"""The offline build command, end to end, in a subprocess, as a user runs it."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args, env_cache, **extra_env):
    import os

    env = {**os.environ, "SYNTH_DATASETS_CACHE": str(env_cache), **extra_env}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env)


def test_generate_offline_then_repeat_from_provenance(tmp_path):
    """The acceptance path: a fresh process builds offline (progress bars, data, card, provenance,
    report); `--from-provenance` repeats it with the same rows and no model call."""
    out = tmp_path / "reviews"
    r = run("-m", "synth_datasets.cli", "generate", "--n", "4", "--out", str(out), env_cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Generating reviews" in r.stderr and "Removing duplicates" in r.stderr  # each step's bar
    assert "Loading model " in r.stderr and "Loaded in " in r.stderr  # the model load is said, not silent
    assert "Generating: 100%|" in r.stderr and "4/4" in r.stderr  # rows finished inside the generation step
    assert "Recipe movie-reviews: 5/5 steps done" in r.stderr and "row-steps" in r.stderr  # the whole run
    table = pq.read_table(out / "data" / "train-00000-of-00001.parquet")
    rows = table.to_pylist()
    prov = json.loads((out / "provenance.json").read_text())
    assert [s["describe"]["type"] for s in prov["steps"]] == ["Conditions", "TextGenerator", "Truncated", "Length",
                                                              "ExactDuplicates"]
    assert prov["steps"][1]["rows_out"] == 4 and prov["steps"][-1]["rows_out"] == table.num_rows >= 1
    assert {row["label"] for row in rows} <= {0, 1}  # a ClassLabel: the names are in the schema
    from datasets import load_dataset

    assert load_dataset(str(out), split="train").features["label"].names == ["positive", "negative"]
    assert all(row["review"] and len(row["review"].split()) >= 10 and row["review_error"] is None for row in rows)
    assert "{{ label }}" in prov["steps"][1]["describe"]["template"]["user"]
    assert prov["usage"]["requests"] == 4 and prov["params"]["n"] == 4 and prov["builder"]["name"] == "movie-reviews"
    assert prov["command"].startswith("synth-datasets build movie-reviews --n 4")
    assert (out / "README.md").read_text().startswith("---\n") and (out / "report" / "lengths.png").stat().st_size
    again = run("-m", "synth_datasets.cli", "build", "--from-provenance", str(out / "provenance.json"),
                "--out", str(tmp_path / "again"), env_cache=tmp_path / "cache")
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["requests"] == 0 and summary["cache_hits"] == 4
    assert pq.read_table(tmp_path / "again" / "data").to_pylist() == rows
    assert json.loads((tmp_path / "again" / "provenance.json").read_text())["params"] == prov["params"]


def test_builder_against_a_server_and_rerun_from_cache(llama_server, tmp_path):
    args = ["-m", "builders.movie_reviews", "--n", "6", "--model", llama_server,
            "--model-name", "smollm2"]
    first = run(*args, "--out", str(tmp_path / "a"), env_cache=tmp_path / "cache")
    assert first.returncode == 0, first.stderr[-3000:]
    again = run(*args, "--out", str(tmp_path / "b"), env_cache=tmp_path / "cache")
    stats = json.loads(again.stdout.strip().splitlines()[-1])
    assert stats["requests"] == 0 and stats["cache_hits"] == 6
    a = pq.read_table(tmp_path / "a" / "data").to_pylist()
    b = pq.read_table(tmp_path / "b" / "data").to_pylist()
    assert a == b


def test_bad_cli_input_is_reported_before_work(tmp_path):
    r = run("-m", "builders.movie_reviews", "--n", "0", "--out", str(tmp_path / "x"), env_cache=tmp_path / "c")
    assert r.returncode == 2 and "n=0" in r.stderr and "at least one row" in r.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    r = run("-m", "builders.movie_reviews", "--n", "2", "--out", str(busy), env_cache=tmp_path / "c")
    assert r.returncode == 2 and "already exists and is not empty" in r.stderr
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    r = run("-m", "builders.movie_reviews", "--n", "2", "--out", str(tmp_path / "y"), "--model",
            "/no/such/model.gguf", env_cache=tmp_path / "c")
    assert r.returncode == 2 and "does not exist" in r.stderr and not (tmp_path / "y").exists()


def _provenance(tmp_path, **changes):
    import builders

    prov = {"format": 1, "name": "movie-reviews", "builder": builders.load("movie-reviews").describe(),
            "params": {"n": 2, "seed": 0}, "library": {}, "usage": {}, "steps": [],
            "some_future_field": {"kept": True}}  # informational fields may come and go
    prov.update(changes)
    path = tmp_path / "provenance.json"
    path.write_text(json.dumps(prov))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"params": None}, r"field 'params' must be an object of the builder's parameters.*holds None"),
    ({"builder": "movie-reviews"}, r"field 'builder' must be an object \{name, path, sha256, registered\}.*"
                                   r"holds 'movie-reviews'"),
    ({"builder": {"name": "movie-reviews", "path": 7}}, r"field 'builder.path' must be a valid string.*holds 7"),
    ({"params": {"n": 2, "temprature": 0.5}}, r"params.temprature is not a parameter of builder movie-reviews"),
    ({"params": {"n": "two"}}, r"params.n must be a int for builder movie-reviews, but it holds 'two'"),
])
def test_from_provenance_checks_builder_and_params(tmp_path, capsys, changes, message):
    """Checked against a schema before anything runs: one `error:` line naming the field, no traceback."""
    from synth_datasets.cli import main

    path = _provenance(tmp_path, **changes)
    rc = main(["build", "--from-provenance", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(message, err), err
    assert err.startswith("error: --from-provenance ") and err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_help_has_a_usage_line_option_descriptions_and_no_markup(tmp_path):
    top = run("-m", "synth_datasets.cli", "--help", env_cache=tmp_path / "c")
    build = run("-m", "synth_datasets.cli", "build", "--help", env_cache=tmp_path / "c")
    builder = run("-m", "synth_datasets.cli", "build", "movie-reviews", "--help", env_cache=tmp_path / "c")
    assert top.returncode == build.returncode == builder.returncode == 0
    assert build.stdout.startswith("usage: synth-datasets build NAME_OR_SCRIPT")
    assert "synth-datasets build --from-provenance FILE" in build.stdout
    for out in (top.stdout, build.stdout, builder.stdout):
        assert "``" not in out and ":func:" not in out  # no RST markup
    # every builder option is described, from the builder's docstring
    assert "rows of sampled conditions (label x style x length). (default: 50)" in " ".join(builder.stdout.split())
    assert "token limit per review; default: the longest requested length" in " ".join(builder.stdout.split())
    for flag in ("--n ", "--seed", "--n-per-row", "--max-new-tokens", "--batch-size", "--min-words", "--max-words",
                 "--model ", "--model-name"):
        line = " ".join(builder.stdout.split(flag, 1)[1].split("(default:")[0].split())
        assert len(line) > 20, f"{flag} has no description"


def test_an_unreachable_hub_is_one_error_line_before_work(tmp_path):
    r = run("-m", "synth_datasets.cli", "build", "movie-reviews", "--n", "2", "--push-to-hub", "test-user/x",
            env_cache=tmp_path / "c", HF_ENDPOINT="http://127.0.0.1:1", HF_TOKEN="hf_TESTSENTINEL_cli_0123456789abc")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Cannot reach the Hub at http://127.0.0.1:1"), r.stderr
    assert "hf_TESTSENTINEL" not in r.stderr and not (tmp_path / "c").exists()  # nothing generated, no cache


def test_a_huge_n_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """--n 1000000000 used to end in a raw MemoryError."""
    from synth_datasets.cli import main

    monkeypatch.setenv("SYNTH_DATASETS_CACHE", str(tmp_path / "cache"))
    rc = main(["build", "movie-reviews", "--n", "1000000000", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "--n 1,000,000,000 is more than the most rows one build makes (1,000,000)" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
