"""Bad input gets a clear error naming what to fix, before any model call."""

import json
import urllib.request

import pytest
from datasets import Dataset

from synth_datasets import (LLM, InvalidParameterError, MissingVariableError, ModelNotFoundError, SamplingParams,
                            Template, TextGenerator)


def server_requests(server) -> int:
    return json.loads(urllib.request.urlopen(server.url.replace("/v1", "/stats")).read())["requests"]


@pytest.mark.parametrize("kw, name", [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
                                      ({"max_new_tokens": 0}, "max_new_tokens"), ({"seed": -3}, "seed")])
def test_bad_sampling_parameters_name_the_parameter(kw, name):
    with pytest.raises(InvalidParameterError, match=rf"{name}=") as e:
        TextGenerator(LLM(cache=False), "hi", **kw)
    assert "SamplingParams" in str(e.value)
    with pytest.raises(InvalidParameterError, match=name):
        SamplingParams.make(**kw)


@pytest.mark.parametrize("kw, name", [({"n": 0}, "n=0"), ({"output": ""}, "output")])
def test_bad_generator_arguments(kw, name):
    with pytest.raises(InvalidParameterError, match=name):
        TextGenerator(LLM(cache=False), "hi", **kw)


def test_bad_llm_options():
    with pytest.raises(InvalidParameterError, match="batch_size=0"):
        LLM(batch_size=0)
    with pytest.raises(InvalidParameterError, match="concurrency"):
        LLM("http://127.0.0.1:9/v1", concurrency=0)
    with pytest.raises(InvalidParameterError, match="Unknown option"):
        LLM(concurrency=4)  # an endpoint option on a local model
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        LLM("/no/such/model.gguf")
    with pytest.raises(InvalidParameterError, match="must be an LLM"):
        TextGenerator("http://127.0.0.1:9/v1", "hi")


def test_missing_variable_raises_before_any_model_call(fault_server):
    fault_server.reset()
    gen = TextGenerator(LLM(fault_server.url, cache=False), Template(user="A {{ label }} review, {{ tone }}."))
    with pytest.raises(MissingVariableError) as e:
        Dataset.from_dict({"label": ["good", "bad"]}).map(gen, batched=True)
    assert e.value.variable == "tone" and "row 0" in str(e.value) and "['label']" in str(e.value)
    # a None value names the dataset row when indices are passed
    ds = Dataset.from_dict({"label": ["a", "b", "c", "d"], "tone": ["x", "y", None, "z"]})
    with pytest.raises(MissingVariableError, match="row 2") as e:
        ds.map(gen, batched=True, with_indices=True, batch_size=4)
    assert e.value.row == 2
    assert server_requests(fault_server) == 0  # the good rows of the failing batch were not sent either
    with pytest.raises(MissingVariableError, match="row 0 of this batch"):
        ds.map(gen, batched=True, batch_size=2)  # second batch: its row 0 is dataset row 2
    assert server_requests(fault_server) == 2  # only the clean first batch went out


def test_output_column_clash():
    gen = TextGenerator(LLM(cache=False), "{{ text }}", output="text")
    with pytest.raises(InvalidParameterError, match="Output column 'text' already exists"):
        gen({"text": ["a"]})


def test_empty_dataset_makes_no_calls(fault_server):
    fault_server.reset()
    llm = LLM(fault_server.url, cache=False)
    out = Dataset.from_dict({"p": []}, ).map(TextGenerator(llm, "{{ p }}"), batched=True)
    assert out.num_rows == 0 and server_requests(fault_server) == 0 and llm.stats["requests"] == 0


def test_over_long_prompt_is_an_error_row_not_cached_and_the_batch_goes_on(embedded_llm, tmp_path):
    """Past its context (8,192 tokens for SmolLM2) the model only produces garbage: such a row is refused
    before generation, with the token counts; it is not cached; the other rows are generated."""
    from synth_datasets.llm import ResponseCache

    llm = LLM(batch_size=32, cache=tmp_path / "c.sqlite")
    llm._backend = embedded_llm.backend
    backend = llm.backend
    ctx = backend.context_length
    assert ctx == 8192

    def tokens(text: str) -> int:
        return len(backend.tokenizer(backend._prompt_text([{"role": "user", "content": text.strip()}]),
                                     add_special_tokens=False)["input_ids"])

    words = ctx - 30
    while tokens("word " * words) > ctx - 4:  # under the context alone, over it with 16 new tokens
        words -= 4
    fits_alone, n = "word " * words, tokens("word " * words)
    assert n + 16 > ctx >= n
    ds = Dataset.from_dict({"p": ["Say hi.", fits_alone, "word " * (2 * ctx), "Say bye."]})
    out = ds.map(TextGenerator(llm, "{{ p }}", max_new_tokens=16, temperature=0), batched=True)
    assert out["text_error"][1] == (f"prompt_too_long: {n} prompt tokens + 16 new > context {ctx}. Shorten the "
                                    "prompt or lower max_new_tokens.")
    assert out["text_error"][2].startswith("prompt_too_long: ") and out["text"][1] is None is out["text"][2]
    assert out["text_error"][0] is None and out["text_error"][3] is None and out["text"][0] and out["text"][3]
    assert len(ResponseCache(tmp_path / "c.sqlite")) == 2 and llm.stats["errors"] == 2


def test_endpoint_context_overflow_is_a_prompt_too_long_row(llama_server, tmp_path):
    """llama.cpp's server (n_ctx 2048) answers 400 "maximum context length": that row is a prompt_too_long
    error row, the run goes on (it does not count as a misconfigured endpoint), nothing is cached for it."""
    from synth_datasets.llm import ResponseCache

    llm = LLM(llama_server, model="smollm2", cache=tmp_path / "c.sqlite", max_retries=0)
    ds = Dataset.from_dict({"p": ["word " * 3000, "Say hi.", "word " * 2500]})
    out = ds.map(TextGenerator(llm, "{{ p }}", max_new_tokens=8, temperature=0), batched=True)
    for i in (0, 2):
        assert out["text_error"][i].startswith("prompt_too_long: ") and "context length is 2048" in out["text_error"][i]
    assert out["text_error"][1] is None and out["text"][1]
    assert len(ResponseCache(tmp_path / "c.sqlite")) == 1
