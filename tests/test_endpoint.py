"""Endpoint backend over real HTTP: llama.cpp's server and our fault-injecting server."""

import json
import time
import urllib.request

import pytest
from datasets import Dataset

from synth_datasets import LLM, EndpointUnreachableError, InvalidParameterError, Template, TextGenerator
from synth_datasets.llm import ChatRequest, SamplingParams

TRANSPORTS = ["aiohttp", "huggingface_hub"]


def server_stats(server):
    return json.loads(urllib.request.urlopen(server.url.replace("/v1", "/stats")).read())


def test_llama_server_generates_rows(llama_server, fresh_cache):
    llm = LLM(llama_server, model="smollm2", cache=fresh_cache, concurrency=4)
    gen = TextGenerator(llm, Template(user="Write one sentence about a {{ animal }}."), output="text", n=2,
                        max_new_tokens=40, temperature=0.8)
    ds = Dataset.from_dict({"animal": ["cat", "dog", "horse"]}).map(gen, batched=True)
    assert ds.num_rows == 6
    assert ds["text_sample"] == [0, 1, 0, 1, 0, 1]
    assert all(e is None for e in ds["text_error"])
    assert all(t and len(t.split()) >= 3 for t in ds["text"])
    # the model talks about the animal it was asked about in most rows
    on_topic = sum(a in t.lower() for a, t in zip(ds["animal"], ds["text"]))
    assert on_topic >= 4, list(zip(ds["animal"], ds["text"]))
    assert all(0 < k <= 40 for k in ds["text_tokens"])
    assert ds["text_model"][0] == "smollm2@" + llm.identity()["served_model"]  # no host or port
    assert llm.stats["completion_tokens"] == sum(ds["text_tokens"])


def test_llama_server_seeded_determinism(llama_server, fresh_cache):
    params = SamplingParams(temperature=1.0, max_new_tokens=24)
    req = lambda seed: ChatRequest.of([{"role": "user", "content": "Name a color and a fruit."}], seed)  # noqa: E731
    # llama.cpp reuses the KV cache of the previous prompt's prefix, which can change numerics; send
    # the same prompt first so every compared request follows an identical one.
    LLM(llama_server, model="smollm2", cache=False).generate([req(0)], params)
    a = LLM(llama_server, model="smollm2", cache=False, concurrency=1).generate([req(1), req(2)], params)
    b = LLM(llama_server, model="smollm2", cache=False, concurrency=1).generate([req(2), req(1)], params)
    assert a[0].text == b[1].text and a[1].text == b[0].text
    assert a[0].text != a[1].text


def test_llama_server_logprobs(llama_server):
    c = LLM(llama_server, model="smollm2", cache=False).chat("Say yes.", max_new_tokens=8, logprobs=True)
    assert c.logprobs is not None and len(c.logprobs) == c.usage["completion_tokens"]
    assert all(lp <= 0 for lp in c.logprobs)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_faults_every_row_accounted_and_retries_bounded(fault_server, fresh_cache, transport):
    fault_server.reset()
    prompts = ["plain one", "rate [429:2]", "boom [500:3]", "slow [slow:1]", "junk [malformed:2]",
               "empty [nochoices:1]", "dead [always500]", "refused [bad400]", "plain two"]
    llm = LLM(fault_server.url, cache=fresh_cache, transport=transport, timeout=1.0, max_retries=3,
              backoff_base=0.01, backoff_max=0.05)
    # Retry-After is 1 s on 429; keep the test quick by answering 0 s here, checked separately below.
    fault_server.retry_after = "0"
    gen = TextGenerator(llm, "{{ p }}", output="out", temperature=0.0)
    ds = Dataset.from_dict({"p": prompts}).map(gen, batched=True)
    rows = dict(zip(ds["p"], zip(ds["out"], ds["out_error"], ds["out_finish_reason"])))
    assert ds.num_rows == len(prompts)
    for p in ["plain one", "rate [429:2]", "boom [500:3]", "slow [slow:1]", "junk [malformed:2]",
              "empty [nochoices:1]", "plain two"]:
        text, err, finish = rows[p]
        assert err is None and text.startswith(f"echo: {p} | seed="), (p, rows[p])
    text, err, finish = rows["dead [always500]"]
    assert text is None and finish == "error" and "HTTP 500" in err and "4 attempts" in err
    text, err, finish = rows["refused [bad400]"]
    assert text is None and "HTTP 400" in err and "1 attempt" in err
    attempts = server_stats(fault_server)["attempts"]
    # bounded: the always-failing request was tried exactly 1 + max_retries times; 400 never retried
    assert sorted(attempts.values()) == sorted([1, 3, 4, 2, 3, 2, 4, 1, 1])
    assert llm.stats["errors"] == 2 and llm.stats["retries"] == 2 + 3 + 1 + 2 + 1 + 3


