"""A loopback server implementing OpenAI's Files and Batches endpoints (for batch-mode tests).

As OpenAI documents them: ``POST /v1/files`` (multipart, ``purpose=batch``), ``GET /v1/files/{id}``,
``GET /v1/files/{id}/content``, ``POST /v1/batches`` (``input_file_id``, ``endpoint``,
``completion_window="24h"``), ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, plus
``GET /v1/models``. The input file is validated like OpenAI does (one JSON object per line with
``custom_id`` unique, ``method: POST``, ``url`` equal to the batch endpoint, a ``body``; at most
``max_requests`` lines and ``max_bytes`` bytes): an invalid file makes a ``failed`` batch whose
``errors.data`` says which line.

Each poll of a batch advances it: validating -> in_progress (``progress_polls`` polls, counts
growing) -> finalizing -> completed, unless ``hold`` is set (it stays in_progress). Requests are
"paid" (``paid[custom_id] += 1``) when the batch finishes. The answer to a request is deterministic
text derived from its body: ``batch: <last user message> | seed=<seed>``.

Faults: ``fail_rate`` (a request fails with a 500 line in the error file the first time it is paid,
for a deterministic ``fail_rate`` share of custom ids), ``expire`` (the batch ends ``expired`` with
only its first half answered; the rest are ``batch_expired`` lines in the error file), cancellation
(``POST .../cancel``: cancelling -> cancelled with the first ``cancel_keep`` requests answered and
the rest absent, as a provider leaves unstarted requests), ``poll_500`` (the next K polls answer
500), ``require_key`` (401 to requests without ``Bearer <key>``). ``log`` holds every request.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections import Counter

from aiohttp import web

from fault_server import LoopbackApp, free_port

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def _fails(custom_id: str, rate: float) -> bool:
    return int(hashlib.sha256(custom_id.encode()).hexdigest()[:8], 16) / 16 ** 8 < rate


class BatchServer(LoopbackApp):
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._ids = itertools.count(1)
        self.max_requests, self.max_bytes = 50_000, 200_000_000
        self.reset()
        self._runner = self._thread = self._loop = None

    def reset(self) -> None:
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.paid: Counter = Counter()
        self.polls: Counter = Counter()
        self.log: list[dict] = []
        self.fail_rate = 0.0
        self.expire = False
        self.hold = False
        self.progress_polls = 2
        self.cancel_keep = 0
        self.poll_500 = 0
        self.require_key: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def uploads(self) -> list[dict]:
        return [f for f in self.files.values() if f["purpose"] == "batch"]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record], client_max_size=1 << 30)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files/{id}", self.file_info)
        app.router.add_get("/v1/files/{id}/content", self.file_content)
        app.router.add_post("/v1/batches", self.create)
        app.router.add_get("/v1/batches/{id}", self.retrieve)
        app.router.add_post("/v1/batches/{id}/cancel", self.cancel)
        return app

    @web.middleware
    async def _record(self, request, handler):
        self.log.append({"method": request.method, "path": request.path,
                         "authorization": request.headers.get("Authorization")})
        if self.require_key is not None and request.headers.get("Authorization") != f"Bearer {self.require_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                                                "code": "invalid_api_key"}}, status=401)
        return await handler(request)

    @staticmethod
    def _error(status: int, message: str):
        return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=status)

    async def models(self, request):
        return web.json_response({"object": "list", "data": [{"id": "batch-model", "object": "model"}]})

    # -- files ----------------------------------------------------------------------------
    def _new_file(self, content: bytes, purpose: str, filename: str) -> dict:
        fid = f"file-{next(self._ids)}"
        self.files[fid] = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                           "filename": filename, "purpose": purpose, "content": content}
        return self.files[fid]

    @staticmethod
    def _public(f: dict) -> dict:
        return {k: v for k, v in f.items() if k != "content"}

    async def upload(self, request):
        if not request.content_type.startswith("multipart/"):
            return self._error(400, f"expected multipart/form-data, got {request.content_type}")
        fields = {}
        async for part in await request.multipart():
            fields[part.name] = (part.filename, await part.read())
        if fields.get("purpose", (None, b""))[1].decode() != "batch" or "file" not in fields:
            return self._error(400, "fields 'purpose' (batch) and 'file' are required")
        filename, content = fields["file"]
        return web.json_response(self._public(self._new_file(bytes(content), "batch", filename or "upload.jsonl")))

    async def file_info(self, request):
        f = self.files.get(request.match_info["id"])
        return web.json_response(self._public(f)) if f else self._error(404, "No such File object")

    async def file_content(self, request):
        f = self.files.get(request.match_info["id"])
        if f is None:
            return self._error(404, "No such File object")
        return web.Response(body=f["content"], content_type="application/octet-stream")

    # -- batches --------------------------------------------------------------------------
    def _validate(self, content: bytes, endpoint: str) -> tuple[list[dict], list[dict]]:
        lines, errors, seen = [], [], set()
        if len(content) > self.max_bytes:
            return [], [{"code": "file_too_large", "message": f"file is {len(content)} bytes > {self.max_bytes}"}]
        for n, raw in enumerate(content.splitlines(), 1):
            try:
                line = json.loads(raw)
                ok = (isinstance(line.get("custom_id"), str) and line.get("method") == "POST"
                      and line.get("url") == endpoint and isinstance(line.get("body"), dict))
            except (ValueError, AttributeError):
                ok = False
            if not ok or line["custom_id"] in seen:
                errors.append({"code": "invalid_request", "line": n, "message": "invalid or duplicate line"})
                continue
            seen.add(line["custom_id"])
            lines.append(line)
        if len(lines) > self.max_requests:
            errors.append({"code": "too_many_requests", "message": f"{len(lines)} requests > {self.max_requests}"})
        return lines, errors

    async def create(self, request):
        body = await request.json()
        f = self.files.get(body.get("input_file_id"))
        if f is None:
            return self._error(404, f"No such File object: {body.get('input_file_id')}")
        if body.get("completion_window") != "24h" or body.get("endpoint") != "/v1/chat/completions":
            return self._error(400, "completion_window must be '24h' and endpoint '/v1/chat/completions'")
        lines, errors = self._validate(f["content"], body["endpoint"])
        bid = f"batch_{next(self._ids)}"
        now = int(time.time())
        self.batches[bid] = {
            "id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": f["id"], "completion_window": "24h", "status": "validating",
            "output_file_id": None, "error_file_id": None, "created_at": now, "expires_at": now + 86400,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0}, "metadata": body.get("metadata"),
            "_lines": lines, "_errors": errors, "_progress": 0}
        return web.json_response(self._view(self.batches[bid]))

    @staticmethod
    def _view(b: dict) -> dict:
        return {k: v for k, v in b.items() if not k.startswith("_")}

    async def retrieve(self, request):
        b = self.batches.get(request.match_info["id"])
        if b is None:
            return self._error(404, "No such Batch object")
        self.polls[b["id"]] += 1
        if self.poll_500 > 0:
            self.poll_500 -= 1
            return self._error(500, "The server had an error while processing your request.")
        self._advance(b)
        return web.json_response(self._view(b))

    async def cancel(self, request):
        b = self.batches.get(request.match_info["id"])
        if b is None:
            return self._error(404, "No such Batch object")
        if b["status"] in TERMINAL:
            return self._error(400, f"Cannot cancel a batch with status {b['status']}")
        b["status"] = "cancelling"
        return web.json_response(self._view(b))

    def _advance(self, b: dict) -> None:
        status, total = b["status"], b["request_counts"]["total"]
        if status == "validating":
            if b["_errors"]:
                b.update(status="failed", failed_at=int(time.time()), errors={"object": "list", "data": b["_errors"]})
            else:
                b.update(status="in_progress", in_progress_at=int(time.time()))
        elif status == "in_progress" and not self.hold:
            b["_progress"] += 1
            b["request_counts"]["completed"] = min(total, total * b["_progress"] // (self.progress_polls + 1))
            if b["_progress"] >= self.progress_polls:
                if self.expire:
                    self._finish(b, "expired", answered=total // 2, missing="expired")
                else:
                    b.update(status="finalizing", finalizing_at=int(time.time()))
        elif status == "finalizing":
            self._finish(b, "completed", answered=total)
        elif status == "cancelling":
            self._finish(b, "cancelled", answered=self.cancel_keep)

    def _finish(self, b: dict, status: str, *, answered: int, missing: str | None = None) -> None:
        out, err = [], []
        for n, line in enumerate(b["_lines"]):
            cid = line["custom_id"]
            if n >= answered:
                if missing:  # OpenAI writes expired requests to the error file
                    err.append({"id": f"batch_req_{n}", "custom_id": cid, "response": None,
                                "error": {"code": f"batch_{missing}",
                                          "message": "This request could not be executed before the completion "
                                                     "window expired."}})
                continue
            self.paid[cid] += 1
            if self.paid[cid] == 1 and _fails(cid, self.fail_rate):
                err.append({"id": f"batch_req_{n}", "custom_id": cid, "error": None, "response": {
                    "status_code": 500, "request_id": f"req_{n}",
                    "body": {"error": {"message": "The server had an error while processing your request.",
                                       "type": "server_error"}}}})
                continue
            out.append({"id": f"batch_req_{n}", "custom_id": cid, "error": None, "response": {
                "status_code": 200, "request_id": f"req_{n}", "body": self._answer(line["body"], n)}})
        counts = b["request_counts"]
        counts.update(completed=len(out), failed=len(err))
        now = int(time.time())
        b.update(status=status, **{f"{status}_at": now})
        if out:
            b["output_file_id"] = self._new_file(_jsonl(out), "batch_output", "output.jsonl")["id"]
        if err:
            b["error_file_id"] = self._new_file(_jsonl(err), "batch_output", "errors.jsonl")["id"]

    @staticmethod
    def _answer(body: dict, n: int) -> dict:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        text = f"batch: {user} | seed={body.get('seed')}"
        return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model") or "batch-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop",
                             "logprobs": None}],
                "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(text.split()),
                          "total_tokens": len(user.split()) + len(text.split())}}


def _jsonl(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)
