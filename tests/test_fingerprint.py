"""Contract 2: callables pickle to their configuration, so `datasets` fingerprints are stable."""

import json
import subprocess
import sys
import textwrap

from datasets import load_from_disk
from datasets.fingerprint import Hasher

from synth_datasets import LLM, Conditions, Template, TextGenerator


def make_gen(cache, **kw):
    return TextGenerator(LLM(batch_size=32, cache=cache), Template(user="Write a {{ label }} review."),
                         output="review", max_new_tokens=kw.pop("max_new_tokens", 12), **kw)


def hash_in_subprocess(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_hash_is_config_only_and_stable_across_processes(tmp_path):
    cache = str(tmp_path / "c.sqlite")
    gen = make_gen(cache)
    h = Hasher.hash(gen)
    assert h == Hasher.hash(make_gen(cache))
    assert h != Hasher.hash(make_gen(cache, max_new_tokens=13))
    assert h != Hasher.hash(make_gen(cache, seed=1))
    assert h != Hasher.hash(make_gen(cache, n=2))
    other = TextGenerator(LLM(batch_size=32, cache=cache), Template(user="Write a {{ label }} poem."),
                          output="review", max_new_tokens=12)
    assert h != Hasher.hash(other)
    # using the generator (loading the model, opening the cache) does not change its hash
    gen.llm.identity()
    assert Hasher.hash(gen) == h
    code = f"""
        from datasets.fingerprint import Hasher
        from synth_datasets import LLM, Template, TextGenerator
        gen = TextGenerator(LLM(batch_size=32, cache={cache!r}), Template(user="Write a {{{{ label }}}} review."),
                            output="review", max_new_tokens=12)
        print(Hasher.hash(gen))
    """
    assert hash_in_subprocess(code) == h
    c = Conditions(label=["a", "b"], seed=1)
    assert Hasher.hash(c) == hash_in_subprocess(
        "from datasets.fingerprint import Hasher\nfrom synth_datasets import Conditions\n"
        "print(Hasher.hash(Conditions(label=['a', 'b'], seed=1)))")


def test_map_cache_hit_on_disk_dataset_also_from_a_fresh_process(tmp_path, embedded_llm):
    from datasets import Dataset

    cache = str(tmp_path / "c.sqlite")
    Dataset.from_dict({"label": ["good", "bad", "odd"]}).save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    gen = make_gen(cache)
    gen.llm._backend = embedded_llm.backend  # reuse the loaded model; the config is identical
    first = ds.map(gen, batched=True)
    assert gen.llm.stats["requests"] == 3
    second = ds.map(gen, batched=True)
    assert second.cache_files == first.cache_files and second["review"] == first["review"]
    assert gen.llm.stats["requests"] == 3 and gen.llm.stats["cache_hits"] == 0  # the callable never ran
    changed_gen = make_gen(cache, max_new_tokens=13)
    changed_gen.llm._backend = embedded_llm.backend
    changed = ds.map(changed_gen, batched=True)
    assert changed.cache_files != first.cache_files
    code = f"""
        import json
        from datasets import load_from_disk
        from synth_datasets import LLM, Template, TextGenerator
        gen = TextGenerator(LLM(batch_size=32, cache={cache!r}), Template(user="Write a {{{{ label }}}} review."),
                            output="review", max_new_tokens=12)
        out = load_from_disk({str(tmp_path / 'ds')!r}).map(gen, batched=True)
        print(json.dumps({{"files": [f["filename"] for f in out.cache_files], "loaded": gen.llm._backend is not None,
                          "review": list(out["review"])}}))
    """
    res = json.loads(hash_in_subprocess(code))
    assert res["files"] == [f["filename"] for f in first.cache_files]
    assert res["loaded"] is False  # not even the model was touched
    assert res["review"] == first["review"]


def test_prompt_engineering_parts_hash_stably_across_processes():
    """TaskSpec, TemplateRotation, pools (recorded LLM values, a recorded tree, random words) and a
    fitted Demonstrations hash to the same value in a fresh process; a changed setting changes it."""
    code = """
        from synth_datasets import (Conditions, ConceptTree, Demonstrations, LLMValues, RandomWords, TaskSpec,
                                    TemplateRotation)
        spec = TaskSpec("movie review", role="a critic", label_type="sentiment", verbalizer={1: "good", 0: "bad"},
                        requirements=["Style: {{ style }}."], format="Only the review.", knowledge=["Noir: 1940s."])
        rot = TemplateRotation({"a": "Write a {{ label }} review.", "b": spec})
        cond = Conditions(genre=LLMValues(None, "film genres", values=["noir", "western"]),
                          topic=ConceptTree(None, "movies", tree={"comedy": {"satire": {}}, "horror": {}}),
                          words=RandomWords(noun=2, verb=1), template_id=rot.ids, seed=3)
        demos = Demonstrations(k=2, strategy="balanced", label_column="label").fit(
            {"text": ["Loved it.", "Dull.", "A gem."], "label": ["pos", "neg", "pos"]})
        objs = [spec, rot, cond, demos]
    """
    ns: dict = {}
    exec(textwrap.dedent(code), ns)
    here = [Hasher.hash(o) for o in ns["objs"]]
    there = hash_in_subprocess(code + "\n        from datasets.fingerprint import Hasher\n"
                                      "        print(','.join(Hasher.hash(o) for o in objs))")
    assert there.split(",") == here
    # materializing a pool (drawing rows) does not change the hash; a changed setting does
    from datasets import Dataset

    Dataset.from_dict({"id": [0, 1]}).map(ns["cond"], batched=True, with_indices=True)
    assert Hasher.hash(ns["cond"]) == here[2]
    from synth_datasets import RandomWords, TaskSpec

    assert Hasher.hash(TaskSpec("movie review", role="a critic")) != here[0]
    assert Hasher.hash(ns["Conditions"](words=RandomWords(noun=1), seed=3)) != here[2]
