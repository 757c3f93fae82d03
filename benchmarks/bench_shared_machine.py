"""Local generation on a shared machine: torch's default thread count vs ours (issue 22, item 10).

A short local generation (the embedded SmolLM2-135M, one request at a time, like a build's requests)
is timed alone, then beside CPU-burning processes, each time in a fresh process with:
  - ``default``: torch's own thread count (``threads=torch.get_num_threads()`` at start, every core);
  - ``ours``: no ``threads=``, no OMP_NUM_THREADS: the backend picks the cores the others leave free
    (``choose_threads``, measured when the model loads, i.e. after the burners started).
Medians of --requests requests per cell (after one warm-up request); prints a table and writes
benchmarks/results/shared_machine.json. Run it on an otherwise quiet machine (it makes the load itself):

    python benchmarks/bench_shared_machine.py --burners 1 --requests 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

import _common

CHILD = r"""
import json, os, statistics, sys, time
import torch
from synth_datasets import LLM
from synth_datasets.llm import ChatRequest, SamplingParams

mode, n, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = LLM(cache=False, **({"threads": torch.get_num_threads()} if mode == "default" else {}))
llm.backend._load()
params = SamplingParams(temperature=0.8, max_new_tokens=new)
req = lambda i: [ChatRequest.of([{"role": "user", "content": f"Write one sentence about film number {i}."}], i)]
llm.backend.generate(req(-1), params)  # warm-up
times = []
for i in range(n):
    t0 = time.perf_counter()
    llm.backend.generate(req(i), params)
    times.append(time.perf_counter() - t0)
print(json.dumps({"threads": torch.get_num_threads(), "median_s": statistics.median(times), "times": times}))
"""


def burn() -> None:
    while True:
        pass


def run_cell(mode: str, requests: int, new_tokens: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(requests), str(new_tokens)], env=env,
                         capture_output=True, text=True, timeout=3600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--burners", type=int, default=1, help="CPU-burning processes beside the generation")
    ap.add_argument("--requests", type=int, default=8, help="timed requests per cell")
    ap.add_argument("--new-tokens", type=int, default=32)
    args = ap.parse_args()
    cells = []
    for condition in ("alone", f"beside {args.burners} burner(s)"):
        burners = []
        if condition != "alone":
            burners = [multiprocessing.Process(target=burn, daemon=True) for _ in range(args.burners)]
            for b in burners:
                b.start()
            time.sleep(1.0)  # let them reach full speed before the backend samples the load
        try:
            for mode in ("default", "ours"):
                r = run_cell(mode, args.requests, args.new_tokens)
                cells.append({"condition": condition, "mode": mode, **r})
                print(f"{condition:>22} {mode:>8}: {r['threads']} thread(s), median {r['median_s']:.2f} s/request",
                      file=sys.stderr, flush=True)
        finally:
            for b in burners:  # only the processes this script started
                b.terminate()
                b.join()
    print("\n| condition | threads: default | s/request | threads: ours | s/request |\n|---|---|---|---|---|")
    for condition in dict.fromkeys(c["condition"] for c in cells):
        d, o = (next(c for c in cells if c["condition"] == condition and c["mode"] == m) for m in ("default", "ours"))
        print(f"| {condition} | {d['threads']} | {d['median_s']:.2f} | {o['threads']} | {o['median_s']:.2f} |")
    _common.write_result("shared_machine", {"burners": args.burners, "requests": args.requests,
                                            "new_tokens": args.new_tokens, "cells": cells})


if __name__ == "__main__":
    main()
