"""Batch mode for OpenAI-compatible endpoints: the provider's Files and Batches APIs (half price on OpenAI).

``LLM(url, model=..., mode="batch")`` sends the requests a ``generate`` call could not answer from the
response cache as one JSONL file (``POST /files``, ``purpose=batch``; each line
``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}`` with the body the online
endpoint sends), creates a batch (``POST /batches``, ``completion_window="24h"``), polls it
(``GET /batches/{id}``, backing off from ``poll_interval`` to 8 times it, a progress bar with the
server's request counts), downloads the output and error files and fills the rows by ``custom_id``
(the request's cache key). Failed, expired and cancelled requests become error rows (never cached),
so a rerun sends only those.

The id of each batch not yet collected is kept beside the response cache
(``<cache>.batches.sqlite``, keyed by the digest of the base URL and the batch's request keys, never
a credential): a killed process that runs again with the same uncached requests polls the same batch
instead of paying twice. More requests than ``batch_max_requests`` (50,000) or ``batch_max_bytes``
(200 MB) go into several batches, created first and then polled together.

Example:
    >>> llm = LLM("https://api.openai.com/v1", model="gpt-4o-mini", mode="batch")   # doctest: +SKIP
    >>> [c.text for c in llm.generate(requests)]                                    # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import EndpointConfigError, EndpointError, InvalidParameterError
from ..secrets import known_secrets, scrub
from .base import Backend, ChatRequest, Completion, SamplingParams, refuse_open_turns
from .cache import RequestKeyer
from .endpoint import (ERROR_CHARS, FIRST_FATAL_STATUS, RETRYABLE_STATUS, EndpointBackend, LoopThread, chat_body,
                       parse_completion)

logger = logging.getLogger(__name__)

BATCH_URL = "/v1/chat/completions"  # the ``url`` of each input line and the batch's ``endpoint``
MAX_REQUESTS = 50_000  # OpenAI's limits per input file
MAX_BYTES = 200_000_000
TERMINAL = ("completed", "failed", "expired", "cancelled")
POLL_FAILURES = 10  # polls in a row that fail after their retries: then the run stops (a rerun resumes)
BATCH_OPTIONS = ("batch_max_requests", "batch_max_bytes", "poll_interval")


def state_path(cache_path: str | Path) -> Path:
    """Where the pending batch ids of a response cache live: ``responses.sqlite`` -> ``responses.batches.sqlite``."""
    p = Path(cache_path)
    return p.with_name(f"{p.stem if p.suffix else p.name}.batches.sqlite")


class BatchStore:
    """Batch ids not yet collected, by the digest of (base URL, request keys): an SQLite table that
    several processes may share. Holds ids only: no request, answer or credential.

    Example:
        >>> import tempfile
        >>> s = BatchStore(tempfile.mkdtemp() + "/r.batches.sqlite")
        >>> s.put("d", batch_id="batch_1", input_file_id="file-1", requests=3)
        >>> s.get("d")["batch_id"], s.drop("d"), s.get("d")
        ('batch_1', None, None)
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @contextlib.contextmanager
    def _conn(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path, timeout=60, isolation_level=None)) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS batches (digest TEXT PRIMARY KEY, batch_id TEXT NOT NULL, "
                         "input_file_id TEXT, requests INTEGER, created REAL)")
            yield conn

    def get(self, digest: str) -> dict[str, Any] | None:
        with self._conn() as c:
            row = c.execute("SELECT batch_id, input_file_id, requests, created FROM batches WHERE digest=?",
                            (digest,)).fetchone()
        return None if row is None else dict(zip(("batch_id", "input_file_id", "requests", "created"), row))

    def put(self, digest: str, *, batch_id: str, input_file_id: str, requests: int) -> None:
        with self._conn() as c:
            c.execute("INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?)",
                      (digest, batch_id, input_file_id, requests, time.time()))

    def drop(self, digest: str) -> None:
        with self._conn() as c:
            c.execute("DELETE FROM batches WHERE digest=?", (digest,))


