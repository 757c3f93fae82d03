"""Explore-Instruct coverage on the embedded model: how many distinct nodes and leaves, how deep, and how
many proposals the ROUGE-L novelty rule dropped, round by round.

    SYNTH_DATASETS_CACHE=/tmp/bench-explore-cache OMP_NUM_THREADS=1 python benchmarks/bench_explore.py

Also reports, for the final tree, the distinct leaf *paths* and the distinct instructions (exact, after
whitespace/case normalization), and a few examples. Results: ``benchmarks/results/explore.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

import _common


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--roots", nargs="+", default=["creative writing", "mathematics", "programming"])
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch
    from datasets import Dataset

    from synth_datasets import LLM
    from synth_datasets.generate.targeted import ExploreInstruct

    torch.set_num_threads(args.threads)
    llm = LLM(batch_size=32)
    loop = ExploreInstruct(llm, k=args.k, max_rounds=args.rounds, threshold=args.threshold, seed=args.seed)
    t0 = time.perf_counter()
    nodes = loop.run(Dataset.from_dict({"task": args.roots}))
    wall = time.perf_counter() - t0
    rows = nodes.to_list()
    all_nodes = [{"task": t, "parent": None, "path": t, "depth": 0} for t in args.roots] + rows
    instructions = [r["instruction"] for r in rows if r["instruction"]]
    res = {
        "command": " ".join(sys.argv), "args": vars(args), "wall_s": round(wall, 1),
        "rounds": [{"round": r.round, **{k: v for k, v in r.metrics.items()}} for r in loop.rounds],
        "final": {**ExploreInstruct.coverage(all_nodes), "new_nodes": len(rows),
                  "by_how": dict(Counter(r["how"] for r in rows)), "by_depth": dict(Counter(r["depth"] for r in rows)),
                  "instructions": len(instructions),
                  "distinct_instructions": len({" ".join(i.lower().split()) for i in instructions}),
                  "distinct_tasks": len({r["task"].lower() for r in rows})},
        "examples": [{"path": r["path"], "instruction": r["instruction"]} for r in rows[:: max(1, len(rows) // 6)]],
    }
    _common.write_result("explore", res)


if __name__ == "__main__":
    main()
