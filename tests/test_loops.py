"""Dataset-wise loops: Self-Instruct's bootstrap on the embedded model as a Recipe loop step, with
per-round records, the ROUGE-L rule, checkpoints, and a resume after a kill in round 2.

Tiny sizes (2 rounds x 2 prompts, few new tokens): the machine's two cores are shared."""

import json

import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

from synth_datasets import LLM, Recipe, Template, run_and_publish
from synth_datasets.curate import rouge_l, rouge_tokens
from synth_datasets.errors import EmptyDatasetError, InvalidParameterError
from synth_datasets.generate import Expand, SelfInstruct
from synth_datasets.generate.loops import heuristic_reason, parse_instructions

from realdata import self_instruct_seeds

# A few seed tasks in the style of Self-Instruct's, for the checks that need no model
SEEDS = ["Give three tips for staying healthy.", "Translate the sentence into French.",
         "Classify the sentiment of the movie review as positive or negative.",
         "Write a short poem about autumn leaves.", "Explain why the sky is blue to a child.",
         "Summarize the paragraph in one sentence.", "Suggest a name for a new coffee shop.",
         "List five countries in South America.", "Rewrite the sentence in the passive voice.",
         "Find the grammatical error in the sentence and correct it.",
         "Give an example of a healthy breakfast.", "Convert 25 degrees Celsius to Fahrenheit."]
KW = dict(max_rounds=2, target=1000, prompts_per_round=2, max_new_tokens=48, instance_tokens=24, seed=0)


def _recipe(llm, folder):
    """Self-Instruct from the 175 real seed tasks (fetched with pip, see tests/realdata.py)."""
    seeds = Dataset.from_list([{"instruction": t["instruction"]} for t in self_instruct_seeds()])
    return Recipe("self-instruct", source=seeds, seed=0).loop(SelfInstruct(llm, checkpoint_dir=folder, **KW),
                                                               name="bootstrap")


def test_self_instruct_rounds_rouge_rule_resume_and_rerun(embedded_llm, tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    real_step = SelfInstruct.step

    def killed_in_round_2(self, state, r):
        if r == 1:
            raise KeyboardInterrupt("killed in round 2")
        return real_step(self, state, r)

    monkeypatch.setattr(SelfInstruct, "step", killed_in_round_2)
    with pytest.raises(KeyboardInterrupt):
        _recipe(embedded_llm, folder).run()
    (run_dir,) = folder.iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "round-0000.json", "round-0000.rows.json"]
    first = json.loads((run_dir / "round-0000.rows.json").read_text())

    monkeypatch.setattr(SelfInstruct, "step", real_step)
    before = embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"]
    ds, record = _recipe(embedded_llm, folder).run()
    rounds = record.steps[0].rounds
    assert [(r["round"], r["resumed"]) for r in rounds] == [(0, True), (1, False)]
    resumed_calls = embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"] - before
    assert resumed_calls == rounds[1]["usage"]["requests"] + rounds[1]["usage"]["cache_hits"]  # round 2 only
    assert ds.to_list()[:len(first)] == first and ds.num_rows == sum(r["kept"] for r in rounds) >= 1

    # per-round provenance: conditions used (the demos of each prompt), rows made and kept, metrics
    for r in rounds:
        assert len(r["conditions"]["demos"]) == 2 and r["made"] == r["metrics"]["candidates"] >= r["kept"]
    d0, d1 = rounds[0]["conditions"]["demos"], rounds[1]["conditions"]["demos"]
    assert all(len(d["human"]) == 8 and d["machine"] == [] for d in d0)  # no machine demos yet
    assert all(len(d["machine"]) == min(2, rounds[0]["kept"]) and len(d["human"]) + len(d["machine"]) == 8
               for d in d1)

    # Self-Instruct's rules hold for every kept instruction: ROUGE-L <= 0.7 to the seeds and to all kept before
    kept = list(ds["instruction"])
    pool = [rouge_tokens(t["instruction"]) for t in self_instruct_seeds()]
    assert len(pool) == 175
    for t in kept:
        toks = rouge_tokens(t)
        assert max(rouge_l(toks, p) for p in pool) <= 0.7, t
        assert heuristic_reason(t) is None
        pool.append(toks)
    assert set(ds["round"]) <= {0, 1} and all(o for o in ds["output"])

    # An uninterrupted run elsewhere gives the same rows, every call answered by the response cache
    before = embedded_llm.stats["requests"]
    fresh, rec2 = run_and_publish(_recipe(embedded_llm, tmp_path / "other"), tmp_path / "out")
    assert fresh.to_list() == ds.to_list() and embedded_llm.stats["requests"] == before
    assert [r["kept"] for r in rec2.steps[0].rounds] == [r["kept"] for r in rounds]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| round | made | kept | conditions | metrics | seconds | model calls |" in card
    assert f"| 1 | {rounds[1]['made']} | {rounds[1]['kept']} |" in card
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["steps"][0]["rounds"][1]["conditions"] == rounds[1]["conditions"]

    # A rerun of the finished loop reads every round back: no model call at all, not even a cache lookup
    before = embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"]
    again, rec3 = _recipe(embedded_llm, folder).run()
    assert again.to_list() == ds.to_list() and all(r["resumed"] for r in rec3.steps[0].rounds)
    assert embedded_llm.stats["requests"] + embedded_llm.stats["cache_hits"] == before


