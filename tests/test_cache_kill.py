"""A row finished is a row kept: each answer reaches the response cache as it arrives (issue 22, item 2).

Before, answers waited in memory until ``batch_size`` of them (64 here) had finished, so a run killed
earlier kept none of them.
"""

import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap

from synth_datasets import LLM
from synth_datasets.llm import ChatRequest, ResponseCache, SamplingParams
from synth_datasets.llm.cache import RequestKeyer
from synth_datasets.llm.decode import Decoder

# A real local run on the embedded model that stands still (sleeps) right after its third answer has
# been handed back, as if killed there; the test SIGKILLs it at that moment.
KILLED_RUN = """
import json, sys, time
from synth_datasets import LLM
from synth_datasets.llm import ChatRequest, SamplingParams

llm = LLM(cache=sys.argv[1])  # batch_size 64: the old code wrote nothing before 64 answers
backend = llm.backend
inner = backend.generate

def generate(requests, params, on_result=None):
    seen = []
    def observe(i, c):
        on_result(i, c)  # the run's own handler (what keeps the row) comes first
        seen.append(i)
        print(json.dumps({"row": i, "text": c.text}), flush=True)
        if len(seen) == 3:
            time.sleep(600)
    return inner(requests, params, observe)

backend.generate = generate
requests = [ChatRequest.of([{"role": "user", "content": f"Write one line about the number {i}."}], i)
            for i in range(16)]
llm.generate(requests, SamplingParams(max_new_tokens=24, temperature=0.9, seed=0))
"""


def test_sigkilled_local_run_keeps_every_answer_it_finished(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(KILLED_RUN))
    cache = tmp_path / "responses.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(cache)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    done = []
    try:
        for line in proc.stdout:
            done.append(json.loads(line))
            if len(done) == 3:
                break
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert len(done) == 3, "the run ended before reporting three answers"
    assert proc.returncode == -signal.SIGKILL
    kept = ResponseCache(cache)
    assert len(kept) == 3  # all three finished answers, nothing else
    with kept._connect() as conn:
        texts = sorted(json.loads(v)["text"] for (v,) in conn.execute("SELECT value FROM responses"))
    assert texts == sorted(d["text"] for d in done)
    kept.close()


def _decoder_steps() -> int:
    """Decode steps taken so far by the Decoder running below the caller (found on the call stack)."""
    frame = inspect.currentframe()
    while frame is not None:
        if isinstance(frame.f_locals.get("self"), Decoder):
            return frame.f_locals["self"].stats.get("steps", 0)
        frame = frame.f_back
    raise AssertionError("on_result was not called from inside the decode loop")


def test_each_local_answer_is_cached_when_its_row_finishes(embedded_llm, tmp_path):
    """The decode loop hands a row back in the step it finishes (not at the end of the batch), and by
    the time the next answer arrives the previous one is already in the cache file."""
    llm = LLM(batch_size=32, cache=tmp_path / "responses.sqlite")
    llm._backend = embedded_llm.backend
    backend = llm.backend
    prompts = ["Reply with the single word: yes."] * 6 + ["Write a long story about a lighthouse keeper."] * 6
    requests = [ChatRequest.of([{"role": "user", "content": p}], i) for i, p in enumerate(prompts)]
    params = SamplingParams(max_new_tokens=40, temperature=0.7, seed=0)
    keyer = RequestKeyer(llm.identity(), params)
    reader = ResponseCache(tmp_path / "responses.sqlite")  # a second connection, as another process would see it
    seen: list[tuple[int, int, int]] = []  # (row, its new tokens, decode steps when it was handed back)
    inner = backend.generate

    def generate(reqs, p, on_result=None):
        def observe(i, c):
            if seen:  # the previous answer is committed before this one arrives
                assert keyer(requests[seen[-1][0]]) in reader.get_many([keyer(requests[seen[-1][0]])])
            on_result(i, c)
            assert reader.get_many([keyer(requests[i])])[keyer(requests[i])].text == c.text  # and this one now
            seen.append((i, c.usage["completion_tokens"], _decoder_steps()))
        return inner(reqs, p, observe)

    backend.generate = generate
    try:
        out = llm.generate(requests, params)
    finally:
        del backend.generate
    reader.close()
    assert len(seen) == len(requests) and all(c.error is None for c in out)
    longest = max(n for _, n, _ in seen)
    early = [(n, steps) for _, n, steps in seen if n < longest - 2]
    assert early, f"every row ran to about the same length ({seen}): nothing tells a per-row hand-back apart"
    # A row of n tokens took n - 1 decode steps (its first token comes from the prefill): handed back then,
    # not after the longest row's steps.
    assert all(steps <= n for n, steps in early), seen


def test_each_endpoint_answer_is_cached_as_it_arrives(fault_server, tmp_path):
    """Paid endpoint answers too: the cache holds each one before the next arrives (the old code kept up to
    ``batch_size - 1`` of them in memory only)."""
    fault_server.reset()
    path = tmp_path / "responses.sqlite"
    llm = LLM(fault_server.url, model="echo", cache=path, concurrency=4)
    backend = llm.backend
    requests = [ChatRequest.of([{"role": "user", "content": f"question {i}"}], 0) for i in range(12)]
    params = SamplingParams(max_new_tokens=8)
    keyer = RequestKeyer(llm.identity(), params)
    reader = ResponseCache(path)
    missing: list[int] = []  # checked on the client's event loop thread, asserted here
    inner = backend.submit

    def submit(reqs, p, on_result=None):
        def observe(i, c):
            on_result(i, c)
            if keyer(reqs[i]) not in reader.get_many([keyer(reqs[i])]):
                missing.append(i)
        return inner(reqs, p, observe)

    backend.submit = submit
    try:
        out = llm.generate(requests, params)
    finally:
        del backend.submit
        reader.close()
        llm.close()
    assert all(c.error is None for c in out) and missing == []
