"""OpenAI-compatible chat completions (TGI Messages API, vLLM, llama.cpp server, HF endpoints, OpenAI).

Bounded concurrency, an explicit timeout, retries with exponential backoff and jitter on 429, 5xx,
timeouts, dropped connections and malformed responses (Retry-After honoured), an optional
requests-per-minute limit, and a per-row error completion when the retries run out.

Fail fast: the first request is sent alone; if it is answered 401/403/404 the run stops with an
:class:`~synth_datasets.errors.EndpointConfigError` (URL, status, likely fix) before any other request
is sent. A circuit breaker stops the run when the first 8 requests, or 90% of the last 50, fail with
the same non-retryable cause, and when replies that are not OpenAI-compatible JSON (an HTML page
answered with 200, a wrong path behind a proxy) fill the first request's attempts or come 12 times in
a row (``fail_fast=False`` turns all of these off). Credentials in the URL are taken
out of it (:func:`synth_datasets.secrets.split_url`); every error text is scrubbed of secrets before
it reaches a row, the cache or a log.

Two transports speak the same protocol:
- ``"aiohttp"`` (default): one pooled ``aiohttp`` session; the thinnest path (see BENCHMARKS.md).
- ``"huggingface_hub"``: ``huggingface_hub.AsyncInferenceClient(base_url=...).chat_completion``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import email.utils
import json
import logging
import os
import random
import re
import threading
import time
import weakref
from typing import Any, Callable

from ..errors import EndpointConfigError, EndpointError, EndpointUnreachableError, InvalidParameterError
from ..secrets import known_secrets, register, scrub, split_url
from .base import Backend, ChatRequest, Completion, SamplingParams, refuse_open_turns

logger = logging.getLogger(__name__)
# a 400 saying the prompt does not fit (OpenAI, vLLM, llama.cpp: "maximum context length"/"context window";
# TGI: "tokens + `max_new_tokens` must be <= N") becomes a prompt_too_long error row
_CONTEXT_EXCEEDED = re.compile(r"context[ _](length|window)|max_new_tokens` must be <=", re.I)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 600.0  # seconds; a server's Retry-After is honoured up to this
BODY_CHARS = 4000  # of an error body kept until it is scrubbed (then cut to ERROR_CHARS)
ERROR_CHARS = 300
FIRST_FATAL_STATUS = {401: "the API key is missing or wrong: pass LLM(..., api_key=...) or set SYNTH_DATASETS_API_KEY "
                           "(HF_TOKEN is sent only to Hugging Face hosts, OPENAI_API_KEY only to api.openai.com)",
                      403: "the key is not allowed to use this endpoint or model: check its permissions or use "
                           "another key (api_key= or SYNTH_DATASETS_API_KEY)",
                      404: "the URL or the model name is wrong: an OpenAI-compatible server's URL usually ends in "
                           "/v1 (e.g. http://127.0.0.1:8080/v1), and model= must be a name the server lists at "
                           "its /v1/models"}
BREAKER_FIRST = 8  # the first this many finished requests all failing with one non-retryable cause: stop
BREAKER_WINDOW, BREAKER_SHARE = 50, 0.9  # or this share of the last BREAKER_WINDOW
BREAKER_UNREADABLE = 12  # this many replies in a row that are not OpenAI-compatible JSON: stop
_NOT_OPENAI = ("not an OpenAI-compatible reply",)  # the breaker's cause for those replies
SAMPLE_CHARS = 200  # of such a reply shown in the error, scrubbed of secrets


def _unreadable(what: str, body: Any, status: int | None = 200) -> EndpointError:
    """A 2xx reply that is not an OpenAI-compatible chat completion (retryable: a proxy may recover)."""
    text = body.decode(errors="replace") if isinstance(body, (bytes, bytearray)) else str(body)
    e = EndpointError(f"{what}: {text[:BODY_CHARS]!r}", retryable=True, status=status)
    e.unreadable_body = text[:BODY_CHARS]  # type: ignore[attr-defined]  (scrubbed before it is shown)
    return e


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class _LoopThread:
    """One event loop in a daemon thread per process, shared by endpoint backends."""

    _instance: "_LoopThread | None" = None
    _pid: int | None = None
    _guard = threading.Lock()

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="synth-datasets-loop", daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> "_LoopThread":
        with cls._guard:
            if cls._instance is None or cls._pid != os.getpid():
                cls._instance, cls._pid = cls(), os.getpid()
            return cls._instance

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


class _RateLimiter:
    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.next_at = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        at = max(now, self.next_at)
        self.next_at = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


def _payload(model: str | None, req: ChatRequest, params: SamplingParams) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": req.as_messages(), "max_tokens": params.max_new_tokens,
                            "temperature": params.temperature, "top_p": params.top_p, "seed": req.seed}
    if model:
        body["model"] = model
    if params.stop:
        body["stop"] = list(params.stop)
    if params.logprobs or params.top_logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = max(1, params.top_logprobs)  # llama.cpp returns no logprobs without it
    if params.response_format:
        body["response_format"] = json.loads(params.response_format)
    return body


def _parse_response(data: Any) -> Completion:
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        finish = choice.get("finish_reason") or "stop"
        usage = data.get("usage") or {}
        lp = choice.get("logprobs")
        logprobs = [t["logprob"] for t in lp["content"]] if lp and lp.get("content") else None
        top = [{str(a["token"]): float(a["logprob"]) for a in t.get("top_logprobs") or []} for t in lp["content"]] \
            if lp and lp.get("content") else None
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise _unreadable("Malformed completion response", json.dumps(data, default=str)[:BODY_CHARS]) from e
    return Completion(text=text, finish_reason=finish, logprobs=logprobs, top_logprobs=top if top and any(top) else None,
                      usage={"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                             "completion_tokens": int(usage.get("completion_tokens") or 0)})


def _served_model(data: Any, model: str | None) -> str | None:
    """The model id a ``/models`` answer reports for ``model`` (or its only model)."""
    try:
        ids = [str(m["id"]) for m in data["data"] if isinstance(m, dict) and m.get("id")]
    except (KeyError, TypeError):
        return None
    if model and model in ids:
        return model
    return ids[0] if len(ids) == 1 else None


class _AiohttpTransport:
    """``base_url`` has no credentials and no query; ``query`` (secret parameters included) is sent
    with every request as the user wrote it."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float, concurrency: int,
                 query: tuple[tuple[str, str], ...] = ()):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.base_url = base_url.rstrip("/")
        self.query = list(query)
        self.models: Any = None  # the server's /models answer (JSON), when it gave one
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout, self.concurrency = timeout, concurrency
        self._session = None

    async def session(self):
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self.timeout), headers=self.headers)
        return self._session

    async def check(self) -> None:
        import aiohttp

        s = await self.session()
        try:
            async with s.get(self.base_url + "/models", params=self.query,
                             timeout=aiohttp.ClientTimeout(total=10)) as r:
                raw = await r.read()
                if r.status == 200:
                    try:
                        self.models = json.loads(raw)
                    except ValueError:
                        pass
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as e:
            raise EndpointUnreachableError(
                f"No server answers at {self.base_url} ({type(e).__name__}: {e}). Check the URL "
                "(it should end in /v1 for OpenAI-compatible servers) and that the server is running.") from e

    async def post(self, body: dict[str, Any]) -> Completion:
        import aiohttp

        s = await self.session()
        try:
            async with s.post(self.url, data=json.dumps(body), params=self.query) as r:
                raw = await r.read()
                if r.status >= 400:
                    raise EndpointError(f"HTTP {r.status}: {raw[:BODY_CHARS].decode(errors='replace')}",
                                        retryable=r.status in RETRYABLE_STATUS, status=r.status,
                                        retry_after=_parse_retry_after(r.headers.get("Retry-After")))
        except asyncio.TimeoutError as e:
            raise EndpointError(f"timed out after {self.timeout}s", retryable=True) from e
        except aiohttp.ClientError as e:
            raise EndpointError(f"{type(e).__name__}: {e}", retryable=True) from e
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise _unreadable("malformed JSON in response", raw[:BODY_CHARS], r.status) from e
        return _parse_response(data)

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, bytes]:
        """One request to ``base_url + path`` with the same credentials, query and timeout as the chat
        requests (the batch backend's files and batches): status, headers, body. Connection failures
        and timeouts are retryable :class:`EndpointError`."""
        import aiohttp

        s = await self.session()
        try:
            async with s.request(method, self.base_url + path, params=self.query, **kw) as r:
                return r.status, r.headers, await r.read()
        except asyncio.TimeoutError as e:
            raise EndpointError(f"timed out after {self.timeout}s", retryable=True) from e
        except aiohttp.ClientError as e:
            raise EndpointError(f"{type(e).__name__}: {e}", retryable=True) from e

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class _HubTransport:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, concurrency: int,
                 query: tuple[tuple[str, str], ...] = ()):
        from huggingface_hub import AsyncInferenceClient

        if query:
            raise InvalidParameterError(
                "transport='huggingface_hub' cannot send the URL's query parameters "
                f"({', '.join(k for k, _ in query)}): use transport='aiohttp' (the default).")
        self.base_url = base_url.rstrip("/")
        # Without a key, huggingface_hub would send the stored HF token (HF_TOKEN) to any URL: an empty
        # Authorization header replaces it (the client offers no way to send none).
        self.client = AsyncInferenceClient(base_url=self.base_url, api_key=api_key or None, timeout=timeout,
                                           headers=None if api_key else {"authorization": ""})
        self.timeout = timeout
        self._aio = _AiohttpTransport(base_url, api_key, timeout, 1)
        self.models: Any = None

    async def check(self) -> None:
        try:
            await self._aio.check()
            self.models = self._aio.models
        finally:
            await self._aio.aclose()

    async def post(self, body: dict[str, Any]) -> Completion:
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError, OfflineModeIsEnabled

        kw = dict(body)
        messages = kw.pop("messages")
        try:
            out = await self.client.chat_completion(messages, **kw)
        except InferenceTimeoutError as e:
            raise EndpointError(f"timed out after {self.timeout}s", retryable=True) from e
        except OfflineModeIsEnabled as e:  # HF_HUB_OFFLINE=1 blocks even loopback servers
            raise EndpointError(f"{e} With HF_HUB_OFFLINE=1, use LLM(..., transport='aiohttp').",
                                retryable=False) from e
        except HfHubHTTPError as e:
            status = e.response.status_code if e.response is not None else None
            ra = _parse_retry_after(e.response.headers.get("Retry-After")) if e.response is not None else None
            raise EndpointError(f"HTTP {status}: {str(e)[:BODY_CHARS]}", retryable=status in RETRYABLE_STATUS,
                                status=status, retry_after=ra) from e
        except ValueError as e:  # malformed JSON
            raise _unreadable("malformed response", getattr(e, "doc", None) or e) from e  # doc: the reply
        except OSError as e:  # connection reset / refused (httpx2 transport errors)
            raise EndpointError(f"{type(e).__name__}: {e}", retryable=True) from e
        except Exception as e:  # httpx2.TransportError does not subclass OSError
            if type(e).__module__.startswith("httpx"):
                raise EndpointError(f"{type(e).__name__}: {e}", retryable=True) from e
            raise
        return _parse_response(json.loads(json.dumps(out, default=lambda o: dict(o))))

    async def aclose(self) -> None:
        await self.client.close()


