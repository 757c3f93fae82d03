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
