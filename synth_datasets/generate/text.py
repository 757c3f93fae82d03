"""``TextGenerator``: free-text generation as a ``datasets`` map-callable."""

from __future__ import annotations

from typing import Any, Sequence

from .._versions import library_versions
from ..columns import check_new_columns
from ..errors import InvalidParameterError, MissingVariableError
from ..llm import LLM, ChatRequest, Completion, SamplingParams
from ..prompts import Template
from ..seeding import batch_size_of, check_batched, derive_seed, row_keys

_FORMAT_VERSION = 1


def input_columns(batch: dict[str, list], cols: list[str], size: int, n: int) -> tuple[list, list[str]]:
    """The input columns as arrow arrays (types kept from the arrow batch when ``datasets`` gives one),
    each row repeated ``n`` times: what a generator returns beside its new columns."""
    import pyarrow as pa

    source = getattr(batch, "pa_table", None)  # datasets' LazyBatch keeps the arrow batch
    repeat = pa.array([i for i in range(size) for _ in range(n)], type=pa.int64())
    arrays, names = [], []
    for c in cols:
        if source is not None and c in source.column_names and source.num_rows == size:
            col = source[c]
        else:
            col = pa.array(batch[c]) if size else pa.array([], type=pa.null())
        arrays.append(col.take(repeat) if n > 1 else col)
        names.append(c)
    return arrays, names


