"""JSON schemas for structured generation: from a pydantic model or a dict, to Arrow types and
``datasets.Features``, and the validation every generated record goes through.

>>> schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1},
...           "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["n"]}
>>> arrow_type(schema)
StructType(struct<n: int64, tags: list<item: string>>)
>>> Schema(schema).validate('{"n": 0}')[1]
'at n: 0 is less than the minimum of 1'
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from ..errors import InvalidParameterError

_JSON_TEXT = "json-text"  # a part of a schema with no single Arrow type is kept as JSON text


def _resolve(s: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while isinstance(s, dict) and "$ref" in s:
        ref = s["$ref"]
        if not ref.startswith("#/"):
            raise InvalidParameterError(f"Schema reference {ref!r} is not local: inline it or put it under $defs.")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            raise InvalidParameterError(f"Schema reference {ref!r} points at nothing. Fix the $ref or $defs.")
        s = {**node, **{k: v for k, v in s.items() if k != "$ref"}}
        seen += 1
        if seen > 32:
            raise InvalidParameterError(f"Schema reference {ref!r} is recursive: Arrow columns need a finite shape.")
    return s


def _kind(s: dict[str, Any], root: dict[str, Any], depth: int = 0) -> Any:
    """A nested description: 'string' | 'int' | 'float' | 'bool' | JSON text | ('list', kind) |
    ('struct', [(name, kind), ...])."""
    if depth > 32:
        raise InvalidParameterError("The schema nests deeper than 32 levels (recursive?): Arrow columns need a finite shape.")
    s = _resolve(s, root)
    for key in ("anyOf", "oneOf"):
        if key in s:
            options = [o for o in s[key] if _resolve(o, root).get("type") != "null"]
            return _kind(options[0], root, depth + 1) if len(options) == 1 else _JSON_TEXT
    if "allOf" in s and len(s["allOf"]) == 1:
        return _kind({**s["allOf"][0], **{k: v for k, v in s.items() if k != "allOf"}}, root, depth + 1)
    values = s["enum"] if "enum" in s else [s["const"]] if "const" in s else None
    if values is not None:
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {str}:
            return "string"
        if kinds <= {int}:
            return "int"
        if kinds <= {int, float}:
            return "float"
        if kinds <= {bool}:
            return "bool"
        return _JSON_TEXT
    t = s.get("type")
    if isinstance(t, list):
        t = [x for x in t if x != "null"]
        t = t[0] if len(t) == 1 else None
    if t is None:
        t = "object" if "properties" in s else "array" if "items" in s else None
    if t == "string":
        return "string"
    if t == "integer":
        return "int"
    if t == "number":
        return "float"
    if t == "boolean":
        return "bool"
    if t == "array" and isinstance(s.get("items"), dict):
        return ("list", _kind(s["items"], root, depth + 1))
    if t == "object" and s.get("properties"):
        return ("struct", [(name, _kind(p, root, depth + 1)) for name, p in s["properties"].items()])
    return _JSON_TEXT


def _arrow(kind: Any):
    import pyarrow as pa

    if isinstance(kind, tuple):
        if kind[0] == "list":
            return pa.list_(_arrow(kind[1]))
        return pa.struct([pa.field(name, _arrow(k)) for name, k in kind[1]])
    return {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
            _JSON_TEXT: pa.string()}[kind]


def arrow_type(schema: dict[str, Any]):
    """The Arrow type of values of ``schema``: objects are structs (property order kept), arrays lists,
    enums the type of their values; a part with no single type (a free-form object, a union of types)
    is a string column holding its JSON text."""
    return _arrow(_kind(schema, schema))


def _convert(value: Any, kind: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, tuple):
        if kind[0] == "list":
            return [_convert(v, kind[1]) for v in value] if isinstance(value, list) else None
        if not isinstance(value, dict):
            return None
        return {name: _convert(value.get(name), k) for name, k in kind[1]}
    if kind == _JSON_TEXT:
        return json.dumps(value, ensure_ascii=False)
    try:
        return {"string": str, "int": int, "float": float, "bool": bool}[kind](value)
    except (TypeError, ValueError):
        return None


class Schema:
    """A JSON schema (from a dict or a pydantic model class) with its Arrow shape and a validator.

    Every record is checked with ``jsonschema`` against the JSON schema and, when a pydantic model
    was given and can be imported, with ``model.model_validate`` too (its own validators included).
    """

    def __init__(self, schema: Any):
        self.model = None
        if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
            self.model = schema
            self.json = schema.model_json_schema()
        elif isinstance(schema, dict):
            self.json = json.loads(json.dumps(schema))  # a plain, JSON-able copy
        else:
            raise InvalidParameterError(f"schema must be a pydantic model class or a JSON Schema dict, got "
                                        f"{type(schema).__name__}.")
        import jsonschema

        try:
            cls = jsonschema.validators.validator_for(self.json)
            cls.check_schema(self.json)
        except jsonschema.SchemaError as e:
            raise InvalidParameterError(f"Invalid JSON schema at {'/'.join(map(str, e.path)) or 'its root'}: "
                                        f"{e.message}. Fix the schema.") from e
        self._validator = cls(self.json)
        self.kind = _kind(self.json, self.json)
        self.model_ref = None
        if self.model is not None and "<locals>" not in self.model.__qualname__:
            self.model_ref = f"{self.model.__module__}:{self.model.__qualname__}"

    @classmethod
    def from_state(cls, json_schema: dict[str, Any], model_ref: str | None) -> "Schema":
        """Rebuild from pickled state: the model class by import when it can be, else the JSON schema."""
        model = None
        if model_ref:
            module, _, qual = model_ref.partition(":")
            try:
                model = importlib.import_module(module)
                for part in qual.split("."):
                    model = getattr(model, part)
            except (ImportError, AttributeError):
                model = None
        out = cls(model if model is not None and model.model_json_schema() == json_schema else json_schema)
        return out

    @property
    def is_object(self) -> bool:
        return isinstance(self.kind, tuple) and self.kind[0] == "struct"

    @property
    def fields(self) -> list[str]:
        return [name for name, _ in self.kind[1]] if self.is_object else []

    def arrow_type(self):
        return _arrow(self.kind)

    def field_types(self) -> dict[str, Any]:
        return {name: _arrow(k) for name, k in self.kind[1]} if self.is_object else {}

    def to_arrow_value(self, value: Any) -> Any:
        return _convert(value, self.kind)

    def validate(self, text: str | None) -> tuple[Any, str | None]:
        """``(value, None)`` for a reply that holds a valid record, else ``(None, message)``. The JSON
        may sit inside a code fence or after some words; the first JSON value found is the record."""
        if text is None:
            return None, "no reply"
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        if start < 0:
            return None, f"no JSON found in the reply: {text[:120]!r}"
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError as e:
            return None, f"invalid JSON: {e.msg} at character {start + e.pos}"
        errors = sorted(self._validator.iter_errors(value), key=lambda e: list(map(str, e.path)))
        if errors:
            msgs = [f"at {'.'.join(map(str, e.path)) or 'the top level'}: {e.message}" for e in errors[:3]]
            more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
            return None, "; ".join(msgs) + more
        if self.model is not None:
            try:
                value = self.model.model_validate(value).model_dump(mode="json")
            except ValueError as e:
                return None, " ".join(str(e).split())[:300]
        return value, None

    def describe(self) -> dict[str, Any]:
        return {"json_schema": self.json, "model": self.model_ref}


def schema_features(schema: Any):
    """``datasets.Features`` of the columns a record of ``schema`` becomes (one per top-level property).

    >>> schema_features({"type": "object", "properties": {"k": {"type": "string"}}})
    {'k': Value('string')}
    """
    import datasets
    import pyarrow as pa

    s = schema if isinstance(schema, Schema) else Schema(schema)
    if not s.is_object:
        return datasets.Features.from_arrow_schema(pa.schema([pa.field("value", s.arrow_type())]))
    return datasets.Features.from_arrow_schema(pa.schema([pa.field(n, t) for n, t in s.field_types().items()]))