def test_loop_configuration_checks_and_fingerprint(tmp_path):
    llm = LLM(cache=tmp_path / "c.sqlite")
    a = SelfInstruct(llm, checkpoint_dir=tmp_path / "a", **KW)
    b = SelfInstruct(LLM(cache=tmp_path / "c.sqlite"), checkpoint_dir=tmp_path / "b", **KW)
    c = SelfInstruct(llm, checkpoint_dir=tmp_path / "a", **{**KW, "threshold": 0.5})
    seeds = Dataset.from_dict({"instruction": SEEDS})
    assert Hasher.hash(a) == Hasher.hash(b) and Hasher.hash(a) != Hasher.hash(c)  # the folder is not config
    assert a.folder(seeds).name == b.folder(seeds).name != c.folder(seeds).name
    assert a.folder(seeds) != a.folder(seeds.select(range(3)))  # other seeds, other checkpoints
    with pytest.raises(InvalidParameterError, match="'instruction' column.*\\['text'\\]"):
        a.run(Dataset.from_dict({"text": SEEDS}))
    with pytest.raises(EmptyDatasetError):
        a.run(seeds.select([]))
    with pytest.raises(InvalidParameterError, match="threshold"):
        SelfInstruct(llm, threshold=0)
    with pytest.raises(InvalidParameterError, match="has no run"):
        Recipe("x").loop(lambda b: b)
    assert llm._backend is None  # nothing above loaded the model


def test_parsing_and_heuristics():
    text = " Write a poem about the sea.\n10. Classify the tweet's sentiment.\n11) Draw a map of France.\n12. Hi"
    got = parse_instructions(text)
    assert got == ["Write a poem about the sea.", "Classify the tweet's sentiment.", "Draw a map of France.", "Hi"]
    assert [heuristic_reason(t) for t in got] == [None, None, "unsupported_modality", "length"]
    assert heuristic_reason("Write a program that sorts numbers.") == "program"
    assert heuristic_reason("\"Quote this sentence back to me.") == "not_english_start"
    assert parse_instructions(None) == []


def test_generate_then_expand(embedded_llm, tmp_path):
    seeds = Dataset.from_dict({"instruction": SEEDS[:2]})
    loop = Expand(embedded_llm, variants=2, max_rounds=2, max_new_tokens=24, seed=0, checkpoint_dir=tmp_path)
    ds = loop.run(seeds)
    r0 = loop.rounds[0]
    assert r0.conditions == {"frontier": 2, "variants": 2} and r0.made == 4 >= r0.kept
    assert set(ds["source"][:r0.kept]) <= set(SEEDS[:2])  # round 1 expands the seeds
    if len(loop.rounds) == 2:  # round 2 expands exactly what round 1 kept
        assert loop.rounds[1].conditions["frontier"] == r0.kept and set(ds["source"][r0.kept:]) <= set(ds["instruction"][:r0.kept])
    else:
        assert r0.kept == 0  # the stop rule: nothing new to expand
    pool = [rouge_tokens(s) for s in SEEDS[:2]]
    for t in ds["instruction"]:  # every kept variant passes the ROUGE-L rule against everything before it
        assert max(rouge_l(rouge_tokens(t), p) for p in pool) <= 0.7, t
        pool.append(rouge_tokens(t))
    with pytest.raises(InvalidParameterError, match="exactly"):
        Expand(embedded_llm, Template(user="Rewrite {{ instruction }}"))
