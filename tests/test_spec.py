"""TaskSpec (role, text type, label type, verbalizer, requirements, format, knowledge) and TemplateRotation."""

import pickle
from collections import Counter

import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

from synth_datasets import (Conditions, MissingVariableError, TaskSpec, Template, TemplateError, TemplateRotation,
                            TextGenerator)
from synth_datasets.hub.card import _templates


def make_spec(**kw):
    args = dict(role="a film critic for a national newspaper", label_type="sentiment",
                verbalizer={1: "positive", 0: "negative"},
                requirements=["The writing style is {{ style }}.", "Between 30 and 80 words."],
                format="Output only the review.",
                knowledge=["Film noir: 1940s crime films, {{ not a variable }}."])
    args.update(kw)
    return TaskSpec("movie review", **args)


def test_spec_renders_every_field_into_system_and_user():
    spec = make_spec()
    assert spec.variables == {"label", "style"}  # knowledge is verbatim, the verbalizer a literal
    system, user = spec.render({"label": 0, "style": "calm", "extra": "x"})
    assert system == {"role": "system", "content": (
        "Suppose you are a film critic for a national newspaper.\n\nUse this background knowledge:\n"
        "- Film noir: 1940s crime films, {{ not a variable }}.")}
    assert user["content"] == ("Please write a movie review whose sentiment is negative, following the requirements "
                               "below:\n1. The writing style is calm.\n2. Between 30 and 80 words.\n"
                               "Output only the review.")
    assert spec.render({"label": 1, "style": "calm"})[1]["content"].startswith(
        "Please write a movie review whose sentiment is positive,")


def test_spec_minimal_and_demos_slot_and_user_override():
    spec = TaskSpec("news article", demos_variable="demos")
    assert spec.system is None and spec.variables == {"demos"}
    msgs = spec.render({"demos": "A.\n\nB."})
    assert msgs == [{"role": "user", "content": "Please write a news article.\nHere are some examples:\nA.\n\nB."}]
    no_verbalizer = TaskSpec("tweet", label_type="topic", role="a journalist.")
    assert no_verbalizer.render({"label": "sports"}) == [
        {"role": "system", "content": "Suppose you are a journalist."},
        {"role": "user", "content": "Please write a tweet whose topic is sports."}]
    own = TaskSpec("tweet", role="a journalist", user="Tweet about {{ topic }}.")
    assert own.variables == {"topic"} and own.render({"topic": "rain"})[1]["content"] == "Tweet about rain."


def test_spec_unknown_label_names_row_label_and_fix():
    spec = make_spec()
    with pytest.raises(MissingVariableError) as e:
        spec.render({"label": 7, "style": "calm"}, row_index=4)
    assert e.value.row == 4 and e.value.variable == "label"
    assert "Label 7" in str(e.value) and "row 4" in str(e.value) and "verbalizer" in str(e.value)


def test_spec_bad_input():
    with pytest.raises(TemplateError, match="text_type"):
        TaskSpec("")
    with pytest.raises(TemplateError, match="requirements"):
        TaskSpec("review", requirements="one string")
    with pytest.raises(TemplateError, match="verbalizer"):
        TaskSpec("review", verbalizer={1.5: "x"})
    with pytest.raises(TemplateError, match="syntax error"):
        TaskSpec("review", requirements=["{{ broken"])


def test_spec_pickles_to_fields_and_fingerprint_follows_them():
    spec = make_spec()
    state = spec.__getstate__()
    assert state["format"] == 1 and state["output_format"] == "Output only the review."
    assert state["verbalizer"] == {1: "positive", 0: "negative"}
    clone = pickle.loads(pickle.dumps(spec))
    row = {"label": 1, "style": "dry"}
    assert isinstance(clone, TaskSpec) and clone.render(row) == spec.render(row)
    assert Hasher.hash(clone) == Hasher.hash(spec) == Hasher.hash(make_spec())
    assert Hasher.hash(make_spec(format="Output only the text.")) != Hasher.hash(spec)
    assert Hasher.hash(make_spec(verbalizer={1: "good", 0: "bad"})) != Hasher.hash(spec)


def test_spec_describe_records_fields_and_the_card_shows_the_messages():
    d = make_spec().describe()
    assert d["type"] == "TaskSpec"
    assert d["spec"]["role"] == "a film critic for a national newspaper"
    assert d["spec"]["verbalizer"] == [[1, "positive"], [0, "negative"]]
    assert d["spec"]["requirements"][0] == "The writing style is {{ style }}."
    assert d["template"]["type"] == "Template" and d["template"]["user"].startswith("Please write a movie review")
    shown = _templates({"template": d})
    assert len(shown) == 1 and shown[0]["messages"][0][1].startswith("Suppose you are a film critic")


def test_spec_inside_text_generator(embedded_llm):
    spec = make_spec(requirements=["The writing style is {{ style }}."])
    ds = Dataset.from_dict({"label": [1, 0], "style": ["calm", "intense"]})
    gen = TextGenerator(embedded_llm, spec, output="review", max_new_tokens=8)
    out = ds.map(gen, batched=True)
    assert out.num_rows == 2 and all(isinstance(t, str) and t for t in out["review"])
    assert gen.describe()["template"]["spec"]["label_type"] == "sentiment"


# -- template rotation ---------------------------------------------------------------------------
def make_rotation():
    return TemplateRotation({"plain": "Write a {{ label }} review.",
                             "critic": Template(system="You are a critic.", user="Review a film. Be {{ label }}."),
                             "spec": TaskSpec("movie review", label_type="sentiment", role="a blogger")})


def test_rotation_renders_the_rows_template_and_the_id_is_a_drawn_column():
    rot = make_rotation()
    assert rot.ids == ["plain", "critic", "spec"] and rot.variables == {"template_id", "label"}
    c = Conditions(label=["positive", "negative"], template_id=rot.ids, seed=2)
    ds = Dataset.from_dict({"id": list(range(300))}).map(c, batched=True, with_indices=True, batch_size=17)
    counts = Counter(ds["template_id"])
    assert set(counts) == set(rot.ids) and min(counts.values()) > 70  # 100 expected each
    again = Dataset.from_dict({"id": list(range(300))}).map(c, batched=True, with_indices=True, batch_size=300)
    assert again["template_id"] == ds["template_id"]
    for row in ds.select(range(6)):
        msgs = rot.render(row)
        expected = rot.templates[row["template_id"]].render(row)
        assert msgs == expected
    assert rot.render({"template_id": "critic", "label": "harsh"})[0] == {"role": "system", "content": "You are a critic."}


def test_rotation_errors_pickle_and_describe():
    rot = make_rotation()
    with pytest.raises(MissingVariableError, match="'nope'.*template id"):
        rot.render({"template_id": "nope", "label": "x"}, row_index=3)
    with pytest.raises(TemplateError, match="at least two"):
        TemplateRotation(["only one"])
    clone = pickle.loads(pickle.dumps(rot))
    assert clone.ids == rot.ids and Hasher.hash(clone) == Hasher.hash(rot)
    other = TemplateRotation({"plain": "Write a {{ label }} review!", "critic": rot.templates["critic"],
                              "spec": rot.templates["spec"]})
    assert Hasher.hash(other) != Hasher.hash(rot)
    d = rot.describe()
    assert d["type"] == "TemplateRotation" and d["templates"]["plain"]["user"] == "Write a {{ label }} review."
    assert d["templates"]["spec"]["type"] == "TaskSpec"
    # the card lists every template verbatim
    assert len(_templates({"template": d})) == 3
