"""``TaskSpec``: the task specification of a prompt (survey §3.1.1) stated as fields, not one string.

Role-play prologue ("Suppose you are a ...", Li et al. 2023c), the text type / label type /
label-word verbalizer triplet of Yoo et al. (2021), requirements (AttrPrompt's numbered list of
conditions), format clarification and domain knowledge passages (Xu et al. 2023b). It renders into a
:class:`Template`'s system and user messages and *is* a Template, so it goes wherever one goes
(``TextGenerator(llm, spec)``), and the card records both the fields and the messages verbatim.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from ..errors import MissingVariableError, TemplateError
from .template import Template

_FORMAT_VERSION = 1


def _literal(v: Any) -> str:
    """A Jinja literal for a label or its word (strings JSON-quoted: valid Jinja string literals)."""
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise TemplateError(f"verbalizer keys and words must be strings or integers, got {v!r}.")
    return json.dumps(v) if isinstance(v, str) else str(int(v))


class TaskSpec(Template):
    """A task specification that renders into system + user messages.

    The system message: ``Suppose you are {role}.`` followed by the knowledge passages. The user
    message: ``Please write a {text_type}`` (``whose {label_type} is {word}`` when a label is given,
    ``word`` the verbalizer's word for the row's ``label_column``), then ``{{ demos }}`` when
    ``demos_variable`` is set, then the numbered ``requirements`` (Jinja, may use condition columns),
    then the ``format`` clarification. ``user=`` replaces the generated user message entirely (the
    fields then shape the system message only).

    Args:
        text_type (`str`): what to write, e.g. ``"movie review"``.
        role (`str`, *optional*): who writes it, e.g. ``"a film critic for a national newspaper"``.
        label_type (`str`, *optional*): what the label is, e.g. ``"sentiment"``.
        label_column (`str`, defaults to ``"label"``): the row column holding the label.
        verbalizer (`dict`, *optional*): label value -> word in the prompt (``{0: "negative", 1: "positive"}``);
            without it the label value itself is written. A row whose label has no word is an error.
        requirements (`list[str]`, *optional*): numbered requirements, Jinja allowed (``"Mention {{ topic }}."``).
        format (`str`, *optional*): format clarification, e.g. ``"Output only the review, 30 to 80 words."``.
        knowledge (`list[str]`, *optional*): domain knowledge passages, inserted verbatim (no Jinja).
        demos_variable (`str`, *optional*): a column holding demonstrations (see :class:`Demonstrations`).
        user (`str`, *optional*): your own user message instead of the generated one.
        examples: few-shot turns, as in :class:`Template`.

    Example:
        >>> spec = TaskSpec(text_type="movie review", role="a film critic", label_type="sentiment",
        ...                 verbalizer={1: "positive", 0: "negative"}, requirements=["The style is {{ style }}."],
        ...                 format="Output only the review.")
        >>> [m["content"] for m in spec.render({"label": 1, "style": "calm"})]
        ['Suppose you are a film critic.', 'Please write a movie review whose sentiment is positive, following the requirements below:\\n1. The style is calm.\\nOutput only the review.']
    """

    FIELDS = ("text_type", "role", "label_type", "label_column", "verbalizer", "requirements", "output_format",
              "knowledge", "demos_variable", "user_override")

    def __init__(self, text_type: str, *, role: str | None = None, label_type: str | None = None,
                 label_column: str = "label", verbalizer: Mapping[Any, str] | None = None,
                 requirements: Sequence[str] | None = None, format: str | None = None,
                 knowledge: Sequence[str] | None = None, demos_variable: str | None = None,
                 user: str | None = None, examples: Sequence[Mapping[str, str]] | None = None):
        if not isinstance(text_type, str) or not text_type.strip():
            raise TemplateError("TaskSpec needs text_type, what to write: e.g. TaskSpec('movie review').")
        for name, v in (("role", role), ("label_type", label_type), ("format", format),
                        ("demos_variable", demos_variable), ("user", user)):
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise TemplateError(f"TaskSpec {name}= must be a non-empty string or None, got {v!r}.")
        for name, v in (("requirements", requirements), ("knowledge", knowledge)):
            if v is not None and (isinstance(v, str) or not all(isinstance(x, str) and x.strip() for x in v)):
                raise TemplateError(f"TaskSpec {name}= must be a list of non-empty strings, got {v!r}.")
        if not isinstance(label_column, str) or not label_column.isidentifier():
            raise TemplateError(f"label_column={label_column!r} must be a column name usable in a template.")
        self.text_type, self.role, self.label_type = text_type.strip(), role, label_type
        self.label_column = label_column
        self.verbalizer = None if verbalizer is None else {k: v for k, v in verbalizer.items()}
        if self.verbalizer is not None:
            for k, v in self.verbalizer.items():
                _literal(k), _literal(v)
                if not isinstance(v, str):
                    raise TemplateError(f"verbalizer[{k!r}]={v!r}: each label's word must be a string.")
        self.requirements = list(requirements or [])
        self.output_format, self.knowledge = format, list(knowledge or [])
        self.demos_variable, self.user_override = demos_variable, user
        super().__init__(user or self._user_source(), system=self._system_source(), examples=examples)

    # -- rendering into messages ----------------------------------------------------------------
    def _system_source(self) -> str | None:
        parts = []
        if self.role:
            role = self.role.strip().rstrip(".")
            parts.append(f"Suppose you are {role}.")
        if self.knowledge:
            passages = "\n".join(f"- {p.strip()}" for p in self.knowledge)
            parts.append("{% raw %}Use this background knowledge:\n" + passages + "{% endraw %}")
        return "\n\n".join(parts) or None

    def _label_expr(self) -> str:
        col = self.label_column
        if self.verbalizer is None:
            return "{{ " + col + " }}"
        table = ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in self.verbalizer.items())
        return "{{ {" + table + "}[" + col + "] }}"

    def _user_source(self) -> str:
        task = f"Please write a {self.text_type}"
        if self.label_type:
            task += f" whose {self.label_type} is {self._label_expr()}"
        elif self.verbalizer is not None:
            task += f" that is {self._label_expr()}"
        lines = [task + (", following the requirements below:" if self.requirements else ".")]
        lines += [f"{i}. {r.strip()}" for i, r in enumerate(self.requirements, 1)]
        if self.demos_variable:
            lines.append("Here are some examples:\n{{ " + self.demos_variable + " }}")
        if self.output_format:
            lines.append(self.output_format.strip())
        return "\n".join(lines)

    def render(self, row: Mapping[str, Any], *, row_index: int | None = None) -> list[dict[str, str]]:
        if self.verbalizer is not None and self.user_override is None and self.label_column in row:
            label = row[self.label_column]
            if label is not None and label not in self.verbalizer:
                where = f"row {row_index}" if row_index is not None else "the row"
                raise MissingVariableError(
                    f"Label {label!r} in column {self.label_column!r} of {where} has no word in the verbalizer "
                    f"(labels: {list(self.verbalizer)}). Add it to verbalizer= or drop the row.",
                    variable=self.label_column, row=row_index)
        return super().render(row, row_index=row_index)

    # -- contracts ---------------------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.FIELDS}

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "type": "TaskSpec", **self.fields(), "examples": self.examples}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None), state.pop("type", None)
        fields = {f: state[f] for f in self.FIELDS}
        fields["user"], fields["format"] = fields.pop("user_override"), fields.pop("output_format")
        self.__init__(fields.pop("text_type"), examples=state.get("examples"), **fields)

    def describe(self) -> dict[str, Any]:
        """The fields, and the messages they render into (verbatim, as a Template record)."""
        fields = self.fields()
        if fields["verbalizer"] is not None:  # JSON-safe: label values may be ints
            fields["verbalizer"] = [[k, v] for k, v in fields["verbalizer"].items()]
        return {"type": "TaskSpec", "format": _FORMAT_VERSION, "spec": fields, "template": super().describe()}

    def __repr__(self) -> str:
        return f"TaskSpec({self.text_type!r}, role={self.role!r}, label_type={self.label_type!r})"
