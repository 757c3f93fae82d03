"""OpenAI-compatible chat completions (TGI Messages API, vLLM, llama.cpp server, HF endpoints, OpenAI).

Bounded concurrency, an explicit timeout, retries with exponential backoff and jitter on 429, 5xx,
timeouts, dropped connections and malformed responses (Retry-After honoured), an optional
requests-per-minute limit, and a per-row error completion when the retries run out.

Two transports speak the same protocol:
- ``"aiohttp"`` (default): one pooled ``aiohttp`` session; the thinnest path (see BENCHMARKS.md).
- ``"huggingface_hub"``: ``huggingface_hub.AsyncInferenceClient(base_url=...).chat_completion``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import logging
import os
import random
import threading
import time
import weakref
from typing import Any, Callable

from ..errors import EndpointError, EndpointUnreachableError, InvalidParameterError
from .base import Backend, ChatRequest, Completion, SamplingParams

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 600.0  # seconds; a server's Retry-After is honoured up to this


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
    if params.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = 1  # llama.cpp returns no logprobs without it
    return body


def _parse_response(data: Any) -> Completion:
    try:
        choice = data["choices"][0]
        text = choice["message"].get("content") or ""
        finish = choice.get("finish_reason") or "stop"
        usage = data.get("usage") or {}
        lp = choice.get("logprobs")
        logprobs = [t["logprob"] for t in lp["content"]] if lp and lp.get("content") else None
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise EndpointError(f"Malformed completion response: {str(data)[:200]}", retryable=True) from e
    return Completion(text=text, finish_reason=finish, logprobs=logprobs,
                      usage={"prompt_tokens": int(usage.get("prompt_tokens") or 0),
                             "completion_tokens": int(usage.get("completion_tokens") or 0)})


class _AiohttpTransport:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, concurrency: int):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.base_url = base_url.rstrip("/")
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
            async with s.get(self.base_url + "/models", timeout=aiohttp.ClientTimeout(total=10)) as r:
                await r.read()
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as e:
            raise EndpointUnreachableError(
                f"No server answers at {self.base_url} ({type(e).__name__}: {e}). Check the URL "
                "(it should end in /v1 for OpenAI-compatible servers) and that the server is running.") from e

    async def post(self, body: dict[str, Any]) -> Completion:
        import aiohttp

        s = await self.session()
        try:
            async with s.post(self.url, data=json.dumps(body)) as r:
                raw = await r.read()
                if r.status >= 400:
                    raise EndpointError(f"HTTP {r.status}: {raw[:200].decode(errors='replace')}",
                                        retryable=r.status in RETRYABLE_STATUS, status=r.status,
                                        retry_after=_parse_retry_after(r.headers.get("Retry-After")))
        except asyncio.TimeoutError as e:
            raise EndpointError(f"timed out after {self.timeout}s", retryable=True) from e
        except aiohttp.ClientError as e:
            raise EndpointError(f"{type(e).__name__}: {e}", retryable=True) from e
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise EndpointError(f"malformed JSON in response: {raw[:120]!r}", retryable=True) from e
        return _parse_response(data)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class _HubTransport:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, concurrency: int):
        from huggingface_hub import AsyncInferenceClient

        self.base_url = base_url.rstrip("/")
        self.client = AsyncInferenceClient(base_url=self.base_url, api_key=api_key, timeout=timeout)
        self.timeout = timeout
        self._aio = _AiohttpTransport(base_url, api_key, timeout, 1)

    async def check(self) -> None:
        try:
            await self._aio.check()
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
            raise EndpointError(f"HTTP {status}: {str(e)[:200]}", retryable=status in RETRYABLE_STATUS,
                                status=status, retry_after=ra) from e
        except ValueError as e:  # malformed JSON
            raise EndpointError(f"malformed response: {e}", retryable=True) from e
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
        base_url: server URL, usually ending in ``/v1``.
        model: model name sent with each request (servers with one model ignore it).
        api_key: bearer token; never recorded anywhere.
        concurrency: most requests in flight at once.
        timeout: seconds per attempt.
        max_retries: retries after the first attempt on retryable failures.
        backoff_base / backoff_max: exponential backoff ``base * 2**attempt`` seconds, capped, with jitter.
        requests_per_minute: optional rate limit on request starts.
        transport: ``"aiohttp"`` or ``"huggingface_hub"``.
    """

    def __init__(self, base_url: str, *, model: str | None = None, api_key: str | None = None,
                 concurrency: int = 64, timeout: float = 120.0, max_retries: int = 5,
                 backoff_base: float = 0.5, backoff_max: float = 30.0,
                 requests_per_minute: float | None = None, transport: str = "aiohttp"):
        if transport not in TRANSPORTS:
            raise InvalidParameterError(f"transport={transport!r} is unknown; use one of {sorted(TRANSPORTS)}.")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.requests_per_minute = requests_per_minute
        self._transport = TRANSPORTS[transport](base_url, api_key, timeout, concurrency)
        self._checked = False
        self._sem: asyncio.Semaphore | None = None
        self._limiter: _RateLimiter | None = None
        # close the pooled session when this backend goes away (or at exit), without blocking
        weakref.finalize(self, _close_soon, self._transport)
        self.stats = {"attempts": 0, "retries": 0, "errors": 0}

    def identity(self) -> dict[str, Any]:
        return {"backend": "endpoint", "base_url": self.base_url, "model": self.model or "default"}

    def ensure_ready(self) -> None:
        """Check once that a server answers (raises :class:`EndpointUnreachableError` if not)."""
        if not self._checked:
            _LoopThread.get().run(self._transport.check())
            self._checked = True

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
        if not requests:
            return []
        if not self._checked:
            await self._transport.check()
            self._checked = True
        if self._sem is None:  # created in the loop that uses them, shared by concurrent calls
            self._sem = asyncio.Semaphore(self.concurrency)
            self._limiter = _RateLimiter(self.requests_per_minute)
        sem, limiter = self._sem, self._limiter
        out: list[Completion | None] = [None] * len(requests)

        async def one(i: int, req: ChatRequest) -> None:
            async with sem:
                c = await self._with_retries(_payload(self.model, req, params), limiter)
            out[i] = c
            if on_result is not None:
                on_result(i, c)

        await asyncio.gather(*(one(i, r) for i, r in enumerate(requests)))
        return out  # type: ignore[return-value]

    async def _with_retries(self, body: dict[str, Any], limiter: _RateLimiter) -> Completion:
        attempt = 0
        while True:
            await limiter.wait()
            t0 = time.perf_counter()
            self.stats["attempts"] += 1
            try:
                c = await self._transport.post(body)
                c.latency_s, c.attempts = time.perf_counter() - t0, attempt + 1
                return c
            except EndpointError as e:
                if not e.retryable or attempt >= self.max_retries:
                    self.stats["errors"] += 1
                    return Completion(text=None, finish_reason="error", attempts=attempt + 1,
                                      error=f"{e} (after {attempt + 1} attempt{'s' * (attempt > 0)})",
                                      latency_s=time.perf_counter() - t0)
                delay = min(self.backoff_max, self.backoff_base * 2 ** attempt)
                delay = delay / 2 + random.uniform(0, delay / 2)  # "equal jitter"
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, MAX_RETRY_AFTER))
                logger.debug("retrying in %.2fs after %s", delay, e)
                self.stats["retries"] += 1
                attempt += 1
                await asyncio.sleep(delay)

    def close(self) -> None:
        _close_soon(self._transport)
