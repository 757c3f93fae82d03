"""SQLite response cache: a rerun makes no model calls, a killed run resumes where it stopped.

One row per successful completion, keyed by sha256(model identity, messages, sampling parameters,
request seed). Errors are never cached, so a rerun retries failed rows. WAL mode and a busy timeout
make it safe for several processes (``num_proc``) writing at once; each process opens its own
connection (reopened after fork).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterable

from ..errors import CacheError, CacheWarning
from .base import ChatRequest, Completion, SamplingParams

CACHE_ENV = "SYNTH_DATASETS_CACHE"
_SCHEMA_VERSION = 1


def default_cache_path() -> Path:
    """``$SYNTH_DATASETS_CACHE`` if set (a folder), else ``$HF_HOME/synth_datasets``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        folder = Path(env).expanduser()
    else:
        from huggingface_hub import constants

        folder = Path(constants.HF_HOME) / "synth_datasets"
    return folder / "responses.sqlite"


class RequestKeyer:
    """Cache keys for one (model, parameters) pair: sha256 over the model identity, the sampling
    parameters (less the base seed: the request's own seed, derived from it, is what matters), the
    messages and the request seed. The constant prefix is hashed once."""

    def __init__(self, identity: dict[str, Any], params: SamplingParams):
        p = params.model_dump(mode="json")
        p.pop("seed")
        prefix = json.dumps({"v": _SCHEMA_VERSION, "model": identity, "params": p}, sort_keys=True,
                            ensure_ascii=False)
        self._prefix = hashlib.sha256(prefix.encode())

    def __call__(self, request: ChatRequest) -> str:
        h = self._prefix.copy()
        h.update(json.dumps([request.messages, request.seed], ensure_ascii=False).encode())
        return h.hexdigest()


def request_key(identity: dict[str, Any], request: ChatRequest, params: SamplingParams) -> str:
    """The cache key of one request (see :class:`RequestKeyer`)."""
    return RequestKeyer(identity, params)(request)


_DAMAGE_MARKERS = ("malformed", "not a database", "file is encrypted", "corrupt")


def _is_damage(e: BaseException) -> bool:
    return isinstance(e, sqlite3.DatabaseError) and any(m in str(e).lower() for m in _DAMAGE_MARKERS)


def _side_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")]