def test_retry_after_is_honoured(fault_server, fresh_cache):
    fault_server.reset()
    fault_server.retry_after = "1"
    llm = LLM(fault_server.url, cache=fresh_cache, backoff_base=0.01, backoff_max=0.02)
    c = llm.chat("wait [429:1]")
    assert c.error is None and c.attempts == 2
    (times,) = server_stats(fault_server)["times"].values()
    assert times[1] - times[0] >= 0.95  # waited the server's Retry-After, not the 0.01 s backoff


def test_requests_per_minute_limit(fault_server, fresh_cache):
    fault_server.reset()
    llm = LLM(fault_server.url, cache=False, requests_per_minute=600)  # one start per 0.1 s
    llm.generate([ChatRequest.of([{"role": "user", "content": f"r{i}"}], i) for i in range(6)])
    starts = sorted(t for ts in server_stats(fault_server)["times"].values() for t in ts)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.08 and starts[-1] - starts[0] >= 0.45


def test_unreachable_endpoint_raises_before_any_row(fresh_cache):
    from fault_server import free_port

    llm = LLM(f"http://127.0.0.1:{free_port()}/v1", cache=fresh_cache)
    gen = TextGenerator(llm, "{{ p }}")
    with pytest.raises(EndpointUnreachableError, match="No server answers at http://127.0.0.1"):
        Dataset.from_dict({"p": ["a", "b"]}).map(gen, batched=True)


def test_unsupported_url_scheme():
    with pytest.raises(InvalidParameterError, match="http"):
        LLM("ftp://example.org/v1")
    with pytest.raises(InvalidParameterError, match="Unknown option"):
        LLM("http://127.0.0.1:1/v1", batch_size=4)


def test_endpoint_num_proc_2(fault_server, tmp_path):
    fault_server.reset()
    llm = LLM(fault_server.url, cache=tmp_path / "c.sqlite")
    gen = TextGenerator(llm, "row {{ i }}", n=2)
    ds = Dataset.from_dict({"i": list(range(40))})
    ds.save_to_disk(str(tmp_path / "ds"))
    from datasets import load_from_disk

    out = load_from_disk(str(tmp_path / "ds")).map(gen, batched=True, batch_size=8, num_proc=2)
    assert out.num_rows == 80 and all(e is None for e in out["text_error"])
    assert [t.split(" | ")[0] for t in out["text"]] == [f"echo: row {i}" for i in range(40) for _ in range(2)]
    assert len(set(out["text"])) == 80  # two samples per row have distinct seeds
    assert server_stats(fault_server)["requests"] == 80


def test_async_map_gives_the_same_rows(fault_server, tmp_path):
    from datasets.fingerprint import Hasher

    fault_server.reset()
    ds = Dataset.from_dict({"i": list(range(50))})
    sync = ds.map(TextGenerator(LLM(fault_server.url, cache=False), "row {{ i }}", n=2), batched=True, batch_size=8)
    gen = TextGenerator(LLM(fault_server.url, cache=tmp_path / "c.sqlite", concurrency=16), "row {{ i }}", n=2)
    asyn = ds.map(gen.acall, batched=True, batch_size=8)
    assert asyn["text"] == sync["text"] and asyn["i"] == sync["i"]
    assert server_stats(fault_server)["requests"] == 200
    # the bound method fingerprints by the generator's configuration
    same = TextGenerator(LLM(fault_server.url, cache=tmp_path / "c.sqlite", concurrency=16), "row {{ i }}", n=2)
    assert Hasher.hash(gen.acall) == Hasher.hash(same.acall)


# -- issue 9: fail fast, circuit breaker, unbatched calls, cache identity without the port ---------------
from synth_datasets import Conditions, EndpointConfigError, GenerationError, Recipe  # noqa: E402


