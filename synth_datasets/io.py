"""Writing datasets to a folder atomically: all files appear at once, or none."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from .errors import InvalidParameterError

SPLIT = "train"
MAX_SHARD_BYTES = 500 * 1024 * 1024  # same order as datasets' push_to_hub default


def check_output_dir(out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Fail early (before any generation) if ``out`` cannot be written. Leaves nothing behind.

    Permission bits are not enough (root passes them; ``/proc`` or a read-only mount refuse anyway), so
    the folder the result will be renamed from is really created, as a temporary sibling of ``out``
    (with any missing parent folders), and removed again.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"Output path {out} is a file, not a folder. Choose another --out.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InvalidParameterError(f"Output folder {out} already exists and is not empty. Choose another folder, "
                                    "or replace it: --overwrite on the command line, overwrite=True in Python "
                                    "(publish(..., overwrite=True), Recipe.run(target=..., overwrite=True)).")
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


def temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new private folder ``<parent>/<prefix><pid>-<random>``, after removing the stale ones: folders
    with that prefix left by a process that no longer runs (a SIGKILL or power loss during a write).
    Folders of a live process, and names this library did not make, are left alone."""
    parent = Path(parent)
    for old in parent.glob(glob.escape(prefix) + "*"):
        pid = old.name[len(prefix):].split("-", 1)[0]
        if old.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def write_folder_atomically(out: str | os.PathLike, write: Callable[[Path], None], *,
                            overwrite: bool = False) -> Path:
    """Call ``write(tmp)`` on a temporary sibling folder of ``out`` (``.<name>.tmp-<pid>-<random>``), then
    rename it to ``out``.

    An interrupted or failed write leaves nothing behind: not the temporary folder, not the parent
    folders this call created. A write killed outright (SIGKILL) leaves its temporary folder; the next
    write to the same ``out`` removes it.
    """
    out = check_output_dir(out, overwrite=overwrite)
    parent = out.resolve().parent
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
        tmp = temp_dir(parent, f".{out.name}.tmp-")
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp made it private; the result gets ordinary permissions
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
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


def save_dataset(ds, out: str | os.PathLike, *, extra_files: dict[str, Any] | None = None,
                 overwrite: bool = False) -> Path:
    """Write ``ds`` as ``out/data/train-00000-of-00001.parquet`` (+ JSON files), atomically.

    Files are written into a temporary sibling folder that is renamed to ``out`` at the end, so an
    interrupted save leaves nothing half-written.
    """
    def write(tmp: Path) -> None:
        write_parquet_shards(ds, tmp)
        for name, obj in (extra_files or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")

    return write_folder_atomically(out, write, overwrite=overwrite)
