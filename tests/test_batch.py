"""Batch mode (``LLM(url, mode="batch")``) over real HTTP against our loopback Files + Batches server."""

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from datasets import Dataset

from batch_server import BatchServer
from synth_datasets import LLM, EndpointConfigError, InvalidParameterError, Recipe, Template, TextGenerator, publish
from synth_datasets.llm import ChatRequest, SamplingParams
from synth_datasets.llm.batch import BatchStore, batch_digest, state_path
from synth_datasets.llm.cache import request_key

KEY = "sk-batch-test-0123456789abcdef"
MODEL = "gpt-4o-mini"
REPO = Path(__file__).resolve().parents[1]
# The first attempt of the done-when test, run in a subprocess that the test kills mid-poll.
FIRST_ATTEMPT = """
import sys
from datasets import Dataset
from synth_datasets import LLM, Template, TextGenerator
url, cache = sys.argv[1], sys.argv[2]
llm = LLM(url, model="gpt-4o-mini", mode="batch", poll_interval=0.05, cache=cache)
gen = TextGenerator(llm, Template(user="Write review number {{ i }}."), max_new_tokens=32)
Dataset.from_dict({"i": list(range(2000))}).map(gen, batched=True, batch_size=2000)
print("finished")
"""


@pytest.fixture(scope="module")
def _server():
    server = BatchServer().start()
    yield server
    server.stop()


@pytest.fixture()
def server(_server):
    _server.reset()
    return _server


def requests_for(n: int, word: str = "hello") -> list[ChatRequest]:
    return [ChatRequest.of([{"role": "user", "content": f"{word} {i}"}], i) for i in range(n)]


def batch_llm(server, cache, **options) -> LLM:
    options = {"poll_interval": 0.02, "backoff_base": 0.01, "backoff_max": 0.05, **options}
    return LLM(server.url, model=MODEL, mode="batch", api_key=KEY, cache=cache, **options)


def input_ids(server, batch: dict) -> set[str]:
    content = server.files[batch["input_file_id"]]["content"]
    return {json.loads(line)["custom_id"] for line in content.splitlines()}


def error_ids(server, batch: dict) -> set[str]:
    if not batch.get("error_file_id"):
        return set()
    return {json.loads(line)["custom_id"] for line in server.files[batch["error_file_id"]]["content"].splitlines()}


