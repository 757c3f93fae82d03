"""Shared fixtures: real parts only (the embedded model, a llama.cpp server, our fault server).

Heavy fixtures are session-scoped: the embedded model loads once, servers start once.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

# Isolate every cache before any HF library is imported (they read these at import time).
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="synth-datasets-tests-"))
os.environ["SYNTH_DATASETS_CACHE"] = str(_SESSION_TMP / "responses")
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf")
# (HF_HUB_OFFLINE is not set: huggingface_hub would refuse even loopback inference calls. Nothing here
# downloads: models come from packages and Hub ids are loaded with local_files_only.)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))
from fault_server import FaultServer, free_port  # noqa: E402

from synth_datasets import LLM  # noqa: E402
from synth_datasets.llm import embedded_model_path  # noqa: E402


@pytest.fixture(scope="session")
def session_tmp() -> Path:
    return _SESSION_TMP


@pytest.fixture(scope="session")
def embedded_llm(session_tmp) -> LLM:
    """The embedded SmolLM2-135M-Instruct on the transformers backend, loaded once."""
    llm = LLM(batch_size=32, cache=session_tmp / "embedded.sqlite")
    llm.backend._load()
    return llm


@pytest.fixture(scope="session")
def llama_server():
    """llama.cpp's OpenAI-compatible server with the embedded GGUF on 127.0.0.1, started once."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python[server] is not installed: `pip install -e '.[test]'` builds it (~5 min once)")
    port = free_port()
    log = open(_SESSION_TMP / "llama_server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--model_alias", "smollm2"],
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"llama.cpp server did not start; see {_SESSION_TMP / 'llama_server.log'}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def fault_server():
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture()
def fresh_cache(tmp_path) -> Path:
    return tmp_path / "responses.sqlite"