def batch_digest(base_url: str, custom_ids: Iterable[str]) -> str:
    """What the batch-id file is keyed by: the public base URL and the set of request keys (custom ids)."""
    return hashlib.sha256("\n".join([base_url, *sorted(custom_ids)]).encode()).hexdigest()


def _multipart(content: bytes) -> tuple[bytes, str]:
    """The ``/files`` upload body (``purpose=batch`` and the JSONL file) as bytes, so a retry resends it."""
    b = f"synth-datasets-{uuid.uuid4().hex}"
    head = (f'--{b}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--{b}\r\n'
            'Content-Disposition: form-data; name="file"; filename="synth-datasets-batch.jsonl"\r\n'
            "Content-Type: application/jsonl\r\n\r\n")
    return head.encode() + content + f"\r\n--{b}--\r\n".encode(), f"multipart/form-data; boundary={b}"


def _error_row(message: str) -> Completion:
    msg = " ".join((scrub(message) or "").split())
    return Completion(text=None, finish_reason="error", usage={"batch": 1},
                      error=msg[:ERROR_CHARS] + ("…" if len(msg) > ERROR_CHARS else ""))


def _line_completion(line: dict[str, Any], secrets: set[str]) -> Completion:
    """One line of an output or error file as a completion (``usage["batch"] = 1`` marks a batch call)."""
    resp, err = line.get("response") or {}, line.get("error")
    if not err and resp.get("status_code") == 200:
        try:
            c = parse_completion(resp.get("body"))
        except EndpointError as e:
            return _error_row(f"batch: {e}")
        if c.text and secrets:
            c.text = scrub(c.text, secrets=secrets, patterns=False)
        c.usage["batch"] = 1
        return c
    if isinstance(err, dict):
        return _error_row(f"batch: {err.get('code')}: {err.get('message')}")
    body = resp.get("body")
    detail = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(detail, dict) and "message" in detail:
        detail = detail["message"]
    return _error_row(f"batch: HTTP {resp.get('status_code')}: {detail}")