def _chats(server):
    return [r for r in server.log if r["method"] == "POST"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_first_request_401_stops_the_run_before_the_rest(fault_server, fresh_cache, transport, monkeypatch):
    monkeypatch.delenv("SYNTH_DATASETS_API_KEY", raising=False)
    fault_server.reset()
    fault_server.require_key = "the-right-key-0123"
    try:
        llm = LLM(fault_server.url, model="m", cache=fresh_cache, transport=transport)
        gen = TextGenerator(llm, "row {{ i }}")
        with pytest.raises(EndpointConfigError, match=rf"{fault_server.url}/chat/completions answered HTTP 401 "
                                                      r".*api_key=.*No other request was sent"):
            Dataset.from_dict({"i": list(range(50))}).map(gen, batched=True)
        assert len(_chats(fault_server)) == 1
        with pytest.raises(EndpointConfigError):  # the same backend refuses at once the next time
            llm.chat("again")
        assert len(_chats(fault_server)) == 1
    finally:
        fault_server.reset()


def test_url_without_v1_is_a_404_that_names_the_fix(fault_server, fresh_cache):
    fault_server.reset()
    llm = LLM(fault_server.url.removesuffix("/v1"), model="m", cache=fresh_cache)
    with pytest.raises(EndpointConfigError, match=r"HTTP 404 .*usually ends in\s+/v1.*model="):
        llm.generate([ChatRequest.of([{"role": "user", "content": f"r{i}"}], i) for i in range(30)])
    assert len(_chats(fault_server)) == 1


def test_circuit_breaker_stops_on_the_same_non_retryable_failure(fault_server, fresh_cache):
    fault_server.reset()
    llm = LLM(fault_server.url, cache=fresh_cache, concurrency=2)
    reqs = [ChatRequest.of([{"role": "user", "content": f"r{i} [bad400]"}], i) for i in range(60)]
    with pytest.raises(EndpointConfigError, match=r"the first 8 requests .* failed with the same error .*HTTP 400"):
        llm.generate(reqs)
    assert 8 <= len(_chats(fault_server)) <= 8 + 2  # the rest were never sent
    # fail_fast=False: every failure is an error row, the run goes on. (Let a request of the stopped run
    # that was already on the wire land first, so it is not counted with this run's.)
    time.sleep(1.0)
    fault_server.reset()
    out = LLM(fault_server.url, cache=False, concurrency=2, fail_fast=False).generate(reqs[:12])
    assert len(out) == 12 and all("HTTP 400" in c.error for c in out) and len(_chats(fault_server)) == 12


def test_breaker_ignores_mixed_and_retryable_failures(fault_server, fresh_cache):
    """Ordinary per-row errors (a 400 here and there, retries exhausted on 500s) stay error rows."""
    fault_server.reset()
    prompts = [f"r{i} [bad400]" if i % 2 else f"r{i}" for i in range(20)] + [f"d{i} [always500]" for i in range(10)]
    llm = LLM(fault_server.url, cache=fresh_cache, max_retries=0)
    out = llm.generate([ChatRequest.of([{"role": "user", "content": p}], 0) for p in prompts])
    assert sum(c.error is None for c in out) == 10 and sum("HTTP 400" in (c.error or "") for c in out) == 10
    assert sum("HTTP 500" in (c.error or "") for c in out) == 10


def test_a_recipe_whose_generation_failed_on_every_row_says_so(fault_server, fresh_cache):
    fault_server.reset()
    llm = LLM(fault_server.url, cache=fresh_cache, max_retries=0)
    from synth_datasets.curate import ExactDuplicates

    r = (Recipe("all-fail", source=Dataset.from_dict({"w": [f"w{i} [always500]" for i in range(5)]}))
         .map(TextGenerator(llm, "{{ w }}"), name="generate")
         .filter(lambda b: [t is not None for t in b["text"]], name="drop-failed")
         .fit_filter(ExactDuplicates(column="text"), name="dedup", with_indices=True))
    with pytest.raises(GenerationError, match=r"'generate' .* only error rows \(5 of 5 .*First error: HTTP 500"):
        r.run()


def test_unbatched_map_is_a_clear_error(fault_server):
    from synth_datasets.curate import Length

    ds = Dataset.from_dict({"w": ["a", "b"]})
    gen = TextGenerator(LLM(fault_server.url, cache=False), "say {{ w }}")
    for call in (lambda: ds.map(gen), lambda: ds.map(Conditions(x=["1", "2"])),
                 lambda: ds.filter(Length(column="w", min_words=1))):
        with pytest.raises(InvalidParameterError, match=r"single row .*batched=True"):
            call()


def test_cache_identity_survives_a_restart_on_another_port(tmp_path):
    from fault_server import FaultServer

    cache = tmp_path / "c.sqlite"
    ds = Dataset.from_dict({"w": ["a", "b", "c"]})
    first = FaultServer().start()
    try:
        out1 = ds.map(TextGenerator(LLM(first.url, model="m", cache=cache), "say {{ w }}"), batched=True)
        assert first.requests == 3
    finally:
        first.stop()
    second = FaultServer().start()  # the same model behind another port
    try:
        assert second.port != first.port
        llm = LLM(second.url, model="m", cache=cache)
        out2 = ds.map(TextGenerator(llm, "say {{ w }}"), batched=True)
        assert second.requests == 0 and out2["text"] == out1["text"]
        assert llm.identity() == {"backend": "endpoint", "model": "m", "served_model": "fault-model"}
        # a server that reports another model id is another model: no cache hit
        second.model_id = "other-model"
        other = LLM(second.url, model="m2", cache=cache)
        other.generate([ChatRequest.of([{"role": "user", "content": "say a"}], 0)])
        assert second.requests == 1
        # identity= pins it; the card (describe) and the _model column record it
        pinned = LLM(second.url, model="m", cache=cache, identity="smollm2-q4@2024-11")
        d = TextGenerator(pinned, "say {{ w }}").describe()
        assert d["llm"]["identity"] == {"backend": "endpoint", "model": "m", "identity": "smollm2-q4@2024-11"}
        out3 = ds.map(TextGenerator(pinned, "say {{ w }}"), batched=True)
        assert set(out3["text_model"]) == {"smollm2-q4@2024-11"}
        with pytest.raises(InvalidParameterError, match="identity"):
            LLM(second.url, identity="")
    finally:
        second.stop()


# -- issue 22, item 8: a server answering 200 with HTML trips the breaker ---------------------------------
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_answering_html_with_200_stops_the_run_in_a_few_calls(fault_server, fresh_cache, transport):
    """It used to cost 1,200 calls for 200 rows (every row retried 5 times) and no breaker tripped."""
    fault_server.reset()
    fault_server.html = True
    key = "sk-html-secret-0123456789"
    try:
        llm = LLM(fault_server.url, model="m", cache=fresh_cache, transport=transport, api_key=key,
                  backoff_base=0.01, backoff_max=0.02)
        gen = TextGenerator(llm, "row {{ i }}")
        with pytest.raises(EndpointConfigError) as e:
            Dataset.from_dict({"i": list(range(200))}).map(gen, batched=True)
        calls = len(_chats(fault_server))
        assert calls <= 30, calls
        msg = str(e.value)
        assert f"server at {fault_server.url} answers something that is not an OpenAI-compatible JSON reply" in msg
        assert "<!DOCTYPE html><html><head><title>Welcome</title>" in msg and "/v1" in msg
        assert key not in msg and "Authorization: Bearer" in msg  # the echoed key is scrubbed
    finally:
        fault_server.reset()


def test_unreadable_replies_in_the_middle_of_a_run_trip_the_breaker(fault_server, fresh_cache):
    """After a good first reply, 12 unreadable replies in a row stop the run; a few now and then do not."""
    fault_server.reset()
    llm = LLM(fault_server.url, cache=fresh_cache, concurrency=4, max_retries=1, backoff_base=0.01, backoff_max=0.02)
    mixed = [ChatRequest.of([{"role": "user", "content": f"ok {i}" + (" [html]" if i % 3 == 1 else "")}], i)
             for i in range(30)]
    out = llm.generate(mixed)
    assert sum(c.error is not None for c in out) == 10  # error rows, no stop: they never came 12 in a row
    fault_server.reset()
    reqs = [ChatRequest.of([{"role": "user", "content": "fine first"}], 0)] + \
        [ChatRequest.of([{"role": "user", "content": f"r{i} [html]"}], i) for i in range(1, 200)]
    with pytest.raises(EndpointConfigError, match=r"12 such replies in a row.*It works!"):
        LLM(fault_server.url, cache=fresh_cache, concurrency=4, backoff_base=0.01, backoff_max=0.02).generate(reqs)
    assert len(_chats(fault_server)) <= 1 + 12 + 4


def test_a_source_that_is_neither_url_path_name_nor_hub_id_is_our_error():
    """LLM("not a url") used to fail at first use with huggingface_hub's HFValidationError."""
    from synth_datasets.errors import ModelNotFoundError

    for bad in ("not a url", "model?v=2", "x$y"):
        with pytest.raises(ModelNotFoundError, match=r"not a model source LLM understands.*a named model.*\.gguf "
                                                     r"file.*Hub id.*http\(s\)://.*/v1") as e:
            LLM(bad)
        assert type(e.value).__module__ == "synth_datasets.errors"


def test_the_model_column_holds_no_host_or_port(tmp_path):
    """`review_model` (any `<output>_model`) held the endpoint URL with its port: reruns on another port differed."""
    from fault_server import FaultServer

    ds = Dataset.from_dict({"w": ["a", "b"]})
    columns = []
    for _ in range(2):
        server = FaultServer().start()
        try:
            out = ds.map(TextGenerator(LLM(server.url, model="m", cache=False), "say {{ w }}", output="review"),
                         batched=True)
            columns.append(out["review_model"])
        finally:
            server.stop()
    assert columns[0] == columns[1] == ["m@fault-model"] * 2
