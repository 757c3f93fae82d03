"""Magpie on a local model: of N instructions sampled from the chat template alone, how many are non-empty and
distinct after the builder's filters (builders/magpie.py: cut or failed, debris, length, repetition, script,
exact and near duplicates). Instructions only (``Magpie(respond=False)``): the replies do not change them.

    OMP_NUM_THREADS=1 python benchmarks/bench_magpie.py                          # embedded SmolLM2-135M, 200
    OMP_NUM_THREADS=1 python benchmarks/bench_magpie.py --model qwen2.5-coder-1.5b

A fresh response cache in a temporary folder (removed at the end) unless ``--cache PATH``, so the time is a
generation time. Results: ``benchmarks/results/magpie-<model>.json``; 5 example instructions printed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import _common  # noqa: F401  (puts the repository root's tests/ on sys.path; write_result)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="a named local model (qwen2.5-coder-1.5b), a .gguf or a folder; "
                                                  "default: the embedded SmolLM2-135M-Instruct")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--cache", default=None, help="response cache file (default: a fresh one, removed at the end)")
    ap.add_argument("--examples", type=int, default=5)
    ap.add_argument("--temperature", type=float, default=None, help="instruction sampling (default: the builder's)")
    ap.add_argument("--top-p", type=float, default=None)
    args = ap.parse_args()

    import sys

    sys.path.insert(0, str(_common.ROOT))
    from datasets import Dataset

    from builders.magpie import INSTRUCTION_TOKENS, TEMPERATURE, TOP_P, instruction_filters
    from synth_datasets import LLM, Magpie
    from synth_datasets.curate import ExactDuplicates, NearDuplicates

    temperature = TEMPERATURE if args.temperature is None else args.temperature
    top_p = TOP_P if args.top_p is None else args.top_p
    tmp = None if args.cache else tempfile.mkdtemp(prefix="bench-magpie-")
    try:
        llm = LLM(args.model, batch_size=args.batch_size, cache=args.cache or str(Path(tmp) / "r.sqlite"))
        magpie = Magpie(llm, seed=args.seed, respond=False, temperature=temperature, top_p=top_p,
                        instruction_max_new_tokens=INSTRUCTION_TOKENS)
        t0 = time.perf_counter()
        prefix = magpie.template_prefix()  # loads the model: not part of the generation time
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ds = Dataset.from_dict({"id": list(range(args.n))}).map(magpie, batched=True, batch_size=args.n)
        gen_s = time.perf_counter() - t0
        texts = ds["instruction"]
        nonempty = [t for t in texts if t and t.strip()]
        steps, reasons = [], Counter()
        for name, f, _ in instruction_filters():
            marked = ds.map(f.mark, batched=True)
            col = f"{f.name}_reason"
            reasons.update(f"{name}:{r}" for r in marked[col] if r is not None)
            ds = ds.filter(f, batched=True)
            steps.append((name, ds.num_rows))
        for name, f in (("dedup", ExactDuplicates(column="instruction")),
                        ("near-dedup", NearDuplicates(column="instruction", threshold=0.8))):
            f.fit(ds)
            ds = ds.filter(f, batched=True, with_indices=True)
            steps.append((name, ds.num_rows))
        kept = ds["instruction"]
        tokens = int(llm.stats["completion_tokens"])
        result = {
            "model": args.model or "smollm2-135m (embedded)", "n": args.n, "seed": args.seed,
            "sampling": {"temperature": temperature, "top_p": top_p, "max_new_tokens": INSTRUCTION_TOKENS},
            "template_prefix": prefix,
            "non_empty": len(nonempty), "distinct_non_empty": len(set(nonempty)),
            "kept_after_filters": len(kept), "kept_fraction": round(len(kept) / args.n, 4),
            "kept_distinct": len(set(kept)), "rows_after_each_step": steps, "drop_reasons": dict(reasons),
            "median_instruction_words": sorted(len(t.split()) for t in kept)[len(kept) // 2] if kept else 0,
            "load_s": round(load_s, 1), "generate_s": round(gen_s, 1), "completion_tokens": tokens,
            "tokens_per_s": round(tokens / gen_s, 1) if gen_s else None,
            "examples": random.Random(args.seed).sample(kept, min(args.examples, len(kept))),
        }
        slug = (args.model or "smollm2-135m").replace("/", "_") + f"-t{temperature}-p{top_p}"
        _common.write_result(f"magpie-{slug}", result)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
