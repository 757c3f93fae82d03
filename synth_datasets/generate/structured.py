"""``StructuredGenerator``: JSON records that follow a schema, as typed ``datasets`` columns.

How a record is made to follow the schema depends on the backend (``response_format``):
- the local backend decodes under the schema's grammar (constrained decoding with llguidance): every
  completion parses, and the sampler still draws from the model's distribution over allowed tokens;
- an endpoint receives the schema as ``response_format`` (``json_schema``, as OpenAI, vLLM, TGI and
  llama.cpp's server take it, or ``json_object`` with a ``schema``, as llama-cpp-python's server
  takes it; ``"auto"`` tries them in that order on the first request and keeps what the server
  accepts), else only the prompt carries the schema.
Whatever the backend, every record is validated in the end; an invalid reply is asked again with the
validation error fed back (``retries`` times), and a row still invalid after that is an error row
with the message. The run goes on.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Sequence

from ..errors import InvalidParameterError
from ..llm import LLM, ChatRequest, Completion, SamplingParams
from ..prompts import Template
from ..seeding import derive_seed
from .schema import Schema
from .base import input_columns
from .text import TextGenerator

logger = logging.getLogger(__name__)

STYLES = ("auto", "json_schema", "json_object", None)
INSTRUCTION = "Reply with one JSON object only, no other text. It must follow this JSON schema:\n{schema}"
FEEDBACK = ("That reply is not valid: {error}. Reply again with one JSON object only, no other text, that "
            "follows the schema.")


def closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that does not say otherwise: what
    the decoder may write (a closed record is valid under the open schema too; OpenAI's strict mode asks
    for the same). Without it a small model may keep adding properties until ``max_new_tokens``."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: closed(v) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    for key in ("items", "additionalProperties", "not", "if", "then", "else"):
        if isinstance(out.get(key), dict):
            out[key] = closed(out[key])
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(out.get(key), list):
            out[key] = [closed(x) for x in out[key]]
    for key in ("$defs", "definitions"):
        if isinstance(out.get(key), dict):
            out[key] = {k: closed(v) for k, v in out[key].items()}
    return out


def _response_format(style: str | None, schema: Schema, name: str) -> str | None:
    decode = closed(schema.json)
    if style == "json_schema":
        return json.dumps({"type": "json_schema", "json_schema": {"name": name, "schema": decode, "strict": True}},
                          ensure_ascii=False, separators=(",", ":"))
    if style == "json_object":
        return json.dumps({"type": "json_object", "schema": decode}, ensure_ascii=False, separators=(",", ":"))
    return None


def _format_refused(c: Completion) -> bool:
    """The server refused the request because of ``response_format``: an HTTP error whose body names it
    (OpenAI-style servers answer 400/422; llama-cpp-python's server answers 500 with its validation error)."""
    e = c.error or ""
    return c.text is None and e.startswith("HTTP ") and "response_format" in e


class _Attempts:
    """The validate-and-retry state of one batch: which rows still need an answer, and their results."""

    def __init__(self, requests: list[ChatRequest], schema: Schema, retries: int):
        self.base, self.schema, self.retries = requests, schema, retries
        n = len(requests)
        self.values: list[Any] = [None] * n
        self.errors: list[str | None] = [None] * n
        self.texts: list[str | None] = [None] * n
        self.finish: list[str] = ["error"] * n
        self.tokens = [0] * n
        self.attempts = [0] * n
        self.todo = list(range(n))

    def requests(self) -> list[ChatRequest]:
        out = []
        for i in self.todo:
            r, a = self.base[i], self.attempts[i]
            if a == 0:
                out.append(r)
            else:  # the last bad reply and what is wrong with it
                msgs = r.messages + (("assistant", self.texts[i] or ""),
                                     ("user", FEEDBACK.format(error=self.errors[i])))
                out.append(ChatRequest(msgs, derive_seed(r.seed, "retry", a)))
        return out

    def take(self, completions: list[Completion]) -> None:
        again = []
        for i, c in zip(self.todo, completions):
            self.attempts[i] += 1
            self.tokens[i] += int(c.usage.get("completion_tokens", 0))
            self.texts[i], self.finish[i] = c.text, c.finish_reason
            if c.error is not None:  # the backend already retried transport failures: not asked again
                self.values[i], self.errors[i] = None, c.error
                continue
            self.values[i], err = self.schema.validate(c.text)
            if err is not None and c.finish_reason == "length":
                err += " (the reply was cut at max_new_tokens: raise it or bound the schema's strings and lists)"
            self.errors[i] = err
            if err is not None and self.attempts[i] <= self.retries:
                again.append(i)
        self.todo = again


class StructuredGenerator(TextGenerator):
    """Generates one record per sample that follows ``schema``, with its fields as typed columns.

    Map contract: ``ds.map(gen, batched=True)`` (optionally ``with_indices=True``, ``num_proc>1``), like
    :class:`TextGenerator`: ``n`` rows per input row, the input columns repeated. New columns:
    - the record's top-level fields, one typed column each (``flatten=True``, default; nested objects
      are structs, arrays lists, enums strings), or one struct column ``output`` (``flatten=False``);
      see :meth:`features` for their ``datasets.Features``;
    - ``{output}_raw`` (the last reply's text) and ``{output}_error`` (None when the record is valid;
      a row still invalid after ``retries`` keeps its fields None and the message here);
    - with ``metadata``: ``{output}_sample``, ``{output}_attempts``, ``{output}_model``,
      ``{output}_finish_reason``, ``{output}_tokens`` (all attempts together).

    Args:
        llm (`LLM`): the model.
        template (`Template` or `str`): the prompt. With ``schema_in_prompt`` the schema is appended to
            the last user message (small models need to see the fields they are asked for).
        schema: a pydantic model class or a JSON Schema dict.
        output (`str`, defaults to ``"record"``): prefix of the metadata columns (and the struct column's
            name with ``flatten=False``).
        response_format (`str` or None, defaults to ``"auto"``): ``"json_schema"``, ``"json_object"``,
            ``"auto"`` (local: grammar-constrained decoding; endpoint: the first the server accepts), or
            None (prompt only: validate and retry).
        retries (`int`, defaults to 2): how many times an invalid reply is asked again.
        flatten, schema_in_prompt (`bool`, default True), n, key_column, metadata, progress and the
        sampling keywords: as in :class:`TextGenerator`.

    Example:
        >>> from pydantic import BaseModel, Field
        >>> class Review(BaseModel):
        ...     sentiment: Literal["positive", "negative"]
        ...     stars: int = Field(ge=1, le=5)
        >>> gen = StructuredGenerator(LLM(), "Review a {{ genre }} movie.", schema=Review)   # doctest: +SKIP
        >>> Dataset.from_dict({"genre": ["horror"]}).map(gen, batched=True)[0]["stars"]     # doctest: +SKIP
        4
    """

    def __init__(self, llm: LLM, template: Template | str, *, schema: Any, output: str = "record",
                 response_format: str | None = "auto", retries: int = 2, flatten: bool = True,
                 schema_in_prompt: bool = True, n: int = 1, params: SamplingParams | dict | None = None,
                 temperature: float | None = None, top_p: float | None = None, max_new_tokens: int | None = None,
                 seed: int | None = None, key_column: str | None = None, metadata: bool = True,
                 progress: bool = False):
        super().__init__(llm, template, output=output, n=n, params=params, temperature=temperature, top_p=top_p,
                         max_new_tokens=max_new_tokens, seed=seed, key_column=key_column, metadata=metadata,
                         progress=progress)
        if response_format not in STYLES:
            raise InvalidParameterError(f"response_format={response_format!r} must be one of {list(STYLES)}.")
        if not isinstance(retries, int) or retries < 0:
            raise InvalidParameterError(f"retries={retries!r} must be an integer >= 0.")
        if self.params.response_format is not None:
            raise InvalidParameterError("Pass the schema as schema= (and the style as response_format=), not in params.")
        self.schema = schema if isinstance(schema, Schema) else Schema(schema)
        if flatten and not self.schema.is_object:
            raise InvalidParameterError("flatten=True needs an object schema with properties (each becomes a column); "
                                        "pass flatten=False to keep the whole value in one column.")
        self.response_format, self.retries = response_format, retries
        self.flatten, self.schema_in_prompt = flatten, schema_in_prompt
        self._init_runtime()
        if llm.kind != "endpoint" and response_format is not None:
            self._check_engine()

    def _check_engine(self) -> None:
        from ..llm.grammar import compile_schema

        try:
            compile_schema(closed(self.schema.json))
        except ImportError:
            if self.response_format != "auto":
                raise
            logger.warning("llguidance is not installed: StructuredGenerator validates and retries without "
                           "constrained decoding (pip install 'synth-datasets[structured]' for it).")
            self._style = None

    # -- contract 2 ---------------------------------------------------------------------------
    _FORMAT = "structured-1"

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(schema=self.schema.json, model_ref=self.schema.model_ref, response_format=self.response_format,
                     retries=self.retries, flatten=self.flatten, schema_in_prompt=self.schema_in_prompt)
        return state

    def _restore(self, state: dict[str, Any]) -> dict[str, Any]:
        state["schema"] = Schema.from_state(state.pop("schema"), state.pop("model_ref"))
        return super()._restore(state)

    def _init_runtime(self) -> None:
        self._style: str | None | bool = False  # resolved per process (False: not yet)

    # -- columns --------------------------------------------------------------------------------
    @property
    def output_columns(self) -> list[str]:
        o = self.output
        fields = self.schema.fields if self.flatten else [o]
        meta = [f"{o}_sample", f"{o}_attempts", f"{o}_model", f"{o}_finish_reason", f"{o}_tokens"]
        return fields + [f"{o}_raw", f"{o}_error"] + (meta if self.metadata else [])

    def features(self):
        """``datasets.Features`` of the new columns."""
        import datasets

        return datasets.Features.from_arrow_schema(self._arrow_schema())

    def _arrow_schema(self):
        import pyarrow as pa

        o = self.output
        types = self.schema.field_types() if self.flatten else {o: self.schema.arrow_type()}
        types.update({f"{o}_raw": pa.string(), f"{o}_error": pa.string()})
        if self.metadata:
            types.update({f"{o}_sample": pa.int32(), f"{o}_attempts": pa.int32(), f"{o}_model": pa.string(),
                          f"{o}_finish_reason": pa.string(), f"{o}_tokens": pa.int32()})
        return pa.schema([pa.field(c, types[c]) for c in self.output_columns])

    # -- contract 1 -----------------------------------------------------------------------------
    def _instructed(self, requests) -> list[ChatRequest]:
        if not self.schema_in_prompt:
            return list(requests)
        text = INSTRUCTION.format(schema=json.dumps(self.schema.json, ensure_ascii=False, separators=(",", ":")))
        out = []
        for r in requests:
            msgs = list(r.messages)
            last = max((k for k, (role, _) in enumerate(msgs) if role == "user"), default=None)
            if last is None:
                msgs.append(("user", text))
            else:
                msgs[last] = ("user", msgs[last][1].rstrip() + "\n\n" + text)
            out.append(ChatRequest(tuple(msgs), r.seed))
        return out

    def _params_for(self, style: str | None) -> SamplingParams:
        rf = _response_format(style, self.schema, self._schema_name())
        return SamplingParams.make(self.params, response_format=rf) if rf else self.params

    def _schema_name(self) -> str:
        name = self.schema.json.get("title") or self.output
        return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in str(name))[:64] or "record"

    def _candidates(self) -> list[str | None]:
        if self._style is not False:
            return [self._style]
        if self.response_format != "auto":
            return [self.response_format]
        if self.llm.kind == "endpoint":
            return ["json_schema", "json_object", None]
        import importlib.util

        return ["json_schema"] if importlib.util.find_spec("llguidance") is not None else [None]

    def _resolve(self, first: ChatRequest, generate) -> None:
        """Settle the style on the first request: the first one the server does not refuse."""
        candidates = self._candidates()
        for style in candidates[:-1]:
            if not _format_refused(generate([first], self._params_for(style))[0]):
                self._style = style
                return
            logger.info("the server refused response_format %r; trying the next form", style)
        self._style = candidates[-1]

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        self._check_clash(batch)
        requests, _ = self._prepare(batch, indices)
        requests = self._instructed(requests)

        generate = self._complete
        if requests and self._style is False:
            self._resolve(requests[0], generate)
        run = _Attempts(requests, self.schema, self.retries)
        params = self._params_for(self._style)
        while run.todo:
            run.take(generate(run.requests(), params))
        return self._table(batch, run)

    async def acall(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        """Async form for ``ds.map(gen.acall, batched=True)``; same rows as ``__call__``."""
        self._check_clash(batch)
        requests, _ = self._prepare(batch, indices)
        requests = self._instructed(requests)
        if requests and self._style is False:
            for style in self._candidates()[:-1]:
                c = (await self.llm.agenerate([requests[0]], self._params_for(style)))[0]
                if not _format_refused(c):
                    self._style = style
                    break
            else:
                self._style = self._candidates()[-1]
        run = _Attempts(requests, self.schema, self.retries)
        params = self._params_for(self._style)
        while run.todo:
            run.take(await self._acomplete(run.requests(), params))
        return self._table(batch, run)

    def _check_clash(self, batch: dict[str, list]) -> None:
        self._check_batch(batch, hint="(The schema's fields become columns.) Rename the input column, or pass "
                                      "flatten=False / another output=")

    def _table(self, batch: dict[str, list], run: _Attempts):
        import pyarrow as pa

        cols = list(batch)
        size = len(next(iter(batch.values()))) if batch else 0
        arrays, names = input_columns(batch, cols, size, self.n)
        schema = self._arrow_schema()
        values = [self.schema.to_arrow_value(v) if e is None else None for v, e in zip(run.values, run.errors)]
        o = self.output
        new: dict[str, list] = {}
        if self.flatten:
            for f in self.schema.fields:
                new[f] = [None if v is None else v[f] for v in values]
        else:
            new[o] = values
        new[f"{o}_raw"] = run.texts
        new[f"{o}_error"] = run.errors
        if self.metadata:
            model = self.llm.identity_string() if values else ""
            new[f"{o}_sample"] = [j for _ in range(size) for j in range(self.n)]
            new[f"{o}_attempts"] = run.attempts
            new[f"{o}_model"] = [model] * len(values)
            new[f"{o}_finish_reason"] = run.finish
            new[f"{o}_tokens"] = run.tokens
        for c, v in new.items():
            arrays.append(pa.array(v, type=schema.field(c).type))
            names.append(c)
        return pa.Table.from_arrays(arrays, names=names)

    # -- contract 4 -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d.update(schema=self.schema.describe(),
                 response_format=self.response_format, retries=self.retries, flatten=self.flatten,
                 schema_in_prompt=self.schema_in_prompt,
                 instruction=INSTRUCTION if self.schema_in_prompt else None, feedback=FEEDBACK)
        if self._style is not False:
            d["response_format_used"] = self._style
        return d

    def __repr__(self) -> str:
        return (f"StructuredGenerator({self.llm!r}, {self.template!r}, schema={self.schema.json.get('title', '...')}, "
                f"output={self.output!r}, response_format={self.response_format!r})")
