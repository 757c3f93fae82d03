"""Writing datasets to a folder atomically: all files appear at once, or none."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import InvalidParameterError


def check_output_dir(out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Fail early (before any generation) if ``out`` cannot be written."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise InvalidParameterError(f"Output folder {out} already exists and is not empty. Choose another --out "
                                    "or pass --overwrite.")
    parent = out.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise InvalidParameterError(f"Cannot write into {parent}. Choose a writable --out.")
    return out


def save_dataset(ds, out: str | os.PathLike, *, extra_files: dict[str, Any] | None = None,
                 overwrite: bool = False) -> Path:
    """Write ``ds`` as ``out/data/train-00000-of-00001.parquet`` (+ JSON files), atomically.

    Files are written into a temporary sibling folder that is renamed to ``out`` at the end, so an
    interrupted save leaves nothing half-written.
    """
    out = check_output_dir(out, overwrite=overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.resolve().parent))
    try:
        (tmp / "data").mkdir()
        ds.to_parquet(str(tmp / "data" / "train-00000-of-00001.parquet"))
        for name, obj in (extra_files or {}).items():
            (tmp / name).write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
