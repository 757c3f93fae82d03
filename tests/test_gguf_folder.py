"""The GGUF's converted folder (llm/gguf.py): the same tensors and tokenizer as reading the GGUF itself,
so loading from it changes no output and no cache key; a folder that cannot be written falls back."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch

from synth_datasets import LLM
from synth_datasets.llm import embedded_model_path
from synth_datasets.llm.gguf import MARKER, folder_from_gguf
from synth_datasets.llm.identity import file_sha256
from synth_datasets.llm.transformers_backend import TransformersBackend


def test_folder_holds_the_ggufs_tensors_and_tokenizer():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_model_path()
    folder = folder_from_gguf(gguf)
    assert folder.name.endswith(f"-{file_sha256(gguf)[:12]}-hf") and (folder / "model.safetensors").is_file()
    assert folder_from_gguf(gguf) == folder  # made once, then found
    direct = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    a, b = direct.state_dict(), loaded.state_dict()
    assert sorted(a) == sorted(b)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()  # still tied
    tg = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tf = AutoTokenizer.from_pretrained(folder)
    msgs = [{"role": "system", "content": "You are a critic."},
            {"role": "user", "content": "Review Übermensch — a naïve café 🎬\n\n\ttabs and  spaces"}]
    text = tg.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert tf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) == text
    assert tf(text, add_special_tokens=False)["input_ids"] == tg(text, add_special_tokens=False)["input_ids"]
    ids = list(range(0, len(tg), 7))
    assert tf.decode(ids) == tg.decode(ids) and len(tf) == len(tg)
    assert (tf.eos_token_id, tf.bos_token_id) == (tg.eos_token_id, tg.bos_token_id)


def test_backend_loads_the_folder_and_keeps_the_ggufs_identity(embedded_llm):
    backend = embedded_llm.backend
    backend._load()
    assert backend._model.name_or_path == str(folder_from_gguf(embedded_model_path()))
    # cache keys come from the GGUF file, not from where the weights were read
    assert embedded_llm.identity()["sha256"] == file_sha256(embedded_model_path())


def test_unwritable_folder_falls_back_to_the_gguf(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the models folder should be")
    monkeypatch.setenv("SYNTH_DATASETS_HOME", str(blocker))
    backend = LLM(cache=False).backend
    assert isinstance(backend, TransformersBackend)
    kw: dict = {}
    with caplog.at_level(logging.WARNING):
        where = backend._gguf_folder(kw)
    assert where == str(embedded_model_path().parent) and kw == {"gguf_file": embedded_model_path().name}
    assert "reading the GGUF itself" in caplog.text
    backend.gguf_folder = False
    kw = {}
    assert backend._gguf_folder(kw) == str(embedded_model_path().parent) and kw["gguf_file"]


def test_conversion_replaces_a_folder_that_is_no_model(tmp_path):
    """Only a complete folder (model.safetensors present) is reused; an incomplete one of ours (it holds
    our marker) is replaced by a fresh conversion, made in a temporary folder that does not stay behind.
    (A folder without the marker is never deleted: tests/test_models.py.)"""
    gguf = embedded_model_path()
    out = tmp_path / f"{gguf.stem}-{file_sha256(gguf)[:12]}-hf"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / MARKER).write_text("{}")
    assert folder_from_gguf(gguf, cache_dir=tmp_path) == out
    assert (out / "model.safetensors").is_file() and (out / "config.json").read_text() != "{}"
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    shutil.rmtree(out)  # ~520 MB: pytest keeps its last temporary folders


def test_a_bfloat16_folder_holds_the_float32_weights_rounded_and_loads_without_a_float32_copy(tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    gguf = embedded_model_path()
    f32 = folder_from_gguf(gguf, cache_dir=tmp_path)
    bf16 = folder_from_gguf(gguf, cache_dir=tmp_path, dtype="bfloat16")
    assert bf16.name == f32.name + "-bf16" and (bf16 / MARKER).is_file()
    assert (bf16 / "model.safetensors").stat().st_size < 0.6 * (f32 / "model.safetensors").stat().st_size
    cast = AutoModelForCausalLM.from_pretrained(f32, dtype=torch.bfloat16).state_dict()
    made = AutoModelForCausalLM.from_pretrained(bf16, dtype=torch.bfloat16).state_dict()
    assert sorted(cast) == sorted(made) and [k for k in cast if not torch.equal(cast[k], made[k])] == []
    with pytest.raises(ValueError, match="'float32' or 'bfloat16'"):
        folder_from_gguf(gguf, cache_dir=tmp_path, dtype="float16")
    monkeypatch.setenv("SYNTH_DATASETS_HOME", str(tmp_path))
    backend = TransformersBackend(str(gguf), dtype="bfloat16")
    assert backend._gguf_folder({}) == str(bf16)  # a bfloat16 model maps its own folder
