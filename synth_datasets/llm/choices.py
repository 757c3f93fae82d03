"""Scoring fixed choices with one forward pass: the log-probability of each choice (e.g. the rating
digits ``"1"``..``"5"`` after ``"Score: "``) as the reply's next token. The LLM judge uses it to read
a score from every row, as an expected value over the ratings, instead of parsing a free reply.

Results go to the response cache like completions (keyed by model identity, messages, prefix and
choices), so a rerun scores nothing again.

>>> from synth_datasets import LLM                                              # doctest: +SKIP
>>> req = ChatRequest.of([{"role": "user", "content": "Rate 1-5: 'A fine film.'"}], seed=0)  # doctest: +SKIP
>>> choice_logprobs(LLM(), [req], ["1", "2", "3", "4", "5"], prefix="Score: ")[0].logprobs   # doctest: +SKIP
[-6.1, -4.0, -1.9, -0.4, -1.6]
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Sequence

from ..errors import InvalidParameterError
from .base import ChatRequest, Completion
from .scoring import cached_scores

if TYPE_CHECKING:
    from .llm import LLM

_KEY_VERSION = 1


def supports_choice_logprobs(llm: "LLM") -> bool:
    """Whether ``llm`` can score choices (local transformers models; endpoints generate instead)."""
    return llm.kind != "endpoint"


def _key(identity: dict, request: ChatRequest, choices: Sequence[str], prefix: str) -> str:
    raw = json.dumps({"v": _KEY_VERSION, "kind": "choice_logprobs", "model": identity, "prefix": prefix,
                      "choices": list(choices), "messages": request.messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def choice_logprobs(llm: "LLM", requests: Sequence[ChatRequest], choices: Sequence[str], *,
                    prefix: str = "") -> list[Completion]:
    """One completion per request whose ``logprobs`` are the choices' log-probabilities (in order) and
    whose ``text`` is the likeliest choice; a failed row carries ``error``. Cached; counted in
    ``llm.stats`` (``requests``, ``cache_hits``, ``prompt_tokens``)."""
    if not supports_choice_logprobs(llm):
        raise InvalidParameterError(f"{llm!r} cannot score choices (only local models expose the next-token "
                                    "distribution here): generate a reply and parse it instead.")
    choices = [str(c) for c in choices]
    if len(choices) < 2 or len(set(choices)) != len(choices):
        raise InvalidParameterError(f"choices={choices!r} must be at least 2 distinct strings.")
    requests = list(requests)
    identity = llm.identity()
    keys = [_key(identity, r, choices, prefix) for r in requests]
    return cached_scores(llm, keys, requests,
                         lambda todo: llm.backend.choice_logprobs(todo, choices, prefix=prefix))
