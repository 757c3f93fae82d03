"""The reviews file: an append-only JSONL log of every decision, written and ``fsync``-ed at once.

One line per event, never rewritten: a browser tab closed or a server killed mid-review loses nothing
that was acknowledged. The current state (per reviewer, per row) is a replay of the log; undo is an
event too (``{"type": "undo", "undoes": seq}``). A merge appends a ``merged`` marker, and a replay
starts after the last one (what came before is already in the data).

Several processes may write one file (two reviewers, two servers): each append holds an exclusive
``flock`` and first reads what the others appended. A last line torn by a crash (no newline) is
ignored on reading and the next append starts on a fresh line. Any other line that is not a valid
record (bad JSON, NaN or infinite numbers, missing keys, wrong types) is skipped with one warning and
counted in :attr:`ReviewLog.skipped`: one bad line never stops the review.

>>> import tempfile, pathlib
>>> log = ReviewLog(pathlib.Path(tempfile.mkdtemp()) / "reviews.jsonl")
>>> _ = log.append({"type": "decision", "action": "relabel", "row": 0, "id": 7, "reviewer": "ana",
...                 "label": "neg", "llm_label": "pos"})
>>> _ = log.append({"type": "decision", "action": "accept", "row": 1, "id": 8, "reviewer": "ana", "llm_label": "pos"})
>>> _ = log.undo("ana")
>>> {r: s.final_label("pos") for r, s in log.states()["ana"].items() if s.decided}
{0: 'neg'}
"""

from __future__ import annotations

import datetime
import json
import math
import os
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError

LOG_FORMAT = 1
ACTIONS = ("accept", "relabel", "edit", "drop", "skip", "note")
#: actions that settle a row for a reviewer (skip and note do not)
DECIDING = ("accept", "relabel", "edit", "drop")
ANONYMOUS = "anonymous"
#: the longest time (seconds) one decision may record: a week, a tab left open included
MAX_SECONDS = 7 * 24 * 3600.0

try:  # POSIX; elsewhere one process per file is assumed
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


def reviewer_name(name: Any) -> str:
    """A reviewer's name as recorded: trimmed, at most 80 characters, ``anonymous`` when empty."""
    if name is None:
        return ANONYMOUS
    if not isinstance(name, str):
        raise InvalidParameterError(f"reviewer={name!r} must be a string (the name the reviewer types).")
    name = " ".join(name.split())[:80]
    return name or ANONYMOUS


def check_seconds(value: Any, *, field: str = "seconds") -> float | None:
    """``value`` as the seconds a decision took (rounded to ms), None when absent; an error naming
    ``field`` when it is not a finite number from 0 to :data:`MAX_SECONDS`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_SECONDS:
        raise InvalidParameterError(f"{field}={value!r} must be a finite number of seconds from 0 to "
                                    f"{MAX_SECONDS:g} (or left out).")
    return round(float(value), 3)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def record_problem(rec: Any) -> str | None:
    """Why ``rec`` (a parsed line) is not a record a replay can use, or None when it is."""
    if not isinstance(rec, dict):
        return "not a JSON object"
    kind = rec.get("type")
    if not isinstance(kind, str):
        return "no 'type'"
    if "seq" in rec and not _int(rec["seq"]):
        return f"'seq' is {rec['seq']!r}, not an integer"
    if kind == "decision":
        if rec.get("action") not in ACTIONS:
            return f"'action' is {rec.get('action')!r}, not one of {list(ACTIONS)}"
        if not _int(rec.get("row")) or rec["row"] < 0:
            return f"'row' is {rec.get('row')!r}, not a row number"
        if not _int(rec.get("seq")):
            return "no 'seq'"
        if rec.get("reviewer") is not None and not isinstance(rec["reviewer"], str):
            return f"'reviewer' is {rec['reviewer']!r}, not a name"
        try:
            check_seconds(rec.get("seconds"))
        except InvalidParameterError:
            return f"'seconds' is {rec.get('seconds')!r}, not a finite number from 0 to {MAX_SECONDS:g}"
        for key in ("text", "original_text", "note"):
            if rec.get(key) is not None and not isinstance(rec[key], str):
                return f"{key!r} is not text"
    elif kind == "undo" and not _int(rec.get("undoes")):
        return f"'undoes' is {rec.get('undoes')!r}, not a record number"
    return None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


@dataclass
class RowState:
    """One reviewer's view of one row after replaying the log."""

    decided: bool = False
    dropped: bool = False
    skipped: bool = False
    label: Any = None          # the reviewer's label when it differs from the LLM's, else None
    text: str | None = None    # the edited text, else None
    note: str | None = None
    llm_label: Any = None
    id: Any = None
    seconds: float | None = None
    last_action: str | None = None

    def final_label(self, llm_label: Any = None) -> Any:
        return self.label if self.label is not None else (self.llm_label if llm_label is None else llm_label)

    @property
    def changed(self) -> bool:
        return self.decided and not self.dropped and (self.label is not None or self.text is not None)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


