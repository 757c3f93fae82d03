"""Continuous batching in the local backend (llm/decode.py): finished rows leave the batch, waiting
prompts take their slots, and a row's text depends only on its own prompt and seed."""

from __future__ import annotations

import json

import pytest
import torch

from synth_datasets.llm import ChatRequest, SamplingParams
from synth_datasets.llm.decode import GrowingLayer
from synth_datasets.llm.transformers_backend import _seeded_sampler_cls

SYSTEM = {"role": "system", "content": "You are a film critic."}
# replies of very different natural lengths, so rows end at different steps and slots are refilled
ASKS = ["Say yes.", "Name a colour.", "Write one sentence about rain.", "Reply with one word: hello.",
        "Describe a cat in a sentence.", "Name a fruit.", "Count to five.", "What is 2+2?"]


def _requests(n: int = 8) -> list[ChatRequest]:
    return [ChatRequest.of([SYSTEM, {"role": "user", "content": q}], 10 + i) for i, q in enumerate(ASKS[:n])]


@pytest.fixture()
def backend(embedded_llm):
    b = embedded_llm.backend
    size, refill = b.batch_size, b.refill_every
    yield b
    b.batch_size, b.refill_every = size, refill


def _run(backend, requests, params, *, batch_size: int, refill_every=None):
    backend.batch_size, backend.refill_every = batch_size, refill_every
    out = backend.generate(requests, params)
    return out, dict(backend.last_decode_stats)


@pytest.mark.parametrize("temperature,stop", [(0.0, ()), (0.8, (".",))])  # sampled rows ramble: end them at a "."
def test_a_row_does_not_depend_on_its_batch_mates_or_when_it_entered(backend, temperature, stop):
    reqs = _requests()
    params = SamplingParams(temperature=temperature, top_p=0.95, max_new_tokens=24, logprobs=True, stop=stop)
    together, s_all = _run(backend, reqs, params, batch_size=8)
    refilled, s_refill = _run(backend, reqs, params, batch_size=3, refill_every=1)
    late, _ = _run(backend, reqs[::-1], params, batch_size=2, refill_every=1)  # the first rows now enter last
    alone = [_run(backend, [r], params, batch_size=1)[0][0] for r in reqs]
    assert s_all.get("refilled_rows", 0) == 0 and s_refill["refilled_rows"] >= 2  # slots really were refilled
    assert s_refill["max_batch"] == 3
    texts = [c.text for c in together]
    assert [c.text for c in refilled] == texts == [c.text for c in late[::-1]] == [c.text for c in alone]
    assert [c.usage for c in refilled] == [c.usage for c in together] == [c.usage for c in alone]
    for a, b in zip(refilled, alone):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    lengths = [c.usage["completion_tokens"] for c in together]
    assert len(set(lengths)) >= 3 and min(lengths) < 12  # rows did end at different steps
    assert "stop" in {c.finish_reason for c in together}


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_same_tokens_as_transformers_generate(backend, temperature):
    """Greedy: ``model.generate``'s own decoding; sampled: ``generate`` with the seeded sampler as a
    LogitsProcessor (the backend's former static-batch path), one row at a time."""
    reqs = _requests(6)
    params = SamplingParams(temperature=temperature, top_p=0.95, max_new_tokens=20)
    ours, stats = _run(backend, reqs, params, batch_size=2, refill_every=1)
    tok, model = backend.tokenizer, backend._model
    for r, c in zip(reqs, ours):
        enc = tok(backend._prompt_text(r.as_messages()), return_tensors="pt", add_special_tokens=False)
        procs = [_seeded_sampler_cls()([r.seed], temperature, 0.95)] if temperature > 0 else None
        with torch.inference_mode():
            seq = model.generate(**enc, do_sample=False, max_new_tokens=20, logits_processor=procs,
                                 pad_token_id=tok.pad_token_id)[0, enc["input_ids"].shape[1]:].tolist()
        n = next((j + 1 for j, t in enumerate(seq) if t == tok.eos_token_id), len(seq))
        assert c.text == tok.decode(seq[:n], skip_special_tokens=True)
        assert c.usage["completion_tokens"] == n


def test_finished_rows_cost_no_steps(backend):
    """Static batches that only shrink (refill_every=0) and refilled ones give the same rows; either way a
    decode step computes few rows that have already ended."""
    reqs = _requests()
    params = SamplingParams(temperature=0.8, top_p=0.95, max_new_tokens=32, stop=["."])
    static, s_static = _run(backend, reqs, params, batch_size=4, refill_every=0)
    cont, s_cont = _run(backend, reqs, params, batch_size=4, refill_every=1)
    assert [c.text for c in static] == [c.text for c in cont]
    tokens = sum(c.usage["completion_tokens"] for c in cont)
    assert s_static.get("refilled_rows", 0) == 0 and s_cont["refilled_rows"] >= 1
    for s in (s_static, s_cont):
        # each row's first token comes from its prefill, every later one from a step; ended rows are
        # dropped once an eighth of the batch has ended, so at most a row or so of waste per step here
        assert tokens - len(reqs) <= s["row_steps"] <= tokens - len(reqs) + s["steps"]
    assert s_cont["steps"] < s_static["steps"]  # refilled slots: fewer steps for the same rows


def test_grammar_rows_stay_valid_when_slots_are_refilled(backend):
    pytest.importorskip("llguidance")
    schema = {"type": "object", "properties": {"title": {"type": "string", "maxLength": 20},
                                               "stars": {"type": "integer", "minimum": 1, "maximum": 5}},
              "required": ["title", "stars"], "additionalProperties": False}
    rf = {"type": "json_schema", "json_schema": {"name": "review", "schema": schema}}
    reqs = [ChatRequest.of([{"role": "user", "content": f"Rate film {i} as JSON."}], i) for i in range(4)]
    params = SamplingParams(temperature=0.8, max_new_tokens=32, response_format=rf)
    cont, stats = _run(backend, reqs, params, batch_size=2, refill_every=1)
    alone = [_run(backend, [r], params, batch_size=1)[0][0] for r in reqs]
    assert stats["refilled_rows"] >= 1
    assert [c.text for c in cont] == [c.text for c in alone]
    for c in cont:
        if c.finish_reason == "stop":
            row = json.loads(c.text)
            assert set(row) == {"title", "stars"} and 1 <= row["stars"] <= 5
    assert sum(c.finish_reason == "stop" for c in cont) >= 2


def test_growing_layer_equals_concatenation():
    g = torch.Generator().manual_seed(0)
    layer = GrowingLayer()
    keys, values = [], []
    for m in (5, 1, 1, 40, 1, 80):  # past its spare room twice
        k, v = torch.randn(2, 3, m, 4, generator=g), torch.randn(2, 3, m, 4, generator=g)
        keys.append(k)
        values.append(v)
        out_k, out_v = layer.update(k, v)
        assert torch.equal(out_k, torch.cat(keys, dim=-2)) and torch.equal(out_v, torch.cat(values, dim=-2))
    assert layer.get_seq_length() == 128 and layer.kbuf.shape[-2] > 128
