"""``TextGenerator``: free-text generation as a ``datasets`` map-callable."""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import MissingVariableError
from ..llm import LLM, Completion, SamplingParams
from ..prompts import Template
from ..seeding import batch_size_of
from .base import Generator, as_template, check_llm, check_output, check_samples, input_columns

__all__ = ["TextGenerator", "input_columns"]  # input_columns: re-exported from .base for older imports


class TextGenerator(Generator):
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
        self.llm, self.template = check_llm(llm), as_template(template)
        self.n, self.output = check_samples(n), check_output(output)
        self.params = SamplingParams.make(params, temperature=temperature, top_p=top_p,
                                          max_new_tokens=max_new_tokens, seed=seed, stop=stop, logprobs=logprobs)
        self.key_column, self.metadata, self.progress = key_column, metadata, progress

    # contract 2: pickles to configuration only (Generator.__getstate__), in this order
    _STATE = ("llm", "template", "output", "n", "params", "key_column", "metadata", "progress")

    @property
    def output_columns(self) -> list[str]:
        o = self.output
        meta = [f"{o}_sample", f"{o}_model", f"{o}_finish_reason", f"{o}_tokens", f"{o}_error"]
        return [o] + (meta if self.metadata else []) + ([f"{o}_logprobs"] if self.params.logprobs else [])

    # -- contract 1: map-callable -----------------------------------------------------------
    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        requests, finish = self._prepare(batch, indices)
        return finish(self._complete(requests, self.params))

    async def acall(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        """Async form for ``ds.map(gen.acall, batched=True)``: ``datasets`` then runs several batches
        at once, so an endpoint never idles at batch boundaries. Same rows as ``__call__``."""
        requests, finish = self._prepare(batch, indices)
        return finish(await self._acomplete(requests, self.params))

    def _prepare(self, batch: dict[str, list], indices: Sequence[int] | None):
        self._check_batch(batch)
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
        requests = self._row_requests(batch, indices, self.template, self.params.seed, self.key_column, self.n)
        return requests, lambda completions: self._rows(batch, cols, size, completions)

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
    def describe_config(self) -> dict[str, Any]:
        """Model identity, template verbatim, parameters and seed (``describe()`` adds type, format, versions)."""
        return {"output": self.output, "n": self.n, "params": self.params.model_dump(mode="json"),
                "seed": self.params.seed, "key_column": self.key_column, "template": self.template.describe(),
                "llm": self.llm.describe()}

    def __repr__(self) -> str:
        return f"TextGenerator({self.llm!r}, {self.template!r}, output={self.output!r}, n={self.n})"
