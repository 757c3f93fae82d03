"""Rerun with a warm response cache: wall time vs the first run, and model calls (target 0).

The dataset is in memory, so ``datasets`` itself caches nothing: every saving comes from our
response cache. The second run uses a fresh LLM object (as a new process would).

    python benchmarks/bench_cache_rerun.py --rows 64 --n 2 --max-new-tokens 48 --runs 3
"""

from __future__ import annotations

import argparse
import tempfile
import time

import _common


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from datasets import Dataset

    from synth_datasets import LLM, Conditions, Template, TextGenerator

    ds = Dataset.from_dict({"id": list(range(args.rows))}).map(
        Conditions(label=["positive", "negative"], style=["calm", "intense", "funny"], seed=0), batched=True)
    template = Template(user="Write a {{ label }} movie review, {{ style }} in tone.")
    warm_llm = LLM(batch_size=64, cache=False)
    warm_llm.backend._load()  # model load excluded from both timings
    first, second, calls = [], [], []
    for r in range(args.runs):
        cache = tempfile.mkdtemp() + "/c.sqlite"
        llm1 = LLM(batch_size=64, cache=cache)
        llm1._backend = warm_llm.backend
        t0 = time.perf_counter()
        a = ds.map(TextGenerator(llm1, template, n=args.n, max_new_tokens=args.max_new_tokens, seed=r), batched=True,
                   batch_size=64)
        first.append(time.perf_counter() - t0)
        llm2 = LLM(batch_size=64, cache=cache)
        t0 = time.perf_counter()
        b = ds.map(TextGenerator(llm2, template, n=args.n, max_new_tokens=args.max_new_tokens, seed=r), batched=True,
                   batch_size=64)
        second.append(time.perf_counter() - t0)
        assert list(b["text"]) == list(a["text"])
        calls.append(llm2.stats["requests"])
    _common.write_result("cache_rerun", {
        "settings": vars(args), "first_run_s": first, "rerun_s": second, "rerun_model_calls": calls,
        "median_first_s": _common.median(first), "median_rerun_s": _common.median(second),
        "rerun_over_first": _common.median(second) / _common.median(first),
        "rows": args.rows * args.n})


if __name__ == "__main__":
    main()
