"""Local generation with transformers: continuous batching (llm/decode.py) with left padding.

Requests are admitted in order of prompt length, so a prefill group wastes little padding; a row that
ends leaves the running batch and the next waiting prompt takes its slot. On the CPU in float32 the
linear layers run through oneDNN with packed weights (llm/onednn.py). Sampling is seeded per
request (an inverse-transform draw from the temperature/top-p distribution, one RNG per request, see
llm/decode.py ``draw``), so a sample depends on its own seed and not on which other requests share its batch: a resumed run that
regenerates only the missing rows gets the same text an uninterrupted run would have.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from .base import Backend, ChatRequest, Completion, SamplingParams
from .gguf import MARKER
from .identity import local_identity, source_kind
from ..errors import InvalidParameterError, ModelNotFoundError

logger = logging.getLogger(__name__)


def choose_threads(*, cores: int, busy: float, requested: int | None = None,
                   env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """How many threads local decoding uses, and why: ``requested`` (``threads=``) first, then a valid
    ``OMP_NUM_THREADS`` in ``env``, else the cores left free by other processes,
    ``max(1, min(cores, round(cores_total - busy)))`` with ``busy`` the cores other processes use.
    OpenMP threads that wait for a core another process holds spin instead of working: a build beside a
    CPU-heavy process went from ~1.6 s to ~27 s per request with every core's thread, near 3 s with one.
    The count changes speed only: the text and cache keys stay the same.

    >>> choose_threads(cores=2, busy=0.1, env={})
    (2, 'free cores: 2 of 2 (other processes use 0.1)')
    >>> choose_threads(cores=2, busy=1.9, env={})[0], choose_threads(cores=2, busy=1.0, env={"OMP_NUM_THREADS": "2"})[0]
    (1, 2)
    """
    if requested is not None:
        return requested, "threads= option"
    raw = (env if env is not None else os.environ).get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw), "OMP_NUM_THREADS"
    free = max(1, min(cores, int(cores - busy + 0.5)))
    return free, f"free cores: {free} of {cores} (other processes use {busy:.1f})"


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields[:8]), fields[3] + (fields[4] if len(fields) > 4 else 0)  # total, idle + iowait


def busy_cores(*, sample_s: float = 0.25) -> float:
    """Cores in use by other processes now: a short ``/proc/stat`` sample (machine-wide), else the 1-minute
    load average, else 0. Call it while this process is idle (before a model loads)."""
    first = _cpu_times()
    if first is not None:
        time.sleep(sample_s)
        second = _cpu_times()
        if second is not None and second[0] > first[0]:
            total, idle = second[0] - first[0], second[1] - first[1]
            return max(0.0, (1 - idle / total) * (os.cpu_count() or 1))
    try:
        return max(0.0, os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo):
    where it does not, bfloat16 weights are converted on the fly and are no faster than float32."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def cpu_dtype_for(preferred: str) -> str:
    """The dtype a model that prefers ``preferred`` computes in on this CPU: ``preferred`` where the CPU has
    the instructions that make it fast, else the next one down (``"int8"`` -> ``"bfloat16"`` ->
    ``"float32"``)."""
    from . import int8

    if preferred == "int8" and int8.available():
        return "int8"
    if preferred in ("int8", "bfloat16") and cpu_has_bf16():
        return "bfloat16"
    return "float32"


def _output_forward(self, x):
    """The output projection, fed a dense 2-d input. transformers hands it the last position of each row
    (``logits_to_keep=1``), a strided view; on the CPU PyTorch's bfloat16 product then takes a slow path:
    1.3 s instead of 24 ms for one row of Qwen2.5-Coder-1.5B (151,936 x 1,536), 5.5 s for four rows, and
    for 128 rows after ``torch.compile`` a request for a 60 GB buffer."""
    import torch

    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    if x2.stride() != (shape[-1], 1):
        x2 = x2.clone(memory_format=torch.contiguous_format)
    return torch.nn.functional.linear(x2, self.weight, self.bias).view(*shape[:-1], -1)


def dense_output_projection(model) -> bool:
    """Route ``model``'s output projection (an ``nn.Linear``) through :func:`_output_forward`; False when it
    has none of that kind. The logits are the same numbers: only the input's memory layout changes."""
    import types

    import torch

    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if type(out) is not torch.nn.Linear or getattr(out, "_onednn_weight", None) is not None:
        return False
    out.forward = types.MethodType(_output_forward, out)
    return True


