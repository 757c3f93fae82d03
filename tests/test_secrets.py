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


# -- issue 9: credentials in URLs, keys echoed by servers, which key goes where ------------------------
import pytest  # noqa: E402

from synth_datasets.errors import SecretInDataError  # noqa: E402
from synth_datasets.secrets import env_key_for, is_hf_host, scrub, split_url  # noqa: E402

KEY_ENVS = ("SYNTH_DATASETS_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@pytest.fixture()
def no_key_env(monkeypatch):
    for e in KEY_ENVS:
        monkeypatch.delenv(e, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", "/nonexistent/token")  # no stored login either
    return monkeypatch


def _written(root):
    return [f for f in root.rglob("*") if f.is_file()]


def test_url_password_and_query_key_are_used_never_recorded(fault_server, tmp_path, no_key_env, caplog):
    caplog.set_level("DEBUG")
    pw, qk = "sk-URLPASSWORD-0123456789", "QUERYKEY-0123456789"
    no_key_env.setenv("SYNTH_DATASETS_API_KEY", "sk-ENVKEY-0123456789")  # aiohttp once raised on URL creds + key
    fault_server.reset()
    port = fault_server.port
    llm = LLM(f"http://user:{pw}@127.0.0.1:{port}/v1?api_key={qk}&api-version=2", model="m",
              cache=tmp_path / "c.sqlite")
    Dataset.from_dict({"w": ["a", "b"]}).save_to_disk(str(tmp_path / "ds"))
    from datasets import load_from_disk

    out = load_from_disk(str(tmp_path / "ds")).map(TextGenerator(llm, "say {{ w }}"), batched=True)
    assert all(e is None for e in out["text_error"])
    chats = [r for r in fault_server.log if r["path"] == "/v1/chat/completions"]
    # the URL's password is the key (it beats the environment); the query goes out as the user wrote it
    assert {r["authorization"] for r in chats} == {f"Bearer {pw}"}
    assert {r["query"] for r in chats} == {f"api_key={qk}&api-version=2"}
    assert llm.source == f"http://127.0.0.1:{port}/v1?api-version=2"
    assert out["text_model"][0] == f"m@http://127.0.0.1:{port}/v1?api-version=2"
    recorded = json.dumps(TextGenerator(llm, "say {{ w }}").describe()) + repr(llm) + caplog.text
    assert pw not in recorded and qk not in recorded and "user@" not in recorded
    assert pw.encode() not in pickle.dumps(llm) and qk.encode() not in pickle.dumps(llm)
    for f in _written(tmp_path):
        assert pw.encode() not in f.read_bytes() and qk.encode() not in f.read_bytes(), f


def test_key_echoed_in_an_error_body_is_scrubbed_before_row_cache_and_log(fault_server, tmp_path, caplog):
    caplog.set_level("DEBUG")
    fault_server.reset()
    llm = LLM(fault_server.url + "?key=QUERYSECRET-987654321", model="m", api_key=SECRET,
              cache=tmp_path / "c.sqlite", max_retries=1, backoff_base=0.01)
    Dataset.from_dict({"w": ["ok", "x [echoauth400]", "y [echoauth500]"]}).save_to_disk(str(tmp_path / "ds"))
    from datasets import load_from_disk

    out = load_from_disk(str(tmp_path / "ds")).map(TextGenerator(llm, "say {{ w }}"), batched=True)
    errors = dict(zip(out["w"], out["text_error"]))
    assert errors["ok"] is None
    for w in ("x [echoauth400]", "y [echoauth500]"):
        assert "you sent Authorization: Bearer ***" in errors[w] and "key=***" in errors[w], errors[w]
    assert SECRET in fault_server.log[-1]["body"] or fault_server.log[-1]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in caplog.text and "QUERYSECRET" not in caplog.text
    for f in _written(tmp_path):
        data = f.read_bytes()
        assert SECRET.encode() not in data and b"QUERYSECRET" not in data, f


def test_scrub_masks_known_secrets_and_credential_shapes(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "plain-known-value-42")
    text = ("HTTP 401: got 'Authorization: Bearer abc.def-123456' for https://u:pw-12345678@h/v1?token=t0k3n12345 "
            "with hf_abcdefghijklmnopqrstu and sk-proj-ABCDEFGHIJKL and plain-known-value-42")
    out = scrub(text)
    for s in ("abc.def-123456", "pw-12345678", "t0k3n12345", "hf_abcdefghijklmnopqrstu", "sk-proj-ABCDEFGHIJKL",
              "plain-known-value-42"):
        assert s not in out, (s, out)
    assert out.startswith("HTTP 401: got 'Authorization: Bearer ***' for https://***@h/v1?token=***")
    assert scrub("a basic review, 5 stars: the token economy") == "a basic review, 5 stars: the token economy"


@pytest.mark.parametrize("url, expected", [
    ("https://router.huggingface.co/v1", "HF_TOKEN"),
    ("https://api-inference.huggingface.co/models/x/v1", "HF_TOKEN"),
    ("https://abc123.us-east-1.aws.endpoints.huggingface.cloud/v1", "HF_TOKEN"),
    ("https://user-space.hf.space/v1", "HF_TOKEN"),
    ("https://api.openai.com/v1", "OPENAI_API_KEY"),
    ("http://router.huggingface.co/v1", None),            # plain http: no key from the environment
    ("http://api.openai.com/v1", None),
    ("https://huggingface.co.evil.example/v1", None),     # matched by host, not by substring
    ("https://evilhuggingface.co/v1", None),
    ("https://api.openai.com.evil.example/v1", None),
    ("http://127.0.0.1:8080/v1", None),
    ("https://api.together.xyz/v1", None),
])
def test_environment_keys_are_routed_by_host(no_key_env, url, expected):
    no_key_env.setenv("HF_TOKEN", "hf_SENTINELroutingHF000000")
    no_key_env.setenv("OPENAI_API_KEY", "sk-SENTINEL-routing-openai")
    key, var = env_key_for(url)
    assert var == expected
    assert key == {None: None, "HF_TOKEN": "hf_SENTINELroutingHF000000",
                   "OPENAI_API_KEY": "sk-SENTINEL-routing-openai"}[expected]
    no_key_env.setenv("SYNTH_DATASETS_API_KEY", "sk-SENTINEL-routing-synth")
    assert env_key_for(url) == ("sk-SENTINEL-routing-synth", "SYNTH_DATASETS_API_KEY")  # any endpoint
    assert is_hf_host("huggingface.co") and not is_hf_host("nothuggingface.co")


@pytest.mark.parametrize("transport", ["aiohttp", "huggingface_hub"])
def test_hf_and_openai_keys_never_reach_other_servers(fault_server, no_key_env, transport):
    """A local server saw `Bearer hf_...` when only HF_TOKEN was set; now it sees no key at all."""
    hf, oa = "hf_SENTINELnotForLocalServers0", "sk-SENTINEL-not-for-local-servers"
    no_key_env.setenv("HF_TOKEN", hf)
    no_key_env.setenv("OPENAI_API_KEY", oa)
    fault_server.reset()
    c = LLM(fault_server.url, model="m", cache=False, transport=transport).chat("hello")
    assert c.error is None
    assert fault_server.log, "no request reached the server"
    for r in fault_server.log:
        assert r["authorization"] in (None, ""), r  # huggingface_hub sends an empty one
        assert hf not in json.dumps(r) and oa not in json.dumps(r)
    no_key_env.setenv("SYNTH_DATASETS_API_KEY", "sk-SENTINEL-for-any-endpoint")
    fault_server.reset()
    LLM(fault_server.url, model="m2", cache=False, transport=transport).chat("hello")
    assert {r["authorization"] for r in fault_server.log} == {"Bearer sk-SENTINEL-for-any-endpoint"}


def test_split_url_takes_out_every_credential():
    p = split_url("https://me:pa55word-xyz@host.example:8443/v1/?access_token=AT-0123456789&key=K-0123456789"
                  "&x_api_key=X-0123456789&api-version=2024&max_tokens=3")
    assert p.public == "https://host.example:8443/v1?api-version=2024&max_tokens=3"
    assert p.base == "https://host.example:8443/v1" and p.credential == "pa55word-xyz"
    assert set(p.secrets) == {"pa55word-xyz", "AT-0123456789", "K-0123456789", "X-0123456789"}
    assert split_url("http://sk-LONEUSERNAME01@h/v1").credential == "sk-LONEUSERNAME01"


def test_publish_refuses_data_holding_a_known_secret(tmp_path, hub_server, no_key_env):
    from synth_datasets import publish
    from synth_datasets.hub import push_folder

    key = "sk-PUBLISH-REFUSAL-0123456789"
    LLM("http://127.0.0.1:9/v1", model="x", api_key=key, cache=False)  # the process now knows the key
    leaky = Dataset.from_dict({"text": ["fine", "fine too"], "text_error": [None, f"echo: Bearer {key}"],
                               "tags": [["a"], [f"x{key}"]]})
    with pytest.raises(SecretInDataError, match=r"column 'text_error' row 1: sk-P…\(29 chars\).*Nothing was written"):
        publish(leaky, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(SecretInDataError, match="column 'tags' row 1"):
        publish(leaky.remove_columns("text_error"), tmp_path / "out")
    with pytest.raises(SecretInDataError):
        publish(leaky, "test-user/refused-secret", token="hf_PUBLISHTOKEN-0123456789")
    assert not hub_server.repo_exists("test-user/refused-secret")
    # a folder whose parquet was changed after it was built is refused by push too
    clean = Dataset.from_dict({"text": ["fine", "also fine"]})
    publish(clean, tmp_path / "folder", metrics=[], report=False)
    Dataset.from_dict({"text": ["fine", key]}).to_parquet(str(tmp_path / "folder/data/train-00000-of-00001.parquet"))
    with pytest.raises(SecretInDataError, match="train-00000-of-00001.parquet"):
        push_folder(tmp_path / "folder", "test-user/refused-folder", token="hf_PUBLISHTOKEN-0123456789")
    assert not hub_server.repo_exists("test-user/refused-folder")
