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
    assert out["text_model"][0] == "m@fault-model"  # the served model id: no URL, port or key
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


# -- acceptance: every sentinel stays where it belongs ----------------------------------------------------
S = {"HF_TOKEN": "hf_SENTINELaccHFtoken000000001", "OPENAI_API_KEY": "sk-SENTINEL-acc-openai-000002",
     "SYNTH_DATASETS_API_KEY": "sk-SENTINEL-acc-synth-000003", "api_key": "SENTINEL-acc-apikey-000004",
     "url_password": "SENTINEL-acc-urlpass-000005"}


def _decoded_texts(path):
    """A written file as text: parquet and arrow decoded, SQLite rows read, anything else as bytes."""
    import sqlite3

    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = path.read_bytes()
    texts = [raw.decode("utf-8", "replace")]
    if path.suffix == ".parquet":
        texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
    elif path.suffix == ".arrow":
        try:
            with pa.memory_map(str(path)) as src:
                texts.append(json.dumps(pa.ipc.open_stream(src).read_all().to_pylist(), default=str))
        except pa.ArrowInvalid:
            pass
    elif raw.startswith(b"SQLite format 3"):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                texts.append(json.dumps(con.execute(f"SELECT * FROM {table}").fetchall(), default=str))
        finally:
            con.close()
    return texts


def _record_hub_requests(hub_server, monkeypatch):
    seen = []
    cls = hub_server._httpd.RequestHandlerClass
    original = cls._dispatch

    def recording(self, method):
        try:
            original(self, method)
        finally:
            seen.append({"path": self.path, "authorization": self.headers.get("Authorization"),
                         "headers": str(self.headers), "body": (getattr(self, "_read_body", None) or b"")
                         .decode("utf-8", "replace")})

    monkeypatch.setattr(cls, "_dispatch", recording)
    return seen


def test_acceptance_no_sentinel_anywhere_it_must_not_be(hub_server, tmp_path, monkeypatch, caplog, capsys):
    """Sentinels for HF_TOKEN, OPENAI_API_KEY, SYNTH_DATASETS_API_KEY, api_key= and a URL password; a server
    that echoes the Authorization header into its error bodies; generate, build with the CLI, publish to a
    folder and push to the loopback Hub; then every file written and every request each server received."""
    import os

    from datasets import load_from_disk
    from fault_server import FaultServer

    from synth_datasets import Recipe, publish

    caplog.set_level("DEBUG")
    for k in ("HF_TOKEN", "OPENAI_API_KEY", "SYNTH_DATASETS_API_KEY"):
        monkeypatch.setenv(k, S[k])
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # this test's own datasets/hub caches, all scanned
    monkeypatch.setenv("SYNTH_DATASETS_CACHE", str(tmp_path / "responses"))
    hub_seen = _record_hub_requests(hub_server, monkeypatch)
    server = FaultServer().start()
    try:
        # -- Python API: three endpoints keyed three ways, error bodies that echo the key ----------
        url_pw = f"http://user:{S['url_password']}@127.0.0.1:{server.port}/v1"
        gens = [TextGenerator(LLM(server.url, model="a", api_key=S["api_key"], max_retries=1, backoff_base=0.01),
                              "a {{ w }}", output="a"),
                TextGenerator(LLM(url_pw, model="b", max_retries=1, backoff_base=0.01), "b {{ w }}", output="b"),
                TextGenerator(LLM(server.url, model="c", max_retries=1, backoff_base=0.01), "c {{ w }}", output="c")]
        Dataset.from_dict({"w": ["one", "two [echoauth400]", "three [echoauth500]", "four"]}).save_to_disk(
            str(tmp_path / "src"))
        recipe = Recipe("acceptance", source=load_from_disk(str(tmp_path / "src")), text_column="a")
        for g in gens:
            recipe.map(g, name=f"gen-{g.output}")
        ds, rec = recipe.run()
        echoed = [e for c in "abc" for e in ds[f"{c}_error"] if e]
        assert len(echoed) == 6 and all("you sent Authorization: Bearer ***" in e for e in echoed), echoed
        res = publish(ds, tmp_path / "out", record=rec, push_to_hub="test-user/acceptance-secrets")
        assert res.commit and (tmp_path / "out" / "provenance.json").is_file()
        by_model = {}
        for r in server.log:
            if r["method"] == "POST":
                by_model.setdefault(json.loads(r["body"])["model"], set()).add(r["authorization"])
        assert by_model == {"a": {f"Bearer {S['api_key']}"}, "b": {f"Bearer {S['url_password']}"},
                            "c": {f"Bearer {S['SYNTH_DATASETS_API_KEY']}"}}

        # -- CLI build: the URL with its password on the command line, pushed to the Hub --------------
        server.reset()
        server.echo_auth_every = 3
        log = tmp_path / "build.log"
        env = {**os.environ, "SYNTH_DATASETS_API_KEY": ""}  # the URL's password is the only endpoint key
        cli_url = f"http://user:{S['url_password']}@127.0.0.1:{server.port}/v1"
        with open(log, "w") as f:
            proc = subprocess.run([sys.executable, "-m", "synth_datasets.cli", "build", "movie-reviews", "--n", "6",
                                   "--model", cli_url, "--model-name", "m", "--out", str(tmp_path / "cli-out"),
                                   "--push-to-hub", "test-user/acceptance-cli"], stdout=f, stderr=subprocess.STDOUT,
                                  env=env, timeout=600)
        assert proc.returncode == 0, log.read_text()[-3000:]
        assert {r["authorization"] for r in server.log if r["method"] == "POST"} == {f"Bearer {S['url_password']}"}
        prov = json.loads((tmp_path / "cli-out" / "provenance.json").read_text())
        assert prov["steps"][1]["errors"] >= 1  # the echoing server did answer some rows with the key
        requests_seen = list(server.log)
    finally:
        server.stop()

    # -- what each server received ------------------------------------------------------------------
    for r in requests_seen:
        for name in ("HF_TOKEN", "OPENAI_API_KEY", "SYNTH_DATASETS_API_KEY", "api_key"):
            assert S[name] not in json.dumps(r), (name, r)
    assert hub_seen
    for r in hub_seen:
        assert r["authorization"] in (None, f"Bearer {S['HF_TOKEN']}"), r  # the Hub gets the Hub token only
        text = r["path"] + r["body"] + r["headers"].replace(f"Bearer {S['HF_TOKEN']}", "")
        for name, value in S.items():
            assert value not in text, (name, r["path"])
    # -- every file written, decoded ------------------------------------------------------------------
    roots = [tmp_path, hub_server.root]
    files = [f for root in roots for f in root.rglob("*") if f.is_file()]
    kinds = {f.suffix for f in files}
    assert {".parquet", ".arrow", ".json", ".md", ".log", ".sqlite"} <= kinds, kinds
    for f in files:
        for text in _decoded_texts(f):
            for name, value in S.items():
                assert value not in text, (name, f)
    out = capsys.readouterr()
    for name, value in S.items():
        assert value not in caplog.text + out.out + out.err, name