class TextGenerator:
    """Generates ``n`` completions per input row.

    Map contract: use with ``ds.map(gen, batched=True)`` (optionally ``with_indices=True`` to seed by
    row index instead of row content, and ``num_proc>1``). It returns a pyarrow Table with ``n`` rows
    per input row: the input columns (repeated, types kept), the text in ``output``, and metadata
    columns ``{output}_sample`` (0..n-1),
    ``{output}_model``, ``{output}_finish_reason``, ``{output}_tokens`` and ``{output}_error`` (None
    when the row succeeded; a failed row keeps ``output`` None and the run goes on). Output columns
    are typed, so a first batch of failed rows does not leave a null-typed column. ``datasets`` does
    not apply ``map(remove_columns=...)`` to a returned table: call ``.remove_columns`` afterwards.

    Each sample's seed is derived from (``seed``, row key, sample index), and completions are cached
    by model identity + messages + parameters + seed: rerunning makes no model calls, and a killed
    run resumes with the same draws. The object pickles to its configuration only, so ``datasets``
    fingerprints it stably (same config -> cache hit, in a new process too).

    Args:
        llm (`LLM`): the model.
        template (`Template` or `str`): the prompt; a string is the user message.
        output (`str`, defaults to ``"text"``): output column.
        n (`int`, defaults to 1): samples per input row.
        params (`SamplingParams` or `dict`, *optional*): sampling parameters; keywords
            ``temperature``, ``top_p``, ``max_new_tokens``, ``seed``, ``stop``, ``logprobs`` override them.
        key_column (`str`, *optional*): column that identifies a row for seeding.
        metadata (`bool`, defaults to True): add the metadata columns.
        progress (`bool`, defaults to False): a per-batch progress bar (``map`` shows its own).

    Example:
        >>> from datasets import Dataset
        >>> gen = TextGenerator(LLM(), Template(user="Write a {{ label }} movie review."),
        ...                     output="review", n=2, max_new_tokens=64)            # doctest: +SKIP
        >>> ds = Dataset.from_dict({"label": ["positive"]}).map(gen, batched=True)   # doctest: +SKIP
        >>> ds.num_rows                                                               # doctest: +SKIP
        2
    """

    def __init__(self, llm: LLM, template: Template | str, *, output: str = "text", n: int = 1,
                 params: SamplingParams | dict | None = None, temperature: float | None = None,
                 top_p: float | None = None, max_new_tokens: int | None = None, seed: int | None = None,
                 stop: Sequence[str] | str | None = None, logprobs: bool | None = None,
                 key_column: str | None = None, metadata: bool = True, progress: bool = False):
        if not isinstance(llm, LLM):
            raise InvalidParameterError(f"llm must be an LLM, got {type(llm).__name__}. Use LLM() or LLM(url, model=...).")
        if isinstance(template, str):
            template = Template(user=template)
        if not isinstance(template, Template):
            raise InvalidParameterError(f"template must be a Template or a string, got {type(template).__name__}.")
        if not isinstance(n, int) or n < 1:
            raise InvalidParameterError(f"n={n!r} must be an integer >= 1 (samples per input row).")
        if not isinstance(output, str) or not output:
            raise InvalidParameterError("output must be a non-empty column name.")
        self.llm, self.template, self.output, self.n = llm, template, output, n
        self.params = SamplingParams.make(params, temperature=temperature, top_p=top_p,
                                          max_new_tokens=max_new_tokens, seed=seed, stop=stop, logprobs=logprobs)
        self.key_column, self.metadata, self.progress = key_column, metadata, progress

    # -- contract 2: pickle to configuration only ------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "llm": self.llm, "template": self.template, "output": self.output,
                "n": self.n, "params": self.params.model_dump(), "key_column": self.key_column,
                "metadata": self.metadata, "progress": self.progress}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        state["params"] = SamplingParams(**state["params"])
        self.__dict__.update(state)

    @property
    def output_columns(self) -> list[str]:
        o = self.output
        meta = [f"{o}_sample", f"{o}_model", f"{o}_finish_reason", f"{o}_tokens", f"{o}_error"]
        return [o] + (meta if self.metadata else []) + ([f"{o}_logprobs"] if self.params.logprobs else [])

    # -- contract 1: map-callable -----------------------------------------------------------
    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        requests, finish = self._prepare(batch, indices)
        return finish(self.llm.generate(requests, self.params, progress=self.progress))

    async def acall(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        """Async form for ``ds.map(gen.acall, batched=True)``: ``datasets`` then runs several batches
        at once, so an endpoint never idles at batch boundaries. Same rows as ``__call__``."""
        requests, finish = self._prepare(batch, indices)
        return finish(await self.llm.agenerate(requests, self.params, progress=self.progress))

    def _prepare(self, batch: dict[str, list], indices: Sequence[int] | None):
        check_batched(batch, type(self).__name__)
        check_new_columns(self.output_columns, batch)
        self.template.check_columns(list(batch))
        size = batch_size_of(batch)
        cols = list(batch)
        # Missing values fail fast, before the first model call; rendering itself is lazy so that
        # endpoint requests start while later rows are still being rendered.
        for v in sorted(self.template.variables):
            if None in batch[v]:
                i = list(batch[v]).index(None)
                row = {c: batch[c][i] for c in cols}
                where = f"row {int(indices[i])}" if indices is not None else f"row {i} of this batch: {str(row)[:200]}"
                raise MissingVariableError(f"Template variable {v!r} is None in {where}. Fill it or drop the "
                                           "row before generating.", variable=v,
                                           row=int(indices[i]) if indices is not None else i)
        keys = row_keys(batch, indices, self.key_column)
        seed = self.params.seed

        def requests():
            for i in range(size):
                row = {c: batch[c][i] for c in cols}
                msgs = self.template.render(row, row_index=None if indices is None else int(indices[i]))
                for j in range(self.n):
                    yield ChatRequest.of(msgs, derive_seed(seed, keys[i], j))

        return requests(), lambda completions: self._rows(batch, cols, size, completions)

    def _rows(self, batch: dict[str, list], cols: list[str], size: int, completions: list[Completion]):
        """A pyarrow Table: input columns (repeated ``n`` times, types kept) + typed output columns.

        Typed arrays matter: a first batch whose texts or errors are all None must not fix a null
        column type that later batches cannot write into.
        """
        import pyarrow as pa

        arrays, names = input_columns(batch, cols, size, self.n)
        o = self.output
        new = {o: pa.array([c.text for c in completions], type=pa.string())}
        if self.metadata:
            model = self.llm.identity_string() if completions else ""
            new[f"{o}_sample"] = pa.array([j for _ in range(size) for j in range(self.n)], type=pa.int32())
            new[f"{o}_model"] = pa.array([model] * len(completions), type=pa.string())
            new[f"{o}_finish_reason"] = pa.array([c.finish_reason for c in completions], type=pa.string())
            new[f"{o}_tokens"] = pa.array([int(c.usage.get("completion_tokens", 0)) for c in completions], type=pa.int32())
            new[f"{o}_error"] = pa.array([c.error for c in completions], type=pa.string())
        if self.params.logprobs:
            new[f"{o}_logprobs"] = pa.array([c.logprobs for c in completions], type=pa.list_(pa.float32()))
        return pa.Table.from_arrays(arrays + list(new.values()), names=names + list(new))

    # -- contract 4: describe ---------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Configuration for provenance: model identity, template verbatim, parameters, seed, versions."""
        return {"type": "TextGenerator", "format": _FORMAT_VERSION, "output": self.output, "n": self.n,
                "params": self.params.model_dump(mode="json"), "seed": self.params.seed,
                "key_column": self.key_column, "template": self.template.describe(), "llm": self.llm.describe(),
                "library": library_versions()}

    def __repr__(self) -> str:
        return f"TextGenerator({self.llm!r}, {self.template!r}, output={self.output!r}, n={self.n})"
