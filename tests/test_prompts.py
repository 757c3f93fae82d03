import pickle
from collections import Counter

import pytest
from datasets import Dataset

from synth_datasets import Conditions, InvalidParameterError, MissingVariableError, Template, TemplateError


def test_template_variables_and_messages():
    t = Template(system="You are a {{ role }}.", user="Write a {{ label }} review of {{ movie | upper }}.",
                 examples=[{"user": "Write a review of X.", "assistant": "X is fine."}])
    assert t.variables == {"role", "label", "movie"}
    msgs = t.render({"role": "critic", "label": "positive", "movie": "alien", "extra": 1})
    assert msgs == [
        {"role": "system", "content": "You are a critic."},
        {"role": "user", "content": "Write a review of X."},
        {"role": "assistant", "content": "X is fine."},
        {"role": "user", "content": "Write a positive review of ALIEN."},
    ]


def test_template_loop_variables_are_not_required():
    t = Template(user="{% for w in words %}{{ w }} {% endfor %}")
    assert t.variables == {"words"}
    assert t.render({"words": ["a", "b"]})[0]["content"] == "a b"


def test_missing_variable_names_variable_and_row():
    t = Template(user="Write a {{ label }} review, {{ style }}.")
    with pytest.raises(MissingVariableError) as e:
        t.check_columns(["label", "id"])
    assert e.value.variable == "style" and "style" in str(e.value) and "['id', 'label']" in str(e.value)
    with pytest.raises(MissingVariableError) as e:
        t.render({"label": "good", "style": None}, row_index=7)
    assert e.value.variable == "style" and e.value.row == 7 and "row 7" in str(e.value)


def test_template_syntax_error_is_clear():
    with pytest.raises(TemplateError, match="syntax error in the user message"):
        Template(user="Write {{ label ")


def test_template_is_sandboxed():
    t = Template(user="{{ x.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError):
        t.render({"x": "s"})


def test_template_pickles_to_sources():
    t = Template(user="Hi {{ name }}", system="S")
    t2 = pickle.loads(pickle.dumps(t))
    assert t2.render({"name": "Bo"}) == t.render({"name": "Bo"})
    assert set(t.__getstate__()) == {"format", "user", "system", "examples"}


def test_conditions_deterministic_across_batch_sizes_and_processes(tmp_path):
    c = Conditions(label=["positive", "negative"], style=["calm", "intense", "dry"], seed=3)
    ds = Dataset.from_dict({"id": list(range(60))})
    a = ds.map(c, batched=True, batch_size=7)
    b = ds.map(c, batched=True, batch_size=60)
    path = tmp_path / "ds"
    ds.save_to_disk(str(path))
    from datasets import load_from_disk

    d = load_from_disk(str(path)).map(c, batched=True, batch_size=5, num_proc=2)
    assert a["label"] == b["label"] == d["label"] and a["style"] == b["style"] == d["style"]
    # uses every value and is not constant
    assert set(a["label"]) == {"positive", "negative"} and set(a["style"]) == {"calm", "intense", "dry"}
    # another seed draws differently
    e = ds.map(Conditions(label=["positive", "negative"], style=["calm", "intense", "dry"], seed=4), batched=True)
    assert e["style"] != a["style"]


def test_conditions_with_indices_and_duplicate_rows():
    c = Conditions(label=list("abcdefgh"), seed=0)
    ds = Dataset.from_dict({"x": [0] * 40})  # identical rows still get independent draws
    out = ds.map(c, batched=True, batch_size=40)
    assert len(set(out["label"])) > 3
    by_index = ds.map(c, batched=True, with_indices=True, batch_size=9)
    assert by_index["label"] == ds.map(c, batched=True, with_indices=True, batch_size=40)["label"]


def test_conditions_weights():
    c = Conditions(label=["pos", "neg"], weights={"label": [4, 1]}, seed=0)
    ds = Dataset.from_dict({"id": list(range(4000))}).map(c, batched=True)
    share = Counter(ds["label"])["pos"] / 4000
    assert 0.77 < share < 0.83  # 0.8 expected; 3 sigma is 0.019


def test_conditions_bad_input():
    with pytest.raises(InvalidParameterError, match="label"):
        Conditions(label=[])
    with pytest.raises(InvalidParameterError, match="weights"):
        Conditions(label=["a", "b"], weights={"label": [1]})
    with pytest.raises(InvalidParameterError, match="already exists"):
        Dataset.from_dict({"label": ["x"]}).map(Conditions(label=["a"]), batched=True)


def test_conditions_describe_and_combinations():
    c = Conditions(label=["p", "n"], length=["short", "long"], seed=9)
    assert len(c.combinations()) == 4
    d = c.describe()
    assert d["pools"] == {"label": ["p", "n"], "length": ["short", "long"]} and d["seed"] == 9
