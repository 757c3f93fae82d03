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
    messages and the request seed (and, for a request that samples the user's turn, its ``next_role``:
    an ordinary request's key is what it was before that field existed). The constant prefix is hashed
    once."""

    def __init__(self, identity: dict[str, Any], params: SamplingParams):
        p = params.model_dump(mode="json")
        p.pop("seed")
        prefix = json.dumps({"v": _SCHEMA_VERSION, "model": identity, "params": p}, sort_keys=True,
                            ensure_ascii=False)
        self._prefix = hashlib.sha256(prefix.encode())

    def __call__(self, request: ChatRequest) -> str:
        h = self._prefix.copy()
        body: list[Any] = [request.messages, request.seed]
        if request.next_role != "assistant":  # never for ordinary requests: existing caches keep hitting
            body.append({"next_role": request.next_role})
        h.update(json.dumps(body, ensure_ascii=False).encode())
        return h.hexdigest()


def request_key(identity: dict[str, Any], request: ChatRequest, params: SamplingParams) -> str:
    """The cache key of one request (see :class:`RequestKeyer`)."""
    return RequestKeyer(identity, params)(request)


_DAMAGE_MARKERS = ("malformed", "not a database", "file is encrypted", "corrupt")


def _is_damage(e: BaseException) -> bool:
    return isinstance(e, sqlite3.DatabaseError) and any(m in str(e).lower() for m in _DAMAGE_MARKERS)


def _side_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal")]


_TABLE_SQL = "CREATE TABLE responses (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL)"
_COLUMNS = ["key", "value", "created"]
_EMPTY_GRACE_S = 2.0  # a 0-byte file younger than this is one a concurrent opener has just created


def _completion(value: str) -> Completion | None:
    try:
        return Completion.from_json(json.loads(value))
    except (TypeError, ValueError, AttributeError):
        return None


def _open_ro(path: Path) -> tuple[sqlite3.Connection, bool]:
    """A read-only connection that has read the schema, and whether it had to be opened ``immutable``
    (``mode=ro`` needs the ``-shm`` file to exist or be creatable: not so in a read-only folder; answers
    only in an uncheckpointed ``-wal`` are then not seen). Raises the last ``sqlite3.Error``."""
    uri = path.resolve().as_uri()
    last: sqlite3.Error | None = None
    for query, immutable in (("?mode=ro", False), ("?mode=ro&immutable=1", True)):
        conn = sqlite3.connect(uri + query, uri=True, timeout=60, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
            return conn, immutable
        except sqlite3.Error as e:
            conn.close()
            if _is_damage(e):
                raise
            last = e
    raise last  # type: ignore[misc]


def _foreign_reason(conn: sqlite3.Connection) -> str | None:
    """Why a readable SQLite file is not one of our caches (None: it is ours, or an empty database)."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    if not tables:
        return None
    if "responses" not in tables:
        return f"an SQLite database without a `responses` table (its tables: {sorted(tables)[:5]})"
    cols = [r[1] for r in conn.execute("PRAGMA table_info(responses)")]
    if cols != _COLUMNS:
        return f"an SQLite database whose `responses` table has other columns ({cols})"
    return None


def _looks_ours(path: Path) -> bool:
    """A file SQLite cannot open is one of our caches when its first page still holds our table's
    definition, or when some page still holds a row shaped like ours."""
    from .sqlite_pages import scan

    try:
        with open(path, "rb") as f:
            if _TABLE_SQL.encode() in f.read(65536):
                return True
        return bool(scan(path, accept=lambda v: _completion(v) is not None).rows)
    except OSError:
        return False


def _foreign_error(path: Path, what: str) -> CacheError:
    return CacheError(
        f"{path} is not a synth-datasets response cache ({what}); it is left as it is, never changed or deleted. "
        f"Move that file away, or set {CACHE_ENV} to another folder (the cache is <folder>/responses.sqlite), "
        "or pass cache=<path> or cache=False to LLM().")


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
        if _is_damage(e) and self.path.is_file() and not _looks_ours(self.path):
            return _foreign_error(self.path, f"SQLite cannot read it: {e}")
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
    def _blocked_folder_error(self) -> CacheError:
        parent = self.path.parent
        blocker = next((a for a in (parent, *parent.parents) if a.exists() and not a.is_dir()), parent)
        return CacheError(f"The response cache folder {parent} cannot be created: {blocker} is a file, not a "
                          f"folder. Set {CACHE_ENV} to a folder (the cache is <folder>/responses.sqlite), or pass "
                          "cache=False to LLM().")

    def _not_a_file(self) -> None:
        if self.path.is_dir():
            raise CacheError(f"The response cache path {self.path} is a folder, not a file. Remove it, or set "
                             f"{CACHE_ENV} to another folder.")

    def _make_folder(self) -> None:
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as e:
            raise self._blocked_folder_error() from e
        except OSError as e:
            raise CacheError(f"Cannot create the response cache folder {parent}: {e.strerror or e} "
                             f"({e.filename or parent}). Set {CACHE_ENV} to a writable folder, or pass cache=False "
                             "to LLM().") from e
        self._not_a_file()

    def _warn_if_empty(self) -> None:
        """A 0-byte cache file holds none of the answers paid for earlier: say so (SQLite would silently
        use it as a new, empty cache). A file younger than a few seconds is one that a concurrent opener
        (``num_proc``) has just created."""
        try:
            st = os.stat(self.path)
        except OSError:
            return
        if st.st_size == 0 and not _side_files(self.path)[0].exists() and time.time() - st.st_mtime > _EMPTY_GRACE_S:
            self._warn(f"The response cache {self.path} is an empty (0-byte) file: answers stored earlier are not in "
                       "it, so every request is sent again. If it should hold answers, restore it from a copy, or "
                       f"set {CACHE_ENV} to the folder that has them.")

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self._make_folder()
            if self._conn is None:
                self._warn_if_empty()
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
            foreign = _foreign_reason(conn)  # before anything writes to it: another program's database is left alone
            if foreign:
                raise _foreign_error(self.path, foreign)
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
    def status(self) -> dict[str, Any]:
        """What is at :attr:`path`, read without creating or changing anything.

        ``state`` is ``"healthy"``, ``"damaged"`` (``problems`` says what SQLite found), ``"missing"`` (no
        file: nothing stored yet), ``"empty"`` (a 0-byte file: answers stored earlier are not there) or
        ``"foreign"`` (not a synth-datasets cache: ``problems`` says what it is; it is never changed or
        deleted). ``read_only`` is True when the file or its folder cannot be written (its answers are still
        used). ``responses`` is the row count (None when unreadable). A folder at the path, or a file
        where a parent folder should be, raises :class:`CacheError`.

        Example:
            >>> import tempfile
            >>> ResponseCache(tempfile.mkdtemp() + "/r.sqlite").status()["state"]
            'missing'
        """
        self._not_a_file()
        p = self.path
        out: dict[str, Any] = {"path": str(p), "state": "missing", "healthy": False, "read_only": False,
                               "responses": 0, "bytes": 0}
        try:
            size = p.stat().st_size
        except NotADirectoryError as e:
            raise self._blocked_folder_error() from e
        except FileNotFoundError:
            return out
        out["bytes"] = size
        out["read_only"] = not (os.access(p, os.W_OK) and os.access(p.parent, os.W_OK))
        if size == 0 and not _side_files(p)[0].exists():
            return {**out, "state": "empty"}
        try:
            conn, immutable = _open_ro(p)
        except sqlite3.Error as e:
            if not _is_damage(e):
                raise CacheError(f"Reading the response cache {p} failed: {e}. Check its permissions, or set "
                                 f"{CACHE_ENV} to another folder.") from e
            state = "damaged" if _looks_ours(p) else "foreign"
            return {**out, "state": state, "responses": None, "problems": [str(e)]}
        out["read_only"] = out["read_only"] or immutable
        try:
            foreign = _foreign_reason(conn)
            if foreign:
                return {**out, "state": "foreign", "responses": None, "problems": [foreign]}
            rows = [r[0] for r in conn.execute("PRAGMA quick_check")]
            problems = [] if rows == ["ok"] else [line for r in rows for line in str(r).splitlines() if line.strip()]
            if problems:
                return {**out, "state": "damaged", "responses": None, "problems": problems}
            n = conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] if self._has_table(conn) else 0
            return {**out, "state": "healthy", "healthy": True, "responses": n}
        except sqlite3.Error as e:
            if not _is_damage(e):
                raise self._error(e, "reading") from e
            return {**out, "state": "damaged", "responses": None, "problems": [str(e)]}
        finally:
            conn.close()

    @staticmethod
    def _has_table(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='responses'").fetchone() is not None

    def check(self) -> list[str]:
        """``PRAGMA quick_check``: an empty list when the file is healthy (or absent, or empty), else what is
        wrong (a file that is not one of our caches is reported as such). A read-only file is not damage."""
        try:
            st = self.status()
        except CacheError as e:
            return [str(e)]
        return list(st.get("problems", [])) if st["state"] in ("damaged", "foreign") else []

    def clear(self) -> None:
        """Delete every stored response. A damaged file that is recognisably ours (our table's definition
        or rows in it) is removed and a new empty cache takes its place; a file that is not a
        synth-datasets cache is never touched (:class:`CacheError` names it)."""
        with self._lock:
            st = self.status()
            if st["state"] in ("missing", "empty"):
                return
            if st["state"] == "foreign":
                raise _foreign_error(self.path, st["problems"][0])
            if st["state"] == "healthy":
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
            self._connect()

    def repair(self) -> dict[str, Any]:
        """Copy every readable row of a damaged cache into a new file at the same path, and move the
        damaged file aside (``responses.sqlite.damaged-<time>``); a healthy (or empty) file is left as it is.

        Rows are read through SQLite first; where SQLite fails (a truncated file, a garbage header, broken
        pages), every page of the file and of its ``-wal`` is read directly (:mod:`.sqlite_pages`). Returns
        ``state``, ``salvaged``, ``unreadable`` (rows known to be lost; None when it cannot be known, e.g.
        pages cut off a truncated file), ``unreadable_at_least`` (keys seen in the key index or in rows
        whose answer is unreadable, but not salvaged) and ``damaged_file``. No cache at the path, a folder
        there, or a file that is not a synth-datasets cache: :class:`CacheError` (nothing is changed).
        """
        with self._lock:
            self._close()
            st = self.status()
            if st["state"] == "missing":
                raise CacheError(f"There is no cache at {self.path}: nothing to repair. {CACHE_ENV} (or the "
                                 "cache= argument) says where the cache is; point it at the folder that holds "
                                 "responses.sqlite.")
            if st["state"] == "foreign":
                raise _foreign_error(self.path, st["problems"][0])
            if st["state"] != "damaged":
                return {"path": str(self.path), "state": st["state"], "healthy": st["healthy"], "salvaged": None,
                        "unreadable": 0, "damaged_file": None}
            new = self.path.with_name(self.path.name + ".repair-tmp")
            try:
                for f in (new, *_side_files(new)):  # a leftover of an interrupted repair (a name only repair uses)
                    f.unlink(missing_ok=True)
                salvaged, unreadable, at_least = _salvage(self.path, new)
                aside = self.path.with_name(f"{self.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(self.path, aside)
                for f in _side_files(self.path):
                    if f.exists():
                        os.replace(f, aside.with_name(aside.name + f.name[len(self.path.name):]))
                os.replace(new, self.path)
            except OSError as e:
                if isinstance(e, CacheError):
                    raise
                raise CacheError(f"Repairing the response cache {self.path} failed: {e.strerror or e} "
                                 f"({e.filename or self.path}). Make its folder writable and run "
                                 "`synth-datasets cache repair` again.") from e
            return {"path": str(self.path), "state": "damaged", "healthy": False, "problems": st["problems"][:5],
                    "salvaged": salvaged, "unreadable": unreadable, "unreadable_at_least": at_least,
                    "damaged_file": str(aside)}

    def _close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
        self._conn = None

    def close(self) -> None:
        self._close()


def _salvage(src: Path, dst: Path) -> tuple[int, int | None, int]:
    """Copy the rows of ``src`` that can still be read into a fresh cache at ``dst``: through SQLite, and
    where SQLite fails, page by page (:func:`.sqlite_pages.scan`). Returns (rows copied, rows lost or None
    when unknown, rows known to be lost)."""
    from .sqlite_pages import scan

    rows: dict[str, Completion] = {}
    clean = False
    try:
        conn, _ = _open_ro(src)
        try:
            for k, v in conn.execute("SELECT key, value FROM responses"):
                c = _completion(v) if isinstance(v, str) else None
                if c is not None:
                    rows[str(k)] = c
            clean = True
        finally:
            conn.close()
    except sqlite3.Error:
        pass
    unreadable: int | None = 0
    at_least = 0
    if not clean:
        found = scan(src, accept=lambda v: _completion(v) is not None)
        for k, v in found.rows.items():
            if k not in rows:
                rows[k] = _completion(v)  # type: ignore[assignment]
        lost = found.lost_keys - rows.keys()
        at_least = len(lost)
        # The key index saw every row we have: it looks whole, so what it lists and we lack is what is lost.
        unreadable = len(lost) if rows.keys() <= found.index_keys else None
    out = ResponseCache(dst)
    try:
        items = list(rows.items())
        for start in range(0, len(items), 5000):
            out.put_many(dict(items[start:start + 5000]))
        return len(out), unreadable, at_least
    finally:
        out.close()
