"""Starting real servers on loopback, shared by the tests and the benchmarks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from fault_server import free_port

HERE = Path(__file__).resolve().parent
REBUILD_HINT = ("rebuild it with the portable instruction set: `bash scripts/install-test-server` "
                "(see README, Set up)")


class ServerDiedError(RuntimeError):
    """A test server process exited; the message carries its exit status and the tail of its log."""


def describe_exit(rc: int | None) -> str:
    """``-4`` -> ``'killed by SIGILL (illegal instruction)'``; ``132`` (a shell's 128+4) alike."""
    if rc is None:
        return "still running"
    sig = -rc if rc < 0 else rc - 128 if rc > 128 else None
    if sig:
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        extra = " (illegal instruction: the build uses CPU instructions this machine refuses; " + REBUILD_HINT + ")" \
            if name == "SIGILL" else ""
        return f"killed by {name}{extra}"
    return f"exited with status {rc}"


def log_tail(path: Path | None, lines: int = 20) -> str:
    if path is None or not Path(path).exists():
        return "(no log)"
    text = Path(path).read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(empty log)"


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 120, log_path: Path | None = None) -> None:
    """Poll ``url`` until it answers; kill ``proc`` and raise if it dies or the time runs out."""
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            rc = proc.poll()
            if rc is not None:
                raise ServerDiedError(f"the server behind {url} {describe_exit(rc)} before answering; "
                                      f"log tail:\n{log_tail(log_path)}")
            if time.time() > deadline:
                proc.kill()
                raise ServerDiedError(f"the server behind {url} did not answer within {timeout:.0f}s; "
                                      f"log tail:\n{log_tail(log_path)}")
            time.sleep(0.2)


class LlamaServer:
    """llama.cpp's OpenAI-compatible server (llama-cpp-python) with the embedded GGUF, on loopback.

    ``start()`` waits for ``/v1/models`` and then sends one tiny completion, so a build that dies on
    its first completion (SIGILL) fails here, with the exit signal and the log tail, not later as an
    "unreachable" endpoint. ``ensure_alive()`` restarts a server whose process died meanwhile (another
    heavy process on a 2-core machine, the OOM killer) on the same port, and says so.
    """

    def __init__(self, model_path: str, *, threads: int = 2, log_path: Path | None = None, port: int | None = None):
        self.model_path, self.threads, self.log_path = model_path, threads, log_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None
        self.restarts: list[str] = []

    def start(self) -> "LlamaServer":
        log = open(self.log_path, "a") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", self.model_path, "--host", "127.0.0.1",
             "--port", str(self.port), "--n_ctx", "2048", "--n_threads", str(self.threads),
             "--model_alias", "smollm2"], stdout=log, stderr=subprocess.STDOUT)
        if log is not subprocess.DEVNULL:
            log.close()  # the child holds its own descriptor
        wait_for(self.url + "/models", self.proc, log_path=self.log_path)
        self._smoke()
        return self

    def _smoke(self) -> None:
        body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "seed": 0}).encode()
        req = urllib.request.Request(self.url + "/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=120).read()
        except OSError as e:
            time.sleep(0.5)
            raise ServerDiedError(f"llama.cpp's server at {self.url} failed its first completion ({e}); it "
                                  f"{describe_exit(self.proc.poll())}; log tail:\n{log_tail(self.log_path)}") from e

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_alive(self) -> str:
        if not self.alive():
            why = describe_exit(self.proc.poll()) if self.proc is not None else "not started"
            self.restarts.append(why)
            print(f"\n[llama_server] the server process {why}; restarting it on port {self.port}",
                  file=sys.stderr)
            self.start()
        return self.url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_llama_server(model_path: str, *, threads: int = 2, log_path: Path | None = None) -> tuple[LlamaServer, str]:
    """llama.cpp's OpenAI-compatible server on a free loopback port (benchmarks use this form)."""
    server = LlamaServer(model_path, threads=threads, log_path=log_path).start()
    return server, server.url


def start_fault_server(latency: float) -> tuple[subprocess.Popen, str]:
    """Our fault-injecting server in its own process (for benchmarks: its CPU is not the client's)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE / "fault_server.py"), "--port", str(port),
                             "--latency", str(latency)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    wait_for(url + "/models", proc)
    return proc, url
