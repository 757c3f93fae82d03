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
from pathlib import Path
from typing import Any, Iterable

from ..errors import CacheError
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


class ResponseCache:
    """Process-safe key -> completion store.

    Example:
        >>> import tempfile
        >>> c = ResponseCache(tempfile.mkdtemp() + "/r.sqlite")
        >>> c.put_many({"k": Completion(text="hi", finish_reason="stop")})
        >>> c.get_many(["k", "other"])["k"].text
        'hi'
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else default_cache_path()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + 60
            while True:
                try:
                    self._conn, self._pid = self._open(), os.getpid()
                    break
                except sqlite3.OperationalError as e:
                    # Switching a new file to WAL needs an exclusive lock and SQLite does not wait for
                    # it: two processes opening the cache at once (num_proc) see "database is locked".
                    if "locked" not in str(e) or time.monotonic() > deadline:
                        raise CacheError(f"Cannot open the response cache at {self.path}: {e}. Set {CACHE_ENV} to "
                                         "a writable folder, or pass cache=False to LLM().") from e
                    time.sleep(0.05 + random.random() * 0.1)
                except sqlite3.Error as e:
                    raise CacheError(f"Cannot open the response cache at {self.path}: {e}. Set {CACHE_ENV} to a "
                                     "writable folder, or pass cache=False to LLM().") from e
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

    def get_many(self, keys: Iterable[str]) -> dict[str, Completion]:
        keys = list(dict.fromkeys(keys))
        out: dict[str, Completion] = {}
        with self._lock:
            conn = self._connect()
            for start in range(0, len(keys), 500):
                part = keys[start:start + 500]
                q = f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(part))})"
                for k, v in conn.execute(q, part):
                    out[k] = Completion.from_json(json.loads(v))
        return out

    def put_many(self, items: dict[str, Completion]) -> None:
        rows = [(k, json.dumps(c.to_json()), time.time()) for k, c in items.items() if c.error is None]
        if not rows:
            return
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return self._connect().execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def clear(self) -> None:
        with self._lock:
            self._connect().execute("DELETE FROM responses")

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None
