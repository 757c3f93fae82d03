"""Local decoding's thread count (issue 22, item 10): chosen from the cores other processes leave free,
unless OMP_NUM_THREADS or threads= says; it changes speed only, never the text or a cache key.
The busy-machine timing is benchmarks/bench_shared_machine.py (run it on a quiet machine)."""

from __future__ import annotations

import os

import pytest

from synth_datasets import LLM, InvalidParameterError
from synth_datasets.llm import ChatRequest, SamplingParams
from synth_datasets.llm.transformers_backend import available_cores, busy_cores, choose_threads


@pytest.mark.parametrize("cores, busy, requested, env, expected", [
    (2, 0.0, None, {}, 2),              # a quiet machine: every core
    (2, 0.2, None, {}, 2),              # background noise does not cost a thread
    (2, 1.0, None, {}, 1),              # one core held by another process
    (2, 1.9, None, {}, 1),
    (2, 7.5, None, {}, 1),              # overloaded (load average above the cores): still one
    (16, 4.4, None, {}, 12),
    (16, 4.6, None, {}, 11),
    (2, 1.9, 2, {}, 2),                 # threads= wins
    (2, 1.9, None, {"OMP_NUM_THREADS": "2"}, 2),   # so does the user's OMP_NUM_THREADS
    (2, 1.9, 3, {"OMP_NUM_THREADS": "2"}, 3),
    (4, 3.0, None, {"OMP_NUM_THREADS": "lots"}, 1),  # not a number: ignored
    (4, 0.0, None, {"OMP_NUM_THREADS": "0"}, 4),
])
def test_choose_threads_from_fake_load_readings(cores, busy, requested, env, expected):
    n, why = choose_threads(cores=cores, busy=busy, requested=requested, env=env)
    assert n == expected and why


def test_live_readings_are_in_range():
    assert 1 <= available_cores() <= (os.cpu_count() or 1)
    assert 0.0 <= busy_cores(sample_s=0.05) <= max(os.cpu_count() or 1, os.getloadavg()[0] + 1)


def test_a_bad_threads_option_is_refused_at_once():
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(InvalidParameterError, match="threads="):
            LLM(threads=bad)


def test_the_thread_count_changes_neither_the_text_nor_the_cache_key(embedded_llm):
    import torch

    reqs = [ChatRequest.of([{"role": "user", "content": f"Name a {w} animal."}], seed) for seed, w in
            enumerate(["small", "big", "fast"])]
    params = SamplingParams(temperature=0.8, max_new_tokens=16)
    before = torch.get_num_threads()
    try:
        texts = {}
        for n in (1, 2):
            torch.set_num_threads(n)
            texts[n] = [c.text for c in embedded_llm.backend.generate(reqs, params)]  # no response cache here
    finally:
        torch.set_num_threads(before)
    assert texts[1] == texts[2] and all(texts[1])
    assert LLM(threads=1).identity() == LLM().identity() == embedded_llm.identity()