class ResponseCache:
    """Process-safe key -> completion store.

    Every SQLite failure surfaces as a :class:`CacheError` naming the file and the next step. A cache
    file that can be read but not written (read-only folder or file system) still serves its answers:
    it opens read-only, with one :class:`CacheWarning` that new responses won't be kept. A cache file
    deleted or replaced while a run writes to it is detected at the next write: one warning, and the
    run goes on with a new file at the same path.

    Example:
        >>> import tempfile
        >>> c = ResponseCache(tempfile.mkdtemp() + "/r.sqlite")
        >>> c.put_many({"k": Completion(text="hi", finish_reason="stop")})
        >>> c.get_many(["k", "other"])["k"].text
        'hi'
        >>> c.check()
        []
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.read_only = False
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._inode: tuple[int, int] | None = None
        self._warned_replaced = False
        self._lock = threading.Lock()

    # -- errors ------------------------------------------------------------------------------
    def _error(self, e: BaseException, doing: str) -> CacheError:
        if _is_damage(e):
            return CacheError(
                f"The response cache {self.path} is damaged ({e}) while {doing}. Run `synth-datasets cache repair` "
                "to keep its readable answers (the damaged file is moved aside), or `synth-datasets cache clear` "
                f"to start empty; or set {CACHE_ENV} to another folder, or pass cache=False to LLM().")
        if "locked" in str(e) or "busy" in str(e):
            return CacheError(
                f"The response cache {self.path} stayed locked by another process ({e}) while {doing}. Wait for "
                f"the other run to finish, or set {CACHE_ENV} to another folder.")
        return CacheError(f"{doing.capitalize()} the response cache {self.path} failed: {e}. Set {CACHE_ENV} to a "
                          "writable folder, or pass cache=False to LLM().")

    def _warn(self, message: str) -> None:
        warnings.warn(message, CacheWarning, stacklevel=4)

    # -- connection --------------------------------------------------------------------------
    def _make_folder(self) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            blocker = next((a for a in (parent, *parent.parents) if a.exists() and not a.is_dir()), parent)
            raise CacheError(f"The response cache folder {parent} cannot be created: {blocker} is a file, not a "
                             f"folder. Set {CACHE_ENV} to a folder (the cache is <folder>/responses.sqlite), or pass "
                             "cache=False to LLM().") from e
        except OSError as e:
            raise CacheError(f"Cannot create the response cache folder {parent}: {e.strerror or e} "
                             f"({e.filename or parent}). Set {CACHE_ENV} to a writable folder, or pass cache=False "
                             "to LLM().") from e
        if self.path.is_dir():
            raise CacheError(f"The response cache path {self.path} is a folder, not a file. Remove it, or set "
                             f"{CACHE_ENV} to another folder.")

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self._make_folder()
            deadline = time.monotonic() + 60
            while True:
                try:
                    self._conn, self._pid = self._open(), os.getpid()
                    self.read_only = False
                    break
                except sqlite3.OperationalError as e:
                    # Switching a new file to WAL needs an exclusive lock and SQLite does not wait for
                    # it: two processes opening the cache at once (num_proc) see "database is locked".
                    if "locked" in str(e) and time.monotonic() < deadline:
                        time.sleep(0.05 + random.random() * 0.1)
                        continue
                    self._conn, self._pid = self._open_read_only(e), os.getpid()
                    break
                except sqlite3.Error as e:
                    raise self._error(e, "opening") from e
            self._inode = self._file_id()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                         "created REAL)")
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self, cause: sqlite3.Error) -> sqlite3.Connection:
        """A cache file that exists but cannot be written: serve its answers, keep nothing new."""
        if not self.path.is_file() or "locked" in str(cause):
            raise self._error(cause, "opening") from cause
        uri = self.path.resolve().as_uri()
        last: sqlite3.Error = cause
        # mode=ro needs the -shm file to exist or be creatable; immutable=1 reads a file in a
        # read-only folder (answers still only in an uncheckpointed -wal are then not seen).
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            conn = None
            try:
                conn = sqlite3.connect(uri + query, uri=True, timeout=60, check_same_thread=False,
                                       isolation_level=None)
                conn.execute("SELECT COUNT(*) FROM responses WHERE rowid = 1").fetchone()
            except sqlite3.Error as e:
                if conn is not None:
                    conn.close()
                if _is_damage(e):
                    raise self._error(e, "opening") from e
                last = e
                continue
            self.read_only = True
            self._warn_read_only(cause)
            return conn
        raise self._error(last, "opening") from last

    def _file_id(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _check_still_there(self) -> None:
        """The file we write to is the one at ``self.path`` (not deleted, not replaced): else warn once and
        reopen, so what follows is persisted again."""
        if self._conn is None or self._pid != os.getpid() or self._inode is None:
            return
        if self._file_id() == self._inode:
            return
        if not self._warned_replaced:
            self._warned_replaced = True
            self._warn(f"The response cache {self.path} was deleted or replaced during this run: the answers stored "
                       "in it before are gone from it. Continuing with a new cache file at that path.")
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        self._conn = None
        self._connect()

    # -- reads and writes --------------------------------------------------------------------
    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, Completion] = {}
        with self._lock:
            conn = self._connect()
            try:
                for start in range(0, len(keys), 500):
                    part = keys[start:start + 500]
                    q = f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(part))})"
                    for k, v in conn.execute(q, part):
                        out[k] = Completion.from_json(json.loads(v))
            except sqlite3.Error as e:
                raise self._error(e, "reading") from e
        return out

    def put_many(self, items: dict[str, Completion]) -> None:
        """Store successful completions (error completions are never cached)."""
        rows = [(k, json.dumps(c.to_json()), time.time()) for k, c in items.items() if c.error is None]
        if not rows:
            return
        with self._lock:
            self._connect()
            self._check_still_there()
            if self.read_only:
                return
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", rows)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                if "readonly" not in str(e):
                    raise self._error(e, "writing") from e
                self.read_only = True  # opened fine (its -shm was there), but the file system refuses writes
                self._warn_read_only(e)

    def _warn_read_only(self, cause: BaseException) -> None:
        self._warn(f"The response cache {self.path} cannot be written ({cause}): its answers are used, but new "
                   f"responses won't be kept. Make it writable, or set {CACHE_ENV} to a writable folder.")

    def __len__(self) -> int:
        with self._lock:
            try:
                return self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            except sqlite3.Error as e:
                raise self._error(e, "counting the rows of") from e

    # -- maintenance -------------------------------------------------------------------------
    def check(self) -> list[str]:
        """``PRAGMA quick_check``: an empty list when the file is healthy (or absent), else what is wrong."""
        if not self.path.exists():
            return []
        try:
            conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=60)
        except sqlite3.Error as e:
            return [str(e)]
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
        except sqlite3.Error as e:
            return [str(e)]
        finally:
            conn.close()
        return [] if rows == ["ok"] else [line for r in rows for line in str(r).splitlines() if line.strip()]

    def clear(self) -> None:
        """Delete every stored response. Works on a damaged file too (the file is then removed)."""
        with self._lock:
            try:
                self._connect().execute("DELETE FROM responses")
                return
            except CacheError as e:
                if not _is_damage(e.__cause__):
                    raise
            except sqlite3.Error as e:
                if not _is_damage(e):
                    raise self._error(e, "clearing") from e
            self._close()
            for f in (self.path, *_side_files(self.path)):
                f.unlink(missing_ok=True)

    def repair(self) -> dict[str, Any]:
        """Copy every readable row of a damaged cache into a new file at the same path, and move the
        damaged file aside (``responses.sqlite.damaged-<time>``). Returns ``salvaged``, ``unreadable``
        (rows SQLite could not read) and ``damaged_file``; a healthy file is left as it is."""
        with self._lock:
            self._close()
            problems = self.check()
            if not problems or not self.path.exists():
                return {"path": str(self.path), "healthy": True, "salvaged": None, "unreadable": 0,
                        "damaged_file": None}
            new = self.path.with_name(self.path.name + ".repair-tmp")
            for f in (new, *_side_files(new)):
                f.unlink(missing_ok=True)
            salvaged, unreadable = _salvage(self.path, new)
            aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(self.path, aside)
            for f in _side_files(self.path):
                if f.exists():
                    os.replace(f, aside.with_name(aside.name + f.name[len(self.path.name):]))
            os.replace(new, self.path)
            return {"path": str(self.path), "healthy": False, "problems": problems[:5], "salvaged": salvaged,
                    "unreadable": unreadable, "damaged_file": str(aside)}

    def _close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None

    def close(self) -> None:
        self._close()


def _salvage(src: Path, dst: Path, chunk: int = 256) -> tuple[int, int]:
    """Copy the rows of ``src`` that SQLite can still read (by rowid ranges, then row by row inside a
    range that fails) into a fresh cache at ``dst``. Returns (rows copied, rows unreadable)."""
    out = ResponseCache(dst)
    rows: dict[str, Completion] = {}
    unreadable = 0
    try:
        conn = sqlite3.connect(src.resolve().as_uri() + "?mode=ro", uri=True, timeout=60)
    except sqlite3.Error:
        out.close()
        return 0, 0
    try:
        try:
            top = conn.execute("SELECT max(rowid) FROM responses").fetchone()[0] or 0
        except sqlite3.Error:
            try:
                pages, size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size"))
                top = pages * size // 64  # no row is smaller than ~64 bytes
            except sqlite3.Error:
                top = 0

        def keep(found) -> None:
            for k, v in found:
                try:
                    rows[str(k)] = Completion.from_json(json.loads(v))
                except (TypeError, ValueError):
                    pass

        q = "SELECT key, value FROM responses WHERE rowid BETWEEN ? AND ?"
        for lo in range(1, top + 1, chunk):
            try:
                keep(conn.execute(q, (lo, lo + chunk - 1)).fetchall())
            except sqlite3.Error:
                for r in range(lo, min(lo + chunk, top + 1)):
                    try:
                        keep(conn.execute(q, (r, r)).fetchall())
                    except sqlite3.Error:
                        unreadable += 1
            if len(rows) >= 5000:
                out.put_many(rows)
                rows.clear()
        out.put_many(rows)
        return len(out), unreadable
    finally:
        conn.close()
        out.close()
