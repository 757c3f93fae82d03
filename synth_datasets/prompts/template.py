"""``Template``: a task specification rendered into chat messages in a sandboxed Jinja2 environment."""

from __future__ import annotations

import contextvars
import re
import time
from functools import cached_property
from typing import Any, Mapping, Sequence

from ..errors import MissingVariableError, TemplateError

_FORMAT_VERSION = 1
#: the longest rendered prompt (all messages together, in characters) a Template produces by default
MAX_PROMPT_CHARS = 1_000_000
#: the most items one ``range()`` in a template may have (Jinja's own sandbox allows 100,000)
MAX_RANGE = 10_000
#: loop iterations plus function/macro/method calls, all together, per rendered row
MAX_STEPS = 100_000
#: text produced per row (printed values and literal text, also inside ``{% set %}`` blocks and macros),
#: as a multiple of ``max_chars``
EMIT_FACTOR = 10
#: ``lipsum()`` at most this many paragraphs of at most this many words
MAX_LIPSUM = (5, 100)
#: a backstop: rendering one row stops after this many seconds (checked at every loop step and call)
MAX_RENDER_SECONDS = 10.0
_NUMBER = re.compile(r"\d+")
_BUDGET: contextvars.ContextVar["_Budget | None"] = contextvars.ContextVar("synth_datasets_template_budget",
                                                                          default=None)
_FIX_STEPS = "loop over fewer items, or compute the value in a column (ds.map) before rendering"


class _Budget:
    """What one row's rendering may still spend: steps (loop iterations and calls), produced text, time."""

    def __init__(self, max_chars: int):
        self.steps = self.ticks = self.emitted = 0
        self.max_emitted = EMIT_FACTOR * max_chars
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def step(self, n: int = 1) -> None:
        from jinja2.sandbox import SecurityError

        self.steps += n
        if self.steps > MAX_STEPS:
            raise SecurityError(f"it runs more than {MAX_STEPS:,} loop iterations and calls (the limit per row); "
                                f"{_FIX_STEPS}")
        self.tick()

    def tick(self) -> None:
        from jinja2.sandbox import SecurityError

        self.ticks += 1
        if not self.ticks % 256 and time.monotonic() > self.deadline:
            raise SecurityError(f"rendering one row took more than {MAX_RENDER_SECONDS:g} s (the time limit per "
                                f"row); {_FIX_STEPS}")

    def emit(self, n: int) -> None:
        from jinja2.sandbox import SecurityError

        self.emitted += n
        if self.emitted > self.max_emitted:
            raise SecurityError(f"it produces more than {self.max_emitted:,} characters of text (printed or "
                                f"captured in {{% set %}} blocks and macros; the limit is {EMIT_FACTOR} x max_chars); "
                                "print less, or raise Template(max_chars=...)")
        self.tick()


def _budget(context: Any = None) -> _Budget:
    """The running row's budget (set by ``Template.render``); a render outside it gets one per context."""
    b = _BUDGET.get()
    if b is None:
        b = getattr(context, "_synth_budget", None)
        if b is None:
            b = _Budget(MAX_PROMPT_CHARS)
            if context is not None:
                context._synth_budget = b
    return b


def _size(value: Any, limit: int, depth: int = 0) -> int:
    """About how many characters ``str(value)`` makes, counted only until it passes ``limit``."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bool, int, float, type(None))):
        return len(repr(value)) if not isinstance(value, int) or abs(value) < 10 ** 300 else 4300
    if depth < 8 and isinstance(value, Mapping):
        total = 2
        for k, v in value.items():
            total += _size(k, limit, depth + 1) + _size(v, limit, depth + 1) + 4
            if total > limit:
                break
        return total
    if depth < 8 and isinstance(value, (list, tuple, set, frozenset)):
        total = 2
        for v in value:
            total += _size(v, limit, depth + 1) + 2
            if total > limit:
                break
        return total
    return len(str(value)) if isinstance(value, (bytes, bytearray)) or depth >= 8 else 40


class _NoneValue(Exception):
    """A ``{{ ... }}`` printed None (e.g. a None inside a dict or list value)."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


