"""What writing each answer to the response cache as it arrives costs, vs batched writes.

``LLM.generate`` writes every finished answer to the SQLite cache at once (one transaction per
answer), so a killed run keeps every answer it finished. This times that against the batched writes
it used to make (one ``put_many`` per 32 or 128 answers), on the real cache (WAL, synchronous=NORMAL),
pure SQLite: no model runs. Each run writes ``--answers`` completions into a fresh cache file.

    OMP_NUM_THREADS=1 python benchmarks/bench_cache_writes.py --answers 5000 --runs 5

The fraction of decoding is per answer: an answer of ``--new-tokens`` tokens takes
new_tokens / ``--tok-s`` seconds of a local decode at batch 128 (BENCHMARKS.md: ~500 new tok/s), and the
worst step is one where all 128 rows of the batch finish at once (a 128/tok_s-second step).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common


def _answers(n: int):
    from synth_datasets.llm import Completion

    words = ("the film moves slowly but its actors carry every scene with a quiet warmth that stays "
             "long after the credits roll and the score is lovely").split()
    text = " ".join(words[i % len(words)] for i in range(60))  # ~60 words, a typical review
    return [(f"{i:064x}", Completion(text=f"{i} {text}", finish_reason="stop",
                                     usage={"prompt_tokens": 40, "completion_tokens": 80}, latency_s=0.5))
            for i in range(n)]


def _run(answers, batch: int) -> float:
    """Seconds to store ``answers`` with one ``put_many`` per ``batch`` of them, in a fresh cache."""
    from synth_datasets.llm import ResponseCache

    with tempfile.TemporaryDirectory() as d:
        cache = ResponseCache(Path(d) / "responses.sqlite")
        cache.get_many(["warm-up"])  # open the file (and switch it to WAL) outside the timing
        t0 = time.perf_counter()
        for start in range(0, len(answers), batch):
            cache.put_many(dict(answers[start:start + batch]))
        seconds = time.perf_counter() - t0
        assert len(cache) == len(answers)
        cache.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--answers", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tok-s", type=float, default=500.0, help="local decode speed at batch 128 (new tok/s)")
    ap.add_argument("--new-tokens", type=int, default=64, help="new tokens of a typical answer")
    args = ap.parse_args()

    answers = _answers(args.answers)
    modes = {"per answer": 1, "batches of 32": 32, "batches of 128": 128}
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.runs):  # alternate the modes, run after run
        for mode, batch in modes.items():
            times[mode].append(_run(answers, batch))
    us = {m: _common.median(t) / args.answers * 1e6 for m, t in times.items()}
    decode_s_per_answer = args.new_tokens / args.tok_s
    step_s = 128 / args.tok_s
    result = {
        "answers": args.answers, "runs": args.runs, "tok_s": args.tok_s, "new_tokens": args.new_tokens,
        "us_per_answer": {m: round(v, 1) for m, v in us.items()},
        "per_answer_vs_batch_128": round(us["per answer"] / us["batches of 128"], 2),
        "fraction_of_decode_per_answer": round(us["per answer"] * 1e-6 / decode_s_per_answer, 6),
        "worst_step_fraction": round(128 * us["per answer"] * 1e-6 / step_s, 4),
        "seconds": {m: [round(x, 3) for x in t] for m, t in times.items()},
    }
    _common.write_result("cache_writes", result)


if __name__ == "__main__":
    main()
