"""``Magpie``: instruction data without seeds (Xu et al. 2024, survey §3.1).

An aligned model, given only its chat template up to where the user's text would begin, writes a user's
instruction itself (it has seen millions of such turns); then it answers it as usual. Nothing is asked of
it in words, so the instructions cover what the model itself finds likely. ``turns > 1`` goes on the
same way: the next user turn is sampled from the template of the conversation so far plus an open user
turn.

This needs the raw prompt, so a local model (the transformers backend, or vLLM on a GPU): an
OpenAI-compatible endpoint only exposes chat completions, which always answer as the assistant, and is
refused with an :class:`~synth_datasets.errors.InvalidParameterError` before any request.

Filters the paper applies (instruction length, repeats, language) are the curators of
:mod:`synth_datasets.curate`: ``Truncated`` and ``Length`` / ``Repetition`` / ``Script`` on the
``instruction`` column, ``InstructionDebris`` (empty, template tokens, role markers, an assistant's
voice), then ``ExactDuplicates`` / ``NearDuplicates``; ``builders/magpie.py`` chains them.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..errors import InvalidParameterError
from ..llm import LLM, ChatRequest, SamplingParams
from ..llm.base import OPEN_TURN_HELP
from ..seeding import batch_size_of, derive_seed, row_keys
from .base import Generator, check_llm, input_columns

__all__ = ["Magpie"]

#: a speaker label a model writes before the instruction: "Q:", "User:", "Question:" ... or a lone "Name:" line
_LABEL = re.compile(r"\A\s*(?:(?:q|question|user|human|instruction|prompt|query)\s*:[ \t]*|[A-Za-z][\w.-]{0,15}:[ \t]*\n)",
                    re.IGNORECASE)


class Magpie(Generator):
    """One Magpie conversation per input row: ``turns`` rounds of a sampled user instruction and a reply.

    Map contract: ``ds.map(Magpie(llm), batched=True)`` over any rows (optionally ``with_indices=True``
    to seed by row index instead of row content; ``num_proc>1`` works). Returns a pyarrow Table: the
    input columns and

    - ``instruction``: the first user turn, as the model wrote it (stripped, less a leading speaker label
      such as "Q:" or a lone "Qwen:" line; None when it failed);
    - ``response``: the reply to it (None when it failed or was never asked for);
    - ``messages``: the conversation, a list of ``{"role", "content"}`` (the ``system`` message first
      when one is given): what ``tokenizer.apply_chat_template`` and TRL take;
    - ``instruction_finish_reason`` / ``response_finish_reason``: ``"length"`` when any user (assistant)
      turn hit its token limit, else ``"stop"`` (so ``curate.Truncated(column="instruction")`` works);
    - ``messages_turns`` (complete rounds), ``messages_tokens`` (generated tokens) and ``messages_error``
      (None when every round was made; an empty or failed turn ends the conversation on its last reply).

    Each turn's seed comes from (``seed``, row key, round, role), so rows are the same whatever the batch
    size, and the response cache makes reruns free (a user-turn request has its own cache keys).

    Args:
        llm (`LLM`): a local model (``LLM()``, ``LLM("smollm2-135m")``, ``LLM("qwen2.5-coder-1.5b")``, a
            model folder, ``engine="vllm"``); an endpoint is refused.
        system (`str`, *optional*): a system prompt placed before the open user turn (and first in
            ``messages``); None: the template's own (Qwen and SmolLM2 templates insert a default one).
        turns (`int`, defaults to 1): rounds per conversation.
        seed (`int`, defaults to 0): base seed of every turn.
        max_new_tokens (`int`, defaults to 256): token limit of a reply.
        instruction_max_new_tokens (`int`, *optional*): token limit of a user turn (default: ``max_new_tokens``).
        temperature / top_p (defaults to 1.0 / 1.0, the paper's): sampling of the user turns.
        response_temperature / response_top_p (defaults to 0.7 / 1.0): sampling of the replies.
        respond (`bool`, defaults to True): answer the instructions; False (``turns=1`` only): sample the
            instructions alone (``response`` None, ``messages`` the user turn), e.g. to answer them with
            another model or to measure them.
        key_column (`str`, *optional*): column that identifies a row for seeding.
        progress (`bool`, defaults to False): a progress bar per turn.

    Example:
        >>> from datasets import Dataset
        >>> magpie = Magpie(LLM("smollm2-135m"), max_new_tokens=64)                  # doctest: +SKIP
        >>> ds = Dataset.from_dict({"id": list(range(8))}).map(magpie, batched=True)  # doctest: +SKIP
        >>> ds[0]["messages"][0]["role"]                                              # doctest: +SKIP
        'user'
    """

    _FORMAT = 2  # 2: a leading speaker label ("Q:", "User:", a lone "Qwen:" line) is stripped from user turns
    _STATE = ("llm", "system", "turns", "params", "response_params", "respond", "key_column", "progress")
    _SAMPLING = ("params", "response_params")

    def __init__(self, llm: LLM, *, system: str | None = None, turns: int = 1, seed: int = 0,
                 max_new_tokens: int = 256, instruction_max_new_tokens: int | None = None,
                 temperature: float = 1.0, top_p: float = 1.0, response_temperature: float = 0.7,
                 response_top_p: float = 1.0, respond: bool = True, key_column: str | None = None,
                 progress: bool = False):
        self.llm = check_llm(llm)
        if not isinstance(turns, int) or isinstance(turns, bool) or turns < 1:
            raise InvalidParameterError(f"turns={turns!r} must be an integer >= 1 (rounds per conversation).")
        if system is not None and (not isinstance(system, str) or not system.strip()):
            raise InvalidParameterError("system must be a non-empty string, or None for the chat template's own.")
        if not isinstance(respond, bool) or (not respond and turns != 1):
            raise InvalidParameterError(f"respond={respond!r} with turns={turns}: respond=False (instructions only) "
                                        "needs turns=1; a later user turn follows a reply.")
        self.system, self.turns, self.respond = system, turns, respond
        self.params = SamplingParams.make(temperature=temperature, top_p=top_p, seed=seed,
                                          max_new_tokens=instruction_max_new_tokens or max_new_tokens)
        self.response_params = SamplingParams.make(temperature=response_temperature, top_p=response_top_p,
                                                   seed=seed, max_new_tokens=max_new_tokens)
        self.key_column, self.progress = key_column, progress
        self._check_llm()

    def _check_llm(self) -> None:
        """Refuse a model that cannot open the user's turn (a chat-completions endpoint), before any request."""
        if not self.llm.raw_prompts:
            raise InvalidParameterError(f"Magpie cannot run on {self.llm.source}. {OPEN_TURN_HELP}")

    @property
    def output_columns(self) -> list[str]:
        return ["instruction", "response", "messages", "instruction_finish_reason", "response_finish_reason",
                "messages_turns", "messages_tokens", "messages_error"]

    def _opening(self) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}] if self.system is not None else []

    # -- contract 1: map-callable -----------------------------------------------------------
    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        self._check_batch(batch, hint="Rename or drop that column first")
        self._check_llm()
        size, cols = batch_size_of(batch), list(batch)
        keys = row_keys(batch, indices, self.key_column)
        history = [self._opening() for _ in range(size)]
        state = [{"error": None, "rounds": 0, "tokens": 0, "cut": {"user": False, "assistant": False},
                  "first": {}} for _ in range(size)]
        for turn in range(1, self.turns + 1):
            for role, params in (("user", self.params), ("assistant", self.response_params))[:1 + self.respond]:
                active = [i for i in range(size) if state[i]["error"] is None]
                if not active:
                    break
                requests = [ChatRequest.of(history[i], derive_seed(params.seed, keys[i], turn, role), next_role=role)
                            for i in active]
                for i, c in zip(active, self._complete(requests, params)):
                    self._take(state[i], history[i], role, c, turn)
        return self._table(batch, cols, size, history, state)

    def _take(self, st: dict, h: list, role: str, c, turn: int) -> None:
        text = (c.text or "").strip()
        if role == "user":  # "Q: How do I ...", "Qwen:\nI have ...": the speaker label is not the instruction
            text = _LABEL.sub("", text, count=1).strip()
        st["tokens"] += int(c.usage.get("completion_tokens", 0))
        st["cut"][role] |= c.finish_reason == "length"
        what = "instruction" if role == "user" else "response"
        if turn == 1 and c.error is None:
            st["first"][what] = text
        if c.error is not None or not text:
            st["error"] = c.error or f"empty {what} in round {turn}"
            if role == "assistant":
                h.pop()  # end on a reply: drop the unanswered instruction
            return
        h.append({"role": role, "content": text})
        if role == "assistant":
            st["rounds"] = turn

    def _table(self, batch, cols, size, history, state):
        import pyarrow as pa

        arrays, names = input_columns(batch, cols, size, 1)
        msg_type = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        msgs = [h if st["rounds"] or (not self.respond and st["error"] is None) else []
                for h, st in zip(history, state)]

        def finish(st, role, what):
            return None if what not in st["first"] else ("length" if st["cut"][role] else "stop")

        new = {"instruction": pa.array([st["first"].get("instruction") for st in state], type=pa.string()),
               "response": pa.array([st["first"].get("response") for st in state], type=pa.string()),
               "messages": pa.array(msgs, type=msg_type),
               "instruction_finish_reason": pa.array([finish(st, "user", "instruction") for st in state], type=pa.string()),
               "response_finish_reason": pa.array([finish(st, "assistant", "response") for st in state], type=pa.string()),
               "messages_turns": pa.array([st["rounds"] for st in state], type=pa.int32()),
               "messages_tokens": pa.array([st["tokens"] for st in state], type=pa.int32()),
               "messages_error": pa.array([st["error"] for st in state], type=pa.string())}
        return pa.Table.from_arrays(arrays + list(new.values()), names=names + list(new))

    # -- contract 4: describe ---------------------------------------------------------------
    def template_prefix(self) -> str:
        """The exact text the first instruction is sampled from: the chat template (with ``system`` when
        given) cut where the user's text would begin. Loads the model."""
        return self.llm.prompt_text(self._opening(), next_role="user")

    def describe_config(self) -> dict[str, Any]:
        """Template prefix verbatim, system prompt, turns, both sampling parameters, seed and the model."""
        return {"template_prefix": self.template_prefix(), "system": self.system, "turns": self.turns,
                "params": self.params.model_dump(mode="json"),
                "response_params": self.response_params.model_dump(mode="json"), "respond": self.respond,
                "seed": self.params.seed,
                "key_column": self.key_column, "llm": self.llm.describe()}

    def __repr__(self) -> str:
        return f"Magpie({self.llm!r}, system={self.system!r}, turns={self.turns})"
