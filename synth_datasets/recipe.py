"""``Recipe``: a named, ordered list of steps that runs on a dataset and records what each step did.

The record (:class:`RunRecord`, :mod:`synth_datasets.record`) is what :func:`synth_datasets.publish` turns
into the dataset card and ``provenance.json``: every step's ``describe()``, rows in and out, wall time,
token usage and errors. This module knows nothing of publishing (``hub`` imports the record, not the recipe).
"""

from __future__ import annotations

import inspect
import sys
import time
from collections import Counter
from dataclasses import asdict
from typing import Any, Callable, Mapping

from .errors import GenerationError, InvalidParameterError
from .record import CARD_KEYS, USAGE_KEYS, RunRecord, Step, StepRecord, default_step_name, describe_step

__all__ = ["Recipe", "bind_params", "llms_of", "KINDS",  # and, re-exported from synth_datasets.record:
           "Step", "StepRecord", "RunRecord", "USAGE_KEYS", "CARD_KEYS", "describe_step", "default_step_name"]

KINDS = ("map", "filter", "fit_map", "fit_filter", "loop")


def llms_of(obj: Any) -> list:
    """LLMs held by a step (as attributes, or in lists/dicts of attributes), each once (usage is read from
    their ``stats``; the CLI loads them before a run)."""
    from .llm import LLM

    if callable(getattr(obj, "llms", None)):  # a composite step (a chain, a loop) lists its own
        return list(obj.llms())
    found: dict[int, Any] = {}

    def visit(v: Any, depth: int) -> None:
        if isinstance(v, LLM):
            found.setdefault(id(v), v)
        elif depth < 2 and isinstance(v, (list, tuple)):
            for x in v:
                visit(x, depth + 1)
        elif depth < 2 and isinstance(v, dict):
            for x in v.values():
                visit(x, depth + 1)
        elif depth < 1 and hasattr(v, "__dict__") and not isinstance(v, type):
            for x in vars(v).values():
                visit(x, depth + 1)

    for v in (vars(obj).values() if hasattr(obj, "__dict__") else ()):
        visit(v, 0)
    return list(found.values())


def _error_count(ds, before: set[str]) -> int:
    """Non-null values in the ``*_error`` columns a step added."""
    cols = [c for c in ds.column_names if c.endswith("_error") and c not in before]
    if not cols:
        return 0
    table = ds.select_columns(cols).with_format("arrow")[:]
    return sum(table.num_rows - table.column(c).null_count for c in cols)


def _all_failed(ds, before: set[str]) -> tuple[str, str] | None:
    """``(column, first error)`` when a step's new ``*_error`` column is set on every row."""
    cols = [c for c in ds.column_names if c.endswith("_error") and c not in before]
    if not cols or ds.num_rows == 0:
        return None
    table = ds.select_columns(cols).with_format("arrow")[:]
    for c in cols:
        if table.column(c).null_count == 0:
            return c, str(table.column(c)[0].as_py())
    return None


def _column_sum(ds, cols: list[str]) -> int:
    import pyarrow.compute as pc

    if not cols:
        return 0
    table = ds.select_columns(cols).with_format("arrow")[:]
    return int(sum(pc.sum(table.column(c)).as_py() or 0 for c in cols))


def _finish_reasons(ds, before: set[str]) -> dict[str, dict[str, int]] | None:
    """Rows per finish reason in each ``*_finish_reason`` column a step added (``length``: truncated)."""
    cols = [c for c in ds.column_names if c.endswith("_finish_reason") and c not in before]
    if not cols:
        return None
    table = ds.select_columns(cols).with_format("arrow")[:]
    return {c: {str(k): v for k, v in sorted(Counter(table.column(c).to_pylist()).items(), key=str)} for c in cols}


class _Progress:
    """One bar over a whole run, in rows: rows each step has taken in, rows/s, and an ETA from the rate so
    far (the rows still to come are estimated as the current rows for every remaining step)."""

    def __init__(self, name: str, steps: list[Step], rows: int, enabled: bool):
        self.steps, self.bar = steps, None
        if enabled and steps:
            from tqdm.auto import tqdm

            self.name = name
            self.bar = tqdm(total=rows * len(steps), desc=f"Recipe {name}", unit="row", dynamic_ncols=True,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} row-steps "
                                       "[{elapsed}<{remaining}, {rate_fmt}]")
            self.show(0, rows)

    def show(self, i: int, rows: int) -> None:
        if self.bar is not None:
            step = f"step {i + 1}/{len(self.steps)} {self.steps[i].name}" if i < len(self.steps) else \
                f"{len(self.steps)}/{len(self.steps)} steps done"
            self.bar.set_description_str(f"Recipe {self.name}: {step} ({rows} rows)")

    def step_done(self, i: int, rows_in: int, rows_out: int) -> None:
        if self.bar is not None:
            self.bar.total = self.bar.n + rows_in + rows_out * (len(self.steps) - i - 1)
            self.bar.update(rows_in)
            self.show(i + 1, rows_out)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _jsonable(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if isinstance(v, (str, int, float, bool, type(None)))}


