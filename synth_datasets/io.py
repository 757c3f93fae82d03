"""Writing datasets to a folder atomically: all files appear at once, or none."""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import InvalidParameterError, NotOurFolderError

logger = logging.getLogger(__name__)

SPLIT = "train"
MAX_SHARD_BYTES = 500 * 1024 * 1024  # same order as datasets' push_to_hub default


@dataclass(frozen=True)
class OutputKind:
    """What one kind of output folder of ours holds: the JSON file that marks it as ours (with the keys
    only we write), the top-level files we write, and the sub-folders we write with the file suffixes in
    them. ``--overwrite`` replaces a folder only when everything in it is accounted for here."""

    name: str
    marker: str
    marker_keys: frozenset[str]
    files: frozenset[str]
    folders: dict[str, tuple[str, ...]] = field(default_factory=dict)


#: A published dataset (``publish``, ``synth-datasets build``). ``reviews.jsonl`` (human decisions) is not in
#: it on purpose: a plain overwrite would lose them, so only a merge (which carries them over) may replace it.
DATASET_OUTPUT = OutputKind("dataset", "provenance.json", frozenset({"provenance_format", "synth_datasets"}),
                            frozenset({"README.md", "provenance.json", "builder.py", "script.py"}),
                            {"data": (".parquet",), "report": (".png", ".md")})
#: A comparison (``compare(output_dir=...)``, ``synth-datasets compare --out``).
COMPARISON_OUTPUT = OutputKind("comparison", "compare.json", frozenset({"per_seed", "summary", "keys"}),
                               frozenset({"compare.md", "compare.json"}), {"plots": (".png",)})

_PRECIOUS = {"reviews.jsonl": "human review decisions; merge them first (synth-datasets review DIR --merge) or "
                              "move the file away"}


def protected_reason(path: str | os.PathLike) -> str | None:
    """Why ``path`` may never be replaced as an output folder, whatever it holds (``None`` if it may): a
    filesystem root, a mount point, the home folder, the working directory or one of its parents."""
    p = Path(path).expanduser().resolve()
    if p.parent == p:
        return "a filesystem root"
    if os.path.ismount(p):
        return "a mount point"
    try:
        if p == Path.home().resolve():
            return "your home folder"
    except (KeyError, RuntimeError):  # no home folder known
        pass
    cwd = Path.cwd().resolve()
    if p == cwd:
        return "the working directory"
    if p in cwd.parents:
        return "a parent of the working directory"
    return None


def _is_marker(path: Path, kind: OutputKind) -> bool:
    try:
        if not path.is_file() or path.is_symlink():
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and kind.marker_keys <= data.keys()


def foreign_entries(folder: str | os.PathLike, kind: OutputKind = DATASET_OUTPUT) -> list[str]:
    """What in ``folder`` this library does not write for a ``kind`` output (relative paths, folders
    ending in ``/``, symbolic links always): what a replace would destroy that is not ours."""
    folder = Path(folder)
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            out.append(p.name + " (a symbolic link)")
        elif p.is_dir() and p.name in kind.folders:
            for q in sorted(p.iterdir()):
                if q.is_symlink() or not q.is_file() or q.suffix not in kind.folders[p.name]:
                    out.append(f"{p.name}/{q.name}{'/' if q.is_dir() and not q.is_symlink() else ''}")
        elif p.is_dir():
            out.append(p.name + "/")
        elif not (p.is_file() and p.name in kind.files):
            out.append(p.name)
    return out


def _listing(entries: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(e) for e in entries[:limit])
    return shown + (f" and {len(entries) - limit} more" if len(entries) > limit else "")


def check_replaceable(folder: str | os.PathLike, kind: OutputKind = DATASET_OUTPUT, *,
                      carried: set[str] | None = None) -> None:
    """Raise :class:`NotOurFolderError` unless ``folder`` is an earlier ``kind`` output of this library
    holding nothing but what it wrote. ``carried``: top-level names the new output already holds copies
    of (a review merge carries the other files over), so replacing does not lose them."""
    folder = Path(folder)
    reason = protected_reason(folder)
    if reason:
        raise NotOurFolderError(f"Refusing to replace {folder}: it is {reason}. Nothing was deleted. Write to a new "
                                f"folder instead, e.g. --out {folder / 'my-dataset'}.")
    if not _is_marker(folder / kind.marker, kind):
        raise NotOurFolderError(f"Refusing to replace {folder}: it holds no {kind.marker} written by synth-datasets, "
                                f"so it is not an earlier {kind.name} output of ours (it holds "
                                f"{_listing(sorted(p.name for p in folder.iterdir()))}). Nothing was deleted. "
                                "Choose a new folder, or empty this one yourself.")
    foreign = [e for e in foreign_entries(folder, kind) if not (carried and e in carried)]
    if foreign:
        precious = [f"{e} ({_PRECIOUS[e]})" for e in foreign if e in _PRECIOUS]
        raise NotOurFolderError(f"Refusing to replace {folder}: besides the {kind.name} synth-datasets wrote, it holds "
                                f"{_listing(foreign)}, which replacing it would delete. Nothing was deleted. "
                                + (f"Note {'; '.join(precious)}. " if precious else "")
                                + "Move those elsewhere, or choose a new folder.")