class BatchBackend(Backend):
    """Chat completions through an OpenAI-compatible Batch API (see the module docstring).

    Args:
        base_url: server URL ending in ``/v1``; credentials in it are used, never recorded.
        model: model name sent in each request body.
        api_key: bearer token; sent only to ``base_url``'s host, never written.
        state: the batch-id file (:func:`state_path` of the response cache); None: no resume.
        batch_max_requests / batch_max_bytes: most requests / bytes per input file.
        poll_interval: seconds before the first poll; later polls back off to 8 times it.
        **options: the endpoint options that apply (``timeout``, ``max_retries``, ``backoff_base``,
            ``backoff_max``, ``identity``, ``fail_fast``, ...): see :class:`EndpointBackend`.

    Example:
        >>> b = BatchBackend("http://127.0.0.1:8080/v1", model="m", batch_max_requests=1000)
        >>> b.max_requests, b.poll_interval
        (1000, 15.0)
    """

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 state: str | Path | None = None, batch_max_requests: int = MAX_REQUESTS,
                 batch_max_bytes: int = MAX_BYTES, poll_interval: float = 15.0, **options: Any):
        if options.get("transport", "aiohttp") != "aiohttp":
            raise InvalidParameterError("mode='batch' needs transport='aiohttp' (the default).")
        self.endpoint = EndpointBackend(base_url, model=model, api_key=api_key, **options)
        self.model, self.public_url = model, self.endpoint.public_url
        self.store = BatchStore(state) if state else None
        self.max_requests, self.max_bytes, self.poll_interval = batch_max_requests, batch_max_bytes, poll_interval
        self.stats = {"batches_created": 0, "batches_resumed": 0, "polls": 0}

    def identity(self) -> dict[str, Any]:
        return self.endpoint.identity()  # the online endpoint's: the same cache keys

    def ensure_ready(self) -> None:
        self.endpoint.ensure_ready()

    def close(self) -> None:
        self.endpoint.close()

    def generate(self, requests: list[ChatRequest], params: SamplingParams,
                 on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        refuse_open_turns(requests)  # a Batch API line is a chat completion: refused before any upload
        if not requests:
            return []
        self.ensure_ready()
        return LoopThread.get().run(self._generate(requests, params, on_result))

    # -- one generate call ------------------------------------------------------------------
    async def _generate(self, requests, params, on_result) -> list[Completion]:
        keyer = RequestKeyer(self.identity(), params)
        out: list[Completion | None] = [None] * len(requests)
        where: dict[str, list[int]] = {}  # custom_id (the cache key) -> indices of the requests
        lines: list[tuple[str, bytes]] = []
        for i, r in enumerate(requests):
            cid = keyer(r)
            if cid not in where:
                line = {"custom_id": cid, "method": "POST", "url": BATCH_URL, "body": chat_body(self.model, r, params)}
                lines.append((cid, json.dumps(line, ensure_ascii=False).encode() + b"\n"))
            where.setdefault(cid, []).append(i)

        def deliver(cid: str, c: Completion) -> None:
            for i in where[cid]:
                out[i] = c
                if on_result is not None:
                    on_result(i, c)

        parts = self._split(lines, deliver)
        started = [await self._start(part) for part in parts]  # one by one: a refused upload stops at the first
        await asyncio.gather(*(self._finish(digest, batch, [cid for cid, _ in part], deliver)
                               for (digest, batch), part in zip(started, parts)))
        return out  # type: ignore[return-value]

    def _split(self, lines: list[tuple[str, bytes]], deliver) -> list[list[tuple[str, bytes]]]:
        parts: list[list[tuple[str, bytes]]] = [[]]
        size = 0
        for cid, line in lines:
            if len(line) > self.max_bytes:
                deliver(cid, _error_row(f"batch: this request is {len(line)} bytes, more than batch_max_bytes="
                                        f"{self.max_bytes} allows in one input file; shorten the prompt"))
                continue
            if len(parts[-1]) >= self.max_requests or size + len(line) > self.max_bytes:
                parts.append([])
                size = 0
            parts[-1].append((cid, line))
            size += len(line)
        return [p for p in parts if p]

    async def _start(self, part: list[tuple[str, bytes]]) -> tuple[str, dict[str, Any]]:
        """The batch for this exact set of requests: the stored one if the server still has it, else a new one."""
        digest = batch_digest(self.public_url, [cid for cid, _ in part])
        known = self.store.get(digest) if self.store is not None else None
        if known is not None:
            try:
                batch = await self._json("GET", f"/batches/{known['batch_id']}")
                self.stats["batches_resumed"] += 1
                logger.info("resuming batch %s (%s)", batch.get("id"), batch.get("status"))
                return digest, batch
            except EndpointConfigError as e:
                if e.status != 404:
                    raise
                self.store.drop(digest)  # the server no longer knows it: make a new one
        body, content_type = _multipart(b"".join(line for _, line in part))
        uploaded = await self._json("POST", "/files", data=body, headers={"Content-Type": content_type})
        batch = await self._json("POST", "/batches", data=json.dumps(
            {"input_file_id": uploaded["id"], "endpoint": BATCH_URL, "completion_window": "24h"}))
        if self.store is not None:
            self.store.put(digest, batch_id=batch["id"], input_file_id=uploaded["id"], requests=len(part))
        self.stats["batches_created"] += 1
        logger.info("created batch %s with %d requests", batch["id"], len(part))
        return digest, batch

    async def _finish(self, digest: str, batch: dict[str, Any], cids: list[str], deliver) -> None:
        batch = await self._poll(batch)
        secrets, got = known_secrets(), set()
        wanted = set(cids)
        for fid in (batch.get("output_file_id"), batch.get("error_file_id")):
            if not fid:
                continue
            for raw in (await self._call("GET", f"/files/{fid}/content")).splitlines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    continue  # an unreadable line: its request is reported below as unanswered
                cid = line.get("custom_id") if isinstance(line, dict) else None
                if cid in wanted and cid not in got:
                    got.add(cid)
                    deliver(cid, _line_completion(line, secrets))
        status = batch.get("status")
        errors = "; ".join(str(e.get("message")) for e in ((batch.get("errors") or {}).get("data") or [])[:3])
        for cid in cids:
            if cid not in got:
                deliver(cid, _error_row(f"batch_{status}: no answer in batch {batch.get('id')} ({status}"
                                        f"{': ' + errors if errors else ''}); a rerun sends it again"))
        if self.store is not None:
            self.store.drop(digest)  # collected: every answer went to on_result (the cache) first

    async def _poll(self, batch: dict[str, Any]) -> dict[str, Any]:
        from tqdm.auto import tqdm

        counts = batch.get("request_counts") or {}
        bar = tqdm(total=counts.get("total") or None, desc=f"Batch {batch.get('id')}", unit="req")
        delay, failures = self.poll_interval, 0
        try:
            while batch.get("status") not in TERMINAL:
                bar.set_postfix_str(str(batch.get("status")))
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, self.poll_interval * 8)
                try:
                    batch = await self._json("GET", f"/batches/{batch['id']}")
                    failures = 0
                except EndpointConfigError:
                    raise
                except EndpointError:  # a long outage: keep polling (the batch runs on without us) a while
                    failures += 1
                    if failures >= POLL_FAILURES:
                        raise
                    continue
                self.stats["polls"] += 1
                counts = batch.get("request_counts") or {}
                bar.total = counts.get("total") or bar.total
                bar.n = int(counts.get("completed") or 0) + int(counts.get("failed") or 0)
                bar.refresh()
            bar.set_postfix_str(str(batch.get("status")))
        finally:
            bar.close()
        return batch

    # -- HTTP -------------------------------------------------------------------------------
    async def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        raw = await self._call(method, path, **kw)
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or ("id" not in data and path != "/files"):
                raise ValueError
            return data
        except ValueError as e:
            raise EndpointError(scrub(f"{method} {self.public_url}{path} answered something that is not the JSON "
                                      f"object of the Batch API: {raw[:200]!r}. Check that the provider offers "
                                      "OpenAI's Files and Batches endpoints under this URL.")) from e

    async def _call(self, method: str, path: str, **kw: Any) -> bytes:
        """One API call with retries on 429/5xx/timeouts; 401/403/404 and other 4xx raise at once."""
        e = self.endpoint
        attempt = 0
        while True:
            try:
                status, headers, body = await e.call(method, path, **kw)
                if status < 400:
                    return body
                retry_after = headers.get("Retry-After")
                err = EndpointError(f"HTTP {status}: {body[:ERROR_CHARS].decode(errors='replace')}",
                                    retryable=status in RETRYABLE_STATUS, status=status,
                                    retry_after=float(retry_after) if (retry_after or "").isdigit() else None)
            except EndpointError as caught:
                err = caught
            msg = " ".join(scrub(str(err)).split())
            where = f"{method} {self.public_url}{path}"
            if not err.retryable or attempt >= e.max_retries:
                hint = FIRST_FATAL_STATUS.get(err.status or 0, "") if method != "GET" or err.status != 404 else \
                    "the server does not know this batch or file"
                cls = EndpointConfigError if err.status in FIRST_FATAL_STATUS or not err.retryable else EndpointError
                raise cls(f"{where} failed ({msg}, after {attempt + 1} attempt{'s' * (attempt > 0)}). "
                          f"{'Likely fix: ' + hint + '. ' if hint else ''}Batches already created are kept in "
                          "the batch-id file beside the response cache: running again polls them instead of "
                          "paying twice.", status=err.status) from None
            delay = min(e.backoff_max, e.backoff_base * 2 ** attempt)
            delay = max(delay / 2 + random.uniform(0, delay / 2), err.retry_after or 0)
            logger.debug("retrying %s in %.2fs after %s", where, delay, msg)
            attempt += 1
            await asyncio.sleep(delay)
