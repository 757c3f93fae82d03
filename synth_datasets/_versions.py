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
