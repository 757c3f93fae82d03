"""Scoring fixed continuations: the log-probability of each of a few replies (label verbalizations such
as ``"positive"`` / ``"negative"``, of any token length) after each prompt, with no sampling.

One forward pass over each batch of prompts gives every label's first token; labels longer than one
token take one more pass over the label tokens only, on the prompts' key/value cache repeated once per
label. Results go to the response cache like completions (keyed by model identity, messages and the
continuations), so a rerun scores nothing again.

>>> from synth_datasets import LLM                                                      # doctest: +SKIP
>>> req = ChatRequest.of([{"role": "user", "content": "Sentiment of 'A fine film.'?"}], seed=0)  # doctest: +SKIP
>>> continuation_logprobs(LLM(), [req], ["positive", "negative"])[0].logprobs           # doctest: +SKIP
[-0.9, -2.3]
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Callable, Sequence

from ..errors import InvalidParameterError
from .base import ChatRequest, Completion

if TYPE_CHECKING:
    from .llm import LLM

_KEY_VERSION = 1


def _key(identity: dict, request: ChatRequest, continuations: Sequence[str]) -> str:
    raw = json.dumps({"v": _KEY_VERSION, "kind": "continuation_logprobs", "model": identity,
                      "continuations": list(continuations), "messages": request.messages},
                     sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def cached_scores(llm: "LLM", keys: list[str], requests: list[ChatRequest],
                  score: Callable[[list[ChatRequest]], list[Completion]]) -> list[Completion]:
    """The scoring loop shared by :func:`continuation_logprobs` and ``choices.choice_logprobs``: cache
    lookups by ``keys``, ``score`` once per distinct miss, successful results written back, ``llm.stats``
    counted (``requests``, ``cache_hits``, ``prompt_tokens``, ``errors``)."""
    cache = llm.response_cache
    found = cache.get_many(keys) if cache is not None else {}
    todo = list(dict.fromkeys(k for k in keys if k not in found))
    first = {k: keys.index(k) for k in todo}
    fresh = score([requests[first[k]] for k in todo]) if todo else []
    done = dict(zip(todo, fresh))
    if cache is not None:
        ok = {k: c for k, c in done.items() if c.error is None}
        if ok:
            cache.put_many(ok)
    stats = llm.stats
    stats["requests"] += len(todo)
    stats["cache_hits"] += sum(k in found for k in keys)
    for c in done.values():
        stats["prompt_tokens"] += c.usage.get("prompt_tokens", 0)
        stats["errors"] += c.error is not None
    return [found.get(k) or done[k] for k in keys]


def continuation_logprobs(llm: "LLM", requests: Sequence[ChatRequest], continuations: Sequence[str]) -> list[Completion]:
    """One completion per request whose ``logprobs`` hold the total log-probability of each continuation
    as the start of the reply (in order; under the full vocabulary, so they need not sum to 1), and whose
    ``text`` is the likeliest continuation; a failed row carries ``error``. Local models only. Cached;
    counted in ``llm.stats``."""
    if llm.kind == "endpoint":
        raise InvalidParameterError(f"{llm!r} cannot score continuations (only local models expose the "
                                    "next-token distribution here): sample votes instead.")
    continuations = [str(c) for c in continuations]
    if len(continuations) < 2 or len(set(continuations)) != len(continuations) or not all(continuations):
        raise InvalidParameterError(f"continuations={continuations!r} must be at least 2 distinct non-empty strings.")
    requests = list(requests)
    identity = llm.identity()
    keys = [_key(identity, r, continuations) for r in requests]
    return cached_scores(llm, keys, requests, lambda todo: _score(llm.backend, todo, continuations))


def _score(backend, requests: list[ChatRequest], continuations: list[str]) -> list[Completion]:
    import torch

    backend._load()
    tok, model = backend._tokenizer, backend._model
    texts = [backend._prompt_text(r.as_messages()) for r in requests]
    base = tok(texts[0], add_special_tokens=False)["input_ids"]
    conts = []
    for c in continuations:  # the continuation's tokens as they follow the prompt (tokenizers merge across)
        full = tok(texts[0] + c, add_special_tokens=False)["input_ids"]
        conts.append(full[len(base):] if full[:len(base)] == base and len(full) > len(base)
                     else tok(c, add_special_tokens=False)["input_ids"])
    longest = max(map(len, conts))
    if longest == 1 and hasattr(backend, "choice_logprobs"):  # one token each: the backend's one-step pass,
        try:  # which computes the rows' shared prefix once (measured ~2x faster here: BENCHMARKS.md "Annotation")
            return backend.choice_logprobs(requests, continuations)
        except InvalidParameterError:  # the tokenizer merges differently on another prompt: score in full
            pass
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    ctx = backend.context_length
    out: list[Completion | None] = [None] * len(requests)
    for i, x in enumerate(ids):
        if ctx is not None and len(x) + longest > ctx:
            out[i] = Completion(text=None, finish_reason="error", usage={"prompt_tokens": len(x)},
                                error=f"prompt_too_long: {len(x)} prompt tokens + {longest} > context {ctx}. "
                                      "Shorten the prompt.")
    order = sorted((i for i in range(len(requests)) if out[i] is None), key=lambda i: len(ids[i]))
    first = torch.tensor([c[0] for c in conts])
    for start in range(0, len(order), backend.batch_size):
        chunk = order[start:start + backend.batch_size]
        t0 = time.perf_counter()
        scores = _score_chunk(model, tok, [ids[i] for i in chunk], conts, first, longest, backend.device)
        latency = (time.perf_counter() - t0) / len(chunk)
        for i, row in zip(chunk, scores):
            out[i] = Completion.best_of(continuations, row, prompt_tokens=len(ids[i]), latency_s=latency)
    return out  # type: ignore[return-value]


def _score_chunk(model, tok, ids: list[list[int]], conts: list[list[int]], first, longest: int, device) -> list[list[float]]:
    import torch

    enc = tok.pad({"input_ids": ids}, padding=True, return_tensors="pt").to(device)
    mask = enc["attention_mask"]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        res = model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=pos, use_cache=longest > 1,
                    logits_to_keep=1)
        lp = torch.log_softmax(res.logits[:, -1].float(), dim=-1)[:, first]  # (B, L)
        if longest == 1:
            return lp.tolist()
        # the rest of every label, on the prompt's cache repeated once per label
        n_b, n_l, width = len(ids), len(conts), longest - 1
        cache = getattr(res, "cache", None)  # transformers 5 (past_key_values before)
        cache = cache if cache is not None else res.past_key_values
        cache.batch_repeat_interleave(n_l)
        pad = tok.pad_token_id
        feed = torch.tensor([c[:-1] + [pad] * (width - len(c) + 1) for c in conts], device=device).repeat(n_b, 1)
        real = torch.tensor([[1] * (len(c) - 1) + [0] * (width - len(c) + 1) for c in conts], device=device).repeat(n_b, 1)
        full_mask = torch.cat([mask.repeat_interleave(n_l, dim=0), real], dim=1)
        start = mask.sum(-1).repeat_interleave(n_l).unsqueeze(-1)
        res2 = model(input_ids=feed, attention_mask=full_mask, position_ids=start + torch.arange(width, device=device),
                     cache=cache, use_cache=False)
        logp = torch.log_softmax(res2.logits.float(), dim=-1)  # (B*L, width, V)
        target = torch.tensor([c[1:] + [0] * (width - len(c) + 1) for c in conts], device=device).repeat(n_b, 1)
        rest = (logp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * real).sum(-1).view(n_b, n_l)
    return (lp + rest).tolist()
