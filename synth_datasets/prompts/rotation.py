"""``TemplateRotation``: several templates, one per row (Meng et al. 2022), chosen by a column that
:class:`Conditions` draws with the row's seed, so the chosen template's id is in the data."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Mapping, Sequence

from ..errors import InvalidParameterError, MissingVariableError, TemplateError
from .template import Template

_FORMAT_VERSION = 1


class TemplateRotation(Template):
    """A Template that renders each row with the template named in its ``column``.

    Draw the column with :class:`Conditions` (``Conditions(template_id=rotation.ids, seed=...)``: seeded
    per row, weights allowed), then pass the rotation wherever a Template goes (``TextGenerator``).
    Every template's variables are required (a row may be given any of them).

    Args:
        templates (`dict[str, Template | str]` or `list`): id -> template (a string is a user message);
            a list gets ids ``"t0"``, ``"t1"``, ...
        column (`str`, defaults to ``"template_id"``): the column holding each row's template id.

    Example:
        >>> rot = TemplateRotation(["Write a {{ label }} review.", "Review a film; make it {{ label }}."])
        >>> rot.ids
        ['t0', 't1']
        >>> rot.render({"template_id": "t1", "label": "positive"})[-1]["content"]
        'Review a film; make it positive.'
    """

    def __init__(self, templates: Mapping[str, Template | str] | Sequence[Template | str], *,
                 column: str = "template_id"):
        if isinstance(templates, (str, Template)) or not templates:
            raise TemplateError("TemplateRotation needs at least two templates (a list or an id -> template dict).")
        items = templates.items() if isinstance(templates, Mapping) else ((f"t{i}", t) for i, t in enumerate(templates))
        self.templates: dict[str, Template] = {}
        for tid, t in items:
            if isinstance(t, str):
                t = Template(user=t)
            if not isinstance(t, Template) or isinstance(t, TemplateRotation):
                raise TemplateError(f"Template {tid!r} must be a Template or a string, got {type(t).__name__}.")
            self.templates[str(tid)] = t
        if len(self.templates) < 2:
            raise TemplateError("TemplateRotation needs at least two templates; with one, use that Template.")
        if not isinstance(column, str) or not column.isidentifier():
            raise InvalidParameterError(f"column={column!r} must be a column name.")
        self.column = column
        self.user, self.system, self.examples = "", None, []

    @property
    def ids(self) -> list[str]:
        return list(self.templates)

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "column": self.column, "templates": self.templates}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["templates"], column=state["column"])

    @cached_property
    def variables(self) -> frozenset[str]:
        return frozenset({self.column}.union(*(t.variables for t in self.templates.values())))

    @property
    def _compiled(self):  # each template compiled itself at construction
        return []

    def render(self, row: Mapping[str, Any], *, row_index: int | None = None) -> list[dict[str, str]]:
        tid = row.get(self.column)
        if tid not in self.templates:
            where = f"row {row_index}" if row_index is not None else "the row"
            raise MissingVariableError(
                f"Column {self.column!r} of {where} is {tid!r}, not a template id of this rotation ({self.ids}). "
                f"Draw it with Conditions({self.column}=rotation.ids).", variable=self.column, row=row_index)
        return self.templates[tid].render(row, row_index=row_index)

    def describe(self) -> dict[str, Any]:
        return {"type": "TemplateRotation", "format": _FORMAT_VERSION, "column": self.column,
                "templates": {tid: t.describe() for tid, t in self.templates.items()},
                "variables": sorted(self.variables)}

    def __repr__(self) -> str:
        return f"TemplateRotation({self.ids}, column={self.column!r})"
