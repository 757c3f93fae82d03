"""Sample-wise multi-step generation (survey §3.1.2): a row's sample built in sub-steps.

- :class:`Chain`: declared sub-steps, each a generator whose template sees the columns made by the
  earlier ones (passage -> entities -> question -> answer), optional :class:`Gate` filters between
  them, and latent sub-steps (a chain-of-thought that is not part of the sample) dropped at the end.
- :class:`Dialogue` (UltraChat-style): two roles, each with its own template and optionally its own
  model, alternating for a fixed or per-row sampled number of rounds, with a stop rule; the output is
  a ``messages`` column in the chat format that TRL / ``transformers`` chat templates take.

Both are map-callables (``ds.map(obj, batched=True)``) that batch every sub-step (every turn) across
the rows of the batch through :meth:`LLM.generate` and its response cache, pickle to configuration
only, and ``describe()`` every sub-prompt.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Sequence

from ..columns import check_new_columns
from ..errors import InvalidParameterError, MissingVariableError
from ..llm import LLM, ChatRequest, SamplingParams
from ..prompts import Template
from ..seeding import derive_seed, derive_unit, row_keys
from .base import Configured, Generator, as_template, check_llm, check_output


# -- shared helpers -----------------------------------------------------------------------------
class _Batch(dict):
    """A ``dict`` of lists over a pyarrow Table that keeps the table (as ``datasets``' LazyBatch does),
    so generators keep the column types."""

    def __init__(self, table):
        super().__init__({c: table.column(c).to_pylist() for c in table.column_names})
        self.pa_table = table


def _to_table(batch):
    import pyarrow as pa

    if isinstance(batch, pa.Table):
        return batch
    source = getattr(batch, "pa_table", None)
    n = len(next(iter(batch.values()))) if batch else 0
    if source is not None and source.num_rows == n and set(batch) <= set(source.column_names):
        return source.select(list(batch))
    return pa.table({c: pa.array(list(v)) for c, v in batch.items()})


def _merge(table, result):
    """The table a sub-step's result stands for: a Table as is; a dict of new columns added."""
    import pyarrow as pa

    if isinstance(result, pa.Table):
        return result
    result = dict(result)
    n = len(next(iter(result.values()))) if result else table.num_rows
    if n != table.num_rows and not set(table.column_names) <= set(result):
        raise InvalidParameterError("A chain sub-step returned a different number of rows without the input columns: "
                                    "return a pyarrow Table or every column, as ds.map expects.")
    base = table if n == table.num_rows else pa.table({})
    for c, v in result.items():
        arr = v if isinstance(v, (pa.Array, pa.ChunkedArray)) else pa.array(list(v))
        base = base.set_column(base.column_names.index(c), c, arr) if c in base.column_names \
            else base.append_column(c, arr)
    return base


def _accepts_indices(fn) -> bool:
    """Whether a map-callable takes ``indices`` after the batch (as ``map(with_indices=True)`` passes them)."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


def _call(fn, table, idx):
    return fn(_Batch(table), idx) if idx is not None and _accepts_indices(fn) else fn(_Batch(table))


def _check_template_columns(name: str, template: Template, available: set[str], extra: set[str] = frozenset()):
    missing = sorted(template.variables - available - set(extra))
    if missing:
        raise MissingVariableError(
            f"Sub-step {name!r}: template variable {missing[0]!r} has no column to fill it, neither in the input nor "
            f"made by an earlier sub-step. Available: {sorted(available | set(extra))}. Add the column or reorder the "
            "sub-steps.", variable=missing[0], row=0)


class Gate(Configured):
    """A row filter between the sub-steps of a :class:`Chain`: rows it rejects are dropped and never
    reach the later sub-steps (no model calls spent on them).

    Args:
        fn (callable): a batched filter ``fn(batch[, indices]) -> list[bool]`` (True = keep), e.g. a
            curator such as ``curate.Length(column="question", min_words=4)``.
        name (`str`, *optional*): defaults to the filter's ``name`` or class name.

    Example:
        >>> g = Gate(lambda b: [len(q) > 3 for q in b["q"]], name="long-enough")
        >>> g.name
        'long-enough'
    """

    def __init__(self, fn: Callable, *, name: str | None = None):
        if not callable(fn):
            raise InvalidParameterError(f"Gate needs a callable filter (batch -> list[bool]), got {type(fn).__name__}.")
        self.fn = fn
        self.name = name or getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__

    _STATE = ("fn", "name")

    def describe(self) -> dict[str, Any]:
        fn = self.fn
        d = fn.describe() if hasattr(fn, "describe") else {"type": "function", "qualname": getattr(fn, "__qualname__", repr(fn))}
        return {"kind": "gate", "name": self.name, "filter": d}


def _name_of(sub: Any) -> str:
    if isinstance(sub, Gate):
        return sub.name
    return (getattr(sub, "output", None) or getattr(sub, "name", None) or getattr(sub, "__name__", None)
            or type(sub).__name__)


class Chain(Generator):
    """Sub-steps run in order over the whole batch; each sees the columns the earlier ones made.

    Map contract: ``ds.map(chain, batched=True)`` (``with_indices=True`` is passed on to the sub-steps
    while the row count is unchanged; after a sub-step that makes several rows per row, later sub-steps
    key rows by content). Returns a pyarrow Table: the input columns, then every sub-step's columns in
    order, less the ``latent`` ones. Each generator sub-step is one batched call over all rows still in
    play (never row by row), through its LLM's response cache: rerunning makes no model calls.

    A row whose earlier output is missing (a failed generation) is not sent to the later sub-steps that
    read it: their outputs are None and their ``<output>_error`` says which input was missing, so one
    failed row never stops the run. A :class:`Gate` drops the rows it rejects before the next sub-step.

    Args:
        steps (`list`): generators (map-callables such as :class:`TextGenerator`; a generator's name is
            its ``output`` column) and :class:`Gate` filters, in order.
        latent (`list[str]`, *optional*): names of sub-steps whose columns are dropped from the result
            (their outputs still feed later sub-steps), e.g. a reasoning step.

    Example:
        >>> from synth_datasets import LLM, Template, TextGenerator
        >>> llm = LLM()                                                           # doctest: +SKIP
        >>> chain = Chain([
        ...     TextGenerator(llm, "Name a fact about {{ topic }}.", output="fact"),
        ...     TextGenerator(llm, "Ask a question whose answer is: {{ fact }}", output="question"),
        ... ], latent=["fact"])                                                  # doctest: +SKIP
        >>> ds = ds.map(chain, batched=True)                                    # doctest: +SKIP
    """

    def __init__(self, steps: Sequence[Any], *, latent: Sequence[str] = ()):
        steps = list(steps)
        if not steps or not any(not isinstance(s, Gate) for s in steps):
            raise InvalidParameterError("Chain needs at least one generator sub-step, e.g. Chain([TextGenerator(...), "
                                        "TextGenerator(...)]).")
        names = []
        for i, s in enumerate(steps):
            if not (isinstance(s, Gate) or callable(s)):
                raise InvalidParameterError(f"Chain sub-step {i} ({type(s).__name__}) is not a map-callable. Pass "
                                            "generators such as TextGenerator, or Gate(filter).")
            names.append(_name_of(s))
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise InvalidParameterError(f"Two chain sub-steps are named {dup!r}: give each generator its own output= "
                                        "(and each Gate its own name=).")
        unknown = sorted(set(latent) - set(names))
        if isinstance(latent, str) or unknown:
            raise InvalidParameterError(f"latent={latent!r}: {unknown or latent!r} not sub-step names {names}. "
                                        "Pass a list of sub-step names (a generator's name is its output column).")
        self.steps, self.latent = steps, list(latent)
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._stats: Counter = Counter()

    _STATE = ("steps", "latent")  # contract 2
    _SAMPLING = ()

    @property
    def names(self) -> list[str]:
        return [_name_of(s) for s in self.steps]

    @property
    def stats(self) -> Counter:
        """Rows into / out of each sub-step in this process's calls (``<name>.rows_in``, ``.rows_out``,
        ``.skipped`` for rows whose input was missing, ``.dropped`` for a gate)."""
        return self._stats

    def llms(self) -> list[LLM]:
        """The models the sub-steps hold, each once (a recipe sums their usage)."""
        found: dict[int, LLM] = {}
        for s in self.steps:
            for v in vars(s).values():
                if isinstance(v, LLM):
                    found.setdefault(id(v), v)
        return list(found.values())

    def check_columns(self, columns: Sequence[str]) -> None:
        """Raise :class:`MissingVariableError` (before any model call) if a sub-step's template reads a
        column that neither the input nor an earlier sub-step makes."""
        available = set(columns)
        for s in self.steps:
            if isinstance(s, Gate):
                continue
            template = getattr(s, "template", None)
            if isinstance(template, Template):
                _check_template_columns(_name_of(s), template, available)
            available |= set(getattr(s, "output_columns", None) or [_name_of(s)])

    # -- contract 1 ---------------------------------------------------------------------------
    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        import pyarrow as pa

        table = _to_table(batch)
        self.check_columns(table.column_names)
        idx = None if indices is None else [int(i) for i in indices]
        made: dict[str, list[str]] = {}
        for s in self.steps:
            name, n_in = _name_of(s), table.num_rows
            self._stats[f"{name}.rows_in"] += n_in
            if isinstance(s, Gate):
                keep = list(_call(s.fn, table, idx))
                table = table.filter(pa.array(keep, type=pa.bool_()))
                idx = None if idx is None else [i for i, k in zip(idx, keep) if k]
            else:
                before = table.column_names
                table, idx = self._generate(s, name, table, idx, made)
                made[name] = [c for c in table.column_names if c not in before]
            self._stats[f"{name}.rows_out"] += table.num_rows
            if isinstance(s, Gate):
                self._stats[f"{name}.dropped"] += n_in - table.num_rows
        drop = [c for n in self.latent for c in made.get(n, [])]
        return table.drop_columns(drop) if drop else table

    def _generate(self, gen, name: str, table, idx, made: dict[str, list[str]]):
        """Run one generator over the rows whose chain-made inputs are present; the others get None
        outputs and an error naming the missing input."""
        import pyarrow as pa
        import pyarrow.compute as pc

        template = getattr(gen, "template", None)
        produced = {c for cols in made.values() for c in cols}
        needed = sorted((template.variables if isinstance(template, Template) else set()) & produced)
        ok = [True] * table.num_rows
        for v in needed:
            ok = [a and b for a, b in zip(ok, pc.is_valid(table[v]).to_pylist())]

        def call(t, ix):
            return _merge(t, _call(gen, t, ix))

        if all(ok):
            out = call(table, idx)
            return out, (idx if out.num_rows == table.num_rows else None)
        mask = pa.array(ok, type=pa.bool_())
        sub_idx = None if idx is None else [i for i, k in zip(idx, ok) if k]
        out_ok = call(table.filter(mask), sub_idx)
        n_ok = sum(ok)
        if n_ok and out_ok.num_rows % n_ok:
            raise InvalidParameterError(f"Chain sub-step {name!r} returned {out_ok.num_rows} rows for {n_ok}: a chain "
                                        "needs the same number of rows per input row.")
        per = out_ok.num_rows // n_ok if n_ok else 1
        skipped = table.filter(pc.invert(mask))
        self._stats[f"{name}.skipped"] += skipped.num_rows
        cols = []
        for f in out_ok.schema:
            if f.name in skipped.column_names:
                cols.append(skipped[f.name].cast(f.type))
            elif f.name == f"{name}_error":
                missing = ", ".join(repr(v) for v in needed)
                cols.append(pa.array([f"skipped: an input ({missing}) of sub-step {name!r} is missing (an earlier "
                                      "sub-step failed)"] * skipped.num_rows, type=f.type))
            else:
                cols.append(pa.nulls(skipped.num_rows, type=f.type))
        both = pa.concat_tables([out_ok, pa.Table.from_arrays(cols, schema=out_ok.schema)])
        order, a, b = [], 0, out_ok.num_rows
        for k in ok:
            if k:
                order.extend(range(a, a + per))
                a += per
            else:
                order.append(b)
                b += 1
        return both.take(pa.array(order, type=pa.int64())), (idx if per == 1 else None)

    # -- contract 4 ---------------------------------------------------------------------------
    def describe_config(self) -> dict[str, Any]:
        """Every sub-step's ``describe()`` (templates verbatim, models, seeds) with its name, kind and
        whether it is latent."""
        subs = []
        for s in self.steps:
            if isinstance(s, Gate):
                subs.append(s.describe())
            else:
                d = s.describe() if hasattr(s, "describe") else {"type": type(s).__name__}
                subs.append({"kind": "generate", "name": _name_of(s), "latent": _name_of(s) in self.latent, **d})
        return {"steps": subs, "latent": self.latent}

    def __repr__(self) -> str:
        return f"Chain({self.names}, latent={self.latent})"


# -- dialogues ----------------------------------------------------------------------------------
DIALOGUE_VARIABLES = frozenset({"turn", "last", "transcript", "history"})
_HISTORY_MODES = ("chat", "transcript")


class Role(Configured):
    """One side of a :class:`Dialogue`.

    The template is rendered per row and turn with the row's columns plus ``turn`` (1-based round),
    ``last`` (the other side's last message, "" before the first), ``transcript`` (the conversation
    so far as ``Label: text`` lines) and ``history`` (the messages so far, ``{role, content}``).

    Args:
        template (`Template` or `str`): the role's instructions (its system prompt is the persona).
        llm (`LLM`, *optional*): this role's model (defaults to the dialogue's).
        history (`str`, defaults to ``"chat"``): how the role sees the conversation. ``"chat"``: the
            template's system message, then the conversation as chat turns (this role's own messages as
            ``assistant``, the other's as ``user``); the template's user message is the cue only when
            the role speaks first. ``"transcript"``: the template is rendered as is (use ``{{ transcript }}``
            or ``{{ last }}`` in it), which suits a small model playing the user.
        label (`str`, *optional*): the name used in ``transcript`` (defaults to "User"/"Assistant").
        params (`dict`, *optional*): sampling parameters overriding the dialogue's for this role
            (``temperature``, ``top_p``, ``max_new_tokens``, ``stop``).

    Example:
        >>> r = Role(Template(system="You are a patient tutor.", user="Greet the student."))
        >>> r.history
        'chat'
    """

    def __init__(self, template: Template | str, *, llm: LLM | None = None, history: str = "chat",
                 label: str | None = None, params: dict | None = None):
        template = as_template(template, "Role template")
        if llm is not None:
            check_llm(llm, "Role llm")
        if history not in _HISTORY_MODES:
            raise InvalidParameterError(f"history={history!r} must be one of {_HISTORY_MODES}.")
        bad = sorted(set(params or {}) - {"temperature", "top_p", "max_new_tokens", "stop"})
        if bad:
            raise InvalidParameterError(f"Role params {bad} are not per-role sampling parameters: use temperature, "
                                        "top_p, max_new_tokens or stop (the seed is the dialogue's).")
        self.template, self.llm, self.history, self.label = template, llm, history, label
        self.params = dict(params or {})

    _STATE = ("template", "llm", "history", "label", "params")  # params: a plain dict of overrides

    def messages(self, ctx: dict[str, Any], own: str, history: list[dict[str, str]], row_index=None):
        rendered = self.template.render(ctx, row_index=row_index)
        if self.history == "transcript" or not history:
            return rendered
        flip = {own: "assistant", ("assistant" if own == "user" else "user"): "user"}
        return rendered[:-1] + [{"role": flip[m["role"]], "content": m["content"]} for m in history]

    def describe(self, default_llm: LLM) -> dict[str, Any]:
        return {"template": self.template.describe(), "history": self.history, "label": self.label,
                "params": self.params, "llm": (self.llm or default_llm).describe()}


class Dialogue(Generator):
    """Two roles alternate, each turn batched across the rows, into a ``messages`` column.

    Map contract: ``ds.map(dialogue, batched=True)`` (optionally ``with_indices=True``). Returns a
    pyarrow Table: the input columns and ``{output}`` (a list of ``{"role", "content"}`` with roles
    ``user`` and ``assistant``, what ``tokenizer.apply_chat_template`` and TRL take), ``{output}_turns``
    (rounds made), ``{output}_stop`` (``"turns"``, ``"stop"``: the stop rule matched, ``"error"``),
    ``{output}_tokens`` and ``{output}_error``. A round is the opener's message and the other side's reply.

    Stop rule: ``stop`` strings (case-insensitive) in a message end the dialogue: after the reply when
    the user side wrote them ("thanks, bye" gets a goodbye), at once when the assistant side did. A failed
    or empty message ends it too, so a dialogue always ends on a reply; a row with no complete round gets
    an empty list and an error. Each message's seed comes from (``seed``, row key, round, role), so rows
    are the same whatever the batch size, and the response cache makes reruns free.

    Args:
        llm (`LLM`): the model of both roles unless a role has its own.
        user (`Role`, `Template` or `str`): the side that opens (a customer, a student).
        assistant (`Role`, `Template` or `str`): the side that replies.
        turns (`int` or `(int, int)`, defaults to 2): rounds per dialogue, or a (min, max) range sampled
            per row (seeded).
        stop (`list[str]`, *optional*): phrases that end the dialogue.
        system (`bool`, defaults to False): start ``messages`` with the assistant's rendered system prompt.
        output (`str`, defaults to ``"messages"``): output column.
        params / temperature / top_p / max_new_tokens / seed: sampling parameters of both roles.
        key_column (`str`, *optional*): column that identifies a row for seeding.
        progress (`bool`, defaults to False): a progress bar per turn.

    Example:
        >>> d = Dialogue(LLM(), user=Role(Template(system="You are a customer.", user="Ask about {{ topic }}."),
        ...                               history="transcript"),
        ...              assistant=Template(system="You are a support agent.", user="Hello"),
        ...              turns=(1, 3), stop=["bye"], max_new_tokens=64)                # doctest: +SKIP
        >>> ds = Dataset.from_dict({"topic": ["refunds"]}).map(d, batched=True)         # doctest: +SKIP
        >>> ds[0]["messages"][0]["role"]                                                  # doctest: +SKIP
        'user'
    """

    def __init__(self, llm: LLM, *, user: Role | Template | str, assistant: Role | Template | str,
                 turns: int | Sequence[int] = 2, stop: Sequence[str] | str = (), system: bool = False,
                 output: str = "messages", params: SamplingParams | dict | None = None,
                 temperature: float | None = None, top_p: float | None = None, max_new_tokens: int | None = None,
                 seed: int | None = None, key_column: str | None = None, progress: bool = False):
        check_llm(llm)
        self.user = user if isinstance(user, Role) else Role(user, history="transcript")
        self.assistant = assistant if isinstance(assistant, Role) else Role(assistant)
        if isinstance(turns, int) and not isinstance(turns, bool):
            lo = hi = turns
        elif isinstance(turns, Sequence) and len(turns) == 2 and all(isinstance(t, int) for t in turns):
            lo, hi = turns
        else:
            raise InvalidParameterError(f"turns={turns!r} must be an integer or a (min, max) pair of integers.")
        if lo < 1 or hi < lo:
            raise InvalidParameterError(f"turns={turns!r}: need 1 <= min <= max rounds.")
        self.llm, self.turns, self.system, self.output = llm, (lo, hi), system, check_output(output)
        self.stop = [stop] if isinstance(stop, str) else [str(s) for s in stop]
        self.params = SamplingParams.make(params, temperature=temperature, top_p=top_p,
                                          max_new_tokens=max_new_tokens, seed=seed)
        self.key_column, self.progress = key_column, progress

    _STATE = ("llm", "user", "assistant", "turns", "stop", "system", "output", "params", "key_column", "progress")

    @property
    def output_columns(self) -> list[str]:
        o = self.output
        return [o, f"{o}_turns", f"{o}_stop", f"{o}_tokens", f"{o}_error"]

    def _rounds(self, key: str) -> int:
        lo, hi = self.turns
        return lo + min(hi - lo, int(derive_unit(self.params.seed, key, "turns") * (hi - lo + 1)))

    def _stopped(self, text: str) -> bool:
        low = text.lower()
        return any(s.lower() in low for s in self.stop)

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        table = _to_table(batch)
        cols = table.column_names
        check_new_columns(self.output_columns, cols)  # (a Table or a batch: no check_batched)
        for side, role in (("user", self.user), ("assistant", self.assistant)):
            _check_template_columns(f"{side} role", role.template, set(cols), DIALOGUE_VARIABLES)
        data = _Batch(table)
        n = table.num_rows
        keys = row_keys(data, indices, self.key_column)
        rows = [{c: data[c][i] for c in cols} for i in range(n)]
        where = [None if indices is None else int(indices[i]) for i in range(n)]
        limit = [self._rounds(k) for k in keys]
        history: list[list[dict[str, str]]] = [[] for _ in range(n)]
        state = [{"stop": None, "error": None, "tokens": 0, "rounds": 0, "end_after_reply": False} for _ in range(n)]
        labels = {"user": self.user.label or "User", "assistant": self.assistant.label or "Assistant"}
        for turn in range(1, max(limit, default=0) + 1):
            for side, role in (("user", self.user), ("assistant", self.assistant)):
                active = [i for i in range(n) if state[i]["stop"] is None and turn <= limit[i]]
                if not active:
                    continue
                requests = []
                for i in active:
                    h = history[i]
                    ctx = {**rows[i], "turn": turn, "last": h[-1]["content"] if h else "", "history": h,
                           "transcript": "\n".join(f"{labels[m['role']]}: {m['content']}" for m in h)}
                    requests.append(ChatRequest.of(role.messages(ctx, side, h, where[i]),
                                                   derive_seed(self.params.seed, keys[i], turn, side)))
                params = SamplingParams.make(self.params, **role.params)
                completions = self._complete(requests, params, llm=role.llm)
                for i, c in zip(active, completions):
                    self._take(state[i], history[i], side, c, turn, limit[i], labels)
        return self._table(table, rows, history, state)

    def _take(self, st: dict, h: list, side: str, c, turn: int, limit: int, labels: dict) -> None:
        text = (c.text or "").strip()
        for lab in labels.values():  # a model often prefixes its own name: "Assistant: ..."
            if text.lower().startswith(lab.lower() + ":"):
                text = text[len(lab) + 1:].strip()
        st["tokens"] += int(c.usage.get("completion_tokens", 0))
        if c.error is not None or not text:
            st["error"] = c.error or f"empty {side} message in round {turn}"
            st["stop"] = "error"
            if side == "assistant" and h:
                h.pop()  # end on a reply: drop the unanswered user message
            return
        h.append({"role": side, "content": text})
        if side == "assistant":
            st["rounds"] = turn
            if st["end_after_reply"] or self._stopped(text):
                st["stop"] = "stop"
            elif turn >= limit:
                st["stop"] = "turns"
        elif self._stopped(text):
            st["end_after_reply"] = True

    def _table(self, table, rows, history, state):
        import pyarrow as pa

        o = self.output
        msg_type = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        msgs = []
        for i, h in enumerate(history):
            if self.system and h:
                system = self.assistant.template.render({**rows[i], "turn": 1, "last": "", "history": [],
                                                         "transcript": ""})
                h = [m for m in system if m["role"] == "system"][:1] + h
            msgs.append(h)
        errors = [st["error"] if st["error"] is not None else (None if h else "no complete round")
                  for st, h in zip(state, history)]
        new = {o: pa.array(msgs, type=msg_type),
               f"{o}_turns": pa.array([st["rounds"] for st in state], type=pa.int32()),
               f"{o}_stop": pa.array([st["stop"] for st in state], type=pa.string()),
               f"{o}_tokens": pa.array([st["tokens"] for st in state], type=pa.int32()),
               f"{o}_error": pa.array(errors, type=pa.string())}
        for c, arr in new.items():
            table = table.append_column(c, arr)
        return table

    def describe_config(self) -> dict[str, Any]:
        """Both roles' templates verbatim and models, turns, stop rule, parameters and seed."""
        return {"output": self.output, "turns": list(self.turns), "stop": self.stop, "system": self.system,
                "params": self.params.model_dump(mode="json"), "seed": self.params.seed, "key_column": self.key_column,
                "user": self.user.describe(self.llm), "assistant": self.assistant.describe(self.llm)}

    def __repr__(self) -> str:
        return f"Dialogue({self.llm!r}, turns={self.turns}, output={self.output!r})"
