"""A small Hugging Face Hub-compatible HTTP server on 127.0.0.1, for publishing tests with the real clients.

The real ``huggingface_hub`` and ``datasets`` clients push to it and load back from it over HTTP
(``HF_ENDPOINT`` must point at it before either library is imported, and ``HF_HUB_DISABLE_XET=1``
must be set; tests/conftest.py does both). Repos live on disk under ``root``: each repo is a JSON
file of refs and commits (oid, parent, summary, description, date, full file map), file contents are
content-addressed blobs (sha256). The calls it answers, and why, are in /work/shared/notes/hub-protocol.md;
the installed client sources are the reference for headers and error codes.

What it does not do: Xet transfer (``xet-*-token`` answers 501), the real Hub's preupload rules and YAML
schema checks (a file is LFS when its extension is in the usual ``.gitattributes`` list, it is larger
than 1 MB or its sample has a NUL byte; YAML only has to parse into a mapping), auth (any token is
accepted except ``refused_tokens``) and access control (``private`` is recorded, not enforced).

Example:
    >>> import tempfile
    >>> server = HubServer(Path(tempfile.mkdtemp())).start()
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.stop()
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

USER = "test-user"
REPO_TYPES = ("model", "dataset", "space")
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
FAILABLE = ("commit", "commit_reply", "preupload", "lfs_batch", "lfs_upload", "create_repo", "download")
# Extensions the Hub's default .gitattributes stores in LFS (the common part of that list).
LFS_EXTENSIONS = (".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gz", ".h5", ".joblib", ".mlmodel", ".model",
                  ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt", ".pth",
                  ".rar", ".safetensors", ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst", ".gguf",
                  ".mp3", ".wav", ".flac", ".png", ".jpg", ".jpeg", ".webp", ".db", ".sqlite")
LFS_MIN_SIZE = 1_000_000
GITATTRIBUTES = "".join(f"*{ext} filter=lfs diff=lfs merge=lfs -text\n" for ext in LFS_EXTENSIONS).encode()
ACTIONS = {"revision", "tree", "preupload", "commit", "paths-info", "branch", "refs", "commits", "settings",
           "xet-write-token", "xet-read-token", "resolve"}


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubError(Exception):
    """An HTTP error answer: status, message, and the ``X-Error-Code`` the clients map to their errors."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class _DropConnection(Exception):
    """Close the connection without answering (``fail_next(..., drop=True)``)."""


