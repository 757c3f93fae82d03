"""Where the ``evaluate`` modules (``metrics/<name>/``) are, in a checkout or an installed package."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

METRICS = ("diversity", "faithfulness", "downstream", "preference")


def _candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    roots = [here.parent / "metrics"]  # a source checkout or an editable install
    for prefix in dict.fromkeys([sys.prefix, sys.exec_prefix, sysconfig.get_config_var("userbase") or ""]):
        if prefix:  # a wheel install puts them under <prefix>/share/synth-datasets/metrics
            roots.append(Path(prefix) / "share" / "synth-datasets" / "metrics")
    return roots


def metric_path(name: str) -> str:
    """The folder of the ``evaluate`` module ``name``, for ``evaluate.load(metric_path(name))``; works from
    any working folder, in a checkout and in an installed package.

    Args:
        name (`str`): ``"diversity"``, ``"faithfulness"``, ``"downstream"`` or ``"preference"``.

    Raises:
        FileNotFoundError: an unknown name (the message lists the modules), or an install without them.

    Example:
        >>> import evaluate
        >>> from synth_datasets import metric_path
        >>> diversity = evaluate.load(metric_path("diversity"))
        >>> diversity.compute(predictions=["the cat sat", "the dog ran"])["distinct_1"]
        0.8333333333333334
    """
    from .errors import InvalidParameterError

    if name not in METRICS:
        raise InvalidParameterError(f"No metric module {name!r}. The modules: {list(METRICS)}.")
    for root in _candidates():
        if (root / name / f"{name}.py").is_file():
            return os.fspath(root / name)
    raise FileNotFoundError(f"The evaluate module {name!r} is not installed (looked in "
                            f"{', '.join(map(str, _candidates()))}). Reinstall synth-datasets "
                            "(`pip install --force-reinstall synth-datasets`).")
