"""StructuredGenerator: schema -> typed columns, constrained decoding on the embedded model, validate and
retry, llama.cpp's server with response_format."""

from __future__ import annotations

import json
from typing import Literal, Optional

import pyarrow as pa
import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher
from pydantic import BaseModel, Field

from synth_datasets import LLM, StructuredGenerator, Template
from synth_datasets.errors import InvalidParameterError
from synth_datasets.generate.schema import Schema, arrow_type, schema_features


class Character(BaseModel):
    name: str = Field(min_length=1, max_length=24)
    role: Literal["lead", "support", "villain"]


class Movie(BaseModel):
    title: str = Field(min_length=1, max_length=40)
    genre: Literal["drama", "comedy", "horror", "action", "romance"]
    rating: int = Field(ge=1, le=10)
    characters: list[Character] = Field(min_length=1, max_length=3)


TEMPLATE = Template(user="Invent a {{ mood }} movie: its title, genre, a rating from 1 to 10 and its main characters.")
MOODS = ["dark", "funny", "sad", "thrilling", "romantic", "strange"]


def _valid(row: dict) -> None:
    Movie.model_validate({k: row[k] for k in ("title", "genre", "rating", "characters")})


# -- schema -> Arrow / Features, validation (no model) --------------------------------------------------
def test_nested_schema_becomes_typed_arrow_columns_and_features():
    s = Schema(Movie)
    assert s.fields == ["title", "genre", "rating", "characters"]  # property order kept
    assert s.arrow_type() == pa.struct([("title", pa.string()), ("genre", pa.string()), ("rating", pa.int64()),
                                        ("characters", pa.list_(pa.struct([("name", pa.string()),
                                                                           ("role", pa.string())])))])
    feats = schema_features(Movie)
    assert feats["rating"].dtype == "int64" and feats["characters"].feature["role"].dtype == "string"
    # Optional -> the type itself (nullable); a union of types and a free-form object -> JSON text
    other = {"type": "object", "properties": {
        "when": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        "either": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "extra": {"type": "object"},
        "flags": {"type": "array", "items": {"type": "boolean"}}}}
    assert arrow_type(other) == pa.struct([("when", pa.float64()), ("either", pa.string()),
                                           ("extra", pa.string()), ("flags", pa.list_(pa.bool_()))])
    assert Schema(other).to_arrow_value({"when": 1, "either": 3, "extra": {"a": [1]}, "flags": [True]}) == {
        "when": 1.0, "either": "3", "extra": '{"a": [1]}', "flags": [True]}


def test_validation_messages_name_the_field_and_the_rule():
    s = Schema(Movie)
    good = {"title": "Dusk", "genre": "drama", "rating": 7, "characters": [{"name": "Ann", "role": "lead"}]}
    assert s.validate("Here it is:\n```json\n" + json.dumps(good) + "\n```") == (good, None)
    _, err = s.validate(json.dumps({**good, "rating": 11, "genre": "western"}))
    assert "at genre: 'western' is not one of" in err and "at rating: 11 is greater than the maximum of 10" in err
    _, err = s.validate(json.dumps({**good, "characters": [{"name": "Ann", "role": "hero"}]}))
    assert err.startswith("at characters.0.role: 'hero' is not one of")
    assert s.validate('{"title": "Du')[1].startswith("invalid JSON")
    assert s.validate("no json here")[1].startswith("no JSON found")


def test_bad_configuration_fails_before_any_model_call():
    llm = LLM("http://127.0.0.1:9/v1", model="m")  # nothing listens there: nothing may be sent
    with pytest.raises(InvalidParameterError, match="Invalid JSON schema"):
        StructuredGenerator(llm, TEMPLATE, schema={"type": "object", "properties": {"a": {"type": "nope"}}})
    with pytest.raises(InvalidParameterError, match="flatten=True needs an object schema"):
        StructuredGenerator(llm, TEMPLATE, schema={"type": "array", "items": {"type": "string"}})
    gen = StructuredGenerator(llm, TEMPLATE, schema=Movie)
    with pytest.raises(InvalidParameterError, match="Output column 'title' already exists"):
        gen({"mood": ["dark"], "title": ["x"]})
    with pytest.raises(InvalidParameterError, match="response_format="):
        StructuredGenerator(llm, TEMPLATE, schema=Movie, response_format="xml")


def test_fingerprint_is_configuration_only():
    llm = LLM("http://127.0.0.1:9/v1", model="m")
    a = StructuredGenerator(llm, TEMPLATE, schema=Movie, seed=1)
    b = StructuredGenerator(llm, TEMPLATE, schema=Movie.model_json_schema(), seed=1)
    assert Hasher.hash(a) == Hasher.hash(StructuredGenerator(llm, TEMPLATE, schema=Movie, seed=1))
    assert Hasher.hash(a) != Hasher.hash(b)  # the pydantic model (validators) is part of the configuration
    assert Hasher.hash(a) != Hasher.hash(StructuredGenerator(llm, TEMPLATE, schema=Character, seed=1))
    assert Hasher.hash(a) != Hasher.hash(StructuredGenerator(llm, TEMPLATE, schema=Movie, seed=1, retries=0))


