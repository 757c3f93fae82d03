"""Input checks shared by the metrics: each error names the argument (and row) to fix."""

from __future__ import annotations

import numpy as np

from synth_datasets.errors import InvalidParameterError


def check_list(values, name: str, *, allow_empty: bool = False, what: str = "a list") -> list:
    """``values`` as a list with no None; ``what`` names the expected type in the error."""
    if values is None:
        raise InvalidParameterError(f"{name} is missing: pass {what}")
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not hasattr(values, "__getitem__"):
        raise InvalidParameterError(f"{name} must be {what}, got {type(values).__name__}")
    values = list(values)
    if not values and not allow_empty:
        raise InvalidParameterError(f"{name} is empty: pass at least one row")
    for i, v in enumerate(values):
        if v is None:
            raise InvalidParameterError(f"{name}[{i}] is None: drop or fill missing rows first")
    return values


def check_texts(texts, name: str = "texts") -> list[str]:
    texts = check_list(texts, name, what="a list of strings")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InvalidParameterError(f"{name}[{i}] is {type(t).__name__}, not str")
    return texts


def check_matrix(x, name: str, *, min_rows: int = 1) -> np.ndarray:
    """A finite float64 (n, d) array with d >= 1 and n >= ``min_rows``."""
    if x is None:
        raise InvalidParameterError(f"{name} is missing: pass an (n, d) array")
    try:
        x = np.asarray(x, dtype=np.float64)
    except (ValueError, TypeError) as e:
        raise InvalidParameterError(f"{name} must be an (n, d) array of numbers (ragged rows?): {e}") from e
    if x.ndim != 2 or x.shape[1] == 0:
        raise InvalidParameterError(f"{name} must be a 2-D (n, d) array with d >= 1, got shape {x.shape}")
    if x.shape[0] < min_rows:
        raise InvalidParameterError(f"{name} has {x.shape[0]} rows; at least {min_rows} are needed")
    if not np.isfinite(x).all():
        raise InvalidParameterError(f"{name} row {int(np.flatnonzero(~np.isfinite(x).all(1))[0])} has NaN or inf")
    return x


def check_int(v, name: str, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
        raise InvalidParameterError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)