class ReviewLog:
    """Append-only reviews file. ``append`` returns the record as written (with ``seq`` and ``time``)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise InvalidParameterError(f"Reviews file {self.path} is not a file. Pass another reviews_file=.")
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._offset = self._lines = 0
        self._warned = -1
        #: ``(line number, why)`` of every line skipped as unreadable (each warned about once)
        self.skipped: list[tuple[int, str]] = []
        with self._lock:
            self._read_new()

    # -- reading ---------------------------------------------------------------------------------
    def _read_new(self) -> None:
        """Read what was appended since the last read (by this or another process)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data) and self._warned != self._offset + end:
            self._warned = self._offset + end
            warnings.warn(f"{self.path}: the last line is incomplete (a write was cut off) and is ignored.",
                          stacklevel=3)
        for k, line in enumerate(data[:end].splitlines(), self._lines + 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line, parse_constant=_no_constant, parse_float=_finite)
            except (ValueError, RecursionError) as e:
                if line.startswith(b'{"v"') and isinstance(e, json.JSONDecodeError) \
                        and not line.rstrip().endswith(b"}"):  # a write cut off by a crash, then a newer line
                    warnings.warn(f"{self.path}: line {k} is an incomplete record (a write was cut off) and is "
                                  "ignored.", stacklevel=3)
                    continue
                self._skip(k, f"not valid JSON ({e})")
                continue
            problem = record_problem(rec)
            if problem is not None:
                self._skip(k, problem)
                continue
            self._records.append(rec)
        self._lines += data[:end].count(b"\n")
        self._offset += end

    def _skip(self, line: int, why: str) -> None:
        self.skipped.append((line, why))
        warnings.warn(f"{self.path}: line {line} is skipped: {why}. The file is append-only and the line stays; "
                      "delete or fix it by hand if it should count.", stacklevel=4)

    def records(self, *, since_merge: bool = True) -> list[dict[str, Any]]:
        """The records in file order (by default only those after the last ``merged`` marker)."""
        with self._lock:
            self._read_new()
            recs = list(self._records)
        if since_merge:
            last = max((i for i, r in enumerate(recs) if r["type"] == "merged"), default=-1)
            recs = recs[last + 1:]
        return recs

    # -- writing ---------------------------------------------------------------------------------
    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write ``record`` as one line and ``fsync`` it before returning."""
        if record.get("type") == "decision" and record.get("action") not in ACTIONS:
            raise InvalidParameterError(f"action={record.get('action')!r}: one of {list(ACTIONS)}.")
        if record.get("type") == "decision":
            check_seconds(record.get("seconds"))
        try:  # before the file is touched: a line a replay could not read is never written
            json.dumps(record, default=str, allow_nan=False)
        except ValueError as e:
            raise InvalidParameterError(f"The review record holds a NaN or infinite number ({e}); nothing was "
                                        "written. Send finite numbers.") from e
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self._read_new()
                size = os.fstat(fd).st_size
                lead = b""
                if size:
                    os.lseek(fd, size - 1, os.SEEK_SET)
                    if os.read(fd, 1) != b"\n":
                        lead = b"\n"  # a torn last line: start on a fresh one
                rec = {"v": LOG_FORMAT, "seq": 1 + max((r.get("seq", 0) for r in self._records), default=0),
                       "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
                       **record}
                line = lead + (json.dumps(rec, ensure_ascii=False, default=str, allow_nan=False) + "\n").encode("utf-8")
                os.write(fd, line)
                os.fsync(fd)
                self._records.append(rec)
                self._lines += line.count(b"\n")
                self._offset = size + len(line)
            finally:
                os.close(fd)
            if new:  # the file's name is durable too
                dfd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        return rec

    def undo(self, reviewer: str) -> dict[str, Any] | None:
        """Undo ``reviewer``'s latest decision not undone yet; the undone record, or None."""
        reviewer = reviewer_name(reviewer)
        undone = {r["undoes"] for r in self.records() if r["type"] == "undo"}
        for r in reversed(self.records()):
            if r["type"] == "decision" and r.get("reviewer") == reviewer and r["seq"] not in undone:
                self.append({"type": "undo", "reviewer": reviewer, "undoes": r["seq"], "row": r.get("row")})
                return r
        return None

    # -- state -----------------------------------------------------------------------------------
    def effective(self) -> list[dict[str, Any]]:
        """Decision records in order, without the undone ones."""
        recs = self.records()
        undone = {r["undoes"] for r in recs if r["type"] == "undo"}
        return [r for r in recs if r["type"] == "decision" and r["seq"] not in undone]

    def states(self) -> dict[str, dict[int, RowState]]:
        """reviewer -> row -> :class:`RowState`, replayed from the log."""
        out: dict[str, dict[int, RowState]] = {}
        for r in self.effective():
            s = out.setdefault(r.get("reviewer") or ANONYMOUS, {}).setdefault(int(r["row"]), RowState())
            s.llm_label, s.id, s.last_action = r.get("llm_label"), r.get("id"), r["action"]
            a = r["action"]
            if a in DECIDING:
                s.decided, s.skipped = True, False
                s.seconds = (s.seconds or 0.0) + float(r.get("seconds") or 0.0)
            if a == "accept":
                s.dropped = False
            elif a == "relabel":
                s.dropped = False
                s.label = None if r.get("label") == r.get("llm_label") else r.get("label")
            elif a == "edit":
                s.dropped = False
                s.text = r.get("text") if r.get("text") != r.get("original_text") else None
            elif a == "drop":
                s.dropped = True
            elif a == "skip":
                s.skipped = not s.decided
            elif a == "note":
                s.note = r.get("note") or None
        return out