def _none_path(value: Any, path: str = "", depth: int = 0) -> str | None:
    if value is None:
        return path
    if depth < 4 and isinstance(value, Mapping):
        for k, v in value.items():
            found = _none_path(v, f"{path}[{k!r}]", depth + 1)
            if found is not None:
                return found
    elif depth < 4 and isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _none_path(v, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
    return None


def _finalize(value: Any) -> Any:
    """Every ``{{ ... }}`` output passes here: a None (or a None inside a printed list/dict) is an error,
    not the text "None"."""
    where = _none_path(value)
    if where is not None:
        raise _NoneValue(where)
    return value


def _bounded(node):
    """Rewrite a parsed template so that every loop, ``~`` concatenation and piece of output passes
    through the budget filters (``_steps``, ``_concat``, ``_text``)."""
    from jinja2 import nodes
    from jinja2.visitor import NodeTransformer

    def filt(name: str, arg, lineno: int):
        return nodes.Filter(arg, name, [], [], None, None, lineno=lineno)

    class Bounds(NodeTransformer):
        def visit_For(self, node):
            node = self.generic_visit(node)
            node.iter = filt("_steps", node.iter, node.lineno)
            return node

        def visit_Call(self, node):
            node = self.generic_visit(node)
            if isinstance(node.node, nodes.Name) and node.node.name == "loop" and node.args:  # recursive loops
                node.args[0] = filt("_steps", node.args[0], node.lineno)
            return node

        def visit_Concat(self, node):
            node = self.generic_visit(node)
            return filt("_concat", nodes.List(node.nodes, lineno=node.lineno), node.lineno)

        def visit_Output(self, node):
            node = self.generic_visit(node)
            node.nodes = [filt("_text", nodes.Const(n.data, lineno=n.lineno), n.lineno)
                          if isinstance(n, nodes.TemplateData) else n for n in node.nodes]
            return node

    return Bounds().visit(node)


def _snippet(src: str) -> str:
    return f"template {src[:60]!r}{'...' if len(src) > 60 else ''}"


def _env(max_chars: int = MAX_PROMPT_CHARS):
    from jinja2 import StrictUndefined, pass_context
    from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
    from jinja2.utils import generate_lorem_ipsum

    def too_big(what: str, size: int) -> SecurityError:
        return SecurityError(f"{what} would make about {size:,} characters, more than the prompt limit "
                             f"max_chars={max_chars:,} (shorten it, or raise Template(max_chars=...))")

    def check_size(what: str, value: Any) -> None:
        size = _size(value, max_chars)
        if size > max_chars:
            raise too_big(what, size)

    def check_numbers(what: str, *values: Any) -> None:
        for v in values:
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > max_chars:
                raise too_big(what, abs(v))

    def check_format(what: str, fmt: str) -> None:
        for m in _NUMBER.finditer(fmt):  # a width or precision in a format string
            if len(m.group()) > 7 or int(m.group()) > max_chars:
                raise too_big(what, int(m.group()) if len(m.group()) < 30 else 10 ** 30)

    class Env(ImmutableSandboxedEnvironment):
        """The sandbox, plus limits on the operations that build huge values from a short template:
        ``*`` on strings and lists, ``**``, ``%``-format widths, width and count arguments of string
        methods and filters; ``+`` and ``~`` results, printed values and ``join`` are held to ``max_chars``;
        loops and calls share a step budget per row (:data:`MAX_STEPS`), ``range`` is held to
        :data:`MAX_RANGE` items and ``lipsum`` to :data:`MAX_LIPSUM`."""

        intercepted_binops = frozenset(["*", "**", "%", "+"])

        def _parse(self, source, name, filename):  # every parse (compile, meta) gets the budget hooks
            return _bounded(super()._parse(source, name, filename))

        def call_binop(self, context, operator, left, right):
            if operator == "+":
                if isinstance(left, (str, list, tuple)) and isinstance(right, type(left)) and \
                        len(left) + len(right) > max_chars:
                    raise too_big(f"{type(left).__name__} + {type(right).__name__}", len(left) + len(right))
            elif operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > max_chars:
                        raise too_big(f"{type(seq).__name__} * {n}", len(seq) * n)
            elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1:
                if right * max(1, abs(left).bit_length()) > 4096:
                    raise too_big(f"{left} ** {right}", 10 ** 30)
            elif operator == "%" and isinstance(left, str):
                check_format("a '%' format", left)
            return super().call_binop(context, operator, left, right)

        def wrap_str_format(self, value):
            wrapped = super().wrap_str_format(value)
            if wrapped is not None:  # checked when the template reads `'...'.format`
                check_format(f"str.{value.__name__}", value.__self__)
            return wrapped

        def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
            _budget(__context).step()
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, (str, list, tuple)):
                name = getattr(__obj, "__name__", "")
                if name == "join" and isinstance(owner, str) and args:
                    check_size("str.join", args[0])
                if name == "replace" and len(args) >= 2 and isinstance(args[1], str):
                    size = len(owner) + owner.count(args[0]) * len(args[1]) if isinstance(args[0], str) else 0
                    if size > max_chars:
                        raise too_big("str.replace", size)
                check_numbers(f"{type(owner).__name__}.{name}", *args, *kwargs.values())
            return super().call(__context, __obj, *args, **kwargs)

    # Sandboxed like transformers' chat templates: no attribute escapes, no mutation of inputs.
    @pass_context
    def finalize(context, value: Any) -> Any:
        value = _finalize(value)
        size = _size(value, max_chars)
        if size > max_chars:
            raise too_big("a printed value", size)
        _budget(context).emit(size)
        return value

    @pass_context
    def steps(context, iterable):
        budget = _budget(context)
        for item in iterable:
            budget.step()
            yield item

    @pass_context
    def concat(context, items):
        size = sum(_size(x, max_chars) for x in items)
        if size > max_chars:
            raise too_big("a '~' concatenation", size)
        _budget(context).step()
        return "".join(str(x) for x in items)

    @pass_context
    def text(context, value):  # literal text: a filter, so that it is not folded into a constant
        return value

    def capped_range(*args):
        r = range(*args)
        if len(r) > MAX_RANGE:
            raise SecurityError(f"range() of {len(r):,} items is more than the limit of {MAX_RANGE:,} items per range; "
                                f"{_FIX_STEPS}")
        return r

    def capped_lipsum(n: int = 5, html: bool = False, min: int = 20, max: int = 100):  # noqa: A002 (jinja's names)
        if not all(isinstance(v, int) for v in (n, min, max)) or n > MAX_LIPSUM[0] or max > MAX_LIPSUM[1]:
            raise SecurityError(f"lipsum(n={n!r}, max={max!r}) is over the limit of n={MAX_LIPSUM[0]} paragraphs "
                                f"and max={MAX_LIPSUM[1]} words; ask for less, or put the text in a column")
        return generate_lorem_ipsum(n=n, html=html, min=min, max=max)

    # Sandboxed like transformers' chat templates: no attribute escapes, no mutation of inputs.
    env = Env(undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False,
              finalize=finalize)
    env.globals.update(range=capped_range, lipsum=capped_lipsum)
    env.filters.update(_steps=steps, _concat=concat, _text=text)
    for name in ("center", "indent", "format", "slice", "batch", "replace"):
        env.filters[name] = _guarded_filter(env.filters[name], name, check_numbers, check_format, max_chars,
                                            too_big)
    for name in ("join", "tojson", "pprint", "string", "urlize", "wordwrap", "xmlattr"):
        env.filters[name] = _sized_filter(env.filters[name], name, check_size)
    return env


