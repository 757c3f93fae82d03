"""``review(source, ...)``: start the review page over a published folder, a Hub repo or a dataset."""

from __future__ import annotations

import os
import secrets as _secrets
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError, MissingDependencyError
from .data import ReviewData, load_folder
from .log import ReviewLog
from .merge import CONFLICTS, REVIEWS_FILE, merge_reviews
from .server import ReviewSession, create_app, is_loopback

TOKEN_ENV = "SYNTH_DATASETS_REVIEW_TOKEN"


class ReviewServer:
    """A running review page: ``url``, ``stop()``, ``wait()``, ``merge()``."""

    def __init__(self, session: ReviewSession, server, thread: threading.Thread | None, url: str, *,
                 dataset=None, sock: socket.socket | None = None):
        self.session, self._server, self._thread, self.url = session, server, thread, url
        self._dataset, self._sock = dataset, sock

    @property
    def reviews_file(self) -> Path:
        return self.session.log.path

    def stop(self) -> None:
        """Stop serving (decisions are already on disk)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()

    def wait(self) -> None:
        """Block until the server stops (Ctrl+C stops it)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(timeout=0.5)
        except KeyboardInterrupt:
            self.stop()

    def merge(self, *, conflicts: str | None = None):
        """Merge this round: ``(dataset, summary)``. A folder is rewritten in place (data, card)."""
        if self._dataset is not None:
            return merge_reviews(self._dataset, reviews_file=self.reviews_file,
                                 conflicts=conflicts or self.session.conflicts, label_column=self.session.data.label_column,
                                 text_column=self.session.data.text_column, id_column=self.session.data.id_column or "id")
        with self.session.lock:
            if conflicts:
                self.session.conflicts = conflicts
            out = self.session.merge()
        return self.session.data.ds, out["summary"]

    def __repr__(self) -> str:
        return f"ReviewServer({self.url!r}, reviews_file={str(self.reviews_file)!r})"


