"""TextGenerator on the embedded model (transformers backend, GGUF dequantized, CPU)."""

import re

import pytest
from datasets import Dataset

from synth_datasets import Conditions, Template, TextGenerator
from synth_datasets.llm import ChatRequest, SamplingParams

from sampling_checks import check_seed_only

ENGLISH = re.compile(r"\b(the|a|an|is|and|of|to|in|it|this|was|with)\b", re.I)


def test_coherent_text_for_a_batch(embedded_llm):
    ds = Dataset.from_dict({"id": list(range(8))})
    ds = ds.map(Conditions(animal=["cat", "dog"], seed=0), batched=True)
    gen = TextGenerator(embedded_llm, Template(system="You are a helpful writer.",
                                               user="Write two sentences about a {{ animal }}."),
                        output="text", max_new_tokens=48, temperature=0.7)
    out = ds.map(gen, batched=True, batch_size=8)
    assert out.num_rows == 8 and all(e is None for e in out["text_error"])
    for t in out["text"]:
        words = t.split()
        assert len(words) >= 8, t
        assert len(ENGLISH.findall(t)) >= 2, t  # English function words: prose, not token soup
        assert len(set(words)) / len(words) > 0.5, t  # not a loop of one phrase
    on_topic = sum(a in t.lower() for a, t in zip(out["animal"], out["text"]))
    assert on_topic >= 6, list(zip(out["animal"], out["text"]))
    assert set(out["text_finish_reason"]) <= {"stop", "length"}
    assert all(1 <= k <= 48 for k in out["text_tokens"])
    assert out["text_model"][0].startswith("SmolLM2-135M-Instruct.Q4_1.gguf@")


def test_n_samples_per_row_keep_input_columns(embedded_llm):
    ds = Dataset.from_dict({"id": [10, 11, 12], "topic": ["rain", "tea", "trains"]})
    gen = TextGenerator(embedded_llm, "One sentence about {{ topic }}.", output="s", n=3, max_new_tokens=24)
    out = ds.map(gen, batched=True, batch_size=2)
    assert out.num_rows == 9
    assert out["id"] == [10, 10, 10, 11, 11, 11, 12, 12, 12]
    assert out["s_sample"] == [0, 1, 2] * 3
    for k in range(3):
        assert len(set(out["s"][3 * k:3 * k + 3])) == 3  # distinct seeds give distinct samples


def test_seeded_determinism_independent_of_batching(embedded_llm):
    backend = embedded_llm.backend
    reqs, _ = check_seed_only(backend.generate, SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=20))
    # greedy decoding ignores the seed
    g = backend.generate(reqs[:2], SamplingParams(temperature=0.0, max_new_tokens=12))
    assert g[0].text == g[1].text


def test_logprobs_and_stop(embedded_llm):
    backend = embedded_llm.backend
    (c,) = backend.generate([ChatRequest.of([{"role": "user", "content": "Count: one, two, three"}], 0)],
                            SamplingParams(temperature=0.0, max_new_tokens=16, logprobs=True))
    assert len(c.logprobs) in (c.usage["completion_tokens"], c.usage["completion_tokens"] - 1)
    assert all(lp <= 0 for lp in c.logprobs) and sum(c.logprobs) < 0
    stop_at = c.text.split()[1]
    (s,) = backend.generate([ChatRequest.of([{"role": "user", "content": "Count: one, two, three"}], 0)],
                            SamplingParams(temperature=0.0, max_new_tokens=16, stop=[stop_at]))
    assert s.finish_reason == "stop" and stop_at not in s.text and c.text.startswith(s.text)


def test_describe_records_what_made_the_data(embedded_llm):
    t = Template(system="You are a critic.", user="Write a {{ label }} review.")
    d = TextGenerator(embedded_llm, t, output="review", n=2, seed=7, max_new_tokens=30).describe()
    assert d["template"]["system"] == "You are a critic." and d["template"]["user"] == "Write a {{ label }} review."
    assert d["seed"] == 7 and d["params"]["max_new_tokens"] == 30 and d["n"] == 2
    ident = d["llm"]["identity"]
    assert ident["name"] == "SmolLM2-135M-Instruct.Q4_1.gguf" and len(ident["sha256"]) == 64
    assert {"datasets", "transformers", "synth-datasets"} <= set(d["library"])


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_shared_prefix_kv_gives_the_same_completions_as_full_prefill(embedded_llm, temperature):
    backend = embedded_llm.backend
    system = {"role": "system", "content": "You are a film critic who writes short, vivid reviews."}
    requests = [ChatRequest.of([system, {"role": "user", "content": f"Review film number {i} in one sentence."}], 100 + i)
                for i in range(5)]
    params = SamplingParams(temperature=temperature, top_p=0.95, max_new_tokens=20, logprobs=True)
    try:
        backend.share_prefix = True
        shared = backend.generate(requests, params)
        shared_rows = backend.last_decode_stats["shared_prefix_rows"]
        backend.share_prefix = False
        full = backend.generate(requests, params)
        full_rows = backend.last_decode_stats.get("shared_prefix_rows", 0)
    finally:
        backend.share_prefix = True
    assert (shared_rows, full_rows) == (5, 0)  # the first run took the shared-prefix path, the second did not
    assert [c.text for c in shared] == [c.text for c in full]
    assert [c.usage for c in shared] == [c.usage for c in full]
    for a, b in zip(shared, full):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
    assert len({c.text for c in shared}) >= 2  # real, varied completions
    # rows without a long enough common prefix are left-padded as before
    from synth_datasets.llm.decode import Decoder

    other = ChatRequest.of([{"role": "user", "content": "Name a colour."}], 7)
    ids = backend.tokenizer([backend._prompt_text(r.as_messages()) for r in (requests[0], requests[1], other)],
                            add_special_tokens=False)["input_ids"]
    dec = Decoder(backend._model, backend.tokenizer, min_shared_prefix=backend.min_shared_prefix)
    assert dec.common_prefix(ids[:2]) >= 20 and dec.common_prefix([ids[0], ids[2]]) == 0
    assert dec.common_prefix(ids[:1]) == 0


def test_generation_emits_no_future_warning(embedded_llm):
    """The decode loop hands transformers its cache as ``cache=`` (``past_key_values`` is deprecated and
    warned about on every call); neither prefill (shared prefix or plain left padding) warns."""
    import warnings

    backend = embedded_llm.backend
    system = {"role": "system", "content": "You are a film critic."}
    shared = [ChatRequest.of([system, {"role": "user", "content": f"Name film {i}."}], i) for i in range(3)]
    single = [ChatRequest.of([{"role": "user", "content": "Name a colour."}], 9)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params = SamplingParams(temperature=0.0, max_new_tokens=4)
        out = backend.generate(shared, params)
        calls = [backend.last_decode_stats.get("shared_prefix_rows", 0)]
        out += backend.generate(single, params)
        calls.append(backend.last_decode_stats.get("shared_prefix_rows", 0))
    assert calls == [3, 0]  # both paths ran: 3 rows sharing the system prompt, then 1 alone
    assert all(c.text for c in out)
    future = [str(w.message) for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert future == [], future