TRANSPORTS = {"aiohttp": _AiohttpTransport, "huggingface_hub": _HubTransport}
# Public names for the batch backend (batch.py): the same request body, reply parsing and event loop.
chat_body, parse_completion, LoopThread = _payload, _parse_response, _LoopThread


def _close_soon(transport) -> None:
    lt = _LoopThread._instance
    if lt is None or _LoopThread._pid != os.getpid() or not lt.loop.is_running():
        return
    fut = asyncio.run_coroutine_threadsafe(transport.aclose(), lt.loop)
    try:
        fut.result(timeout=2)
    except Exception:  # closing must never raise
        pass


class EndpointBackend(Backend):
    """Chat completions from an OpenAI-compatible server.

    Args:
        base_url: server URL, usually ending in ``/v1``. Credentials in it (``user:password@``,
            query parameters such as ``?api_key=``) are used to authenticate and never recorded.
        model: model name sent with each request (servers with one model ignore it).
        api_key: bearer token (else the URL's password); never recorded anywhere.
        concurrency: most requests in flight at once.
        timeout: seconds per attempt.
        max_retries: retries after the first attempt on retryable failures.
        backoff_base / backoff_max: exponential backoff ``base * 2**attempt`` seconds, capped, with jitter.
        requests_per_minute: optional rate limit on request starts.
        transport: ``"aiohttp"`` or ``"huggingface_hub"``.
        identity: pins the model identity (the response cache key); default: the model name plus the
            model id the server reports at ``/models``.
        fail_fast: stop on a 401/403/404 answer to the first request, and when the first 8 requests
            (or 90% of the last 50) fail with the same non-retryable cause.

    Example:
        >>> b = EndpointBackend("http://user:sk-0123456789@127.0.0.1:8080/v1", model="m")
        >>> b.public_url
        'http://127.0.0.1:8080/v1'
    """

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 concurrency: int = 64, timeout: float = 120.0, max_retries: int = 5,
                 backoff_base: float = 0.5, backoff_max: float = 30.0,
                 requests_per_minute: float | None = None, transport: str = "aiohttp",
                 identity: str | None = None, fail_fast: bool = True):
        if transport not in TRANSPORTS:
            raise InvalidParameterError(f"transport={transport!r} is unknown; use one of {sorted(TRANSPORTS)}.")
        parts = split_url(base_url)
        api_key = api_key or parts.credential
        register(api_key, *parts.secrets)
        self.public_url, self.model = parts.public, model
        self.base_url = parts.public  # kept for callers that read it: never holds credentials
        self.pinned, self.fail_fast = identity, fail_fast
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.requests_per_minute = requests_per_minute
        self._transport = TRANSPORTS[transport](parts.base, api_key, timeout, concurrency, parts.query)
        self._checked = False
        self._served: str | None = None
        self._sem: asyncio.Semaphore | None = None
        self._limiter: _RateLimiter | None = None
        self._first_taken = False
        self._first_done: asyncio.Event | None = None
        self._fatal: EndpointConfigError | None = None
        self._outcomes: collections.deque = collections.deque(maxlen=BREAKER_WINDOW)
        self._finished = 0
        self._unreadable_run = 0  # replies in a row that were not OpenAI-compatible JSON
        self._unreadable_sample = ""
        # close the pooled session when this backend goes away (or at exit), without blocking
        weakref.finalize(self, _close_soon, self._transport)
        self.stats = {"attempts": 0, "retries": 0, "errors": 0}

    def identity(self) -> dict[str, Any]:
        """``{"backend", "model", ...}``: the pinned ``identity``, else the model id the server reports
        at ``/models`` (``served_model``); the URL only when neither nor a model name says which model
        answers. Never the port alone, never a credential."""
        i: dict[str, Any] = {"backend": "endpoint", "model": self.model or "default"}
        if self.pinned:
            i["identity"] = self.pinned
            return i
        if not self._checked:
            try:
                self.ensure_ready()
            except EndpointUnreachableError:  # describe() of a server that is down: no served id
                pass
        if self._served:
            i["served_model"] = self._served
        elif not self.model:
            i["base_url"] = self.public_url
        return i

    def _on_checked(self) -> None:
        self._checked = True
        self._served = _served_model(self._transport.models, self.model)

    def ensure_ready(self) -> None:
        """Check once that a server answers (raises :class:`EndpointUnreachableError` if not)."""
        if not self._checked:
            try:
                _LoopThread.get().run(self._transport.check())
            except EndpointUnreachableError as e:
                raise EndpointUnreachableError(scrub(str(e))) from None
            self._on_checked()

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, bytes]:
        """A request beside chat completions (``path`` under the base URL, e.g. ``/files``), sent like them:
        credentials only to this host. Needs the aiohttp transport."""
        if not isinstance(self._transport, _AiohttpTransport):
            raise InvalidParameterError("mode='batch' needs transport='aiohttp' (the default).")
        return await self._transport.call(method, path, **kw)

    def submit(self, requests: list[ChatRequest], params: SamplingParams,
               on_result: Callable[[int, Completion], None] | None = None) -> concurrent.futures.Future:
        """Start completing ``requests`` on the background loop; returns a Future of the list.
        Several submitted lists share this backend's concurrency bound and rate limit."""
        return asyncio.run_coroutine_threadsafe(self.agenerate(requests, params, on_result), _LoopThread.get().loop)

    def generate(self, requests: list[ChatRequest], params: SamplingParams,
                 on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        return self.submit(requests, params, on_result).result()

    async def agenerate(self, requests: list[ChatRequest], params: SamplingParams,
                        on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        refuse_open_turns(requests)  # chat completions always answer as the assistant: refused before sending
        if self._fatal is not None:
            raise self._fatal
        if not requests:
            return []
        if not self._checked:
            try:
                await self._transport.check()
            except EndpointUnreachableError as e:
                raise EndpointUnreachableError(scrub(str(e))) from None
            self._on_checked()
        if self._sem is None:  # created in the loop that uses them, shared by concurrent calls
            self._sem = asyncio.Semaphore(self.concurrency)
            self._limiter = _RateLimiter(self.requests_per_minute)
            self._first_done = asyncio.Event()
        sem, limiter, first_done = self._sem, self._limiter, self._first_done
        secrets = known_secrets()
        out: list[Completion | None] = [None] * len(requests)

        async def one(i: int, req: ChatRequest) -> None:
            first = self.fail_fast and not self._first_taken
            self._first_taken = True
            try:
                if self.fail_fast and not first:
                    await first_done.wait()  # the first request goes alone: a wrong URL or key costs one call
                if self._fatal is not None:
                    return
                async with sem:
                    if self._fatal is not None:
                        return
                    c, cause = await self._with_retries(_payload(self.model, req, params), limiter, secrets)
            finally:
                if first:
                    first_done.set()
            self._judge(c, cause, first)
            out[i] = c
            if on_result is not None:
                on_result(i, c)

        await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        if self._fatal is not None:
            raise self._fatal
        return out  # type: ignore[return-value]

    def _judge(self, c: Completion, cause: tuple | None, first: bool) -> None:
        """Fail fast and circuit breaker: decide after each finished request whether the run stops."""
        if not self.fail_fast or self._fatal is not None:
            return
        url = f"{self.public_url}/chat/completions"
        if cause == _NOT_OPENAI and first:  # every attempt of the first request (sent alone) was unreadable
            self._fatal = self._not_openai_error()
            return
        if first and cause is not None and cause[0] in FIRST_FATAL_STATUS:
            self._fatal = EndpointConfigError(
                f"The endpoint {url} answered HTTP {cause[0]} to the first request ({c.error}). Likely fix: "
                f"{FIRST_FATAL_STATUS[cause[0]]}. No other request was sent.", status=cause[0])
            return
        self._finished += 1
        self._outcomes.append(cause)
        n = len(self._outcomes)
        if cause is None:
            return
        same = sum(o == cause for o in self._outcomes)
        if (self._finished == n and n == BREAKER_FIRST and same == n) or \
                (n == BREAKER_WINDOW and same >= BREAKER_SHARE * n):
            what = f"the first {n}" if self._finished == n else f"{same} of the last {n}"
            self._fatal = EndpointConfigError(
                f"Stopped: {what} requests to {url} failed with the same error that retrying cannot fix "
                f"({c.error}). Fix its cause (the URL, the key, the model name, or the sampling parameters and "
                "prompt lengths against the server's limits) and run again: the answers received so far are "
                "cached. LLM(..., fail_fast=False) turns every failure into an error row instead.",
                status=cause[0] if isinstance(cause[0], int) else None)

    def _not_openai_error(self) -> EndpointConfigError:
        return EndpointConfigError(
            f"The server at {self.public_url} answers something that is not an OpenAI-compatible JSON reply "
            f"({self._unreadable_run} such replies in a row; the first {SAMPLE_CHARS} characters: "
            f"{self._unreadable_sample!r}). Check the URL: it should be the server's OpenAI-compatible API, "
            "usually ending in /v1 (e.g. http://127.0.0.1:8080/v1), not a web page, a login page or a proxy "
            "in front of it. The answers received so far are cached; LLM(..., fail_fast=False) turns every "
            "failure into an error row instead.", status=200)

    async def _with_retries(self, body: dict[str, Any], limiter: _RateLimiter,
                            secrets: set[str]) -> tuple[Completion, tuple | None]:
        """The completion, and the cause of a final non-retryable failure (None otherwise). Every text
        from the server is scrubbed of known secrets here, before it reaches a row, the cache or a log."""
        attempt = 0
        while True:
            await limiter.wait()
            t0 = time.perf_counter()
            self.stats["attempts"] += 1
            try:
                c = await self._transport.post(body)
                self._unreadable_run = 0
                c.latency_s, c.attempts = time.perf_counter() - t0, attempt + 1
                if c.text and secrets:
                    c.text = scrub(c.text, secrets=secrets, patterns=False)
                return c, None
            except EndpointError as e:
                msg = " ".join(scrub(str(e), secrets=secrets).split())  # one line
                if len(msg) > ERROR_CHARS:
                    msg = msg[:ERROR_CHARS] + "…"
                unreadable = hasattr(e, "unreadable_body")
                if unreadable:
                    if not self._unreadable_run:
                        sample = scrub(e.unreadable_body, secrets=secrets)  # type: ignore[attr-defined]
                        self._unreadable_sample = " ".join(sample.split())[:SAMPLE_CHARS]
                    self._unreadable_run += 1
                    if self.fail_fast and self._fatal is None and self._unreadable_run >= BREAKER_UNREADABLE:
                        self._fatal = self._not_openai_error()
                if e.status == 400 and _CONTEXT_EXCEEDED.search(msg):  # this row's prompt, not the setup
                    self.stats["errors"] += 1
                    return Completion(text=None, finish_reason="error", attempts=attempt + 1,
                                      error=f"prompt_too_long: {msg}", latency_s=time.perf_counter() - t0), None
                if not e.retryable or attempt >= self.max_retries or self._fatal is not None:
                    self.stats["errors"] += 1
                    cause = _NOT_OPENAI if unreadable else None if e.retryable else \
                        (e.status if e.status is not None else type(e).__name__,)
                    return Completion(text=None, finish_reason="error", attempts=attempt + 1,
                                      error=f"{msg} (after {attempt + 1} attempt{'s' * (attempt > 0)})",
                                      latency_s=time.perf_counter() - t0), cause
                delay = min(self.backoff_max, self.backoff_base * 2 ** attempt)
                delay = delay / 2 + random.uniform(0, delay / 2)  # "equal jitter"
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, MAX_RETRY_AFTER))
                logger.debug("retrying in %.2fs after %s", delay, msg)
                self.stats["retries"] += 1
                attempt += 1
                await asyncio.sleep(delay)
                if self._fatal is not None:  # the run stopped while this request waited: no more attempts
                    self.stats["errors"] += 1
                    return Completion(text=None, finish_reason="error", attempts=attempt,
                                      error=f"{msg} (after {attempt} attempt{'s' * (attempt > 1)}; the run stopped)",
                                      latency_s=time.perf_counter() - t0), None

    def close(self) -> None:
        _close_soon(self._transport)