#: stands for the user's text while the chat template is rendered, then the text is cut where it begins
OPEN_TURN_PLACEHOLDER = "SYNTHDATASETSOPENTURN7Q"


def open_turn_text(tokenizer: Any, messages: list[dict[str, str]], role: str = "user") -> str:
    """The chat template of ``messages`` followed by an open ``role`` turn, cut exactly where that turn's
    text would begin (Magpie's prompt): the template is rendered with a placeholder message and
    ``add_generation_prompt=False``, and the text is cut at the placeholder. What a template adds on its
    own (e.g. a default system prompt when there is none) stays: it is part of the prefix the model knows.

    >>> class Tok:  # a ChatML template
    ...     def apply_chat_template(self, messages, tokenize, add_generation_prompt):
    ...         return "".join(f"<|im_start|>{m['role']}\\n{m['content']}<|im_end|>\\n" for m in messages)
    >>> open_turn_text(Tok(), [])
    '<|im_start|>user\\n'
    """
    msgs = [*messages, {"role": role, "content": OPEN_TURN_PLACEHOLDER}]
    text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=False)
    if text.count(OPEN_TURN_PLACEHOLDER) != 1:
        raise InvalidParameterError(f"This model's chat template does not keep a {role} message's text as it is, so "
                                    f"the prompt that opens a {role} turn cannot be cut from it. Use a model with a "
                                    "ChatML-style template (LLM('smollm2-135m'), LLM('qwen2.5-coder-1.5b')).")
    return text[:text.index(OPEN_TURN_PLACEHOLDER)]


def _resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "int8":
        if not str(device).startswith("cpu"):
            raise InvalidParameterError(f"dtype='int8' runs on the CPU only (device={device!r}); use "
                                        "dtype='bfloat16' on a GPU.")
        return dtype
    if dtype != "auto":
        import torch

        if not isinstance(getattr(torch, str(dtype), None), torch.dtype) or not getattr(torch, dtype).is_floating_point:
            raise InvalidParameterError(f"dtype={dtype!r} is not a dtype a model computes in; use 'auto', "
                                        "'float32', 'bfloat16' or 'int8'.")
        return dtype
    return "float32" if device.startswith("cpu") else "bfloat16"


def _seeded_sampler_cls():
    """A ``LogitsProcessor`` form of :func:`~synth_datasets.llm.decode.draw` (for ``model.generate``):
    greedy decoding of its output picks the drawn token. One torch.Generator per row."""
    import torch
    from transformers import LogitsProcessor

    from .decode import draw

    class SeededSampler(LogitsProcessor):
        def __init__(self, seeds: list[int], temperature: float, top_p: float):
            self.generators = [torch.Generator().manual_seed(int(s) % (2**63)) for s in seeds]
            self.temperature = temperature
            self.top_p = top_p

        def __call__(self, input_ids, scores):
            choice = draw(scores, self.generators, self.temperature, self.top_p).unsqueeze(-1)
            return torch.full_like(scores, float("-inf"), dtype=torch.float32).scatter_(-1, choice, 0.0)

    return SeededSampler


