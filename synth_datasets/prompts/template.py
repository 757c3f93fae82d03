"""``Template``: a task specification rendered into chat messages in a sandboxed Jinja2 environment."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Mapping, Sequence

from ..errors import MissingVariableError, TemplateError

_FORMAT_VERSION = 1


def _env():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # Sandboxed like transformers' chat templates: no attribute escapes, no mutation of inputs.
    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                         keep_trailing_newline=False)


class Template:
    """System + user messages (and optional few-shot turns) with ``{{ variable }}`` slots.

    Variables are filled from the columns of a row. A variable with no column is an error raised
    before any model call, naming the variable, the row and the columns that exist.

    Args:
        user (`str`): the user message (the task).
        system (`str`, *optional*): the system message (role, format, knowledge).
        examples (`list[dict]`, *optional*): few-shot turns, each ``{"user": ..., "assistant": ...}``;
            they may use variables too.

    Example:
        >>> t = Template(system="You are a movie critic.", user="Write a {{ label }} review.")
        >>> sorted(t.variables)
        ['label']
        >>> t.render({"label": "positive"})[-1]
        {'role': 'user', 'content': 'Write a positive review.'}
    """

    def __init__(self, user: str, *, system: str | None = None,
                 examples: Sequence[Mapping[str, str]] | None = None):
        if not isinstance(user, str) or not user.strip():
            raise TemplateError("Template(user=...) must be a non-empty string: the task for the model.")
        self.user = user
        self.system = system
        self.examples = [dict(e) for e in (examples or [])]
        for i, e in enumerate(self.examples):
            if set(e) != {"user", "assistant"}:
                raise TemplateError(f"examples[{i}] must have exactly the keys 'user' and 'assistant', got {sorted(e)}.")
        self._compiled  # compile now: syntax errors surface at construction

    # -- pickling: sources only ------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "user": self.user, "system": self.system, "examples": self.examples}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.user, self.system, self.examples = state["user"], state["system"], state["examples"]

    def _sources(self) -> list[tuple[str, str]]:
        out = [("system", self.system)] if self.system else []
        for e in self.examples:
            out += [("user", e["user"]), ("assistant", e["assistant"])]
        return out + [("user", self.user)]

    @cached_property
    def _compiled(self):
        from jinja2 import TemplateSyntaxError

        env = _env()
        compiled = []
        for role, src in self._sources():
            try:
                compiled.append((role, env.from_string(src)))
            except TemplateSyntaxError as e:
                raise TemplateError(f"Template syntax error in the {role} message, line {e.lineno}: {e.message}. "
                                    f"Source: {src!r}") from e
        return compiled

    @cached_property
    def variables(self) -> frozenset[str]:
        """The variables the template reads."""
        from jinja2 import meta

        env = _env()
        names: set[str] = set()
        for _, src in self._sources():
            names |= meta.find_undeclared_variables(env.parse(src))
        return frozenset(names)

    def check_columns(self, columns: Sequence[str]) -> None:
        """Raise :class:`MissingVariableError` if a variable has no column."""
        missing = sorted(self.variables - set(columns))
        if missing:
            raise MissingVariableError(
                f"Template variable {missing[0]!r} has no column to fill it (row 0). Current columns: "
                f"{sorted(columns)}. Add the column (e.g. with Conditions) or rename the variable.",
                variable=missing[0], row=0)

    def render(self, row: Mapping[str, Any], *, row_index: int | None = None) -> list[dict[str, str]]:
        """Render one row into chat messages. A missing or None variable raises
        :class:`MissingVariableError` naming it and the row."""
        from jinja2 import UndefinedError

        where = f"row {row_index}" if row_index is not None else "the row"
        for v in sorted(self.variables):
            if v not in row or row[v] is None:
                raise MissingVariableError(
                    f"Template variable {v!r} is {'None' if v in row else 'missing'} in {where}"
                    f" (columns: {sorted(row)}). Fill it or drop the row before generating.",
                    variable=v, row=row_index)
        ctx = {k: row[k] for k in self.variables}
        messages = []
        for role, tpl in self._compiled:
            try:
                messages.append({"role": role, "content": tpl.render(ctx).strip()})
            except UndefinedError as e:
                raise MissingVariableError(f"{e.message} in {where}. Fix the template or the data.",
                                           variable=str(e.message), row=row_index) from e
            except Exception as e:  # SecurityError and friends
                raise TemplateError(f"Cannot render the {role} message for {where}: {e}") from e
        return messages

    def describe(self) -> dict[str, Any]:
        """The template verbatim, for provenance."""
        return {"type": "Template", "system": self.system, "user": self.user, "examples": self.examples,
                "variables": sorted(self.variables)}

    def __repr__(self) -> str:
        return f"Template(user={self.user!r}, system={self.system!r}, examples={len(self.examples)})"