def _looks_like_repo(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and not Path(source).exists()


def _download(repo_id: str, local_dir: str | os.PathLike | None) -> Path:
    from huggingface_hub import snapshot_download

    from ..hub.publish import check_repo_id

    check_repo_id(repo_id)
    target = Path(local_dir or repo_id.split("/")[-1])
    if target.exists() and any(target.iterdir()) and not (target / "data").is_dir():
        raise InvalidParameterError(f"{target} exists and is not a dataset folder: pass local_dir= (--local-dir).")
    if not (target / "data").is_dir():
        snapshot_download(repo_id, repo_type="dataset", local_dir=str(target))
    return target


def review(source: Any, *, reviews_file: str | os.PathLike | None = None, reviewer: str | None = None,
           order: str = "evidence", host: str = "127.0.0.1", port: int = 0, allow_remote: bool = False,
           token: str | None = None, open_browser: bool = True, block: bool = True, guidelines: Any = None,
           label_column: str = "label", text_column: str | None = None, id_column: str = "id",
           confidence_column: str | None = None, neighbours: int = 3, conflicts: str = "error", seed: int = 0,
           local_dir: str | os.PathLike | None = None, quiet: bool = False) -> ReviewServer:
    """Start the review page (survey §3.2.2, §4.4) on a free port of 127.0.0.1 and print its URL.

    Args:
        source: a published folder (``data/*.parquet`` + ``provenance.json``), a Hub dataset repo id
            (downloaded to ``local_dir``, default ``./<name>``) or a ``Dataset``.
        reviews_file (`str`, *optional*): the append-only decisions file; default
            ``<folder>/reviews.jsonl``. Required for a dataset without cache files.
        reviewer (`str`, *optional*): the name pre-filled on the page (each reviewer types theirs).
        order (`str`): ``evidence`` (least confident first), ``reason``, ``judge`` or ``random``.
        host (`str`), port (`int`): where to listen; port 0 picks a free one.
        allow_remote (`bool`): required to listen anywhere but loopback; a token is then required.
        token (`str`, *optional*): the access token for a remote page; default ``$SYNTH_DATASETS_REVIEW_TOKEN``
            or a random one, printed once in the URL.
        open_browser (`bool`): open the page in the default browser.
        block (`bool`): serve until Ctrl+C; ``False`` returns at once with the server running in a thread.
        guidelines: a TaskSpec, Template or text shown in the guidelines panel beside the recorded specs.
        label_column, text_column, id_column, confidence_column, neighbours: see :class:`ReviewData`.
        conflicts (`str`): how the page's "merge" resolves reviewers who disagree (see :func:`merge_reviews`).

    Returns:
        :class:`ReviewServer` (``url``, ``stop()``, ``merge()``).

    Example:
        >>> srv = review(Path("out/movie-reviews"), block=False, open_browser=False)   # doctest: +SKIP
        >>> srv.url                                                                      # doctest: +SKIP
        'http://127.0.0.1:53117/'
        >>> merged, summary = srv.merge()                                                # doctest: +SKIP
    """
    try:
        import uvicorn
    except ImportError as e:
        raise MissingDependencyError("The review page needs starlette and uvicorn: pip install "
                                     "'synth-datasets[review]'.") from e
    if conflicts not in CONFLICTS:
        raise InvalidParameterError(f"conflicts={conflicts!r}: one of {list(CONFLICTS)}.")
    if not is_loopback(host):
        if not allow_remote:
            raise InvalidParameterError(f"Refusing to serve the review page on {host}: anyone who can reach it could "
                                        "read and change the data. Use the default 127.0.0.1, or pass "
                                        "allow_remote=True (--allow-remote), which requires an access token.")
        token = token or os.environ.get(TOKEN_ENV) or _secrets.token_urlsafe(24)
        if len(token) < 16:
            raise InvalidParameterError(f"The review token must have at least 16 characters (got {len(token)}). "
                                        f"Set {TOKEN_ENV} to a longer one, or leave it unset for a random one.")
        from ..secrets import register

        register(token)
    else:
        token = None
    kw = dict(label_column=label_column, text_column=text_column, id_column=id_column,
              confidence_column=confidence_column, neighbours=neighbours, guidelines=guidelines, seed=seed)
    dataset, folder = None, None
    if isinstance(source, (str, os.PathLike)):
        folder = _download(str(source), local_dir) if isinstance(source, str) and _looks_like_repo(source) \
            else Path(source).expanduser()

        def loader(f: Path):
            ds, prov = load_folder(f)
            return ReviewData(ds, provenance=prov, **kw), ReviewLog(reviews_file or f / REVIEWS_FILE)

        data, log = loader(folder)
    elif hasattr(source, "column_names") and hasattr(source, "num_rows"):
        dataset, loader = source, None
        if reviews_file is None:
            files = getattr(source, "cache_files", None) or []
            if not files:
                raise InvalidParameterError("review(ds) over an in-memory dataset needs reviews_file= (where to keep "
                                            "the decisions).")
            reviews_file = Path(files[0]["filename"]).parent / f"reviews-{source._fingerprint}.jsonl"
        data, log = ReviewData(source, **kw), ReviewLog(reviews_file)
    else:
        raise InvalidParameterError(f"review() got a {type(source).__name__}: pass a published folder, a Hub dataset "
                                    "repo id or a datasets.Dataset.")
    session = ReviewSession(data, log, folder=folder, reviewer=reviewer, order=order, conflicts=conflicts,
                            loader=loader)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise InvalidParameterError(f"Cannot listen on {host}:{port}: {e.strerror}. Pick another --port (0: any "
                                    "free port).") from e
    sock.listen(64)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    hosts = ["127.0.0.1", "localhost", "[::1]"] if token is None else ["*"]
    app = create_app(session, token=token, allowed_hosts=hosts)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    url = f"http://{shown}:{bound}/"
    if not quiet:
        print(f"Reviewing {data.num_rows} rows of {folder or 'the dataset'}; decisions go to {log.path}", flush=True)
        print(f"Review page: {url}{'?token=' + token if token else ''}", flush=True)
    if open_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, args=(url + (f"?token={token}" if token else ""),)).start()
    if block:
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
        return ReviewServer(session, server, None, url, dataset=dataset)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="synth-review")
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    if not thread.is_alive():
        raise InvalidParameterError(f"The review server stopped at start; see the messages above ({sys.stderr.name}).")
    return ReviewServer(session, server, thread, url, dataset=dataset, sock=sock)
