"""Shared fixtures: real parts only (the embedded model, a llama.cpp server, our fault server).

Heavy fixtures are session-scoped: the embedded model loads once, servers start once.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest

# Isolate every cache before any HF library is imported (they read these at import time).
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="synth-datasets-tests-"))
(_SESSION_TMP / "pid").write_text(str(os.getpid()))


def _remove_dead_sessions() -> None:
    """Session folders of killed runs (no pytest_sessionfinish) whose process is gone; live ones stay."""
    import shutil

    for d in Path(tempfile.gettempdir()).glob("synth-datasets-tests-*"):
        try:
            pid = int((d / "pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):  # no pid file (an older run, or being created), or not ours to signal
            pass


_remove_dead_sessions()
os.environ["SYNTH_DATASETS_CACHE"] = str(_SESSION_TMP / "responses")
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf")
# (HF_HUB_OFFLINE is not set: huggingface_hub would refuse even loopback inference calls. Nothing here
# downloads: models come from packages and Hub ids are loaded with local_files_only.)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Publishing tests talk to our Hub-compatible server (tests/hub_server.py, fixture `hub_server`) on a
# loopback port reserved now: huggingface_hub and datasets read HF_ENDPOINT at import time. Xet is off
# so LFS uploads go through the server (hf_xet would bypass it). The socket stays bound (not listening)
# until the fixture starts, so no other server of the session is handed the same port meanwhile.
_HUB_SOCKET = socket.socket()
_HUB_SOCKET.bind(("127.0.0.1", 0))
_HUB_PORT = _HUB_SOCKET.getsockname()[1]
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{_HUB_PORT}"
os.environ["HF_HUB_DISABLE_XET"] = "1"

sys.path.insert(0, str(Path(__file__).parent))
from fault_server import FaultServer  # noqa: E402
from servers import LlamaServer, ServerDiedError  # noqa: E402

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
def _llama_server_process():
    """llama.cpp's OpenAI-compatible server with the embedded GGUF on 127.0.0.1, started once."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python[server] is not installed: `bash scripts/install-test-server` builds it "
                    "(~5-6 min once, needs a C/C++ compiler and cmake)")
    server = LlamaServer(str(embedded_model_path()), log_path=_SESSION_TMP / "llama_server.log")
    try:
        server.start()
    except ServerDiedError as e:  # fail loudly with the exit signal and log tail, not later as "unreachable"
        server.stop()
        pytest.fail(str(e), pytrace=False)
    yield server
    server.stop()


@pytest.fixture()
def llama_server(_llama_server_process) -> str:
    """The server's ``/v1`` URL; a server process that died since the last test is restarted (and said)."""
    try:
        return _llama_server_process.ensure_alive()
    except ServerDiedError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session")
def fault_server():
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture()
def fresh_cache(tmp_path) -> Path:
    return tmp_path / "responses.sqlite"


@pytest.fixture(scope="session")
def hub_server(session_tmp):
    """Our Hub-compatible server (tests/hub_server.py) at HF_ENDPOINT, repos on disk; started once."""
    from hub_server import HubServer

    _HUB_SOCKET.close()
    server = HubServer(session_tmp / "hub", port=_HUB_PORT).start()
    yield server
    server.stop()


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's temporary folder (caches, Hub repos, server logs) once every fixture is torn
    down; set SYNTH_DATASETS_KEEP_TEST_TMP=1 to keep it for a post-mortem."""
    import shutil

    if os.environ.get("SYNTH_DATASETS_KEEP_TEST_TMP") == "1":
        print(f"\nkept the test session's files in {_SESSION_TMP}")
        return
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)