class TransformersBackend(Backend):
    """Loads a GGUF file, a local folder or a (locally cached) Hub id with transformers.

    Args:
        source: path of a ``.gguf`` file, a model folder, or a Hub id.
        batch_size: most rows decoded at once (the running batch of continuous batching).
        revision: Hub revision, for Hub ids.
        device: torch device, ``"cpu"`` by default.
        dtype: torch dtype name, or ``"auto"`` (default): float32 on CPU, bfloat16 on a GPU. On a CPU
            with avx512_bf16, ``"bfloat16"`` is ~1.4x faster (BENCHMARKS.md) but a sample then depends
            slightly on which other prompts share its batch; float32 keeps samples batch-independent.
            ``"int8"`` (CPU only): bfloat16, with every linear layer in int8 (llm/int8.py: weights per
            output channel, activations per token; fastest on a CPU with VNNI instructions).
            The dtype is part of the model identity, so it is part of every cache key.
        threads: CPU threads for decoding (``torch.set_num_threads``, process-wide). Default: a valid
            ``OMP_NUM_THREADS``, else the cores other processes leave free when the model loads
            (:func:`choose_threads`, logged at INFO). Speed only: never the text or a cache key.

    A request whose prompt tokens plus ``max_new_tokens`` exceed the model's context
    (:attr:`context_length`) is not generated: its completion carries the error
    ``prompt_too_long: N prompt tokens + M new > context C`` (never cached), and the other requests go on.
    """

    raw_prompts = True  # renders the chat template itself: a request may open the user's turn (Magpie)

    def __init__(self, source: str, *, batch_size: int = 64, revision: str | None = None,
                 device: str = "cpu", dtype: str = "auto", threads: int | None = None):
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise InvalidParameterError(f"threads={threads!r} must be an integer >= 1 (or left out: the cores other "
                                        "processes leave free, or OMP_NUM_THREADS).")
        self.threads = threads
        self.source = source
        self.batch_size = batch_size
        self.revision = revision
        self.device = device
        self.dtype = _resolve_dtype(dtype, device)
        self._kind = source_kind(source)
        self._model = None
        self._tokenizer = None
        self._identity: dict[str, Any] | None = None

    # -- identity ---------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            from .decode import SAMPLER

            self._identity = local_identity("transformers", self.source, self._kind, revision=self.revision,
                                            dtype=self.dtype)
            self._identity["sampler"] = SAMPLER  # another sampler draws other texts from the same seeds
        return dict(self._identity)

    # -- loading ----------------------------------------------------------------------------
    #: float32 on the CPU: run the linear layers through oneDNN with packed weights (llm/onednn.py; ~2x
    #: MKL's speed on AMD CPUs, where MKL runs AVX2 code). Set to False before loading for plain PyTorch.
    onednn = True

    def _load(self):
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if str(self.device).startswith("cpu"):
            busy = 0.0 if self.threads is not None or os.environ.get("OMP_NUM_THREADS") else busy_cores()
            n, why = choose_threads(cores=available_cores(), busy=busy, requested=self.threads)
            torch.set_num_threads(n)
            logger.info("decoding %s with %d CPU thread%s (%s)", self.source, n, "s" * (n > 1), why)
        t0 = time.perf_counter()
        kw: dict[str, Any] = {}
        if self._kind == "gguf":
            where = self._gguf_folder(kw)
        else:
            where = self.source
            if self.revision:
                kw["revision"] = self.revision
            if self._kind == "hub":
                kw["local_files_only"] = True
        if self._kind == "gguf" and (Path(where) / MARKER).is_file():
            self._prefetch(Path(where))
        try:
            tok = AutoTokenizer.from_pretrained(where, **kw)
            dtype = torch.bfloat16 if self.dtype == "int8" else getattr(torch, self.dtype)
            model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kw).to(self.device).eval()
        except OSError as e:
            raise ModelNotFoundError(f"Could not load model {self.source!r}: {e}. Check the path or Hub id.") from e
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        if self.onednn and self.dtype == "float32" and str(self.device).startswith("cpu"):
            from .onednn import pack_linears

            # the unpacked copies go and the weights file is unmapped: ~half the resident memory (llm/onednn.py)
            pack_linears(model, free_weights=True)
        if self.dtype == "int8":
            from . import int8

            if not int8.available():
                logger.warning("dtype='int8' on a CPU without VNNI instructions (or a PyTorch without "
                               "torch._int_mm): it works, but slower than bfloat16 would")
            # a converted folder of ours gets its codes stored beside it, once (llm/int8.py); other sources round
            # at each load
            ours = self._kind == "gguf" and (Path(where) / MARKER).is_file()
            int8.quantize_linears(model, cache_file=int8.cache_file_for(Path(where)) if ours else None)
        if str(self.device).startswith("cpu"):
            dense_output_projection(model)
        self._tokenizer, self._model, self._loaded_from = tok, model, Path(where)
        logger.info("loaded %s in %.1fs", self.source, time.perf_counter() - t0)

    def _prefetch(self, folder: Path) -> None:
        """Read the bytes this load will touch into the page cache on a background thread (llm/prefetch.py):
        for int8 with stored codes, the codes and every tensor but the linear layers' weights; else the whole
        weights file."""
        from . import int8
        from .prefetch import prefetch, tensor_ranges

        weights = folder / "model.safetensors"
        codes = int8.cache_file_for(folder)
        try:
            if self.dtype == "int8" and codes.is_file():
                skip = {k[:-len(".codes")] + ".weight" for k in int8.stored_names(codes) if k.endswith(".codes")}
                prefetch([(codes, None), (weights, tensor_ranges(weights, keep=lambda n: n not in skip))])
            else:
                prefetch([(weights, None)])
        except (OSError, ValueError) as e:  # an unreadable header: the load itself says what is wrong
            logger.debug("no prefetch for %s: %s", folder, e)

    #: load a GGUF from its dequantized transformers folder (made once, see llm/gguf.py: the same tensors
    #: and tokenizer, ~2 s to load instead of ~13 s); False: read the GGUF itself every time.
    gguf_folder = True

    def _gguf_folder(self, kw: dict[str, Any]) -> str:
        """Where to load a GGUF from: its converted folder, or (conversion off, or the folder cannot be
        written) the file itself, with ``gguf_file`` set in ``kw``."""
        p = Path(self.source)
        if self.gguf_folder:
            from .gguf import folder_from_gguf

            try:
                # a bfloat16 model maps its own bfloat16 folder: half the bytes read, no float32 copy at load
                return str(folder_from_gguf(p, dtype="float32" if self.dtype == "float32" else "bfloat16"))
            except OSError as e:
                logger.warning("could not write the converted folder of %s (%s); reading the GGUF itself", p, e)
        kw["gguf_file"] = p.name
        return str(p.parent)

    @property
    def tokenizer(self):
        self._load()
        return self._tokenizer

    @property
    def context_length(self) -> int | None:
        """The most tokens (prompt + new) the model takes, from its config (``max_position_embeddings``;
        8,192 for SmolLM2-135M); None when the config does not say."""
        self._load()
        cfg = getattr(self._model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            v = getattr(cfg, name, None)
            if isinstance(v, int) and v > 0:
                return v
        return None

    def _prompt_text(self, messages: list[dict[str, str]], next_role: str = "assistant") -> str:
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            if next_role != "assistant":  # the template up to where that role's text begins
                return open_turn_text(tok, messages, next_role)
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # base models without a chat template: plain concatenation
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def prompt_text(self, request: ChatRequest) -> str:
        """The exact text the model continues for ``request`` (its chat template rendered; for
        ``next_role="user"``, cut where the user's text begins). Loads the model."""
        self._load()
        return self._prompt_text(request.as_messages(), request.next_role)

    # -- generation -------------------------------------------------------------------------
    def generate(self, requests: list[ChatRequest], params: SamplingParams,
                 on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        if not requests:
            return []
        self._load()
        tok = self._tokenizer
        texts = [self._prompt_text(r.as_messages(), r.next_role) for r in requests]
        ids = tok(texts, add_special_tokens=False)["input_ids"]
        out: list[Completion | None] = [None] * len(requests)
        ctx = self.context_length
        for i, x in enumerate(ids):  # past the context the model only produces garbage: refuse, before any work
            if ctx is not None and len(x) + params.max_new_tokens > ctx:
                out[i] = Completion(
                    text=None, finish_reason="error", usage={"prompt_tokens": len(x)},
                    error=f"prompt_too_long: {len(x)} prompt tokens + {params.max_new_tokens} new > context {ctx}. "
                          "Shorten the prompt or lower max_new_tokens.")
                if on_result is not None:
                    on_result(i, out[i])
        order = sorted((i for i in range(len(requests)) if out[i] is None), key=lambda i: len(ids[i]))
        self._decode([ids[i] for i in order], [requests[i].seed for i in order], params,
                     lambda j, c: (out.__setitem__(order[j], c), on_result and on_result(order[j], c)))
        return out  # type: ignore[return-value]

    #: a finished row's slot is refilled once this many rows of the running batch have finished (None: an
    #: eighth of ``batch_size``; 0: never, i.e. static batches that only shrink). See llm/decode.py.
    refill_every: int | None = None

    def _decode(self, ids: list[list[int]], seeds: list[int], params: SamplingParams,
                done: Callable[[int, Completion], None]) -> None:
        """Continuous batching over ``ids`` (in admission order); ``done(j, completion)`` per row as it ends."""
        import torch

        from .decode import Decoder, _Row

        tok = self._tokenizer
        grammar = None
        if params.response_format:
            from .grammar import backend_processor

            grammar = lambda: backend_processor(self, params.response_format, 1)  # noqa: E731
            grammar()  # a bad schema fails here, before any decoding
        rows = [_Row(index=j, prompt=x,
                     generator=torch.Generator().manual_seed(int(s) % (2**63)) if params.temperature > 0 else None,
                     grammar=grammar() if grammar else None) for j, (x, s) in enumerate(zip(ids, seeds))]
        eos = tok.eos_token_id

        def finished(row: _Row) -> None:
            toks = row.tokens
            hit_eos = bool(toks) and toks[-1] == eos
            n_tok = len(toks) - hit_eos
            text = tok.decode(toks[:n_tok], skip_special_tokens=True)
            finish = "stop" if hit_eos else row.finish
            for s in params.stop:
                k = text.find(s)
                if k >= 0:
                    text, finish = text[:k], "stop"
            done(row.index, Completion(
                text=text, finish_reason=finish,
                usage={"prompt_tokens": len(row.prompt), "completion_tokens": len(toks)},
                logprobs=row.logprobs[:n_tok] if params.logprobs else None, latency_s=row.seconds))
            row.prompt = row.tokens = row.logprobs = row.grammar = None  # free them as rows end

        dec = Decoder(self._model, tok, batch_size=self.batch_size, device=self.device,
                      min_shared_prefix=self.min_shared_prefix if self.share_prefix else 0,
                      refill_every=self.refill_every)
        dec.run(rows, max_new_tokens=params.max_new_tokens, eos_token_id=eos, temperature=params.temperature,
                top_p=params.top_p, logprobs=params.logprobs, stop=tuple(params.stop), on_done=finished)
        self.last_decode_stats = dict(dec.stats)

    #: rows of a batch that start with the same tokens (the chat template's system prompt) share one
    #: computation of that prefix's KV cache; set to False to prefill every row in full.
    share_prefix = True
    min_shared_prefix = 8

    def _encode_batch(self, ids: list[list[int]]) -> dict[str, Any]:
        """``generate`` inputs: left padding, or, when the rows share a prefix of at least
        ``min_shared_prefix`` tokens, that prefix's KV cache computed once and repeated for every row,
        with each row laid out as prefix + padding + rest (positions come from the attention mask, so
        every token keeps the position it has with left padding; greedy tokens are identical, and
        prefill costs ~12% less on short chat prompts, see BENCHMARKS.md)."""
        import torch

        tok, model = self._tokenizer, self._model
        shared = 0
        if self.share_prefix and len(ids) > 1:
            first, shortest = ids[0], min(map(len, ids))
            while shared < shortest - 1 and all(x[shared] == first[shared] for x in ids):
                shared += 1
        if shared < self.min_shared_prefix:
            return dict(tok.pad({"input_ids": ids}, padding=True, return_tensors="pt").to(self.device))
        from transformers import DynamicCache

        prefix, pad = first[:shared], tok.pad_token_id
        rest = [x[shared:] for x in ids]
        width = max(map(len, rest))
        cache = DynamicCache(config=model.config)
        with torch.inference_mode():
            model(input_ids=torch.tensor([prefix], device=self.device), cache=cache, use_cache=True)
        cache.batch_repeat_interleave(len(ids))
        input_ids = torch.tensor([prefix + [pad] * (width - len(r)) + r for r in rest], device=self.device)
        mask = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rest], device=self.device)
        return {"input_ids": input_ids, "attention_mask": mask, "cache": cache}  # `cache=`: past_key_values is deprecated

    # -- scoring fixed choices ----------------------------------------------------------------
    def choice_logprobs(self, requests: list[ChatRequest], choices: list[str], *, prefix: str = "") -> list[Completion]:
        """Log-probability of each of ``choices`` as the next token of the reply after ``prefix`` (e.g.
        ``prefix="Score: "``, ``choices=["1", ..., "5"]``): one forward pass over each batch of prompts
        (the rows' shared prefix computed once, as in generation), nothing sampled. Each completion's
        ``logprobs`` holds one value per choice, in order (under the full vocabulary: they need not sum
        to 1), and ``text`` the likeliest choice. A choice that is not one token after ``prefix`` is an
        :class:`~synth_datasets.errors.InvalidParameterError`."""
        import torch
        from transformers import GenerationConfig

        if not requests:
            return []
        self._load()
        tok, model = self._tokenizer, self._model
        texts = [self._prompt_text(r.as_messages(), r.next_role) + prefix for r in requests]
        cut, cand = self._choice_tokens(texts[0], prefix, choices)
        ids = tok([t[:len(t) - cut] for t in texts], add_special_tokens=False)["input_ids"]
        out: list[Completion | None] = [None] * len(requests)
        ctx = self.context_length
        for i, x in enumerate(ids):
            if ctx is not None and len(x) + 1 > ctx:
                out[i] = Completion(text=None, finish_reason="error", usage={"prompt_tokens": len(x)},
                                    error=f"prompt_too_long: {len(x)} prompt tokens > context {ctx}. Shorten the prompt.")
        order = sorted((i for i in range(len(requests)) if out[i] is None), key=lambda i: len(ids[i]))
        cfg = GenerationConfig(do_sample=False, max_new_tokens=1, num_beams=1, pad_token_id=tok.pad_token_id,
                               eos_token_id=tok.eos_token_id, return_dict_in_generate=True, output_logits=True)
        index = torch.tensor(cand)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            t0 = time.perf_counter()
            enc = self._encode_batch([ids[i] for i in chunk])
            with torch.inference_mode():
                res = model.generate(**enc, generation_config=cfg)
            lp = torch.log_softmax(res.logits[0].float(), dim=-1)[:, index].tolist()
            latency = (time.perf_counter() - t0) / len(chunk)
            for i, row in zip(chunk, lp):
                out[i] = Completion.best_of(choices, row, prompt_tokens=len(ids[i]), latency_s=latency)
        return out  # type: ignore[return-value]

    def _choice_tokens(self, text: str, prefix: str, choices: list[str]) -> tuple[int, list[int]]:
        """The token of each choice after ``text`` (which ends with ``prefix``): ``(cut, ids)``, where
        ``cut`` trailing whitespace characters of the prefix move into the choices when the tokenizer
        glues a space to the next word (``" 4"`` is one token in GPT-2-style vocabularies)."""
        tok = self._tokenizer
        trailing = len(prefix) - len(prefix.rstrip())
        for cut in dict.fromkeys((0, trailing)):
            head, glue = text[:len(text) - cut], text[len(text) - cut:]
            base = tok(head, add_special_tokens=False)["input_ids"]
            found = []
            for c in choices:
                full = tok(head + glue + c, add_special_tokens=False)["input_ids"]
                if len(full) != len(base) + 1 or full[:len(base)] != base:
                    break
                found.append(full[-1])
            else:
                if len(set(found)) == len(found):
                    return cut, found
        raise InvalidParameterError(
            f"choices {list(choices)!r} are not distinct single tokens after prefix {prefix!r} for this tokenizer: "
            "use single-token choices (e.g. the digits 1-5), or generate and parse the reply instead.")

    def close(self) -> None:
        self._model = None
        self._tokenizer = None
