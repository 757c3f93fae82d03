"""Ready-made dataset recipes, and the loader for them and for your own builder scripts.

A builder is a plain Python file that defines ``recipe(*, ...) -> Recipe``. Its keyword parameters
(with defaults) become command-line options (``--n``, ``--max-new-tokens``, ...) and are recorded in
``provenance.json``; a parameter named ``llm`` is for Python callers only (pass a loaded ``LLM``).

    synth-datasets build movie-reviews --n 200 --out out/movie-reviews
    synth-datasets build movie-reviews-v2 --n 200 --out out/movie-reviews-v2
    synth-datasets build text-classification --task "news article" --labels sport tech --n 200 --out out/news
    synth-datasets build path/to/my_builder.py --out out/mine

>>> sorted(BUILDERS)
['magpie', 'movie-reviews', 'movie-reviews-v2', 'qa-pairs', 'support-dialogues', 'text-classification']
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from synth_datasets.errors import BuilderError
from synth_datasets.recipe import Recipe, bind_params

BUILDERS = {"movie-reviews": "builders.movie_reviews", "movie-reviews-v2": "builders.movie_reviews_v2",
            "qa-pairs": "builders.qa_pairs", "magpie": "builders.magpie",
            "support-dialogues": "builders.support_dialogues", "text-classification": "builders.text_classification"}
_ROOT = Path(__file__).resolve().parent


@dataclass
class Builder:
    """A loaded builder: its name, file, sha256 and module (whose ``recipe()`` makes the Recipe)."""

    name: str
    path: Path
    sha256: str
    module: ModuleType
    registered: bool

    def parameters(self) -> dict[str, inspect.Parameter]:
        """The parameters a user may set (``llm`` is left out: it is not configuration)."""
        return {n: p for n, p in inspect.signature(self.module.recipe).parameters.items() if n != "llm"}

    def recipe(self, *, llm: Any = None, **params: Any) -> Recipe:
        """Call the builder's ``recipe(**params)``; the returned Recipe records every parameter
        (defaults included) and its seed."""
        bound = bind_params(self.module.recipe, params)
        extra = {"llm": llm} if llm is not None and "llm" in inspect.signature(self.module.recipe).parameters else {}
        r = self.module.recipe(**bound, **extra)
        if not isinstance(r, Recipe):
            raise BuilderError(f"{self.path}: recipe() returned {type(r).__name__}, not a Recipe. Return "
                               "synth_datasets.Recipe(...) with its steps.")
        r.params = dict(bound)
        if r.seed is None and isinstance(bound.get("seed"), int):
            r.seed = bound["seed"]
        return r

    def describe(self) -> dict[str, Any]:
        """Name, path, sha256. The path is never a machine's absolute path (it is published): a shipped
        builder's path in the package, else the script's path relative to the working folder, else its
        file name. ``publish`` ships the script itself as ``builder.py`` beside the data."""
        for base in ((_ROOT.parent,) if self.registered else (Path.cwd().resolve(),)):
            try:
                path = self.path.relative_to(base).as_posix()
                break
            except ValueError:
                pass
        else:
            path = self.path.name
        return {"name": self.name, "path": path, "sha256": self.sha256, "registered": self.registered}

    def command(self, params: dict[str, Any], *, script: str | None = None, out: str | None = None) -> str:
        """The canonical ``synth-datasets build`` command for these parameters: the builder by name, or
        by ``script`` (default: the script's path) for an unregistered one; ``--out out`` when given."""
        target = self.name if self.registered else (script or str(self.path))
        args = ["synth-datasets", "build", target]
        for k, v in params.items():
            flag = "--" + k.replace("_", "-")
            if isinstance(v, bool):
                args.append(flag if v else "--no-" + k.replace("_", "-"))
            elif isinstance(v, (list, tuple)):
                args += [flag, *map(str, v)] if v else []
            elif v is not None:
                args += [flag, str(v)]
        if out:
            args += ["--out", out]
        return shlex.join(args)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _import_file(path: Path) -> ModuleType:
    name = f"_synth_builder_{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise BuilderError(f"Cannot load {path} as a Python module. A builder is a .py file that defines recipe().")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(name, None)
        raise BuilderError(f"Builder {path} has a syntax error on line {e.lineno}: {e.msg}. Fix the script.") from e
    except Exception as e:
        sys.modules.pop(name, None)
        raise BuilderError(f"Builder {path} failed while loading: {type(e).__name__}: {e}. Fix the script "
                           "(it must import cleanly; do the work inside recipe()).") from e
    return module


def load(name_or_path: str) -> Builder:
    """A registered builder by name (``movie-reviews``) or a builder script by path (``my_builder.py``).

    Raises:
        BuilderError: an unknown name (the message lists the known ones), a missing file, a file that
            is not Python, or a script without ``recipe()``.
    """
    target = str(name_or_path)
    by_path = {(_ROOT / (m.split(".")[-1] + ".py")).resolve(): n for n, m in BUILDERS.items()}
    if target in BUILDERS:
        module = importlib.import_module(BUILDERS[target])
        path, name, registered = Path(module.__file__).resolve(), target, True
    else:
        p = Path(target).expanduser()
        if not (p.suffix == ".py" or "/" in target or p.exists()):
            raise BuilderError(f"Unknown builder {target!r}. Known builders: {sorted(BUILDERS)}; or pass the path of "
                               "a builder script (a .py file that defines recipe()).")
        if not p.is_file():
            raise BuilderError(f"Builder script {target!r} does not exist (or is not a file). Check the path; known "
                               f"builders by name: {sorted(BUILDERS)}.")
        if p.suffix != ".py":
            raise BuilderError(f"Builder script {target!r} is not a .py file. A builder is a Python file that "
                               "defines recipe().")
        path = p.resolve()
        if path in by_path:
            module, name, registered = importlib.import_module(BUILDERS[by_path[path]]), by_path[path], True
        else:
            module = _import_file(path)
            name, registered = getattr(module, "NAME", None) or path.stem.replace("_", "-"), False
    if not callable(getattr(module, "recipe", None)):
        raise BuilderError(f"{path} defines no recipe() function, so it is not a builder. Add "
                           "`def recipe(*, n: int = 50, seed: int = 0) -> Recipe:` (see builders/movie_reviews.py).")
    return Builder(name=name, path=path, sha256=_sha256(path), module=module, registered=registered)