def check_output_dir(out: str | os.PathLike, *, overwrite: bool = False, kind: OutputKind = DATASET_OUTPUT,
                     keep_foreign: bool = False) -> Path:
    """Fail early (before any generation) if ``out`` cannot be written. Leaves nothing behind.

    An existing, non-empty ``out`` is replaced only with ``overwrite`` and only when it is an earlier
    ``kind`` output of this library with nothing else in it (:func:`check_replaceable`); a filesystem root,
    mount point, the home folder, the working directory or a parent of it, and a symbolic link, never.
    ``keep_foreign``: the caller copies the folder's other top-level files into the new output (checked
    again when it is swapped in).

    Permission bits are not enough (root passes them; ``/proc`` or a read-only mount refuse anyway), so
    the folder the result will be renamed from is really created, as a temporary sibling of ``out``
    (with any missing parent folders), and removed again.
    """
    out = Path(out).expanduser()
    if out.is_symlink():
        raise InvalidParameterError(f"Output path {out} is a symbolic link (to {os.readlink(out)}): it is never "
                                    "replaced. Pass a real folder path as --out.")
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"Output path {out} is a file, not a folder. Choose another --out.")
    if out.exists():
        reason = protected_reason(out)
        if reason:
            raise NotOurFolderError(f"Refusing to write the output to {out}: it is {reason}, which is never "
                                    f"replaced. Write to a new folder instead, e.g. --out {out / 'my-dataset'}.")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            msg = (f"Output folder {out} already exists and is not empty. Choose another folder, or replace it: "
                   "--overwrite on the command line, overwrite=True in Python (publish(..., overwrite=True), "
                   "run_and_publish(recipe, ..., overwrite=True)).")
            try:
                check_replaceable(out, kind, carried=set(os.listdir(out)) if keep_foreign else None)
            except NotOurFolderError as e:
                msg += f" Replacing works only on a folder synth-datasets wrote, and this one is not: {e}"
            raise InvalidParameterError(msg)
        check_replaceable(out, kind, carried=set(os.listdir(out)) if keep_foreign else None)
    parent = out.resolve().parent
    ancestor = parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise InvalidParameterError(f"Cannot create {out}: {ancestor} is not a writable folder. "
                                    "Choose a writable --out.")
    created = [p for p in [parent, *parent.parents] if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=parent)
        os.rmdir(probe)
    except OSError as e:
        raise InvalidParameterError(f"Cannot create {out}: {e.strerror or e} (tried a temporary folder in "
                                    f"{parent}). Choose a writable --out.") from e
    finally:
        for d in created:  # innermost first
            try:
                d.rmdir()
            except OSError:
                break
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_stale(parent: Path, prefix: str) -> None:
    """Remove folders ``<parent>/<prefix><pid>-<random>`` (names only this module makes) whose process no
    longer runs (a SIGKILL or power loss during a write). Folders of a live process are left alone."""
    ours = re.compile(re.escape(prefix) + r"(\d+)-[a-z0-9_]{8}")  # mkdtemp's / _swap_in's 8 random characters
    for old in parent.glob(glob.escape(prefix) + "*"):
        m = ours.fullmatch(old.name)
        if m and old.is_dir() and not old.is_symlink() and int(m.group(1)) != os.getpid() \
                and not _pid_alive(int(m.group(1))):
            shutil.rmtree(old, ignore_errors=True)


def temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new private folder ``<parent>/<prefix><pid>-<random>``, after removing the stale ones: folders
    with that prefix left by a process that no longer runs (a SIGKILL or power loss during a write).
    Folders of a live process, and names this library did not make, are left alone."""
    parent = Path(parent)
    _remove_stale(parent, prefix)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def _swap_in(tmp: Path, out: Path, *, overwrite: bool, kind: OutputKind, keep_foreign: bool) -> None:
    """Rename ``tmp`` to ``out``. An existing ``out`` is checked again (it may have changed while the new
    output was being made), renamed aside, and deleted only once the new one is in place."""
    if not (out.exists() or out.is_symlink()):
        os.rename(tmp, out)
        return
    if out.is_symlink() or not out.is_dir() or protected_reason(out):
        raise NotOurFolderError(f"{out} changed while the new output was being made (it is now "
                                f"{protected_reason(out) or 'a symbolic link or a file'}): nothing was replaced. "
                                "Choose a new folder.")
    if any(out.iterdir()):
        if not overwrite:
            raise InvalidParameterError(f"Output folder {out} was filled by something else while the new output was "
                                        "being made: nothing was replaced. Choose another folder.")
        check_replaceable(out, kind, carried=set(os.listdir(tmp)) if keep_foreign else None)
    aside = out.with_name(f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.rename(out, aside)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(aside, out)
        raise
    try:
        shutil.rmtree(aside)
    except OSError as e:
        logger.warning("The new output is in %s; its previous version, moved to %s, could not be fully removed "
                       "(%s). Delete that folder yourself.", out, aside, e)


def write_folder_atomically(out: str | os.PathLike, write: Callable[[Path], None], *,
                            overwrite: bool = False, kind: OutputKind = DATASET_OUTPUT,
                            keep_foreign: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary sibling folder of ``out`` (``.<name>.tmp-<pid>-<random>``), then
    rename it to ``out``.

    An existing ``out`` is replaced only under the rules of :func:`check_output_dir` (checked before
    ``write`` and again before the swap): renamed aside, the new folder renamed into place, and only
    then the old one deleted. An interrupted or failed write leaves nothing behind: not the temporary
    folder, not the parent folders this call created. A write killed outright (SIGKILL) leaves its
    temporary folder; the next write to the same ``out`` removes it.
    """
    out = check_output_dir(out, overwrite=overwrite, kind=kind, keep_foreign=keep_foreign)
    parent = out.resolve().parent
    out = parent / out.name
    created = []
    p = parent
    while not p.exists():
        created.append(p)
        p = p.parent
    tmp = None
    try:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InvalidParameterError(f"Cannot create {parent}: {e.strerror}. Choose a writable --out.") from e
        if out.is_dir():  # the current output is complete, so earlier killed swaps' old copies can go
            _remove_stale(parent, f".{out.name}.old-")
        tmp = temp_dir(parent, f".{out.name}.tmp-")
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it private; the result gets ordinary permissions
        _swap_in(tmp, out, overwrite=overwrite, kind=kind, keep_foreign=keep_foreign)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        for d in created:  # innermost first
            try:
                d.rmdir()
            except OSError:
                break
        raise
    return out


def write_parquet_shards(ds, folder: str | os.PathLike, *, split: str = SPLIT,
                         max_shard_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    """Write ``ds`` as ``folder/data/{split}-0000i-of-0000n.parquet`` (the layout the Hub and
    ``load_dataset`` read) and return the files, in order."""
    data = Path(folder) / "data"
    data.mkdir(parents=True, exist_ok=True)
    n = max(1, -(-int(ds.data.nbytes) // max_shard_bytes)) if ds.num_rows else 1
    n = min(n, max(1, ds.num_rows))
    files = []
    for i in range(n):
        shard = ds.shard(num_shards=n, index=i, contiguous=True) if n > 1 else ds
        path = data / f"{split}-{i:05d}-of-{n:05d}.parquet"
        shard.to_parquet(str(path))
        files.append(path)
    return files


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def json_value(v: Any, *, max_items: int | None = None, max_chars: int | None = None) -> Any:
    """``v`` as plain JSON data: numpy scalars unwrapped, NaN/inf as None, mappings (string keys) and
    sequences recursed into, anything else as its ``str``; optionally at most ``max_items`` items per
    list/mapping and ``max_chars`` characters per string (``" ..."`` marks a cut).

    >>> import numpy as np
    >>> json_value({"a": np.float32(0.5), 1: [float("nan"), (2, "xyz")]}, max_chars=2)
    {'a': 0.5, '1': [None, [2, 'xy ...']]}
    """
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        return json_value(v.item(), max_items=max_items, max_chars=max_chars)
    if isinstance(v, Mapping):
        return {str(k): json_value(x, max_items=max_items, max_chars=max_chars)
                for k, x in list(v.items())[:max_items]}
    if isinstance(v, (list, tuple)):
        return [json_value(x, max_items=max_items, max_chars=max_chars) for x in v[:max_items]]
    if isinstance(v, str) and max_chars is not None and len(v) > max_chars:
        return v[:max_chars] + " ..."
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
