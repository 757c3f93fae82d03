"""Recipe: steps run in order and the record says, per step, what it was and what it did."""

import json

import pytest
from datasets import Dataset

from synth_datasets import LLM, Conditions, Recipe, RunRecord, TextGenerator
from synth_datasets.curate import ExactDuplicates, Length
from synth_datasets.errors import InvalidParameterError
from synth_datasets.recipe import bind_params


def upper(batch):
    return {"u": [t.upper() for t in batch["t"]]}


def test_steps_run_in_order_and_rows_are_counted_per_step():
    src = Dataset.from_dict({"t": ["a b", "A  b", "c d e f", "g", "c d e f"]})
    r = (Recipe("toy", source=src, seed=3, license="cc0-1.0")
         .map(upper, name="upper")
         .fit_filter(ExactDuplicates(column="t"), name="dedup", with_indices=True)
         .filter(Length(column="t", min_words=2), name="len"))
    ds, rec = r.run()
    assert ds["t"] == ["a b", "c d e f"] and ds["u"] == ["A B", "C D E F"]
    assert [(s.name, s.kind, s.rows_in, s.rows_out) for s in rec.steps] == [
        ("upper", "map", 5, 5), ("dedup", "fit_filter", 5, 3), ("len", "filter", 3, 2)]
    assert rec.rows_in == 5 and rec.rows_out == 2 and rec.seed == 3 and rec.card["license"] == "cc0-1.0"
    # describe() of each step; counters of the curators; the map kwargs that matter
    assert rec.steps[0].describe == {"type": "function", "qualname": "upper", "module": __name__}
    assert rec.steps[1].describe["type"] == "ExactDuplicates"
    assert rec.steps[1].stats == {"total": 5, "kept": 3, "dropped": 2, "dropped_exact_duplicate": 2}
    assert rec.steps[2].stats == {"total": 3, "kept": 2, "dropped": 1, "dropped_too_few_words": 1}
    assert rec.steps[1].kwargs == {"with_indices": True, "batched": True}
    assert all(s.seconds >= 0 and s.usage == {} and s.errors == 0 for s in rec.steps)


def test_token_usage_and_errors_per_step(fault_server, tmp_path):
    llm = LLM(fault_server.url, model="m", cache=tmp_path / "c.sqlite", max_retries=0)
    gen = TextGenerator(llm, "say {{ w }}", n=2, seed=1)
    src = Dataset.from_dict({"w": ["one two", "three", "[always500] four"]})
    r = Recipe("gen", source=src).map(Conditions(tone=["a", "b"], seed=0), name="cond").map(gen, name="gen")
    ds, rec = r.run()
    cond, step = rec.steps
    assert cond.usage == {}  # no LLM in that step
    assert step.rows_in == 3 and step.rows_out == 6
    assert step.errors == 2 == sum(e is not None for e in ds["text_error"])  # the two samples of the failing row
    assert step.usage["requests"] == 6 and step.usage["cache_hits"] == 0 and step.usage["errors"] == 2
    assert step.usage["completion_tokens"] == sum(ds["text_tokens"]) > 0
    assert step.usage["prompt_tokens"] == llm.stats["prompt_tokens"] > 0
    assert rec.usage == step.usage
    # the server is recorded (public URL); the cache identity is the model, not the port (issue 9 item 10)
    assert step.describe["llm"]["source"] == fault_server.url
    assert step.describe["llm"]["identity"]["model"] == "m" and "base_url" not in step.describe["llm"]["identity"]
    # again: every answer that succeeded comes from the cache, the failures are asked again
    _, again = Recipe("gen", source=src).map(Conditions(tone=["a", "b"], seed=0), name="cond").map(gen, name="gen").run()
    assert again.steps[1].usage["cache_hits"] == 4 and again.steps[1].usage["requests"] == 2
    # tokens paid now vs tokens held by the rows (the same rows, whether cached or not)
    assert again.steps[1].usage["completion_tokens"] == 0  # the two failures have no tokens
    assert again.steps[1].usage["row_completion_tokens"] == step.usage["row_completion_tokens"] == sum(ds["text_tokens"])


