"""The generators' shared core (the counterpart of :mod:`synth_datasets.curate.base`).

A generator keeps the four contracts of DESIGN.md through :class:`Generator`:

- **configuration-only state** (contract 2): ``_STATE`` names the attributes pickled, in order, after a
  ``"format"`` entry holding the class's ``_FORMAT`` (bump it when a code change changes results:
  ``datasets`` does not see edits to a class body); :class:`~synth_datasets.llm.SamplingParams`
  attributes are pickled as plain dicts and rebuilt on unpickling, and ``_init_runtime`` recreates
  what is not configuration (counts, resolved options);
- **output-column checks**: :meth:`Generator._check_batch` refuses a batch that is not batched or
  that already holds one of :attr:`output_columns`;
- **describe** (contract 4): ``{"type", "format", ...describe_config(), "library"}``;
- **batching and the cache round-trip**: :meth:`Generator._complete` / :meth:`Generator._acomplete` send
  a batch of requests through :meth:`LLM.generate` (and its response cache), :meth:`Generator._row_requests`
  renders one request per row and sample with its derived seed, and :func:`input_columns` gives the
  input columns a generator returns beside its new ones (types kept).

A new generator writes only its prompts and parsing:

>>> from synth_datasets import LLM
>>> class Upper(Generator):
...     _STATE = ("llm", "template", "output")
...     def __init__(self, llm, template, *, output="upper"):
...         self.llm, self.template, self.output = check_llm(llm), as_template(template), check_output(output)
...     @property
...     def output_columns(self):
...         return [self.output]
...     def describe_config(self):
...         return {"output": self.output, "template": self.template.describe()}
>>> list(Upper(LLM(cache=False), "Shout {{ word }}.").__getstate__())
['format', 'llm', 'template', 'output']
"""

from __future__ import annotations

from typing import Any, Sequence

from .._versions import library_versions
from ..columns import check_new_columns
from ..errors import InvalidParameterError
from ..llm import LLM, ChatRequest, Completion, SamplingParams
from ..prompts import Template
from ..seeding import batch_size_of, check_batched, derive_seed, row_keys

__all__ = ["Configured", "Generator", "input_columns", "check_llm", "as_template", "check_output", "check_samples"]


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


def check_llm(llm: Any, what: str = "llm") -> LLM:
    """``llm`` when it is an :class:`LLM`, else an :class:`InvalidParameterError` saying how to make one."""
    if not isinstance(llm, LLM):
        raise InvalidParameterError(f"{what} must be an LLM, got {type(llm).__name__}. Use LLM() or LLM(url, model=...).")
    return llm


def as_template(template: Any, what: str = "template") -> Template:
    """A :class:`Template` (a string is the user message)."""
    if isinstance(template, str):
        template = Template(user=template)
    if not isinstance(template, Template):
        raise InvalidParameterError(f"{what} must be a Template or a string, got {type(template).__name__}.")
    return template


def check_output(output: Any) -> str:
    """``output`` when it is a non-empty column name."""
    if not isinstance(output, str) or not output:
        raise InvalidParameterError("output must be a non-empty column name.")
    return output


def check_samples(n: Any) -> int:
    """``n`` when it is an integer >= 1 (samples per input row)."""
    if not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"n={n!r} must be an integer >= 1 (samples per input row).")
    return n


def check_loop_args(owner: str, llm: Any, template: Any, *, reads: set[str], exactly: bool,
                    counts: dict[str, Any], fraction: tuple[str, Any]) -> None:
    """The arguments a model-driven loop (``Expand``, ``S3``) checks before its first round: an LLM and a
    Template that reads ``reads`` (exactly, or at most), integer ``counts`` >= 1 and a ``fraction`` in (0, 1]."""
    shown = " and ".join("{{ %s }}" % v for v in sorted(reads))
    if not isinstance(llm, LLM) or not isinstance(template, Template):
        raise InvalidParameterError(f"{owner} needs an LLM and a Template (reading {shown}).")
    if (template.variables != reads) if exactly else not template.variables <= reads:
        raise InvalidParameterError(f"{owner}'s template must read {'exactly' if exactly else 'only'} {shown}, it "
                                    f"reads {sorted(template.variables)}. Rewrite the template.")
    for name, v in counts.items():
        if not isinstance(v, int) or v < 1:
            raise InvalidParameterError(f"{name}={v!r} must be an integer >= 1.")
    name, v = fraction
    if not 0 < v <= 1:
        raise InvalidParameterError(f"{name}={v!r} must be in (0, 1].")


