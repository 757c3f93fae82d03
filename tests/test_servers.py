"""The test-server harness itself: a dead server is reported with its signal and log, and restarted."""

import signal

import pytest
from servers import LlamaServer, ServerDiedError, describe_exit, wait_for


def test_describe_exit_names_sigill_and_the_fix():
    for rc in (-4, 132):  # Popen's -signal, and a shell's 128 + signal
        msg = describe_exit(rc)
        assert "SIGILL" in msg and "scripts/install-test-server" in msg
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(1) == "exited with status 1"


def test_wait_for_reports_a_process_that_dies(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "server.log"
    log.write_text("loading...\nboom: cannot start\n")
    proc = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"])
    with pytest.raises(ServerDiedError) as e:
        wait_for("http://127.0.0.1:9/v1/models", proc, timeout=30, log_path=log)
    assert "SIGILL" in str(e.value) and "boom: cannot start" in str(e.value)


@pytest.mark.slow
def test_a_killed_llama_server_is_restarted_on_its_port(_llama_server_process, llama_server):
    import urllib.request

    server = _llama_server_process
    url = llama_server
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    assert not server.alive()
    assert server.ensure_alive() == url  # same URL: tests holding it keep working
    assert server.restarts[-1] == "killed by SIGKILL"
    assert b"smollm2" in urllib.request.urlopen(url + "/models", timeout=10).read()


def test_a_model_the_server_cannot_load_fails_with_its_log(tmp_path):
    pytest.importorskip("llama_cpp")
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    server = LlamaServer(str(bad), log_path=tmp_path / "log")
    with pytest.raises(ServerDiedError) as e:
        server.start()
    assert "exited with status" in str(e.value) and "log tail" in str(e.value)