class HubServer:
    """Hub-compatible server in a background thread. ``start()`` returns self; ``stop()`` shuts it down.

    Args:
        root: folder for repos (``<root>/repos/<type>s/<ns>/<name>.json``) and blobs (``<root>/blobs``).
        port: port on 127.0.0.1 (0: any free port).
        refused_tokens: bearer tokens answered with 401 ``Invalid credentials in Authorization header``.
    """

    def __init__(self, root: Path, *, port: int = 0, refused_tokens: set[str] | tuple = ()):
        self.root = Path(root)
        self.port = port
        self.refused_tokens = set(refused_tokens)
        self.requests: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []  # requests no route matched (answered 404)
        self._failures: dict[tuple[str, str | None], list[int]] = {}  # (what, repo_id) -> [status, remaining]
        self._lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle and test-facing API
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HubServer:
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def fail_next(self, what: str = "commit", *, status: int = 500, times: int = 1,
                  repo_id: str | None = None, drop: bool = False) -> None:
        """Answer the next ``times`` calls of kind ``what`` (one of ``FAILABLE``) with ``status``.

        ``drop=True`` closes the connection without any answer instead (the client sees "Server
        disconnected without sending a response"). ``commit_reply`` fails a commit *after* it was
        applied: the commit is on the Hub, but the client gets ``status`` or a dropped connection.

        ``repo_id`` limits the failure to that repo (safer on a server shared by a test session);
        ``lfs_upload`` failures cannot be limited to a repo (the PUT URL names only the object).
        The clients retry 429/5xx on preupload, LFS batch and LFS upload (waiting 1 s, 2 s, ...) but
        not on commit: use a 4xx status to see those fail at once. ``clear_failures()`` drops pending ones.
        """
        if what not in FAILABLE:
            raise ValueError(f"fail_next: unknown call {what!r}; choose one of {', '.join(FAILABLE)}")
        with self._lock:
            self._failures[(what, repo_id)] = [0 if drop else status, times]

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def commits(self, repo_id: str, *, repo_type: str = "dataset", revision: str = "main") -> list[dict]:
        """Commits reachable from ``revision``, newest first: ``{"oid", "summary", "description", "parent",
        "date", "files": {path: size}}``. A new repo has one commit ("initial commit", ``.gitattributes``)."""
        with self._lock:
            repo = self._load(repo_type, repo_id)
            oid = self._resolve(repo, revision)
            out = []
            while oid is not None:
                c = repo["commits"][oid]
                out.append({"oid": oid, "summary": c["summary"], "description": c["description"],
                            "parent": c["parent"], "date": c["date"],
                            "files": {p: f["size"] for p, f in sorted(c["files"].items())}})
                oid = c["parent"]
            return out

    def read_file(self, repo_id: str, path: str, *, repo_type: str = "dataset", revision: str = "main") -> bytes:
        with self._lock:
            repo = self._load(repo_type, repo_id)
            entry = repo["commits"][self._resolve(repo, revision)]["files"].get(path)
        if entry is None:
            raise FileNotFoundError(f"{path} is not in {repo_type} {repo_id}@{revision}")
        return self._blob(entry["sha256"]).read_bytes()

    def repo_exists(self, repo_id: str, *, repo_type: str = "dataset") -> bool:
        return self._repo_path(repo_type, repo_id).exists()

    def is_private(self, repo_id: str, *, repo_type: str = "dataset") -> bool:
        with self._lock:
            return self._load(repo_type, repo_id)["private"]

    # ----------------------------------------------------------------- storage
    def _repo_path(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / f"{repo_id}.json"

    def _blob(self, sha256: str) -> Path:
        return self.root / "blobs" / sha256

    def _load(self, repo_type: str, repo_id: str) -> dict:
        path = self._repo_path(repo_type, repo_id)
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id) or not path.exists():
            raise HubError(404, f"Repository Not Found: {repo_type} {repo_id}", "RepoNotFound")
        return json.loads(path.read_text())

    def _save(self, repo_type: str, repo_id: str, repo: dict) -> None:
        path = self._repo_path(repo_type, repo_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(repo))
        tmp.replace(path)

    def _put_blob(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self._blob(sha256)
        if not path.exists():
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_bytes(content)
            tmp.replace(path)
        return sha256

    @staticmethod
    def _resolve(repo: dict, revision: str) -> str:
        if revision in repo["refs"]:
            return repo["refs"][revision]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [oid for oid in repo["commits"] if oid.startswith(revision)]
            if len(matches) == 1:
                return matches[0]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def _take_failure(self, what: str, repo_id: str | None = None) -> None:
        with self._lock:
            for key in ((what, repo_id), (what, None)):
                failure = self._failures.get(key)
                if failure and failure[1] > 0:
                    failure[1] -= 1
                    if failure[0] == 0:
                        raise _DropConnection(what)
                    raise HubError(failure[0], f"Injected failure of {what} (HubServer.fail_next)")

    def _new_commit(self, repo: dict, parent: str | None, summary: str, description: str, files: dict) -> str:
        date = _now()
        oid = hashlib.sha1(json.dumps([parent, summary, description, date, len(repo["commits"]), files],
                                      sort_keys=True).encode()).hexdigest()
        repo["commits"][oid] = {"parent": parent, "summary": summary, "description": description, "date": date,
                                "files": files}
        return oid

    def _file_entry(self, content: bytes, *, lfs: bool) -> dict:
        sha256 = self._put_blob(content)
        return self._entry(sha256, len(content), lfs=lfs, content=content)

    def _entry(self, sha256: str, size: int, *, lfs: bool, content: bytes | None = None) -> dict:
        oid = git_blob_sha1(lfs_pointer(sha256, size) if lfs else content)
        return {"sha256": sha256, "size": size, "lfs": lfs, "oid": oid}

    def create_repo(self, repo_type: str, repo_id: str, *, private: bool = False) -> bool:
        """Create a repo with the Hub's initial commit; False when it exists already."""
        with self._lock:
            if self._repo_path(repo_type, repo_id).exists():
                return False
            repo = {"id": repo_id, "type": repo_type, "private": bool(private), "createdAt": _now(),
                    "refs": {}, "commits": {}}
            oid = self._new_commit(repo, None, "initial commit", "",
                                   {".gitattributes": self._file_entry(GITATTRIBUTES, lfs=False)})
            repo["refs"]["main"] = oid
            self._save(repo_type, repo_id, repo)
            return True


def _tree_entries(files: dict, prefix: str, *, recursive: bool) -> list[dict]:
    """Hub tree entries under ``prefix`` ('' = root): files and folders, folders first as the Hub lists them."""
    base = prefix.strip("/")
    start = base + "/" if base else ""
    folders: dict[str, list[str]] = {}
    out_files = []
    for path in sorted(files):
        if not path.startswith(start):
            continue
        rest = path[len(start):].split("/")
        for depth in range(1, len(rest)):
            if depth > 1 and not recursive:
                break
            folders.setdefault(start + "/".join(rest[:depth]), []).append(path)
        if len(rest) == 1 or recursive:
            out_files.append(path)
    entries = [{"type": "directory", "oid": hashlib.sha1("\n".join(files[p]["oid"] for p in members).encode())
                .hexdigest(), "size": 0, "path": folder} for folder, members in sorted(folders.items())]
    return entries + [_file_json(p, files[p]) for p in out_files]


def _file_json(path: str, f: dict) -> dict:
    out = {"type": "file", "oid": f["oid"], "size": f["size"], "path": path}
    if f["lfs"]:
        out["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": len(lfs_pointer(f["sha256"], f["size"]))}
    return out


def _card_data(files: dict, hub: HubServer) -> dict | None:
    if "README.md" not in files:
        return None
    text = hub._blob(files["README.md"]["sha256"]).read_text(errors="replace")
    m = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.S)
    if not m:
        return None
    try:
        import yaml  # PyYAML is a dependency of huggingface_hub and datasets
        data = yaml.safe_load(m.group(1))
    except Exception:
        return None
    return data if isinstance(data, dict) else None


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean; see HubServer.requests
        pass

    # ----------------------------------------------------------------- plumbing
    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _body(self) -> bytes:
        if getattr(self, "_read_body", None) is not None:
            return self._read_body
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(parts)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._read_body = body
        return body

    def _json_body(self) -> dict:
        try:
            return json.loads(self._body() or b"{}")
        except json.JSONDecodeError as e:
            raise HubError(400, f"Request body is not JSON: {e}") from e

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():  # header values: one line, latin-1
            self.send_header(k, " ".join(str(v).split()).encode("latin-1", "replace").decode("latin-1"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, obj, status: int = 200, headers: dict | None = None,
                   content_type: str = "application/json") -> None:
        self._send(status, json.dumps(obj).encode(), headers, content_type)

    def _dispatch(self, method: str) -> None:
        self._read_body = None
        split = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        hub = self.hub
        with hub._lock:
            hub.requests.append((method, split.path))
        try:
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer ") and auth[len("Bearer "):] in hub.refused_tokens:
                raise HubError(401, "Invalid credentials in Authorization header")
            if not self._route(method, split.path):
                with hub._lock:
                    hub.unknown.append((method, split.path))
                raise HubError(404, f"Not found: {method} {split.path} (not implemented by tests/hub_server.py)")
        except HubError as e:
            if method in ("POST", "PUT"):
                self._body()  # drain, so the connection stays usable
            headers = {"X-Error-Message": e.message, **e.headers}
            if e.code:
                headers["X-Error-Code"] = e.code
            self._send_json({"error": e.message}, e.status, headers)
        except _DropConnection:
            self._body()  # read what the client sent, then hang up without a word
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _route(self, method: str, path: str) -> bool:
        segs = path.strip("/").split("/")
        if path == "/api/whoami-v2" and method == "GET":
            self._send_json({"type": "user", "name": USER, "fullname": "Test User", "orgs": [],
                             "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}}})
            return True
        if path == "/api/agent-harnesses" and method == "GET":  # huggingface_hub's agent detection registry
            self._send_json({"standardEnvVars": [], "harnesses": {}})
            return True
        if path == "/api/repos/create" and method == "POST":
            self._create_repo()
            return True
        if path == "/api/repos/delete" and method == "DELETE":
            self._delete_repo()
            return True
        if path == "/api/validate-yaml" and method == "POST":
            self._validate_yaml()
            return True
        if segs[0] == "_lfs" and len(segs) >= 2:
            return self._lfs_object(method, segs[1], segs[2:])
        if segs[0] == "api" and len(segs) >= 3 and segs[1].rstrip("s") in REPO_TYPES and segs[1].endswith("s"):
            repo_type = segs[1][:-1]
            repo_id, rest = _split_repo(segs[2:])
            return self._repo_api(method, repo_type, repo_id, rest)
        # Git LFS batch: /{prefix}{ns}/{name}.git/info/lfs/objects/batch
        m = re.fullmatch(r"/(?:(datasets|spaces)/)?([\w.-]+/[\w.-]+)\.git/info/lfs/objects/batch", path)
        if m and method == "POST":
            self._lfs_batch((m.group(1) or "models")[:-1], m.group(2))
            return True
        # Downloads: /{prefix}{ns}/{name}/resolve/{rev}/{path}
        prefix = segs[0] if segs[0] in ("datasets", "spaces") else None
        rest = segs[1:] if prefix else segs
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            repo_type = prefix[:-1] if prefix else "model"
            self._resolve_file(repo_type, f"{rest[0]}/{rest[1]}", unquote(rest[3]), unquote("/".join(rest[4:])))
            return True
        return False

    # ----------------------------------------------------------------- repo level
    def _create_repo(self) -> None:
        body = self._json_body()
        self.hub._take_failure("create_repo", f"{body.get('organization') or USER}/{body.get('name')}")
        repo_type = body.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        name = body.get("name") or ""
        ns = body.get("organization") or USER
        if not re.fullmatch(r"[\w.-]+", name) or not re.fullmatch(r"[\w.-]+", ns):
            raise HubError(400, f"Invalid repo name {ns}/{name}: use letters, digits, '-', '_' and '.'")
        repo_id = f"{ns}/{name}"
        url = f"{self.hub.url}/{URL_PREFIX[repo_type]}{repo_id}"
        private = body.get("visibility", "private" if body.get("private") else "public") != "public"
        if not self.hub.create_repo(repo_type, repo_id, private=private):
            self._send_json({"error": "You already created this repo", "url": url}, 409,
                            {"X-Error-Message": "You already created this repo"})
            return
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        body = self._json_body()
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or USER}/{body.get('name')}"
        with self.hub._lock:
            self.hub._load(repo_type, repo_id)
            self.hub._repo_path(repo_type, repo_id).unlink()
        self._send(200)

    def _validate_yaml(self) -> None:
        body = self._json_body()
        content = body.get("content") or ""
        m = re.match(r"^---\s*\n(.*?)\n?---\s*(\n|$)", content, re.S)
        if content.startswith("---") and not m:
            raise HubError(400, "Invalid metadata in README.md: the YAML block is not closed by '---'")
        errors = []
        if m:
            try:
                import yaml
                data = yaml.safe_load(m.group(1))
                if data is not None and not isinstance(data, dict):
                    errors.append({"message": "YAML metadata must be a mapping"})
            except ImportError:
                pass
            except Exception as e:  # yaml.YAMLError
                errors.append({"message": f"YAML does not parse: {e}"})
        if errors:
            self._send_json({"errors": errors, "warnings": []}, 400, {"X-Error-Message": errors[0]["message"]})
            return
        self._send_json({"errors": [], "warnings": []})

    def _repo_api(self, method: str, repo_type: str, repo_id: str, rest: list[str]) -> bool:
        hub = self.hub
        action = rest[0] if rest else None
        if action is None and method == "GET":
            return self._repo_info(repo_type, repo_id, "main")
        if action == "revision" and len(rest) >= 2 and method == "GET":
            return self._repo_info(repo_type, repo_id, unquote("/".join(rest[1:])))
        if action in ("xet-write-token", "xet-read-token"):
            raise HubError(501, "Xet storage is not implemented by the test Hub server: set HF_HUB_DISABLE_XET=1 "
                                "before importing huggingface_hub")
        if action == "tree" and len(rest) >= 2 and method == "GET":
            self._tree(repo_type, repo_id, unquote(rest[1]), unquote("/".join(rest[2:])))
            return True
        if action == "paths-info" and len(rest) >= 2 and method == "POST":
            self._paths_info(repo_type, repo_id, unquote(rest[1]))
            return True
        if action == "preupload" and len(rest) >= 2 and method == "POST":
            self._preupload(repo_type, repo_id, unquote(rest[1]))
            return True
        if action == "commit" and len(rest) >= 2 and method == "POST":
            self._commit(repo_type, repo_id, unquote("/".join(rest[1:])))
            return True
        if action == "branch" and len(rest) >= 2 and method in ("POST", "DELETE"):
            self._branch(method, repo_type, repo_id, unquote("/".join(rest[1:])))
            return True
        if action == "refs" and method == "GET":
            with hub._lock:
                repo = hub._load(repo_type, repo_id)
            refs = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o} for n, o in repo["refs"].items()
                    if not n.startswith("refs/pr/")]
            prs = [{"name": n, "ref": n, "targetCommit": o} for n, o in repo["refs"].items()
                   if n.startswith("refs/pr/")]
            self._send_json({"branches": refs, "converts": [], "tags": [], "pullRequests": prs})
            return True
        if action == "commits" and len(rest) >= 2 and method == "GET":
            commits = hub.commits(repo_id, repo_type=repo_type, revision=unquote(rest[1]))
            self._send_json([{"id": c["oid"], "authors": [{"user": USER}], "date": c["date"], "title": c["summary"],
                              "message": c["description"]} for c in commits])
            return True
        if action == "settings" and method == "PUT":
            body = self._json_body()
            with hub._lock:
                repo = hub._load(repo_type, repo_id)
                if "visibility" in body or "private" in body:
                    repo["private"] = body.get("visibility", "private" if body.get("private") else "public") != "public"
                hub._save(repo_type, repo_id, repo)
            self._send_json({})
            return True
        return False

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> bool:
        hub = self.hub
        with hub._lock:
            repo = hub._load(repo_type, repo_id)
            sha = hub._resolve(repo, revision)
        commit = repo["commits"][sha]
        blobs = self.query.get("blobs", "").lower() in ("1", "true")
        siblings = []
        for path, f in sorted(commit["files"].items()):
            s = {"rfilename": path}
            if blobs:
                s.update(size=f["size"], blobId=f["oid"])
                if f["lfs"]:
                    s["lfs"] = {"size": f["size"], "sha256": f["sha256"],
                                "pointerSize": len(lfs_pointer(f["sha256"], f["size"]))}
            siblings.append(s)
        info = {"_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24], "id": repo_id,
                "author": repo_id.split("/")[0], "sha": sha, "lastModified": commit["date"],
                "createdAt": repo["createdAt"], "private": repo["private"], "gated": False, "disabled": False,
                "downloads": 0, "likes": 0, "tags": [], "siblings": siblings}
        card = _card_data(commit["files"], hub)
        if card is not None:
            info["cardData"] = card
        if repo_type == "model":
            info["modelId"] = repo_id
        self._send_json(info)
        return True

    # ----------------------------------------------------------------- listing
    def _files_at(self, repo_type: str, repo_id: str, revision: str) -> tuple[str, dict]:
        with self.hub._lock:
            repo = self.hub._load(repo_type, repo_id)
            sha = self.hub._resolve(repo, revision)
        return sha, repo["commits"][sha]["files"]

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        sha, files = self._files_at(repo_type, repo_id, revision)
        recursive = self.query.get("recursive", "").lower() in ("1", "true")
        path = path.strip("/")
        if path and not any(p.startswith(path + "/") for p in files):
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": sha})
        entries = _tree_entries(files, path, recursive=recursive)
        if self.query.get("expand", "").lower() in ("1", "true"):
            entries = [self._expand(repo_type, repo_id, sha, e) for e in entries]
        self._send_json(entries)

    def _expand(self, repo_type: str, repo_id: str, sha: str, entry: dict) -> dict:
        """Add ``lastCommit``: the newest commit that changed this path (files) or anything under it (folders)."""
        commits = self.hub.commits(repo_id, repo_type=repo_type, revision=sha)
        path = entry["path"]
        with self.hub._lock:
            repo = self.hub._load(repo_type, repo_id)

        def view(oid):
            files = repo["commits"][oid]["files"] if oid else {}
            return {p: f["oid"] for p, f in files.items() if p == path or p.startswith(path + "/")}

        last = commits[-1]
        for c in commits:
            if view(c["oid"]) != view(c["parent"]):
                last = c
                break
        return {**entry, "lastCommit": {"id": last["oid"], "title": last["summary"], "date": last["date"]}}

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        form = parse_qs(self._body().decode())
        sha, files = self._files_at(repo_type, repo_id, revision)
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in files:
                out.append(_file_json(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                members = [p for p in sorted(files) if p.startswith(path + "/")]
                out.append({"type": "directory", "path": path, "size": 0,
                            "oid": hashlib.sha1("\n".join(files[p]["oid"] for p in members).encode()).hexdigest()})
        if form.get("expand", ["False"])[-1].lower() in ("1", "true"):
            out = [self._expand(repo_type, repo_id, sha, e) for e in out]
        self._send_json(out)

    # ----------------------------------------------------------------- uploads
    def _preupload(self, repo_type: str, repo_id: str, revision: str) -> None:
        body = self._json_body()
        self.hub._take_failure("preupload", repo_id)
        try:
            _, files = self._files_at(repo_type, repo_id, revision)
        except HubError as e:
            if e.code != "RevisionNotFound" or self.query.get("create_pr") != "1":
                raise
            files = {}
        out = []
        for f in body.get("files", []):
            path, size = f["path"], int(f.get("size", 0))
            sample = base64.b64decode(f.get("sample") or "")
            lfs = path.lower().endswith(LFS_EXTENSIONS) or size > LFS_MIN_SIZE or b"\0" in sample
            mode = "lfs" if lfs else "regular"
            existing = files.get(path)
            oid = None
            if existing is not None:
                oid = existing["sha256"] if lfs else (existing["oid"] if not existing["lfs"] else None)
            out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._send_json({"files": out, "commitOid": None})

    def _lfs_batch(self, repo_type: str, repo_id: str) -> None:
        body = self._json_body()
        self.hub._take_failure("lfs_batch", repo_id)
        with self.hub._lock:
            self.hub._load(repo_type, repo_id)
        if body.get("operation") != "upload":
            raise HubError(400, "Only the LFS 'upload' operation is implemented by the test Hub server")
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry = {"oid": oid, "size": size, "authenticated": True}
            blob = self.hub._blob(oid)
            if not (blob.exists() and blob.stat().st_size == size):
                href = f"{self.hub.url}/_lfs/{oid}?size={size}"
                entry["actions"] = {"upload": {"href": href, "expires_in": 3600},
                                    "verify": {"href": f"{self.hub.url}/_lfs/{oid}/verify", "expires_in": 3600}}
            objects.append(entry)
        self._send_json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                        content_type="application/vnd.git-lfs+json")

    def _lfs_object(self, method: str, oid: str, rest: list[str]) -> bool:
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise HubError(400, f"Invalid LFS oid {oid!r}: expected a sha256 hex digest")
        if method == "PUT" and not rest:
            content = self._body()
            self.hub._take_failure("lfs_upload")
            if hashlib.sha256(content).hexdigest() != oid:
                raise HubError(400, f"Uploaded content does not match the LFS oid {oid} (sha256 mismatch)")
            self.hub._put_blob(content)
            self._send(200)
            return True
        if method == "POST" and rest == ["verify"]:
            body = self._json_body()
            blob = self.hub._blob(oid)
            if not blob.exists():
                raise HubError(404, f"LFS object {oid} was not uploaded")
            if blob.stat().st_size != int(body.get("size", -1)):
                raise HubError(422, f"LFS object {oid} has size {blob.stat().st_size}, not {body.get('size')}")
            self._send_json({})
            return True
        return False

    def _commit(self, repo_type: str, repo_id: str, revision: str) -> None:
        hub = self.hub
        lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
        hub._take_failure("commit", repo_id)
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "A commit must start with a 'header' line")
        header = lines[0]["value"]
        create_pr = self.query.get("create_pr") == "1"
        with hub._lock:
            repo = hub._load(repo_type, repo_id)
            if create_pr:
                start = hub._resolve(repo, header.get("parentCommit") or revision)
            else:
                if revision not in repo["refs"]:
                    if re.fullmatch(r"[0-9a-f]{40}", revision) and revision in repo["commits"]:
                        raise HubError(400, f"Cannot commit to a commit id ({revision}): use a branch name")
                    raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
                start = repo["refs"][revision]
                parent = header.get("parentCommit")
                if parent and not start.startswith(parent):
                    raise HubError(412, f"A commit has happened since. Please refresh and try again. "
                                        f"({revision} is at {start}, not at the parentCommit {parent})")
            files = dict(repo["commits"][start]["files"])
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = value.get("path", "")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"{path}: only base64 encoding is implemented")
                    files[path] = hub._file_entry(base64.b64decode(value["content"]), lfs=False)
                elif key == "lfsFile":
                    blob = hub._blob(value.get("oid", ""))
                    if not re.fullmatch(r"[0-9a-f]{64}", value.get("oid", "")) or not blob.exists():
                        raise HubError(400, f"Your push was rejected because an LFS pointer pointed to a file that "
                                            f"does not exist: {path} (oid {value.get('oid')}); upload it first")
                    size = blob.stat().st_size
                    if value.get("size") is not None and int(value["size"]) != size:
                        raise HubError(400, f"{path}: LFS size {value['size']} does not match the uploaded {size}")
                    files[path] = hub._entry(value["oid"], size, lfs=True)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    folder = path.rstrip("/") + "/"
                    gone = [p for p in files if p.startswith(folder)]
                    if not gone:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}",
                                   "EntryNotFound")
                    for p in gone:
                        del files[p]
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}")
            oid = hub._new_commit(repo, start, header.get("summary") or "", header.get("description") or "", files)
            pr_url = None
            if create_pr:
                num = 1 + sum(r.startswith("refs/pr/") for r in repo["refs"])
                repo["refs"][f"refs/pr/{num}"] = oid
                pr_url = f"{hub.url}/{URL_PREFIX[repo_type]}{repo_id}/discussions/{num}"
            else:
                repo["refs"][revision] = oid
            hub._save(repo_type, repo_id, repo)
        hub._take_failure("commit_reply", repo_id)  # applied, but the answer is lost
        self._send_json({"success": True, "commitOid": oid,
                         "commitUrl": f"{hub.url}/{URL_PREFIX[repo_type]}{repo_id}/commit/{oid}",
                         "pullRequestUrl": pr_url})

    def _branch(self, method: str, repo_type: str, repo_id: str, branch: str) -> None:
        body = self._json_body() if method == "POST" else {}
        hub = self.hub
        with hub._lock:
            repo = hub._load(repo_type, repo_id)
            if method == "DELETE":
                if branch not in repo["refs"]:
                    raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
                del repo["refs"][branch]
            else:
                if branch in repo["refs"]:
                    raise HubError(409, f"Reference already exists: refs/heads/{branch}")
                if not re.fullmatch(r"[\w.-]+(/[\w.-]+)*", branch) or branch.startswith("refs/"):
                    raise HubError(400, f"Invalid branch name {branch!r}")
                repo["refs"][branch] = hub._resolve(repo, body.get("startingPoint") or "main")
            hub._save(repo_type, repo_id, repo)
        self._send_json({})

    # ----------------------------------------------------------------- downloads
    def _resolve_file(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        hub = self.hub
        sha, files = self._files_at(repo_type, repo_id, revision)
        f = files.get(path)
        if f is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
        hub._take_failure("download", repo_id)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{f["sha256"] if f["lfs"] else f["oid"]}"',
                   "Accept-Ranges": "bytes"}
        if f["lfs"]:
            headers["X-Linked-Etag"] = headers["ETag"]
            headers["X-Linked-Size"] = str(f["size"])
        content = hub._blob(f["sha256"]).read_bytes()
        status, size = 200, len(content)
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                raise HubError(416, f"Unsupported Range {rng!r}", headers={"Content-Range": f"bytes */{size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start, end = max(size - int(m.group(2)), 0), size - 1
            if start >= size or end < start:
                raise HubError(416, f"Range {rng!r} not satisfiable for {size} bytes",
                               headers={"Content-Range": f"bytes */{size}"})
            content = content[start:end + 1]
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(status, content, headers, content_type="application/octet-stream")


def _split_repo(segs: list[str]) -> tuple[str, list[str]]:
    """``ns/name/action/...`` -> (``ns/name``, rest); a lone ``name`` (legacy id) when the second is an action."""
    if len(segs) >= 2 and segs[1] not in ACTIONS:
        return f"{segs[0]}/{segs[1]}", segs[2:]
    return segs[0], segs[1:]


if __name__ == "__main__":  # python tests/hub_server.py --root DIR --port P  (for manual use)
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = HubServer(args.root, port=args.port).start()
    print(f"serving on {server.url}  (HF_ENDPOINT={server.url} HF_HUB_DISABLE_XET=1)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
