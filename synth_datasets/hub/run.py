"""``run_and_publish``: check a target, run a recipe, publish the result there.

The composition of :meth:`Recipe.run <synth_datasets.recipe.Recipe.run>` (which writes nothing) and
:func:`~synth_datasets.hub.publish.publish`, kept here so the recipe never imports ``hub``.
"""

from __future__ import annotations

import os
from typing import Any

from ..record import RunRecord
from .publish import check_target, publish


def run_and_publish(recipe: Any, target: str | os.PathLike, *, ds: Any = None, overwrite: bool = False,
                    progress: bool = True, **publish_options: Any) -> tuple[Any, RunRecord]:
    """Check ``target``, run ``recipe``, then ``publish(ds, target, record=record, ...)``.

    Everything :func:`publish` would refuse about the target (a non-empty folder without
    ``overwrite=True``, an unwritable path, an invalid repo id, a missing or refused token) is refused
    **before** the first step, so no generation is wasted.

    Args:
        recipe (`Recipe`): what to run.
        target (`str` or `Path`): a local folder or a Hub repo id, as for :func:`publish`.
        ds (`Dataset`, *optional*): the recipe's input; default: its ``source``.
        overwrite (`bool`, defaults to False): replace a non-empty local folder written by synth-datasets.
        progress (`bool`, defaults to True): the run's progress bar.
        **publish_options: the other options of :func:`publish` (``push_to_hub``, ``private``,
            ``token``, ``metrics``, ``report``, card options, ...).

    Returns:
        `tuple`: the dataset and the :class:`~synth_datasets.record.RunRecord`, as ``recipe.run()``.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from datasets import Dataset
        >>> from synth_datasets import Recipe
        >>> r = Recipe("upper", source=Dataset.from_dict({"text": ["a b", "c d"]}))
        >>> r = r.map(lambda b: {"text": [t.upper() for t in b["text"]]}, name="upper")
        >>> out = Path(tempfile.mkdtemp()) / "out"
        >>> ds, record = run_and_publish(r, out, metrics=[], report=False, progress=False)
        >>> ds["text"], (out / "provenance.json").is_file()
        (['A B', 'C D'], True)
    """
    check_target(target, overwrite=overwrite, token=publish_options.get("token"),
                 push_to_hub=publish_options.get("push_to_hub"))
    ds, record = recipe.run(ds, progress=progress)
    publish(ds, target, record=record, overwrite=overwrite, **publish_options)
    return ds, record