class Recipe:
    """A named, ordered list of steps: map-callables, filters, and fit-then-map curators.

    Args:
        name (`str`): the dataset's name (e.g. ``"movie-reviews"``).
        source (`Dataset` or callable, *optional*): the input of the first step, or a function
            returning it; ``run(ds)`` may pass one instead.
        params (`dict`, *optional*): the parameters that made this recipe (builders fill them in).
        seed (`int`, *optional*): the recipe's seed (steps record their own seeds in ``describe()``).
        **card: what the dataset card says about the result: ``license``, ``task_categories``,
            ``source_datasets``, ``tags``, ``language``, ``pretty_name``, ``description``,
            ``text_column`` (plotted and measured), ``label_columns`` (their distributions are plotted),
            ``class_labels`` (``{"label": [...]}``: published as a ``ClassLabel`` over that label set).

    Example:
        >>> from datasets import Dataset
        >>> r = Recipe("upper", source=Dataset.from_dict({"t": ["a", "b", "a"]}))
        >>> r = r.map(lambda b: {"u": [x.upper() for x in b["t"]]}, name="upper")
        >>> r = r.filter(lambda b: [x != "B" for x in b["u"]], name="no-b")
        >>> ds, record = r.run()
        >>> list(ds["u"]), [(s.name, s.rows_in, s.rows_out) for s in record.steps]
        (['A', 'A'], [('upper', 3, 3), ('no-b', 3, 2)])
    """

    def __init__(self, name: str, *, source: Any = None, params: Mapping[str, Any] | None = None,
                 seed: int | None = None, **card: Any):
        if not isinstance(name, str) or not name.strip():
            raise InvalidParameterError("Recipe needs a non-empty name, e.g. Recipe('movie-reviews').")
        unknown = set(card) - CARD_KEYS
        if unknown:
            raise InvalidParameterError(f"Unknown Recipe option(s) {sorted(unknown)}. Valid: {sorted(CARD_KEYS)}.")
        self.name, self.source, self.seed = name, source, seed
        self.params = dict(params or {})
        self.card = dict(card)
        self.steps: list[Step] = []

    def _add(self, kind: str, fn: Any, name: str | None, kwargs: dict[str, Any]) -> "Recipe":
        if kind == "loop" and not callable(getattr(fn, "run", None)):
            raise InvalidParameterError(f"Step {name or fn!r} has no run(ds): a loop step needs a Loop (e.g. SelfInstruct).")
        if kind != "loop" and not callable(fn):
            raise InvalidParameterError(f"Step {name or fn!r} is not callable: a {kind} step needs a map-callable.")
        if kind.startswith("fit_") and not callable(getattr(fn, "fit", None)):
            raise InvalidParameterError(f"Step {name or type(fn).__name__!r} has no fit(ds): use map/filter for it.")
        name = name or default_step_name(fn)
        if any(s.name == name for s in self.steps):
            raise InvalidParameterError(f"Recipe {self.name!r} already has a step named {name!r}. Pass name=.")
        kwargs.setdefault("batched", True)
        self.steps.append(Step(kind, fn, name, kwargs))
        return self

    def map(self, fn: Callable, *, name: str | None = None, **map_kwargs: Any) -> "Recipe":
        """Add ``ds.map(fn, batched=True, **map_kwargs)``."""
        return self._add("map", fn, name, map_kwargs)

    def filter(self, fn: Callable, *, name: str | None = None, **filter_kwargs: Any) -> "Recipe":
        """Add ``ds.filter(fn, batched=True, **filter_kwargs)``."""
        return self._add("filter", fn, name, filter_kwargs)

    def fit_map(self, obj: Any, *, name: str | None = None, **map_kwargs: Any) -> "Recipe":
        """Add ``obj.fit(ds)`` then ``ds.map(obj, ...)``."""
        return self._add("fit_map", obj, name, map_kwargs)

    def fit_filter(self, obj: Any, *, name: str | None = None, **filter_kwargs: Any) -> "Recipe":
        """Add ``obj.fit(ds)`` then ``ds.filter(obj, ...)`` (e.g. deduplication)."""
        return self._add("fit_filter", obj, name, filter_kwargs)

    def loop(self, obj: Any, *, name: str | None = None) -> "Recipe":
        """Add a dataset-wise loop (``obj.run(ds)``, e.g. ``SelfInstruct``): its rounds are recorded and
        checkpointed, so a killed run resumes at the last finished round."""
        return self._add("loop", obj, name, {})

    def describe(self) -> dict[str, Any]:
        return {"type": "Recipe", "name": self.name, "params": self.params, "seed": self.seed,
                "steps": [{"name": s.name, "kind": s.kind, **describe_step(s.fn)} for s in self.steps]}

    def _source(self, ds: Any):
        if ds is not None:
            return ds
        if self.source is None:
            raise InvalidParameterError(f"Recipe {self.name!r} has no source: pass run(ds) or Recipe(source=...).")
        return self.source() if callable(self.source) else self.source

    def _declare(self, ds: Any) -> Any:
        """Once the card's ``text_column`` exists, the data declares it (curators with no ``column=``
        read it; see :mod:`synth_datasets.columns`)."""
        column = self.card.get("text_column")
        if column and column in getattr(ds, "column_names", ()):
            from .columns import declare_text_column

            ds = declare_text_column(ds, column)
        return ds

    def run(self, ds: Any = None, *, progress: bool = True, **unknown: Any) -> tuple[Any, RunRecord]:
        """Run every step in order; return the dataset and the :class:`RunRecord`.

        Token usage is read from the ``stats`` of each LLM a step holds (in this process: with
        ``num_proc>1`` the workers' calls are not counted). A failing step re-raises with a note
        naming the step. The run writes nothing: ``publish(ds, target, record=record)`` does, and
        ``run_and_publish(recipe, target)`` checks the target first, runs, then publishes.

        Args:
            ds (`Dataset`, *optional*): the input; default: the recipe's ``source``.
            progress (`bool`, defaults to True): one bar over the whole run (steps done, rows/s, ETA),
                besides each step's own bar.
        """
        if unknown:
            raise InvalidParameterError(
                f"Recipe.run() takes no {', '.join(map(repr, sorted(unknown)))}. To check a target, run, then "
                "publish there: synth_datasets.run_and_publish(recipe, target, overwrite=..., ...).")
        ds = self._declare(self._source(ds))
        records, total = [], Counter()
        start = time.perf_counter()
        rows_in = ds.num_rows
        bar = _Progress(self.name, self.steps, rows_in, progress)
        for i, step in enumerate(self.steps):
            llms = llms_of(step.obj)
            before = [Counter(llm.stats) for llm in llms]
            cols, n_in, t0 = set(ds.column_names), ds.num_rows, time.perf_counter()
            try:
                if step.kind.startswith("fit_"):
                    step.fn.fit(ds)
                if step.kind == "loop":
                    ds = self._declare(step.fn.run(ds))
                else:
                    op = ds.map if step.kind in ("map", "fit_map") else ds.filter
                    ds = self._declare(op(step.fn, **step.kwargs))
                failed = _all_failed(ds, cols)
                if failed:
                    raise GenerationError(
                        f"Step {step.name!r} of recipe {self.name!r} produced only error rows ({ds.num_rows} of "
                        f"{ds.num_rows} in {failed[0]!r}). First error: {failed[1]} Fix that cause (model, URL, "
                        "key, parameters) and run again; answers already received are cached.")
            except Exception as e:
                bar.close()
                if sys.version_info >= (3, 11):
                    e.add_note(f"(in step {i} {step.name!r} of recipe {self.name!r})")
                raise
            usage = Counter()
            for llm, b in zip(llms, before):
                usage.update({k: llm.stats.get(k, 0) - b.get(k, 0) for k in USAGE_KEYS})
            usage = {k: int(usage.get(k, 0)) for k in USAGE_KEYS} if llms else {}
            if llms:  # completion tokens held by the rows, cached or not (stats count only tokens paid now)
                usage["row_completion_tokens"] = _column_sum(ds, [c for c in ds.column_names
                                                                  if c.endswith("_tokens") and c not in cols])
            total.update(usage)
            stats = getattr(step.obj, "stats", None)
            records.append(StepRecord(
                index=i, name=step.name, kind=step.kind, describe=describe_step(step.fn), rows_in=n_in,
                rows_out=ds.num_rows, seconds=round(time.perf_counter() - t0, 3), usage=usage,
                errors=_error_count(ds, cols), stats=dict(stats) if isinstance(stats, Mapping) else None,
                kwargs=_jsonable(step.kwargs), finish_reasons=_finish_reasons(ds, cols),
                rounds=[asdict(r) for r in step.obj.rounds] if step.kind == "loop" else None))
            bar.step_done(i, n_in, ds.num_rows)
        bar.close()
        record = RunRecord(name=self.name, params=dict(self.params), seed=self.seed, steps=records,
                           rows_in=rows_in, rows_out=ds.num_rows, seconds=round(time.perf_counter() - start, 3),
                           usage={k: int(total.get(k, 0)) for k in (*USAGE_KEYS, "row_completion_tokens")},
                           card=dict(self.card))
        return ds, record

    def __repr__(self) -> str:
        return f"Recipe({self.name!r}, steps={[s.name for s in self.steps]})"


def bind_params(fn: Callable, params: Mapping[str, Any], *, exclude: tuple[str, ...] = ("llm",)) -> dict[str, Any]:
    """``params`` completed with ``fn``'s defaults; unknown names are an error listing the valid ones."""
    sig = inspect.signature(fn)
    valid = [n for n in sig.parameters if n not in exclude]
    unknown = sorted(set(params) - set(sig.parameters))
    if unknown:
        raise InvalidParameterError(f"Unknown parameter(s) {unknown} for {getattr(fn, '__module__', fn)}. "
                                    f"Valid parameters: {valid}.")
    try:
        bound = sig.bind(**params)
    except TypeError as e:
        raise InvalidParameterError(f"{e}. Valid parameters: {valid}.") from e
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in exclude}