def _sized_filter(f, name: str, check_size):
    def sized(*args, **kwargs):
        values = [a for a in args if not hasattr(a, "environment")]  # skip the eval context
        if values:
            check_size(f"the {name} filter", values[0])
        return f(*args, **kwargs)

    if hasattr(f, "jinja_pass_arg"):
        sized.jinja_pass_arg = f.jinja_pass_arg
    return sized


def _guarded_filter(f, name: str, check_numbers, check_format, max_chars: int, too_big):
    def guarded(*args, **kwargs):
        values = [a for a in args if not hasattr(a, "environment")]  # skip the eval context
        check_numbers(f"the {name} filter", *values[1:], *kwargs.values())
        if name == "replace" and len(values) >= 3 and all(isinstance(v, str) for v in values[:3]):
            size = len(values[0]) + values[0].count(values[1]) * len(values[2])
            if size > max_chars:
                raise too_big("the replace filter", size)
        if name == "format" and values and isinstance(values[0], str):
            check_format("the format filter", values[0])
        return f(*args, **kwargs)

    for attr in ("jinja_pass_arg",):  # keep @pass_eval_context / @pass_environment markers
        if hasattr(f, attr):
            setattr(guarded, attr, getattr(f, attr))
    return guarded


class Template:
    """System + user messages (and optional few-shot turns) with ``{{ variable }}`` slots.

    Variables are filled from the columns of a row. A variable with no column is an error raised
    before any model call, naming the variable, the row and the columns that exist.

    Args:
        user (`str`): the user message (the task).
        system (`str`, *optional*): the system message (role, format, knowledge).
        examples (`list[dict]`, *optional*): few-shot turns, each ``{"user": ..., "assistant": ...}``;
            they may use variables too.
        max_chars (`int`, defaults to 1,000,000): the longest rendered prompt (all messages, in
            characters). Rendering stops as soon as a row goes past it, and operations that would build a
            longer value (``'a' * 10**9``, a huge ``center``/``indent``/format width) are refused, with a
            :class:`TemplateError` naming the row.

    A value printed with ``{{ ... }}`` that is None, or a list/dict holding a None (``{{ meta }}`` with
    ``meta={"year": None}``, ``{{ meta.year }}``), is an error naming the row and the path of the None,
    not the text "None". ``{% if meta.year %}`` still tests it freely.

    Example:
        >>> t = Template(system="You are a movie critic.", user="Write a {{ label }} review.")
        >>> sorted(t.variables)
        ['label']
        >>> t.render({"label": "positive"})[-1]
        {'role': 'user', 'content': 'Write a positive review.'}
    """

    def __init__(self, user: str, *, system: str | None = None,
                 examples: Sequence[Mapping[str, str]] | None = None, max_chars: int = MAX_PROMPT_CHARS):
        if not isinstance(user, str) or not user.strip():
            raise TemplateError("Template(user=...) must be a non-empty string: the task for the model.")
        if not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1:
            raise TemplateError(f"Template(max_chars={max_chars!r}) must be a positive integer (characters).")
        self.max_chars = max_chars
        self.user = user
        self.system = system
        self.examples = [dict(e) for e in (examples or [])]
        for i, e in enumerate(self.examples):
            if set(e) != {"user", "assistant"}:
                raise TemplateError(f"examples[{i}] must have exactly the keys 'user' and 'assistant', got {sorted(e)}.")
        self._compiled  # compile now: syntax errors surface at construction

    # -- pickling: sources only ------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = {"format": _FORMAT_VERSION, "user": self.user, "system": self.system, "examples": self.examples}
        if self.max_chars != MAX_PROMPT_CHARS:  # the default stays out: fingerprints of existing templates hold
            state["max_chars"] = self.max_chars
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.user, self.system, self.examples = state["user"], state["system"], state["examples"]
        self.max_chars = state.get("max_chars", MAX_PROMPT_CHARS)

    def _sources(self) -> list[tuple[str, str]]:
        out = [("system", self.system)] if self.system else []
        for e in self.examples:
            out += [("user", e["user"]), ("assistant", e["assistant"])]
        return out + [("user", self.user)]

    @cached_property
    def _compiled(self):
        from jinja2 import TemplateSyntaxError

        env = _env(self.max_chars)
        compiled = []
        for role, src in self._sources():
            try:
                compiled.append((role, env.from_string(src)))
            except TemplateSyntaxError as e:
                raise TemplateError(f"Template syntax error in the {role} message, line {e.lineno}: {e.message}. "
                                    f"Source: {src!r}") from e
            except RecursionError as e:
                raise TemplateError(f"The {role} message template is nested too deeply to compile "
                                    f"({_snippet(src)}). Flatten its blocks.") from e
            except Exception as e:  # noqa: BLE001 - anything else jinja raises while compiling
                raise TemplateError(f"The {role} message template does not compile ({type(e).__name__}: {e}; "
                                    f"{_snippet(src)}). Fix the template.") from e
        return compiled

    @cached_property
    def variables(self) -> frozenset[str]:
        """The variables the template reads."""
        from jinja2 import meta

        env = _env(self.max_chars)
        names: set[str] = set()
        for role, src in self._sources():
            try:
                names |= meta.find_undeclared_variables(env.parse(src))
            except RecursionError as e:
                raise TemplateError(f"The {role} message template is nested too deeply to compile "
                                    f"({_snippet(src)}). Flatten its blocks.") from e
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
        total = 0
        token = _BUDGET.set(_Budget(self.max_chars))  # one budget for the row's messages together
        try:
            for (role, tpl), (_, src) in zip(self._compiled, self._sources()):
                parts: list[str] = []
                try:
                    for chunk in tpl.generate(ctx):  # streamed: a runaway loop stops at the limit
                        total += len(chunk)
                        if total > self.max_chars:
                            raise TemplateError(
                                f"The rendered prompt for {where} is longer than max_chars={self.max_chars:,} characters "
                                f"(in the {role} message, {_snippet(src)}). Shorten the template or the row's values, "
                                "or raise Template(max_chars=...).")
                        parts.append(chunk)
                except TemplateError:
                    raise
                except UndefinedError as e:
                    raise MissingVariableError(f"{e.message} in {where}. Fix the template or the data.",
                                               variable=str(e.message), row=row_index) from e
                except _NoneValue:
                    nested = {k: p for k in sorted(ctx) if (p := _none_path(ctx[k])) is not None}
                    paths = ", ".join(f"{k}{p}" for k, p in nested.items()) or "a value the template computed"
                    raise MissingVariableError(
                        f"The {role} message prints a None value in {where} (None at: {paths}; {_snippet(src)}). Fill "
                        "it, drop the row, or guard it in the template ({% if ... %} or | default('')).",
                        variable=next(iter(nested), "?"), row=row_index) from None
                except Exception as e:  # SecurityError (incl. the size limits), RecursionError and friends
                    raise TemplateError(f"Cannot render the {role} message for {where} ({_snippet(src)}): "
                                        f"{type(e).__name__}: {str(e).rstrip('.')}. Fix the template or the data.") from e
                messages.append({"role": role, "content": "".join(parts).strip()})
        finally:
            _BUDGET.reset(token)
        return messages

    def describe(self) -> dict[str, Any]:
        """The template verbatim, for provenance."""
        d = {"type": "Template", "system": self.system, "user": self.user, "examples": self.examples,
             "variables": sorted(self.variables)}
        if self.max_chars != MAX_PROMPT_CHARS:
            d["max_chars"] = self.max_chars
        return d

    def __repr__(self) -> str:
        return f"Template(user={self.user!r}, system={self.system!r}, examples={len(self.examples)})"
