"""``LLM(..., engine="vllm")``: vLLM's offline engine on a GPU (optional extra). The generation tests
need a CUDA GPU and the ``vllm`` package and skip without them; the configuration checks run anywhere."""

from __future__ import annotations

import importlib.util
import pickle

import pytest

from synth_datasets import LLM
from synth_datasets.errors import InvalidParameterError, MissingDependencyError
from synth_datasets.llm import ChatRequest, SamplingParams

from sampling_checks import check_seed_only

HAVE_VLLM = importlib.util.find_spec("vllm") is not None


def _gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


needs_gpu = pytest.mark.skipif(not (HAVE_VLLM and _gpu()),
                               reason="engine='vllm' tests need a CUDA GPU and `pip install 'synth-datasets[vllm]'`")


def test_unknown_engine_is_refused_with_the_choices():
    with pytest.raises(InvalidParameterError, match="'transformers'.*'vllm'"):
        LLM(engine="tensorrt")


@pytest.mark.skipif(HAVE_VLLM, reason="vllm is installed here")
def test_missing_vllm_is_a_clear_error_naming_the_pip_command():
    with pytest.raises(MissingDependencyError, match=r"pip install 'synth-datasets\[vllm\]'"):
        LLM(engine="vllm")
    with pytest.raises(ImportError):  # it subclasses the built-in, so `except ImportError` still works
        LLM(engine="vllm")


def test_vllm_backend_refuses_a_cpu_device_before_loading(tmp_path):
    from synth_datasets.llm.vllm_backend import VllmBackend

    with pytest.raises(InvalidParameterError, match="GPU"):
        VllmBackend(str(tmp_path), device="cpu")
    with pytest.raises(InvalidParameterError, match="dtype='int8' is the CPU engine's"):
        VllmBackend(str(tmp_path), dtype="int8")


def test_engine_is_part_of_the_fingerprinted_configuration():
    a = LLM(cache=False)
    b = LLM(cache=False, engine="transformers")
    assert pickle.loads(pickle.dumps(b)).options == {"engine": "transformers"}
    assert a.__getstate__() != b.__getstate__()


@pytest.fixture(scope="module")
def vllm_llm(tmp_path_factory):
    return LLM(engine="vllm", cache=False, dtype="float32")  # the embedded GGUF, dequantized into a folder once


@needs_gpu
def test_vllm_samples_depend_only_on_their_seed(vllm_llm):
    _, a = check_seed_only(vllm_llm.generate, SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=24))
    assert all(x.usage["completion_tokens"] >= 1 and x.error is None for x in a)


@needs_gpu
def test_vllm_greedy_matches_the_transformers_backend(vllm_llm, embedded_llm):
    params = SamplingParams(temperature=0.0, max_new_tokens=12, logprobs=True)
    reqs = [ChatRequest.of([{"role": "user", "content": "Name three colours."}], 0)]
    (v,) = vllm_llm.generate(reqs, params)
    (t,) = embedded_llm.generate(reqs, params)
    assert v.text.split()[:3] == t.text.split()[:3]  # same weights, float32: the same first greedy words
    assert len(v.logprobs) == v.usage["completion_tokens"] and all(lp <= 0 for lp in v.logprobs)
    assert vllm_llm.identity()["backend"] == "vllm"
    assert vllm_llm.identity()["sha256"] == embedded_llm.identity()["sha256"]
