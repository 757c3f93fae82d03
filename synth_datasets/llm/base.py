"""The one small interface every LLM backend implements.

A backend turns a list of :class:`ChatRequest` into a list of :class:`Completion`, one per request,
in order. It never raises for a single bad request: the completion carries ``error`` instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer

from ..errors import InvalidParameterError

Message = dict[str, str]


class SamplingParams(BaseModel):
    """Sampling parameters shared by every backend.

    Args:
        temperature (`float`, defaults to 0.7): 0 means greedy decoding.
        top_p (`float`, defaults to 1.0): nucleus sampling mass, in (0, 1].
        max_new_tokens (`int`, defaults to 256): upper bound on generated tokens.
        seed (`int`, defaults to 0): base seed; each request derives its own seed from it.
        stop (`list[str]`, *optional*): strings that end generation (not included in the text).
        logprobs (`bool`, defaults to False): return the log-probability of each generated token.
        top_logprobs (`int`, defaults to 0): endpoints: also return the ``top_logprobs`` likeliest
            alternatives at each generated token (OpenAI's field, at most 20; ``Completion.top_logprobs``).
            Left out of dumps (so of cache keys) when 0.
        response_format (`str`, *optional*): an OpenAI-style ``response_format`` as JSON text (a dict is
            accepted), e.g. ``{"type": "json_schema", "json_schema": {"name": "x", "schema": {...}}}``:
            endpoints receive it as is; the local backend decodes under that schema's grammar. Left out
            of dumps (so of cache keys and fingerprints) when None.

    Example:
        >>> SamplingParams(temperature=0.0, max_new_tokens=32).max_new_tokens
        32
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0, lt=2**63)
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int = Field(0, ge=0, le=20)
    response_format: str | None = None

    @field_validator("response_format", mode="before")
    @classmethod
    def _format_text(cls, v: Any) -> Any:
        if isinstance(v, dict):  # key order kept: a schema's property order is the order fields are written
            import json

            return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
        return v

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        d = handler(self)
        if d.get("response_format") is None:  # parameters from before the field existed keep their keys
            d.pop("response_format", None)
        if not d.get("top_logprobs"):
            d.pop("top_logprobs", None)
        return d

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, v: Any) -> Any:
        if v is None:
            return ()
        if isinstance(v, str):
            return (v,)
        return v

    @classmethod
    def make(cls, params: "SamplingParams | dict | None" = None, **overrides: Any) -> "SamplingParams":
        """Build from a SamplingParams, a dict or keywords, with an error that names the bad field."""
        base = params.model_dump() if isinstance(params, SamplingParams) else dict(params or {})
        base.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**base)
        except Exception as e:  # pydantic.ValidationError
            errors = getattr(e, "errors", lambda: [])()
            detail = "; ".join(f"{'.'.join(map(str, err['loc']))}={err.get('input')!r}: {err['msg']}"
                               for err in errors) or str(e)
            raise InvalidParameterError(
                f"Invalid sampling parameter: {detail}. Fix the value (see SamplingParams for the ranges)."
            ) from e


NEXT_ROLES = ("assistant", "user")

#: why a backend that only speaks chat completions cannot sample a user turn, and what to use instead
OPEN_TURN_HELP = ("Sampling the user's turn (ChatRequest.next_role='user', as Magpie does) needs the raw prompt: the "
                  "chat template cut where the user's text would begin. An OpenAI-compatible endpoint only exposes "
                  "chat completions, which always answer as the assistant, so it cannot. Use a local model: "
                  "LLM('smollm2-135m') or LLM('qwen2.5-coder-1.5b') (or a model folder with engine='vllm' on a GPU).")


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    """One chat completion to produce: messages plus the seed for this sample.

    ``next_role`` is whose turn the model writes: ``"assistant"`` (a reply, the default) or ``"user"``
    (the user's next message, sampled from the chat template cut where the user's text would begin:
    Magpie). Only backends with raw prompts (:attr:`Backend.raw_prompts`) take ``"user"``.
    """

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs, hashable
    seed: int
    next_role: str = "assistant"

    def __post_init__(self):
        if self.next_role not in NEXT_ROLES:
            raise InvalidParameterError(f"next_role={self.next_role!r}: use one of {list(NEXT_ROLES)}.")

    @classmethod
    def of(cls, messages: list[Message], seed: int, *, next_role: str = "assistant") -> "ChatRequest":
        return cls(tuple((m["role"], m["content"]) for m in messages), int(seed), next_role)

    def as_messages(self) -> list[Message]:
        return [{"role": r, "content": c} for r, c in self.messages]


def refuse_open_turns(requests: list[ChatRequest]) -> None:
    """Raise :class:`InvalidParameterError` (:data:`OPEN_TURN_HELP`) when a request asks for a user turn:
    what a chat-completions-only backend calls before sending anything."""
    if any(r.next_role != "assistant" for r in requests):
        raise InvalidParameterError(OPEN_TURN_HELP)


@dataclasses.dataclass
class Completion:
    """The result of one request.

    ``text`` is None and ``error`` is set when the request failed after its retries.
    ``usage`` holds ``prompt_tokens`` and ``completion_tokens``; ``logprobs`` one float per generated
    token when asked for; ``top_logprobs`` (endpoints, when asked for and the server returns them) one
    ``{token: logprob}`` of the likeliest alternatives per generated token. ``attempts`` counts HTTP attempts (1 = no retry); ``cached`` tells whether it
    came from the response cache.
    """

    text: str | None
    finish_reason: str
    usage: dict[str, int] = dataclasses.field(default_factory=dict)
    logprobs: list[float] | None = None
    top_logprobs: list[dict[str, float]] | None = None
    error: str | None = None
    latency_s: float = 0.0
    attempts: int = 1
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("cached")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Completion":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields}, cached=True)

    @classmethod
    def best_of(cls, choices: list[str], logprobs: list[float], *, prompt_tokens: int,
                latency_s: float) -> "Completion":
        """The answer of a scoring pass over fixed ``choices``: the likeliest one as the text, every
        choice's log-probability (in order) as ``logprobs``.

        >>> Completion.best_of(["yes", "no"], [-2.0, -0.1], prompt_tokens=5, latency_s=0.0).text
        'no'
        """
        best = max(range(len(choices)), key=logprobs.__getitem__)
        return cls(text=choices[best], finish_reason="stop", usage={"prompt_tokens": prompt_tokens},
                   logprobs=logprobs, latency_s=latency_s)


class Backend:
    """Base class of backends. Subclasses implement :meth:`generate` (and optionally
    :meth:`agenerate`) and :meth:`identity`. Backends hold live resources (models, sessions); they are
    created lazily by :class:`~synth_datasets.LLM` and never pickled.

    ``raw_prompts`` says whether the backend renders the chat template itself, so it can sample a user
    turn (``ChatRequest.next_role="user"``); chat-completions endpoints cannot."""

    raw_prompts: bool = False

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def generate(self, requests: list[ChatRequest], params: SamplingParams,
                 on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        """Complete ``requests`` in order; call ``on_result(i, completion)`` as each one finishes."""
        raise NotImplementedError

    def prompt_text(self, request: ChatRequest) -> str:
        """The exact text the model continues for ``request`` (backends with ``raw_prompts`` only)."""
        raise InvalidParameterError(OPEN_TURN_HELP)

    def close(self) -> None:
        pass
