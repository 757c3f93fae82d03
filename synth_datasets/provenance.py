"""Reading a ``provenance.json`` back (``synth-datasets build --from-provenance FILE``).

A pydantic schema checks the fields that decide what runs: ``builder`` (which script, its sha256) and
``params`` (the recorded parameters). The other fields (card, usage, library versions, steps, ...) are
information: they are kept as they are, so provenance files may gain fields without breaking this.

Example:
    >>> validate_provenance({"builder": {"name": "movie-reviews", "path": "builders/movie_reviews.py",
    ...                      "sha256": "ab", "registered": True}, "params": {"n": 4}}, "p.json")["params"]
    {'n': 4}
    >>> validate_provenance({"builder": "movie-reviews", "params": {}}, "p.json")
    Traceback (most recent call last):
    ...
    synth_datasets.errors.InvalidParameterError: --from-provenance p.json: field 'builder' must be an object ...
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError

from .errors import InvalidParameterError

_EXPECTED = {
    "builder": "an object {name, path, sha256, registered} (or null for a dataset published from Python)",
    "params": "an object of the builder's parameters, e.g. {\"n\": 200, \"seed\": 0}",
}


class BuilderRecord(BaseModel):
    """``provenance["builder"]``: what ``Builder.describe()`` wrote."""

    model_config = ConfigDict(extra="allow")

    name: StrictStr
    path: StrictStr
    sha256: StrictStr | None = None
    registered: StrictBool = False
    file: StrictStr | None = None  # the copy of the script shipped beside provenance.json


class ProvenanceInput(BaseModel):
    """The part of ``provenance.json`` that ``--from-provenance`` runs from."""

    model_config = ConfigDict(extra="allow")

    builder: BuilderRecord | None = None
    params: dict[str, Any]
    library: dict[str, Any] | None = None


def validate_provenance(data: Any, path: str) -> dict[str, Any]:
    """Return ``data`` if it is a provenance file that can be run again; else an
    :class:`InvalidParameterError` naming the first wrong field, what it holds and what it should hold."""
    if not isinstance(data, dict):
        raise InvalidParameterError(f"--from-provenance {path}: not a synth-datasets provenance file (the JSON is a "
                                    f"{type(data).__name__}, not an object). Pass the provenance.json of a dataset "
                                    "built with `synth-datasets build`.")
    try:
        ProvenanceInput.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith(("BuilderRecord", "function")))
        top = str(err["loc"][0]) if err["loc"] else ""
        expected = _EXPECTED.get(loc) or err["msg"].removeprefix("Input should be ").rstrip(".")
        if err["type"] == "missing":
            found = "is missing"
        else:
            found = f"holds {err.get('input')!r}"[:200]
        raise InvalidParameterError(
            f"--from-provenance {path}: field '{loc}' must be {expected}, but it {found}. The file was edited or "
            f"is not a synth-datasets provenance.json: fix '{top}', or use the provenance.json the build wrote."
        ) from None
    return data
