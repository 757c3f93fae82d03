"""The run record: what a recipe run did, step by step (ground floor: imports nothing of the library).

:class:`Step` is one step of a :class:`~synth_datasets.recipe.Recipe`; :class:`StepRecord` is what it did
(rows in and out, wall time, token usage, errors, curation stats); :class:`RunRecord` is the whole run, the
core of ``provenance.json`` and of the dataset card. ``Recipe.run`` makes the record,
:func:`synth_datasets.publish` writes it; neither imports the other, both import this module.

Example:
    >>> rec = RunRecord.from_steps([str.upper], name="shout")
    >>> [(s.name, s.describe["qualname"]) for s in rec.steps]
    [('upper', 'str.upper')]
    >>> RunRecord.from_dict(rec.to_dict()) == rec
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

_FORMAT_VERSION = 1  # of RunRecord.to_dict (the "format" key of provenance.json's run part)

#: token usage keys summed per step and per run (``cached_*``: what the cached rows cost when made)
USAGE_KEYS = ("requests", "cache_hits", "prompt_tokens", "completion_tokens", "errors", "retries",
              "cached_prompt_tokens", "cached_completion_tokens", "batch_requests")  # batch_*: via a Batch API
#: what a recipe (or ``publish(**card)``) may say about its dataset for the card
CARD_KEYS = frozenset({"license", "task_categories", "source_datasets", "tags", "language", "pretty_name",
                       "description", "text_column", "label_columns", "class_labels"})


@dataclass
class Step:
    """One step of a recipe: ``kind`` is ``map``, ``filter``, ``fit_map`` or ``fit_filter``
    (``obj.fit(ds)`` first, then ``map``/``filter`` with it); ``kwargs`` go to ``Dataset.map``/``filter``."""

    kind: str
    fn: Callable
    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def obj(self) -> Any:
        """The configured object behind the callable (the instance of a bound method such as ``gen.acall``)."""
        return getattr(self.fn, "__self__", None) or self.fn


@dataclass
class StepRecord:
    index: int
    name: str
    kind: str
    describe: dict[str, Any]
    rows_in: int | None = None
    rows_out: int | None = None
    seconds: float | None = None
    usage: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    stats: dict[str, Any] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    finish_reasons: dict[str, dict[str, int]] | None = None  # per new ``*_finish_reason`` column: reason -> rows
    rounds: list[dict[str, Any]] | None = None  # a loop step's rounds: conditions, made, kept, metrics


@dataclass
class RunRecord:
    """What a recipe run did. ``to_dict()`` is the core of ``provenance.json``."""

    name: str
    params: dict[str, Any]
    seed: int | None
    steps: list[StepRecord]
    rows_in: int | None = None
    rows_out: int | None = None
    seconds: float | None = None
    usage: dict[str, int] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)  # license, task_categories, text_column, ...
    builder: dict[str, Any] | None = None  # name, path, sha256 of the builder script
    command: str | None = None  # the command as typed (secrets never reach it: there is no token option)
    reproduce: str | None = None  # the canonical command that repeats the run

    def to_dict(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunRecord":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["steps"] = [StepRecord(**{k: v for k, v in s.items() if k in StepRecord.__dataclass_fields__})
                      for s in d.get("steps", [])]
        return cls(**d)

    @classmethod
    def from_steps(cls, steps, *, name: str = "dataset") -> "RunRecord":
        """A record for loose step objects (no row counts): what ``publish(steps=[...])`` describes."""
        recs = [StepRecord(i, default_step_name(s), "step", describe_step(s)) for i, s in enumerate(steps)]
        return cls(name=name, params={}, seed=None, steps=recs)


def default_step_name(fn: Any) -> str:
    """A step's name when none is given: the function's ``__name__``, or the class name of the object.

    >>> default_step_name(str.upper), default_step_name(RunRecord.from_steps([]))
    ('upper', 'RunRecord')
    """
    obj = getattr(fn, "__self__", None) or fn
    return getattr(obj, "__name__", None) or type(obj).__name__


def describe_step(fn: Any) -> dict[str, Any]:
    """``describe()`` of a step; for a plain function, its qualified name and module.

    >>> describe_step(str.upper)
    {'type': 'function', 'qualname': 'str.upper', 'module': None}
    """
    obj = getattr(fn, "__self__", None) or fn
    if hasattr(obj, "describe"):
        return obj.describe()
    return {"type": "function", "qualname": getattr(obj, "__qualname__", repr(obj)),
            "module": getattr(obj, "__module__", None)}


def steps_of_type(steps: Any, type_name: str) -> list[tuple[Mapping[str, Any], dict[str, Any]]]:
    """``(step, describe)`` for each recorded step (``RunRecord.to_dict()["steps"]`` or a provenance's
    ``steps``) whose ``describe()["type"]`` is ``type_name``: what a card section reads about one kind of step.

    >>> steps_of_type([{"name": "d", "describe": {"type": "Decontaminate"}}, {"name": "x"}], "Decontaminate")
    [({'name': 'd', 'describe': {'type': 'Decontaminate'}}, {'type': 'Decontaminate'})]
    """
    return [(s, s.get("describe") or {}) for s in steps or () if (s.get("describe") or {}).get("type") == type_name]