def test_record_round_trips_through_json():
    _, rec = Recipe("toy", source=Dataset.from_dict({"t": ["x"]}), params={"n": 1}).map(upper, name="u").run()
    rec.builder, rec.command = {"name": "toy", "sha256": "0" * 64}, "synth-datasets build toy"
    back = RunRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back == rec


def test_loose_steps_make_a_record_without_counts():
    rec = RunRecord.from_steps([Conditions(a=["x", "y"], seed=5), upper])
    assert [s.describe["type"] for s in rec.steps] == ["Conditions", "function"]
    assert rec.steps[0].describe["seed"] == 5 and rec.steps[0].rows_in is None


def test_a_failing_step_is_named(tmp_path):
    def boom(batch):
        raise RuntimeError("bad row")

    r = Recipe("toy", source=Dataset.from_dict({"t": ["x"]})).map(upper, name="ok").map(boom, name="explodes")
    with pytest.raises(RuntimeError) as e:
        r.run()
    assert "(in step 1 'explodes' of recipe 'toy')" in e.value.__notes__


def test_bad_steps_are_refused_when_added():
    r = Recipe("toy").map(upper, name="a")
    with pytest.raises(InvalidParameterError, match="already has a step named 'a'"):
        r.map(upper, name="a")
    with pytest.raises(InvalidParameterError, match="not callable"):
        r.map("upper")
    with pytest.raises(InvalidParameterError, match=r"has no fit\(ds\)"):
        r.fit_filter(Length(column="t", min_words=1))
    with pytest.raises(InvalidParameterError, match="Unknown Recipe option"):
        Recipe("toy", licence="mit")
    with pytest.raises(InvalidParameterError, match="has no source"):
        Recipe("toy").run()


def test_bind_params_fills_defaults_and_names_the_valid_ones():
    def recipe(*, n: int = 5, seed: int = 0, llm=None):
        pass

    assert bind_params(recipe, {"n": 2}) == {"n": 2, "seed": 0}
    with pytest.raises(InvalidParameterError, match=r"Unknown parameter\(s\) \['size'\].*\['n', 'seed'\]"):
        bind_params(recipe, {"size": 2})


def test_one_progress_bar_over_the_whole_run(capsys):
    def upper(b):
        return {"u": [x.upper() for x in b["t"]]}

    r = Recipe("upper", source=Dataset.from_dict({"t": ["a", "b", "a"]}))
    r.map(upper, name="upper").filter(lambda b: [x != "B" for x in b["u"]], name="no-b")
    ds, rec = r.run()
    err = capsys.readouterr().err
    # steps done, rows in each, rows/s and the ETA slot of tqdm, in one bar
    assert "Recipe upper: step 1/2 upper (3 rows)" in err and "Recipe upper: step 2/2 no-b (3 rows)" in err
    assert "Recipe upper: 2/2 steps done (2 rows)" in err and "6/6 row-steps" in err and "row/s]" in err
    r.run(progress=False)
    assert "Recipe upper" not in capsys.readouterr().err


def test_finish_reasons_are_counted_per_generating_step():
    def gen(b):
        return {"text": [f"t{i}" for i in b["i"]], "text_finish_reason": ["length" if i % 3 == 0 else "stop"
                                                                          for i in b["i"]]}

    r = Recipe("fr", source=Dataset.from_dict({"i": list(range(7))})).map(gen, name="gen")
    r.filter(lambda b: [f != "length" for f in b["text_finish_reason"]], name="drop")
    _, rec = r.run(progress=False)
    assert rec.steps[0].finish_reasons == {"text_finish_reason": {"length": 3, "stop": 4}}
    assert rec.steps[1].finish_reasons is None  # the filter added no such column