def test_killed_mid_poll_resumes_the_same_batch_and_the_rerun_sends_only_the_failed(server, tmp_path):
    """Done when: 2,000 rows, 10% failing, the process killed once mid-poll: 2,000 rows, each request
    paid once, then the failed ones resent once."""
    server.fail_rate, server.hold = 0.1, True
    server.require_key = KEY
    cache = tmp_path / "responses.sqlite"
    env = {**os.environ, "SYNTH_DATASETS_API_KEY": KEY, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", FIRST_ATTEMPT, server.url, str(cache)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not (server.batches and server.polls[next(iter(server.batches))] >= 2):
        assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the first attempt never created and polled a batch"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    (bid, first), = server.batches.items()
    polls_at_kill = server.polls[bid]
    assert first["status"] == "in_progress" and not server.paid  # killed mid-poll: nothing answered yet
    assert [b for _, b in stored(state_path(cache))] == [bid]  # beside the cache, for the rerun to find

    server.hold = False  # the provider finishes the batch while nobody polls... and the rerun picks it up
    llm = batch_llm(server, cache)
    gen = TextGenerator(llm, Template(user="Write review number {{ i }}."), max_new_tokens=32)
    rows = Dataset.from_dict({"i": list(range(2000))})
    ds = rows.map(gen, batched=True, batch_size=2000)

    assert ds.num_rows == 2000
    assert len(server.batches) == 1 and len(server.uploads()) == 1  # resumed, not created again
    assert server.polls[bid] > polls_at_kill
    assert len(server.paid) == 2000 and set(server.paid.values()) == {1}  # each request paid once
    failed = error_ids(server, server.batches[bid])
    errors = [e for e in ds["text_error"] if e is not None]
    assert len(errors) == len(failed) and 150 <= len(failed) <= 250
    assert all("HTTP 500" in e for e in errors)
    ok = [(i, t) for i, t, e in zip(ds["i"], ds["text"], ds["text_error"]) if e is None]
    assert all(t.startswith(f"batch: Write review number {i}. | seed=") for i, t in ok)
    assert llm.stats["batch_requests"] == 2000 and llm.stats["requests"] == 2000
    assert stored(state_path(cache)) == []  # collected: nothing left to resume

    again = rows.map(gen, batched=True, batch_size=2000)  # the rerun sends only the failed ones, once
    assert all(e is None for e in again["text_error"])
    assert len(server.batches) == 2
    second = server.batches[max(server.batches, key=lambda b: int(b.split("_")[1]))]
    assert input_ids(server, second) == failed
    assert {c: n for c, n in server.paid.items() if n != 1} == {c: 2 for c in failed}
    assert llm.stats["cache_hits"] == 2000 - len(failed)
    assert llm.stats["batch_requests"] == 2000 + len(failed)

    # the key went to the server as a bearer token and nowhere else
    assert {e["authorization"] for e in server.log} == {f"Bearer {KEY}"}
    assert all(KEY.encode() not in f["content"] for f in server.files.values())
    written = [p for p in tmp_path.iterdir() if p.is_file()]
    assert any(p.name.startswith("responses.batches") for p in written)
    assert all(KEY.encode() not in p.read_bytes() for p in written)


def stored(path: Path) -> list[tuple[str, str]]:
    """(digest, batch id) rows of a batch-id file."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT digest, batch_id FROM batches").fetchall()


def test_input_lines_are_openai_batch_requests_in_order(server, tmp_path):
    llm = batch_llm(server, tmp_path / "r.sqlite")
    reqs = requests_for(5)
    out = llm.generate(reqs, SamplingParams(temperature=0.3, max_new_tokens=20, stop=["END"]))
    assert [c.text for c in out] == [f"batch: hello {i} | seed={i}" for i in range(5)]
    assert all(c.usage["batch"] == 1 and c.usage["completion_tokens"] == 5 for c in out)
    (f,) = server.uploads()
    lines = [json.loads(x) for x in f["content"].splitlines()]
    assert f["filename"].endswith(".jsonl") and len(lines) == 5
    assert {tuple(sorted(x)) for x in lines} == {("body", "custom_id", "method", "url")}
    assert {(x["method"], x["url"]) for x in lines} == {("POST", "/v1/chat/completions")}
    assert lines[0]["body"] == {"model": MODEL, "messages": [{"role": "user", "content": "hello 0"}],
                                "max_tokens": 20, "temperature": 0.3, "top_p": 1.0, "seed": 0, "stop": ["END"]}
    (batch,) = server.batches.values()
    assert batch["completion_window"] == "24h" and batch["endpoint"] == "/v1/chat/completions"


def test_expired_requests_become_error_rows_and_are_resent(server, tmp_path):
    server.expire, server.poll_500 = True, 2  # and two polls answered 500: retried
    llm = batch_llm(server, tmp_path / "r.sqlite")
    reqs = requests_for(40)
    out = llm.generate(reqs)
    assert [c.error is None for c in out] == [True] * 20 + [False] * 20
    assert all(c.error.startswith("batch: batch_expired") for c in out[20:])
    server.expire = False
    out = llm.generate(reqs)
    assert all(c.error is None for c in out) and [c.cached for c in out] == [True] * 20 + [False] * 20
    first, second = server.batches.values()
    assert input_ids(server, second) == error_ids(server, first)
    assert len(server.paid) == 40 and set(server.paid.values()) == {1}


def test_a_cancelled_batch_keeps_what_was_answered(server, tmp_path):
    server.hold, server.cancel_keep = True, 10
    llm = batch_llm(server, tmp_path / "r.sqlite")
    reqs = requests_for(40)
    done = {}
    worker = threading.Thread(target=lambda: done.update(out=llm.generate(reqs)))
    worker.start()
    deadline = time.monotonic() + 30
    while not server.batches or server.polls[next(iter(server.batches))] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    bid = next(iter(server.batches))
    urllib.request.urlopen(urllib.request.Request(f"{server.url}/batches/{bid}/cancel", method="POST",
                                                  headers={"Authorization": f"Bearer {KEY}"}))
    worker.join(30)
    out = done["out"]
    assert [c.error is None for c in out] == [True] * 10 + [False] * 30
    assert all(f"batch_cancelled: no answer in batch {bid}" in c.error for c in out[10:])
    server.hold = False
    assert all(c.error is None for c in llm.generate(reqs))
    assert len(server.batches) == 2 and len(input_ids(server, list(server.batches.values())[1])) == 30


def test_large_inputs_are_split_to_respect_the_limits(server, tmp_path):
    server.max_requests = 30  # the server refuses bigger files, as OpenAI refuses more than 50,000 lines
    llm = batch_llm(server, tmp_path / "r.sqlite", batch_max_requests=30)
    reqs = requests_for(100)
    out = llm.generate(reqs)
    assert [c.text for c in out] == [f"batch: hello {i} | seed={i}" for i in range(100)]
    assert sorted(len(input_ids(server, b)) for b in server.batches.values()) == [10, 30, 30, 30]
    assert all(b["status"] == "completed" for b in server.batches.values())

    server.reset()
    line = len(json.dumps({"custom_id": "x" * 64, "method": "POST", "url": "/v1/chat/completions", "body": {
        "messages": [{"role": "user", "content": "bytes 0"}], "max_tokens": 256, "temperature": 0.7, "top_p": 1.0,
        "seed": 0, "model": MODEL}}).encode()) + 1
    limit = 3 * line + 10
    llm = batch_llm(server, tmp_path / "r2.sqlite", batch_max_bytes=limit)
    reqs = requests_for(9, "bytes") + [ChatRequest.of([{"role": "user", "content": "x" * limit}], 0)]
    out = llm.generate(reqs)
    assert [c.error is None for c in out] == [True] * 9 + [False]
    assert "more than batch_max_bytes" in out[-1].error
    assert sorted(f["bytes"] for f in server.uploads()) == [3 * line] * 3
    assert all(f["bytes"] <= limit for f in server.uploads())


def test_a_refused_key_fails_fast_on_upload(server, tmp_path):
    server.require_key = "sk-the-right-key-0123456789"
    llm = batch_llm(server, tmp_path / "r.sqlite")
    with pytest.raises(EndpointConfigError) as e:
        llm.generate(requests_for(10))
    msg = str(e.value)
    assert "HTTP 401" in msg and "/files" in msg and "api_key" in msg and e.value.status == 401
    assert KEY not in msg
    assert [x["path"] for x in server.log if x["method"] == "POST"] == ["/v1/files"]  # no retry, no batch
    assert not server.batches


def test_a_batch_the_server_no_longer_knows_is_made_again(server, tmp_path):
    cache = tmp_path / "r.sqlite"
    llm = batch_llm(server, cache)
    reqs = requests_for(4)
    keys = [request_key(llm.identity(), r, SamplingParams()) for r in reqs]
    store = BatchStore(state_path(cache))
    store.put(batch_digest(server.url, keys), batch_id="batch_gone", input_file_id="file-gone", requests=4)
    out = llm.generate(reqs)
    assert [c.text for c in out] == [f"batch: hello {i} | seed={i}" for i in range(4)]
    assert [x["path"] for x in server.log if x["method"] == "GET" and "gone" in x["path"]] == ["/v1/batches/batch_gone"]
    assert len(server.batches) == 1 and stored(state_path(cache)) == []


def test_options_are_checked_before_any_request(server):
    with pytest.raises(InvalidParameterError, match="mode='bulk'"):
        LLM(server.url, mode="bulk")
    with pytest.raises(InvalidParameterError, match="batch_max_requests only apply with mode='batch'"):
        LLM(server.url, batch_max_requests=10)
    with pytest.raises(InvalidParameterError, match="transport='aiohttp'"):
        LLM(server.url, mode="batch", transport="huggingface_hub")
    with pytest.raises(InvalidParameterError, match="batch_max_bytes=0"):
        LLM(server.url, mode="batch", batch_max_bytes=0)
    with pytest.raises(InvalidParameterError, match="poll_interval"):
        LLM(server.url, mode="batch", poll_interval=-1)
    assert not server.log


def test_the_card_counts_batch_calls(server, tmp_path):
    llm = batch_llm(server, tmp_path / "r.sqlite")
    recipe = (Recipe("batch-notes", source=Dataset.from_dict({"w": ["cats", "dogs", "owls"]}), seed=7,
                     license="cc-by-4.0", text_column="text")
              .map(TextGenerator(llm, "Write about {{ w }}.", max_new_tokens=20), name="generate", batch_size=None))
    ds, record = recipe.run(progress=False)
    assert record.usage["batch_requests"] == 3 and record.usage["requests"] == 3
    publish(ds, tmp_path / "out", record=record)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "3 model calls (3 batch calls), 0 cached" in card  # the step's line
    assert "**This run paid** 3 model calls (3 batch calls, sent through the provider's Batch API)" in card
    assert KEY not in card and KEY not in (tmp_path / "out" / "provenance.json").read_text()
