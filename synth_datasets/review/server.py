"""The review web app: Starlette routes (JSON API + one static page), served by uvicorn.

Why Starlette + vanilla JS: Starlette is a small, maintained ASGI toolkit (by Encode, the base of
FastAPI) and uvicorn a maintained ASGI server, so the HTTP server is not ours to write; both come with
the ``review`` extra. The page is one HTML file, one script and one stylesheet (no build step, no CDN:
it works offline), and keyboard shortcuts are plain ``keydown`` handlers. Gradio was considered (HF
users know it, Spaces host it) but it pulls ~100 MB of packages, and per-key shortcuts, undo and a
custom evidence layout fight its component model.

Security: it binds 127.0.0.1 unless told otherwise. Another interface needs ``allow_remote=True``
and then every request must carry a token (``?token=`` once, then an HttpOnly cookie, or an
``Authorization: Bearer`` header), compared in constant time. Host headers are checked (a DNS
rebinding page cannot reach the API) and writes accept only ``application/json`` (a cross-site form
cannot post one).
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError, ReviewFileError, SynthDatasetsError
from .log import ACTIONS, check_seconds, reviewer_name

STATIC = Path(__file__).with_name("static")
_COOKIE = "synth_datasets_review"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ReviewSession:
    """The data, the reviews file and the merge, behind one lock (the server's state)."""

    def __init__(self, data, log, *, folder: Path | None = None, reviewer: str | None = None,
                 order: str = "evidence", conflicts: str = "error", loader=None):
        self.data, self.log, self.folder = data, log, folder
        self.reviewer, self.default_order, self.conflicts = reviewer, order, conflicts
        self.loader = loader  # folder -> (ReviewData, ReviewLog), to reload after a merge
        self.lock = threading.RLock()
        self.merged = None
        data.order(order)  # a bad order fails before the server starts

    def meta(self) -> dict[str, Any]:
        d = self.data
        return {"rows": d.num_rows, "text_column": d.text_column, "label_column": d.label_column,
                "id_column": d.id_column, "labels": d.labels, "orders": d.available_orders(),
                "order": self.default_order, "reviewer": self.reviewer or "", "guidelines": d.guidelines,
                "source": self.folder.name if self.folder else "dataset", "reviews_file": self.log.path.name,
                "can_merge": self.folder is not None, "actions": list(ACTIONS)}

    def state(self, reviewer: str) -> dict[str, Any]:
        from .agreement import summarize

        states = self.log.states()
        mine = states.get(reviewer_name(reviewer), {})
        return {"decisions": {str(i): s.to_dict() for i, s in mine.items()},
                "stats": summarize(states, label_name=self.data.label_name),
                "skipped_lines": len(self.log.skipped)}  # unreadable lines of the reviews file (warned once)

    def decide(self, body: dict[str, Any]) -> dict[str, Any]:
        action = body.get("action")
        if action not in ACTIONS:
            raise InvalidParameterError(f"action={action!r}: one of {list(ACTIONS)}.")
        row = body.get("row")
        if not isinstance(row, int) or isinstance(row, bool) or not 0 <= row < self.data.num_rows:
            raise InvalidParameterError(f"row={row!r} is not a row of the dataset (0 to {self.data.num_rows - 1}).")
        seconds = check_seconds(body.get("seconds"))  # NaN, inf, negative: refused before anything is written
        rec: dict[str, Any] = {"type": "decision", "action": action, "row": row, "id": self.data.ids[row],
                               "reviewer": reviewer_name(body.get("reviewer")), "llm_label": self.data.llm_labels[row],
                               "seconds": seconds}
        if action == "relabel":
            rec["label"] = self.data.coerce_label(body.get("label"))
        elif action == "edit":
            text = body.get("text")
            if not isinstance(text, str) or not text.strip():
                raise InvalidParameterError("edit needs the new text (a non-empty string); drop the row instead.")
            rec["text"], rec["original_text"] = text, self.data.ds[row][self.data.text_column]
        elif action == "note":
            note = body.get("note")
            rec["note"] = note if isinstance(note, str) else ""
        with self.lock:
            written = self.log.append(rec)
        return {"record": written, **self.state(rec["reviewer"])}

    def undo(self, reviewer: str) -> dict[str, Any]:
        with self.lock:
            undone = self.log.undo(reviewer_name(reviewer))
        return {"undone": undone, **self.state(reviewer)}

    def merge(self) -> dict[str, Any]:
        from .merge import rewrite_folder, apply_reviews

        if self.folder is None:
            raise InvalidParameterError("This review runs over an in-memory dataset: merge from Python with "
                                        "session.merge() (it returns the merged dataset).")
        with self.lock:
            merged, summary = apply_reviews(self.data, self.log, conflicts=self.conflicts)
            rewrite_folder(self.folder, merged, self.data.provenance, summary, self.log)
            self.data, self.log = self.loader(self.folder)
        return {"summary": summary, "card": str(self.folder / "README.md"), "rows": merged.num_rows}


def create_app(session: ReviewSession, *, token: str | None = None, allowed_hosts: list[str] | None = None):
    """The Starlette application over ``session``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        given = request.cookies.get(_COOKIE) or request.headers.get("authorization", "").removeprefix("Bearer ")
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    class TokenMiddleware:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and token is not None:
                request = Request(scope)
                q = request.query_params.get("token")
                if q is not None and hmac.compare_digest(q.encode(), token.encode()):
                    resp = RedirectResponse(request.url.path, status_code=303)
                    resp.set_cookie(_COOKIE, token, httponly=True, samesite="strict")
                    return await resp(scope, receive, send)
                if not authorized(request):
                    resp = PlainTextResponse("401: open the URL that `synth-datasets review` printed (it carries "
                                             "the access token).", status_code=401)
                    return await resp(scope, receive, send)
            await self.app(scope, receive, send)

    def api(fn):
        async def endpoint(request: Request):
            try:
                if request.method == "POST":
                    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                        return JSONResponse({"error": "send JSON (Content-Type: application/json)"}, status_code=415)
                    try:
                        body = await request.json()
                    except ValueError:
                        return JSONResponse({"error": "the body is not valid JSON"}, status_code=400)
                    if not isinstance(body, dict):
                        return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
                    return JSONResponse(fn(request, body))
                return JSONResponse(fn(request))
            except (InvalidParameterError, ReviewFileError) as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            except SynthDatasetsError as e:
                return JSONResponse({"error": str(e)}, status_code=500)
        return endpoint

    def row(request, *_):
        try:
            i = int(request.path_params["row"])
        except ValueError as e:
            raise InvalidParameterError(f"row {request.path_params['row']!r} is not a number.") from e
        reviewer = reviewer_name(request.query_params.get("reviewer"))
        state = session.log.states().get(reviewer, {}).get(i)
        return {**session.data.row(i), "state": state.to_dict() if state else None}

    routes = [
        Route("/", lambda request: FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})),
        Route("/api/meta", api(lambda request: session.meta())),
        Route("/api/order", api(lambda request: {"order": session.data.order(
            request.query_params.get("name") or session.default_order)})),
        Route("/api/state", api(lambda request: session.state(request.query_params.get("reviewer")))),
        Route("/api/row/{row}", api(row)),
        Route("/api/decide", api(lambda request, body: session.decide(body)), methods=["POST"]),
        Route("/api/undo", api(lambda request, body: session.undo(body.get("reviewer"))), methods=["POST"]),
        Route("/api/merge", api(lambda request, body: session.merge()), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or ["127.0.0.1", "localhost", "[::1]"]),
                  Middleware(TokenMiddleware)]
    return Starlette(routes=routes, middleware=middleware)
