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


# -- limits (issue 9, item 13) -------------------------------------------------------------------------
@pytest.mark.parametrize("src, row", [
    ("{{ 'a' * 10**9 }}", {}),
    ("{{ x * 10**9 }}", {"x": "ab"}),
    ("{{ 'a' | center(10**9) }}", {}),
    ("{{ 'a\\nb' | indent(10**9) }}", {}),
    ("{{ 'a'.ljust(10**9) }}", {}),
    ("{{ '%1000000000s' % 'a' }}", {}),
    ("{{ '{:>1000000000}'.format('a') }}", {}),
    ("{% for i in range(9999) %}{% for j in range(9999) %}{{ 'xyz' * 300 }}{% endfor %}{% endfor %}", {}),
    ("{{ big }}{{ big }}", {"big": "z" * 600_000}),
])
def test_a_huge_prompt_is_refused_naming_the_row_before_it_is_built(src, row):
    import tracemalloc

    t = Template(user="Task: " + src)
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError, match=r"row 12\b") as e:
            t.render(row, row_index=12)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "1,000,000" in str(e.value) and "Task:" in str(e.value)  # the limit, and which template
    assert peak < 50_000_000  # stopped early: nothing near the 1 GB the template asks for was built


def test_the_prompt_limit_is_configurable_and_ordinary_templates_are_untouched():
    t = Template(user="{{ 'ab' * 3 }} {{ 'x' | center(5) }} {{ '%3s' % 'a' }} {{ 'Year {}'.format(2024) }} {{ 2**10 }}")
    assert t.render({})[0]["content"] == "ababab   x     a Year 2024 1024"
    small = Template(user="{{ text }}", max_chars=10)
    assert small.render({"text": "0123456789"})[0]["content"] == "0123456789"
    with pytest.raises(TemplateError, match=r"longer than max_chars=10 .*row 4|row 4.*max_chars=10"):
        small.render({"text": "0123456789!"}, row_index=4)
    assert pickle.loads(pickle.dumps(small)).max_chars == 10
    assert "max_chars" not in Template(user="x").__getstate__()  # default: fingerprints unchanged
    with pytest.raises(TemplateError, match="max_chars"):
        Template(user="x", max_chars=0)


def test_deeply_nested_template_is_a_template_error():
    with pytest.raises(TemplateError, match="nested too deeply"):
        Template(user="{% if x %}" * 500 + "a" + "{% endif %}" * 500)


def test_a_none_inside_a_dict_or_list_value_names_the_row_and_path():
    t = Template(user="Movie: {{ meta.title }} ({{ meta.year }})")
    with pytest.raises(MissingVariableError, match=r"row 5.*meta\['year'\]"):
        t.render({"meta": {"title": "Alien", "year": None}}, row_index=5)
    with pytest.raises(MissingVariableError, match=r"row 0.*tags\[1\]"):
        Template(user="Tags: {{ tags }}").render({"tags": ["a", None]}, row_index=0)
    guarded = Template(user="{{ meta.title }}{% if meta.year %} ({{ meta.year }}){% endif %}")
    assert guarded.render({"meta": {"title": "Alien", "year": None}})[0]["content"] == "Alien"
    assert guarded.render({"meta": {"title": "Alien", "year": 1979}})[0]["content"] == "Alien (1979)"


# -- render budgets (issue 22, item 5): time and size bombs -------------------------------------------
_BOMBS = {
    "nested range(100000)": ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                             "limit of 10,000 items"),
    "nested range(10000), no output": ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}"
                                       "{% endfor %}", "100,000 loop iterations and calls"),
    "lipsum(n=10**7)": ("{{ lipsum(n=10**7) }}", "limit of n=5 paragraphs"),
    "ns.s ~ ns.s x40": ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                        "{% endfor %}{{ ns.s | length }}", "max_chars=1,000,000"),
    "ns.s + ns.s x40": ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
                        "{% endfor %}{{ ns.s | length }}", "max_chars=1,000,000"),
    "macro fan-out 2**40": ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
                            "{{ f(40) }}", "100,000 loop iterations and calls"),
    "captured set block": ("{% set x %}{% for i in range(10000) %}{{ 'a' * 900000 }}{% endfor %}{% endset %}"
                           "{{ x | length }}", "10 x max_chars"),
    "join of 5000 big refs": ("{% set l = ['a' * 900000] * 5000 %}{{ l | join }}", "max_chars=1,000,000"),
}


def test_template_bombs_are_refused_naming_the_limit():
    """Each bomb ran for minutes (or grew past 3 GB) before the budgets; they run in a child process with
    a generous timeout so that a regression fails here instead of hanging the suite."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from synth_datasets.errors import TemplateError\n"
        "from synth_datasets.prompts import Template\n"
        "out = {}\n"
        "for name, src in json.loads(sys.stdin.read()).items():\n"
        "    try:\n"
        "        Template(user=src).render({}, row_index=3)\n"
        "        out[name] = 'rendered'\n"
        "    except TemplateError as e:\n"
        "        out[name] = str(e)\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps({k: v[0] for k, v in _BOMBS.items()}),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, (_, limit) in _BOMBS.items():
        assert limit in out[name] and "row 3" in out[name], (name, out[name])


def test_budgets_leave_ordinary_loops_macros_and_lipsum_alone():
    t = Template(user="{% macro item(x) %}- {{ x }}{% endmacro %}{% for x in items %}{{ item(x) }}\n{% endfor %}"
                      "{% set ns = namespace(s='') %}{% for i in range(3) %}{% set ns.s = ns.s ~ i %}{% endfor %}"
                      "{{ ns.s }} {{ range(10000) | list | length }} {{ lipsum(n=1, html=False) | length > 0 }}")
    assert t.render({"items": ["a", "b"]})[0]["content"] == "- a\n- b\n012 10000 True"
    many = Template(user="{% for i in range(8000) %}{% for j in range(10) %}.{% endfor %}{% endfor %}")
    assert len(many.render({})[0]["content"]) == 80_000  # 88,000 iterations + 8,001 range() calls: under budget
    assert len(many.render({})[0]["content"]) == 80_000  # the budget is per row, not per Template
