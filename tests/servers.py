"""Starting real servers on loopback, shared by the tests and the benchmarks."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from fault_server import free_port

HERE = Path(__file__).resolve().parent


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Poll ``url`` until it answers; kill ``proc`` and raise if it dies or the time runs out."""
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"the server behind {url} did not start")
            time.sleep(0.2)


def start_llama_server(model_path: str, *, threads: int = 2, log=subprocess.DEVNULL) -> tuple[subprocess.Popen, str]:
    """llama.cpp's OpenAI-compatible server (llama-cpp-python) on a free loopback port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", model_path, "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads),
                             "--model_alias", "smollm2"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    wait_for(url + "/models", proc)
    return proc, url


def start_fault_server(latency: float) -> tuple[subprocess.Popen, str]:
    """Our fault-injecting server in its own process (for benchmarks: its CPU is not the client's)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "fault_server.py"), "--port", str(port),
                             "--latency", str(latency)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    wait_for(url + "/models", proc)
    return proc, url
