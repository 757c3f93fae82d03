"""LLM judge on the embedded model: share of rows that get a score, and time per row, for the two ways
of reading a score: generate a reply and parse it (``method="generate"``, 64 new tokens, greedy) vs
the expected rating under the next-token distribution after "Score: " (``method="logprobs"``).

    python benchmarks/bench_judge.py --rows 16

Rows: Rotten Tomatoes snippets (real short reviews; random seed 0), in a column named ``review``.
The model is loaded and warmed up before timing; the response cache is off, so every row is computed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import _common
from realdata import rotten_tomatoes

from synth_datasets import LLM, curate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()
    from datasets import Dataset

    rows = rotten_tomatoes(args.rows, seed=0)
    ds = Dataset.from_dict({"review": [r["text"] for r in rows], "label": [r["label"] for r in rows]})
    llm = LLM(batch_size=args.batch_size, cache=False)
    llm.backend._load()
    llm.chat("Say hi.", max_new_tokens=2)  # warm-up
    result = {"rows": ds.num_rows, "model": llm.identity_string(), "methods": {}}
    for method in ("generate", "logprobs"):
        judge = curate.LLMJudge(llm=llm, column="review", method=method, threshold=3)
        t0 = time.perf_counter()
        marked = ds.map(judge.mark, batched=True, batch_size=args.batch_size)
        seconds = time.perf_counter() - t0
        scores = [s for s in marked["judge_score"] if s is not None]
        result["methods"][method] = {
            "scored": len(scores), "parse_rate": round(len(scores) / ds.num_rows, 3),
            "seconds_per_row": round(seconds / ds.num_rows, 3),
            "score_mean": round(statistics.mean(scores), 3) if scores else None,
            "score_stdev": round(statistics.stdev(scores), 3) if len(scores) > 1 else None,
            "replies": list(marked["judge_reply"])[:3]}
    _common.write_result("judge", result)


if __name__ == "__main__":
    main()
