"""API keys reach the server and nothing else: not pickles, fingerprints, describe(), caches, rows."""

import json
import pickle
import subprocess
import sys

from datasets import Dataset
from datasets.fingerprint import Hasher

from synth_datasets import LLM, TextGenerator

SECRET = "sk-test-SECRET-0123456789"


def test_api_key_is_sent_but_never_recorded(fault_server, tmp_path, caplog):
    caplog.set_level("DEBUG")
    cache = tmp_path / "c.sqlite"
    llm = LLM(fault_server.url, model="m", api_key=SECRET, cache=cache)
    gen = TextGenerator(llm, "say {{ w }}", n=2)
    Dataset.from_dict({"w": ["a", "b"]}).save_to_disk(str(tmp_path / "ds"))
    from datasets import load_from_disk

    out = load_from_disk(str(tmp_path / "ds")).map(gen, batched=True)
    assert fault_server.last_authorization == f"Bearer {SECRET}"
    assert all(e is None for e in out["text_error"])
    assert SECRET.encode() not in pickle.dumps(gen)
    assert SECRET not in json.dumps(gen.describe()) and SECRET not in repr(gen) + repr(llm)
    assert SECRET not in caplog.text
    for f in [cache, *tmp_path.rglob("*.arrow"), *tmp_path.rglob("*.json")]:
        assert SECRET.encode() not in f.read_bytes(), f
    # a different key does not change the fingerprint (it is not configuration)
    assert Hasher.hash(gen) == Hasher.hash(TextGenerator(LLM(fault_server.url, model="m", api_key="other",
                                                             cache=cache), "say {{ w }}", n=2))


def test_api_key_from_environment_in_a_fresh_process(fault_server, tmp_path):
    code = f"""
from synth_datasets import LLM
c = LLM({fault_server.url!r}, cache=False).chat("hello")
print(c.error)
"""
    env = {**__import__("os").environ, "SYNTH_DATASETS_API_KEY": SECRET}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.strip() == "None", out.stderr
    assert fault_server.last_authorization == f"Bearer {SECRET}"
