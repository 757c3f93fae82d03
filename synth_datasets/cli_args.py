"""Argument helpers shared by the ``synth-datasets`` commands (``cli.py``, ``comparison/cli.py``): a builder
parameter's option type, and arguments made fit for a published card.

Example:
    >>> import inspect
    >>> def recipe(*, n=50, model: str | None = None, sample=True): ...
    >>> [type_of(p).__name__ for p in inspect.signature(recipe).parameters.values()]
    ['int', 'str', 'bool']
    >>> public_arg("--n")
    '--n'
"""

from __future__ import annotations

import inspect
from pathlib import Path


def type_of(p: inspect.Parameter) -> type:
    """The type a command-line option of builder parameter ``p`` parses to: its default's type, else the
    annotation's (``int``, ``float``, else ``str``); ``bool`` for a flag."""
    if isinstance(p.default, bool):
        return bool
    if p.default is not None and p.default is not p.empty:
        return type(p.default)
    ann = str(p.annotation)
    return int if "int" in ann else float if "float" in ann else str


def public_arg(arg: str) -> str:
    """An argument fit for a published card: an absolute path (or ``~/...``) becomes relative to the
    working folder, or its last part, so no machine path is recorded.

    >>> public_arg("/home/me/builders/my_builder.py") in ("my_builder.py", "home/me/builders/my_builder.py")
    True
    >>> public_arg("--n")
    '--n'
    """
    if not (arg.startswith(("/", "~")) or (len(arg) > 2 and arg[1] == ":" and arg[2] in "\\/")):
        return arg
    p = Path(arg).expanduser()
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return p.name or arg
