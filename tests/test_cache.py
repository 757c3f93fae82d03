"""Response cache: reruns make no model calls; a SIGKILLed run resumes and finishes identically."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request

from datasets import Dataset, load_from_disk

from synth_datasets import LLM, TextGenerator
from synth_datasets.llm import ChatRequest, Completion, ResponseCache, SamplingParams


def server_requests(server) -> int:
    return json.loads(urllib.request.urlopen(server.url.replace("/v1", "/stats")).read())["requests"]


def test_second_run_makes_zero_model_calls(embedded_llm, tmp_path):
    cache = tmp_path / "c.sqlite"
    ds = Dataset.from_dict({"topic": ["snow", "bread", "jazz", "maps"]})  # in memory: datasets never caches it
    first_llm = LLM(batch_size=32, cache=cache)
    first_llm._backend = embedded_llm.backend
    gen = TextGenerator(first_llm, "A sentence about {{ topic }}.", n=2, max_new_tokens=16)
    a = ds.map(gen, batched=True)
    assert first_llm.stats["requests"] == 8 and len(ResponseCache(cache)) == 8
    second_llm = LLM(batch_size=32, cache=cache)  # fresh object, nothing loaded
    b = ds.map(TextGenerator(second_llm, "A sentence about {{ topic }}.", n=2, max_new_tokens=16), batched=True)
    assert b["text"] == a["text"]
    assert second_llm.stats["requests"] == 0 and second_llm.stats["cache_hits"] == 8
    assert second_llm.backend._model is None  # the model was never loaded, let alone called


def test_concurrent_writers_and_errors_not_cached(fault_server, tmp_path):
    fault_server.reset()
    cache = tmp_path / "c.sqlite"
    rows = [f"row {i}" for i in range(30)] + ["dead [always500]"]
    Dataset.from_dict({"p": rows}).save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    mk = lambda: TextGenerator(LLM(fault_server.url, cache=cache, max_retries=1, backoff_base=0.01), "{{ p }}")  # noqa: E731
    out = ds.map(mk(), batched=True, batch_size=4, num_proc=2)
    assert sum(e is not None for e in out["text_error"]) == 1
    assert len(ResponseCache(cache)) == 30  # both workers wrote; the failed row was not stored
    before = server_requests(fault_server)
    again = Dataset.from_dict({"p": rows}).map(mk(), batched=True)  # in memory: no datasets cache
    assert again["text"][:30] == out["text"][:30]
    assert server_requests(fault_server) - before == 2  # only the failed row, retried (1 + 1 retry)


# The embedded model on the transformers backend: its per-row seeded sampling makes a sample independent
# of which rows share its batch, which is what lets a resumed run match a clean one exactly. (The
# llama.cpp server is not deterministic across runs: its prompt-prefix reuse changes the numerics.)
KILL_SCRIPT = """
import json, sys
from datasets import Dataset
from synth_datasets import LLM, TextGenerator
cache, out = sys.argv[1], sys.argv[2]
llm = LLM(cache=cache, batch_size=4)
gen = TextGenerator(llm, "Write a short line about the number {{ i }}.", n=2, max_new_tokens=12, temperature=0.9)
ds = Dataset.from_dict({"i": list(range(16))}).map(gen, batched=True, batch_size=2)
ds.to_json(out)
print(json.dumps(dict(llm.stats)))
"""


def test_sigkill_mid_run_then_restart_gives_identical_rows(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    cache = tmp_path / "killed.sqlite"

    def cached() -> int:
        if not cache.exists():
            return 0
        try:
            with sqlite3.connect(cache, timeout=5) as c:
                return c.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    proc = subprocess.Popen([sys.executable, str(script), str(cache), str(tmp_path / "x.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while cached() < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before_kill = cached()
    assert 8 <= done_before_kill < 32, done_before_kill
    assert not (tmp_path / "x.jsonl").exists()

    resumed = subprocess.run([sys.executable, str(script), str(cache), str(tmp_path / "resumed.jsonl")],
                             capture_output=True, text=True, check=True)
    stats = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert stats["cache_hits"] == done_before_kill
    assert stats["requests"] == 32 - done_before_kill

    clean = subprocess.run([sys.executable, str(script), str(tmp_path / "clean.sqlite"), str(tmp_path / "clean.jsonl")],
                           capture_output=True, text=True, check=True)
    assert json.loads(clean.stdout.strip().splitlines()[-1])["requests"] == 32
    read = lambda p: [json.loads(line) for line in open(p)]  # noqa: E731
    assert read(tmp_path / "resumed.jsonl") == read(tmp_path / "clean.jsonl")


def test_cache_key_covers_model_params_and_seed(tmp_path):
    from synth_datasets.llm.cache import request_key

    r = ChatRequest.of([{"role": "user", "content": "hi"}], 5)
    ident = {"backend": "transformers", "name": "m.gguf", "sha256": "ab"}
    p = SamplingParams(max_new_tokens=8)
    k = request_key(ident, r, p)
    assert k == request_key(dict(ident), ChatRequest.of([{"role": "user", "content": "hi"}], 5), SamplingParams(max_new_tokens=8))
    assert k != request_key({**ident, "sha256": "cd"}, r, p)
    assert k != request_key(ident, ChatRequest.of([{"role": "user", "content": "hi"}], 6), p)
    assert k != request_key(ident, r, SamplingParams(max_new_tokens=9))
    assert k != request_key(ident, ChatRequest.of([{"role": "user", "content": "hi!"}], 5), p)


def _open_and_write(path, i, barrier, results):
    barrier.wait()  # every worker opens the new file at the same moment
    try:
        c = ResponseCache(path)
        c.put_many({f"k{i}-{j}": Completion(text=str(j), finish_reason="stop") for j in range(20)})
        results.put(len(c.get_many([f"k{i}-{j}" for j in range(20)])))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        results.put(repr(e))


def test_many_processes_opening_a_new_cache_at_once(tmp_path):
    # Switching a new SQLite file to WAL takes an exclusive lock that SQLite does not wait for;
    # several num_proc workers creating the cache together used to fail with "database is locked".
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for t in range(15):
        path = str(tmp_path / f"r{t}.sqlite")
        barrier, results = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_open_and_write, args=(path, i, barrier, results)) for i in range(8)]
        for p in procs:
            p.start()
        got = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
        assert got == [20] * 8, got
        assert len(ResponseCache(path)) == 160