# -- the embedded model: constrained decoding -------------------------------------------------------------
@pytest.mark.slow
def test_constrained_decoding_gives_valid_typed_rows(embedded_llm):
    gen = StructuredGenerator(embedded_llm, TEMPLATE, schema=Movie, output="movie", temperature=0.8,
                              max_new_tokens=160, seed=3)
    ds = Dataset.from_dict({"mood": MOODS}).map(gen, batched=True, batch_size=6)
    assert ds.num_rows == len(MOODS)
    assert ds["movie_error"] == [None] * len(MOODS), ds["movie_error"]
    assert ds["movie_attempts"] == [1] * len(MOODS)  # right the first time: no retry needed
    assert ds.features["rating"].dtype == "int64" and ds.features["characters"].feature["name"].dtype == "string"
    for row in ds:
        _valid(row)
        assert json.loads(row["movie_raw"])["title"] == row["title"]  # the raw reply is the record itself
        assert row["mood"] in MOODS and row["movie_finish_reason"] == "stop"
    assert len(set(ds["title"])) > 1  # sampled, not one fixed record
    d = gen.describe()
    assert d["schema"]["json_schema"]["properties"]["rating"]["maximum"] == 10
    assert d["response_format_used"] == "json_schema" and d["retries"] == 2


@pytest.mark.slow
def test_constrained_sample_depends_only_on_its_seed(embedded_llm):
    """The grammar mask is applied per row before the seeded sampler: a row's record is the same alone
    or beside other rows."""
    gen = StructuredGenerator(embedded_llm, TEMPLATE, schema=Movie, temperature=1.0, max_new_tokens=160, seed=11)
    from synth_datasets.llm import LLM as _LLM  # a cache-less copy, so both runs really generate

    fresh = _LLM(batch_size=32, cache=False)
    fresh._backend = embedded_llm.backend
    gen.llm = fresh
    together = gen({"mood": ["dark", "funny", "sad"]}).to_pylist()
    alone = gen({"mood": ["funny"]}).to_pylist()
    assert alone[0]["record_raw"] == together[1]["record_raw"]
    assert all(r["record_error"] is None for r in together)


@pytest.mark.slow
def test_invalid_rows_are_asked_again_then_marked(embedded_llm):
    """Without constraints (and without the schema in the prompt), a rule the model cannot guess fails: each row is asked again with the error fed
    back, then kept as an error row with the message; the run goes on and the valid rows are kept."""
    schema = {"type": "object", "title": "Code", "properties": {
        "code": {"type": "string", "pattern": "^ZQX-[0-9]{5}$"}}, "required": ["code"]}
    gen = StructuredGenerator(embedded_llm, "Give a code for {{ mood }}.", schema=schema, response_format=None,
                              schema_in_prompt=False, retries=1, max_new_tokens=40, temperature=0.0)
    before = embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"]
    rows = gen({"mood": ["a", "b"]}).to_pylist()
    asked = embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"] - before
    assert asked == 4  # two rows, each asked twice
    for r in rows:
        assert r["code"] is None and r["record_attempts"] == 2
        assert r["record_error"]  # the validation message, kept for the row
    # the retry carried the bad reply and the error back to the model
    reqs = gen._instructed(gen._prepare({"mood": ["a"]}, None)[0])
    from synth_datasets.generate.structured import _Attempts

    run = _Attempts(reqs, gen.schema, 1)
    run.take(embedded_llm.generate(run.requests(), gen.params))
    retry = run.requests()[0].messages
    assert retry[-2][0] == "assistant" and "That reply is not valid: " + run.errors[0] in retry[-1][1]


# -- llama.cpp's server ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_llama_server_with_response_format(llama_server, tmp_path):
    llm = LLM(llama_server, model="smollm2", cache=tmp_path / "c.sqlite")
    gen = StructuredGenerator(llm, TEMPLATE, schema=Movie, temperature=0.8, max_new_tokens=160, seed=5)
    ds = Dataset.from_dict({"mood": MOODS[:4]}).map(gen, batched=True)
    # llama-cpp-python's server refuses the OpenAI form (HTTP 500 naming response_format) and takes
    # {"type": "json_object", "schema": ...}; its grammar ignores integer bounds, so validation still matters
    assert gen.describe()["response_format_used"] == "json_object"
    assert ds["record_error"] == [None] * 4, ds["record_error"]
    for row in ds:
        _valid(row)
    assert ds.features["characters"].feature["role"].dtype == "string"


def test_decoding_schema_is_closed_but_validation_is_not():
    from synth_datasets.generate.structured import closed

    c = closed(Movie.model_json_schema())
    assert c["additionalProperties"] is False and c["$defs"]["Character"]["additionalProperties"] is False
    assert closed({"type": "object", "properties": {"a": {}}, "additionalProperties": True})["additionalProperties"]
    extra = {"title": "Dusk", "genre": "drama", "rating": 7, "characters": [{"name": "A", "role": "lead", "x": 1}]}
    assert Schema(Movie).validate(json.dumps(extra))[1] is None  # extras are still valid when they come back


def test_optional_fields_are_null_not_missing():
    class Opt(BaseModel):
        a: int
        b: Optional[str] = None

    s = Schema(Opt)
    value, err = s.validate('{"a": 3}')
    assert err is None and s.to_arrow_value(value) == {"a": 3, "b": None}
