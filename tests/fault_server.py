"""A small OpenAI-compatible chat server that injects faults, for endpoint tests and benchmarks.

Run in a thread (``FaultServer().start()``) or as a process (``python tests/fault_server.py --port P
--latency 0.2``). Each response is deterministic: ``echo: <last user message> | seed=<seed>``.

Faults are asked for inside the last user message, per request body (messages + seed), so the
"same request" retried by the client sees the fault only for its first attempts:
    [429:K]        first K attempts answer 429 with ``Retry-After: 1``
    [500:K]        first K attempts answer 500
    [slow:K]       first K attempts sleep 3 s before answering (longer than the tests' timeout)
    [malformed:K]  first K attempts answer 200 with a truncated JSON body
    [nochoices:K]  first K attempts answer 200 with valid JSON that has no ``choices``
    [always500]    every attempt answers 500
    [bad400]       answers 400 (not retryable)
    [echoauth400]  answers 400 with a body that repeats the request's Authorization header and query
                   (a careless server: the key must not reach a row, the cache or a log)
    [echoauth500]  the same with 500 (retryable), so the echo goes through the retry path
    [html]         answers 200 with an HTML page (a web server or proxy where the API should be)
Server-wide settings: ``require_key`` (answer 401, echoing the Authorization header, to requests
without ``Bearer <require_key>``), ``echo_auth_every`` (every k-th chat request answers like
``[echoauth400]``), ``model_id`` (what ``/v1/models`` reports) and ``html`` (every request, on any
path, answers 200 with an HTML page that repeats the request's Authorization header).
``GET /stats`` returns {"requests": total, "attempts": {key: n}, "times": {key: [t, ...]}}.
``log`` holds every request received (any path): method, path, query, Authorization header, body.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import socket
import threading
import time

from aiohttp import web

FAULT_RE = re.compile(r"\[(429|500|slow|malformed|nochoices):(\d+)\]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackApp:
    """An aiohttp app of ``self.app()`` served on 127.0.0.1:``self.port`` from a thread of its own (the
    loopback servers of the tests: this fault server, tests/batch_server.py)."""

    port: int
    _runner = _thread = _loop = None

    def app(self) -> web.Application:
        raise NotImplementedError

    def start(self):
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._runner = web.AppRunner(self.app(), access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)


class FaultServer(LoopbackApp):
    def __init__(self, port: int | None = None, latency: float = 0.0, retry_after: str = "1"):
        self.port = port or free_port()
        self.latency = latency
        self.retry_after = retry_after
        self.requests = 0
        self.attempts: dict[str, int] = {}
        self.times: dict[str, list[float]] = {}
        self.last_authorization: str | None = None
        self.require_key: str | None = None
        self.echo_auth_every: int | None = None
        self.model_id = "fault-model"
        self.html = False
        self.log: list[dict] = []
        self._runner = None
        self._thread = None
        self._loop = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", self.stats)
        return app

    @web.middleware
    async def _record(self, request, handler):
        body = await request.read()
        self.log.append({"method": request.method, "path": request.path, "query": request.query_string,
                         "authorization": request.headers.get("Authorization"), "body": body.decode(errors="replace")})
        if self.html and request.path != "/stats":
            return web.Response(text=self._page(request), content_type="text/html")
        return await handler(request)

    @staticmethod
    def _page(request) -> str:
        return ("<!DOCTYPE html><html><head><title>Welcome</title></head><body><h1>It works!</h1>"
                f"<p>You sent Authorization: {request.headers.get('Authorization')}</p></body></html>")

    async def models(self, request):
        return web.json_response({"object": "list", "data": [{"id": self.model_id, "object": "model"}]})

    async def stats(self, request):
        return web.json_response({"requests": self.requests, "attempts": self.attempts, "times": self.times})

    def reset(self) -> None:
        self.requests = 0
        self.attempts.clear()
        self.times.clear()
        self.log.clear()
        self.require_key = None
        self.echo_auth_every = None
        self.model_id = "fault-model"
        self.html = False

    async def chat(self, request):
        body = await request.json()
        self.requests += 1
        self.last_authorization = request.headers.get("Authorization")
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        key = hashlib.sha256(json.dumps([body["messages"], body.get("seed")]).encode()).hexdigest()[:16]
        n = self.attempts.get(key, 0) + 1
        self.attempts[key] = n
        self.times.setdefault(key, []).append(time.monotonic())
        if self.latency:
            await asyncio.sleep(self.latency)
        auth = request.headers.get("Authorization")
        echo = {"error": f"bad request; you sent Authorization: {auth} and query {request.query_string}"}
        if self.require_key is not None and auth != f"Bearer {self.require_key}":
            return web.json_response(echo, status=401)
        if "[echoauth400]" in user or (self.echo_auth_every and self.requests % self.echo_auth_every == 0):
            return web.json_response(echo, status=400)
        if "[echoauth500]" in user:
            return web.json_response(echo, status=500)
        if "[always500]" in user:
            return web.json_response({"error": "always failing"}, status=500)
        if "[html]" in user:
            return web.Response(text=self._page(request), content_type="text/html")
        if "[bad400]" in user:
            return web.json_response({"error": "bad request"}, status=400)
        for kind, k in FAULT_RE.findall(user):
            if n <= int(k):
                if kind == "429":
                    return web.json_response({"error": "rate limited"}, status=429,
                                             headers={"Retry-After": self.retry_after})
                if kind == "500":
                    return web.json_response({"error": "internal"}, status=500)
                if kind == "slow":
                    await asyncio.sleep(3.0)
                if kind == "malformed":
                    return web.Response(text='{"choices": [{"message": {"content": "trunc', content_type="application/json")
                if kind == "nochoices":
                    return web.json_response({"object": "chat.completion"})
        text = f"echo: {user} | seed={body.get('seed')}"
        words = len(text.split())
        return web.json_response({
            "id": f"chatcmpl-{key}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model") or "fault-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                         "logprobs": {"content": [{"token": w, "logprob": -0.5, "top_logprobs": []}
                                                  for w in text.split()]} if body.get("logprobs") else None}],
            "usage": {"prompt_tokens": len(user.split()), "completion_tokens": words,
                      "total_tokens": len(user.split()) + words}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()
    server = FaultServer(args.port, args.latency)
    web.run_app(server.app(), host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
