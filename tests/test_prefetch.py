"""What a load reads ahead (llm/prefetch.py) and the output projection's dense input: both change speed only,
never a result; these tests check they read the right bytes and compute the same numbers."""

from __future__ import annotations

import struct
import threading

import pytest
import torch
from safetensors.torch import save_file

from synth_datasets import LLM
from synth_datasets.llm import int8, prefetch
from synth_datasets.llm.transformers_backend import _output_forward, dense_output_projection


def _bytes_at(path, ranges) -> bytes:
    data = path.read_bytes()
    return b"".join(data[a:b] for a, b in ranges)


def test_tensor_ranges_cover_exactly_the_kept_tensors(tmp_path):
    tensors = {"a.weight": torch.arange(6, dtype=torch.float32), "b.bias": torch.ones(3, dtype=torch.bfloat16),
               "c.weight": torch.full((2, 2), 7, dtype=torch.int8)}
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path))
    all_ranges = prefetch.tensor_ranges(path)
    base = 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]
    assert all_ranges == [(base, path.stat().st_size)]  # every tensor after the header: one read
    got = _bytes_at(path, prefetch.tensor_ranges(path, keep=lambda n: n != "b.bias"))
    want = [tensors[n].view(torch.uint8).numpy().tobytes() for n in ("a.weight", "c.weight")]
    assert len(got) == sum(map(len, want)) and all(w in got for w in want)  # those two tensors, nothing of b.bias


def test_prefetch_reads_without_writing_and_skips_missing_files(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.randn(64, 64)}, str(path))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    t = prefetch.prefetch([(path, None), (tmp_path / "missing.safetensors", None), (path, [(8, 40)])])
    assert isinstance(t, threading.Thread) and t.daemon
    t.join(timeout=30)
    assert not t.is_alive()
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_an_int8_load_prefetches_its_codes_and_every_tensor_but_the_linear_weights(monkeypatch):
    first = LLM(dtype="int8", cache=False).backend
    first._load()  # the codes are stored beside the converted folder (if an earlier test has not already)
    jobs = []
    monkeypatch.setattr(prefetch, "prefetch", lambda j: jobs.append(list(j)))
    again = LLM(dtype="int8", cache=False).backend
    again._load()
    (got,) = jobs
    folder = again._loaded_from
    (codes_path, codes_ranges), (weights_path, ranges) = got
    assert codes_path == int8.cache_file_for(folder) and codes_ranges is None
    assert weights_path == folder / "model.safetensors"
    linear_weights = [f"{n}.weight" for n, m in again._model.named_modules() if hasattr(m, "_int8_codes_t")]
    assert linear_weights

    def span(name):
        return prefetch.tensor_ranges(weights_path, keep=lambda k: k == name)[0]

    def overlaps(a, b):
        return any(a < y and x < b for x, y in ranges)

    assert not [n for n in linear_weights if overlaps(*span(n))]  # no linear layer's bfloat16 weight is read
    for name in ("model.norm.weight", "model.embed_tokens.weight"):  # the rest is
        a, b = span(name)
        assert any(x <= a and b <= y for x, y in ranges)


@pytest.mark.parametrize("rows", [1, 4])
def test_the_output_projection_gets_a_dense_input_and_the_same_logits(rows):
    gen = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(64, 300, bias=False).to(torch.bfloat16)
    hidden = torch.randn(rows, 7, 64, generator=gen).to(torch.bfloat16)
    last = hidden[:, -1:, :]  # what transformers hands the output projection: a strided view
    assert last.stride()[0] == 7 * 64
    with torch.inference_mode():
        want = torch.nn.functional.linear(last.contiguous().clone(), lin.weight)
        got = _output_forward(lin, last)
    assert got.shape == (rows, 1, 300) and torch.equal(got, want)


def test_local_models_route_their_output_projection_through_the_dense_input(int8_backend_plain):
    model = int8_backend_plain._model
    assert model.lm_head.forward.__func__ is _output_forward
    packed = torch.nn.Linear(4, 4)
    packed._onednn_weight = object()  # a float32 output projection packed by oneDNN keeps its own forward

    class M(torch.nn.Module):
        def get_output_embeddings(self):
            return packed
    assert dense_output_projection(M()) is False


@pytest.fixture(scope="module")
def int8_backend_plain():
    b = LLM(dtype="bfloat16", cache=False).backend
    b._load()
    return b
