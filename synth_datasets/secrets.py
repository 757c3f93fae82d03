"""Secrets: which key goes to which server, and one scrub for every text the library writes.

- :func:`split_url` takes credentials out of an endpoint URL (``user:password@`` and query
  parameters such as ``?key=`` or ``?api_key=``): the public URL is what gets recorded, the rest is
  used to authenticate and never written.
- :func:`env_key_for` routes keys from the environment by host: ``SYNTH_DATASETS_API_KEY`` to any
  endpoint, ``HF_TOKEN`` only to Hugging Face hosts over https, ``OPENAI_API_KEY`` only to
  ``api.openai.com`` over https.
- :func:`scrub` replaces every secret the process knows (registered keys, URL passwords, the key
  variables of the environment) and anything shaped like a credential (``Bearer ...``, ``hf_...``,
  ``sk-...``) with ``***``. It runs on error texts before they reach a row, the cache or a log.
- :func:`find_secrets` tells whether known secrets are still in a text (``publish`` refuses then).

Example:
    >>> parts = split_url("http://user:sk-abc123456789@127.0.0.1:8080/v1?api_key=k-0123456789&x=1")
    >>> parts.public, parts.credential
    ('http://127.0.0.1:8080/v1?x=1', 'sk-abc123456789')
    >>> scrub("HTTP 401: got Authorization: Bearer sk-abc123456789")
    'HTTP 401: got Authorization: Bearer ***'
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Endpoint keys by endpoint (LLM's source|model), kept out of every pickled state. Forked workers
# (num_proc) inherit it; spawned ones fall back to the environment.
KEYS: dict[str, str] = {}
# Endpoint URLs as the user wrote them (with their credentials), by the same id: never pickled.
URLS: dict[str, str] = {}
_REGISTERED: set[str] = set()

ENV_ANY_HOST = "SYNTH_DATASETS_API_KEY"
ENV_HF = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
ENV_OPENAI = "OPENAI_API_KEY"
KEY_ENVS = (ENV_ANY_HOST, *ENV_HF, ENV_OPENAI)

HF_HOSTS = ("huggingface.co", "hf.co", "hf.space", "huggingface.cloud")  # the hosts and their subdomains
OPENAI_HOSTS = ("api.openai.com",)

_SECRET_PARAMS = {"key", "apikey", "api_key", "api-key", "x-api-key", "token", "access_token", "auth", "auth_token",
                  "code", "sig", "signature", "secret", "client_secret", "password", "passwd", "pwd"}
_SECRET_SUFFIXES = ("_key", "-key", "_token", "-token", "_secret", "-secret", "_password")
MIN_LEN = 8  # shorter values are not treated as secrets (they would mask ordinary words)

# Text shaped like a credential, masked wherever a server reply is written.
PATTERNS = [
    re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=:-]{6,}"),
    re.compile(r"(?i)\b(basic)(\s+)(?=[A-Za-z0-9+/]*[0-9+/=])[A-Za-z0-9+/]{6,}={0,2}"),
    re.compile(r"(?i)((?:authorization|x-api-key|api-key)\"?\s*[:=]\s*\"?(?:(?:bearer|basic|token)\s+)?)(?!(?:bearer|basic|token)\b)[^\s\"',;]{6,}"),
    re.compile(r"\bhf_[A-Za-z0-9]{10,}"),
    re.compile(r"\bsk-[A-Za-z0-9_-]{10,}"),
    re.compile(r"(?i)([?&](?:api[_-]?key|key|token|access_token|auth|sig|code)=)[^&\s\"']+"),
    re.compile(r"(?i)(://)[^/\s:@\"']+:[^/\s@\"']+@"),
]
_REPLACEMENTS = [r"\1\2***", r"\1\2***", r"\1***", "***", "***", r"\1***", r"\1***@"]


def register(*values: str | None) -> None:
    """Remember ``values`` as secrets (scrubbed everywhere, refused by ``publish``)."""
    _REGISTERED.update(v for v in values if isinstance(v, str) and len(v) >= MIN_LEN)


def known_secrets(*extra: str | None, hub_login: bool = False) -> set[str]:
    """Every secret this process knows: registered ones, endpoint keys, key environment variables, ``extra``;
    with ``hub_login``, also the stored Hugging Face login (``hf auth login``), as publishing needs."""
    found = {*_REGISTERED, *KEYS.values(), *(os.environ.get(e) for e in KEY_ENVS), *extra}
    if hub_login:
        try:
            from huggingface_hub import get_token

            found.add(get_token())
        except Exception:  # no stored token, unreadable token file
            pass
    return {s for s in found if isinstance(s, str) and len(s) >= MIN_LEN}


def scrub(text: str | None, *, secrets: Iterable[str] | None = None, patterns: bool = True) -> str | None:
    """``text`` with known secrets (and, with ``patterns``, credential-shaped text) replaced by ``***``.

    >>> scrub("see https://u:pw123456@h/v1?key=abcdef123")
    'see https://***@h/v1?key=***'
    """
    if not text:
        return text
    for s in sorted(known_secrets() if secrets is None else secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "***")
    if patterns:
        for p, repl in zip(PATTERNS, _REPLACEMENTS):
            text = p.sub(repl, text)
    return text


def find_secrets(text: str, secrets: Iterable[str] | None = None) -> list[str]:
    """The known secrets present in ``text`` (masked for display: first 4 characters + length)."""
    return [mask(s) for s in (known_secrets() if secrets is None else secrets) if s and s in text]


def mask(secret: str) -> str:
    """A printable hint of a secret: ``'hf_A…(37 chars)'``."""
    return f"{secret[:4]}…({len(secret)} chars)"


def is_secret_param(name: str) -> bool:
    """Whether a URL query parameter carries a credential (``key``, ``api_key``, ``token``, ...)."""
    name = name.lower()
    return name in _SECRET_PARAMS or name.endswith(_SECRET_SUFFIXES)


@dataclasses.dataclass(frozen=True)
class UrlParts:
    """An endpoint URL taken apart (see :func:`split_url`)."""

    public: str  # recorded: no userinfo, no secret query parameters
    base: str  # requests go under it: no userinfo, no query
    query: tuple[tuple[str, str], ...]  # every query parameter, secret ones included: sent as they were
    credential: str | None  # the URL's password, or a lone user name
    secrets: tuple[str, ...]  # the credential and the secret query values

    @property
    def host(self) -> str:
        return (urlsplit(self.base).hostname or "").lower()

    @property
    def scheme(self) -> str:
        return urlsplit(self.base).scheme.lower()


def split_url(url: str) -> UrlParts:
    """Take the credentials out of ``url``.

    >>> split_url("https://tok-123456@example.org/v1/").public
    'https://example.org/v1'
    """
    u = urlsplit(url)
    host = u.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{u.port}" if u.port is not None else "")
    credential = u.password or u.username or None
    query = tuple(parse_qsl(u.query, keep_blank_values=True))
    secret_values = tuple(v for k, v in query if is_secret_param(k) and v)
    public_query = urlencode([(k, v) for k, v in query if not is_secret_param(k)])
    path = u.path.rstrip("/")
    base = urlunsplit((u.scheme, netloc, path, "", ""))
    public = urlunsplit((u.scheme, netloc, path, public_query, ""))
    return UrlParts(public=public, base=base, query=query, credential=credential,
                    secrets=tuple(s for s in (credential, *secret_values) if s))


def _host_in(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def is_hf_host(host: str) -> bool:
    """Hugging Face hosts: huggingface.co and its subdomains (router, api-inference), ``*.hf.space``,
    ``*.endpoints.huggingface.cloud``."""
    return _host_in(host.lower(), HF_HOSTS)


def env_key_for(url: str) -> tuple[str | None, str | None]:
    """``(key, variable)`` from the environment for requests to ``url``.

    ``SYNTH_DATASETS_API_KEY`` goes to any endpoint. Otherwise ``HF_TOKEN`` (or the token of
    ``hf auth login``) goes only to Hugging Face hosts and ``OPENAI_API_KEY`` only to
    ``api.openai.com``, both over https only; every other server gets no key.

    >>> env_key_for("http://127.0.0.1:8080/v1")[1] is None or bool(os.environ.get("SYNTH_DATASETS_API_KEY"))
    True
    """
    if os.environ.get(ENV_ANY_HOST):
        return os.environ[ENV_ANY_HOST], ENV_ANY_HOST
    parts = split_url(url)
    if parts.scheme != "https":
        return None, None
    if is_hf_host(parts.host):
        for e in ENV_HF:
            if os.environ.get(e):
                return os.environ[e], e
        try:
            from huggingface_hub import get_token

            token = get_token()
        except Exception:  # an unreadable token file
            token = None
        return (token, "hf auth login") if token else (None, None)
    if _host_in(parts.host, OPENAI_HOSTS) and os.environ.get(ENV_OPENAI):
        return os.environ[ENV_OPENAI], ENV_OPENAI
    return None, None


def find_in_table(table: Any, secrets: Iterable[str] | None = None, *, limit: int = 5) -> list[str]:
    """Where known secrets occur in a pyarrow Table (or anything with ``to_pylist`` columns):
    ``["column 'x' row 3: sk-T…(30 chars)", ...]``, at most ``limit``. Text columns are searched with
    pyarrow compute; nested columns (lists, structs) through their JSON text."""
    import json

    import pyarrow as pa
    import pyarrow.compute as pc

    secrets = [s for s in (known_secrets() if secrets is None else secrets) if s]
    found: list[str] = []
    if not secrets:
        return found
    for name in table.column_names:
        col = table.column(name)
        t = col.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            texts = col
        elif pa.types.is_nested(t) or pa.types.is_dictionary(t):
            texts = pa.array([json.dumps(v, ensure_ascii=False, default=str) for v in col.to_pylist()], pa.string())
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
            texts = pa.array([None if v is None else v.decode("utf-8", "replace") for v in col.to_pylist()],
                             pa.string())
        else:
            continue
        for s in secrets:
            hits = pc.match_substring(texts, s)
            if pc.any(hits).as_py():
                row = pc.index(hits, True).as_py()
                found.append(f"column {name!r} row {row}: {mask(s)}")
                if len(found) >= limit:
                    return found
    return found


def refuse_secrets_in(data: Any, secrets: Iterable[str] | None = None, *, what: str = "the dataset") -> None:
    """Raise :class:`~synth_datasets.errors.SecretInDataError` if a known secret occurs in ``data``: a
    ``datasets.Dataset``, a pyarrow Table, or a folder whose ``data/**/*.parquet`` files are read.

    >>> import pyarrow as pa
    >>> refuse_secrets_in(pa.table({"t": ["fine"]}), ["sk-0123456789"])
    """
    from pathlib import Path

    if isinstance(data, (str, Path)):
        import pyarrow.parquet as pq

        for f in sorted(Path(data).glob("data/**/*.parquet")):
            refuse_secrets_in(pq.read_table(f), secrets, what=str(f))
        return
    table = data.with_format("arrow")[:] if hasattr(data, "with_format") else data
    found = find_in_table(table, secrets)
    if found:
        from .errors import SecretInDataError

        raise SecretInDataError(
            f"Refusing to publish: {what} contains a secret this process knows (an API key, token or URL "
            f"password): {'; '.join(found)}. Nothing was written. Remove it from the data (for instance "
            "ds.map(lambda b: {c: [synth_datasets.secrets.scrub(x) for x in b[c]]}, batched=True) for column c), "
            "or regenerate: this version scrubs server replies before they reach a row.")