class Configured:
    """Configuration-only pickling (contract 2) for generators and their parts (roles, gates, pools).

    ``__getstate__`` is ``{"format": _FORMAT, <each _STATE attribute>}`` (``SamplingParams`` as dicts);
    ``__setstate__`` restores the attributes (``_SAMPLING`` ones rebuilt) and calls ``_init_runtime``.
    """

    _FORMAT: int | str = 1
    _STATE: tuple[str, ...] = ()
    _SAMPLING: tuple[str, ...] = ()  # SamplingParams attributes (pickled as dicts)

    def _init_runtime(self) -> None:
        """Recreate what is not configuration (after ``__init__`` and unpickling)."""

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = {"format": self._FORMAT}
        for k in self._STATE:
            v = getattr(self, k)
            state[k] = v.model_dump() if isinstance(v, SamplingParams) else v
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        self.__dict__.update(self._restore(state))
        self._init_runtime()

    def _restore(self, state: dict[str, Any]) -> dict[str, Any]:
        """The attributes for a pickled state: the ``_SAMPLING`` parameters rebuilt from their dicts."""
        for k in self._SAMPLING:
            if isinstance(state.get(k), dict):
                state[k] = SamplingParams(**state[k])
        return state


class Generator(Configured):
    """Base of the map-callables that call an LLM: state, format version, column checks, describe, batching.

    Subclasses set ``_STATE`` (the configuration attributes, in pickling order), may set ``_FORMAT``
    (default 1), and implement :attr:`output_columns` and :meth:`describe_config`.
    """

    _SAMPLING = ("params",)
    llm: LLM
    progress: bool = False

    # -- columns ------------------------------------------------------------------------------
    @property
    def output_columns(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_batch(self, batch: dict[str, list], *, hint: str = "Choose another output=") -> None:
        """A batched call whose batch holds none of the output columns yet."""
        check_batched(batch, type(self).__name__)
        check_new_columns(self.output_columns, batch, hint=hint)

    # -- batching through LLM.generate and its response cache ---------------------------------
    def _row_requests(self, batch: dict[str, list], indices: Sequence[int] | None, template: Template,
                      seed: int | None, key_column: str | None, samples: int | None = None):
        """One request per row (``samples=None``: seed ``(seed, key)``) or per row and sample
        (seed ``(seed, key, j)``), rendered lazily (an endpoint starts on the first rows while later
        ones are still being rendered)."""
        keys = row_keys(batch, indices, key_column)
        cols = list(batch)

        def requests():
            for i in range(batch_size_of(batch)):
                row = {c: batch[c][i] for c in cols}
                msgs = template.render(row, row_index=None if indices is None else int(indices[i]))
                if samples is None:
                    yield ChatRequest.of(msgs, derive_seed(seed, keys[i]))
                else:
                    for j in range(samples):
                        yield ChatRequest.of(msgs, derive_seed(seed, keys[i], j))

        return requests()

    def _complete(self, requests, params: SamplingParams, *, llm: LLM | None = None) -> list[Completion]:
        return (llm or self.llm).generate(requests, params, progress=self.progress)

    async def _acomplete(self, requests, params: SamplingParams, *, llm: LLM | None = None) -> list[Completion]:
        return await (llm or self.llm).agenerate(requests, params, progress=self.progress)

    # -- contract 4: describe -----------------------------------------------------------------
    def describe_config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Configuration for provenance: type, format version, the generator's settings, library versions."""
        return {"type": type(self).__name__, "format": self._FORMAT, **self.describe_config(),
                "library": library_versions()}
