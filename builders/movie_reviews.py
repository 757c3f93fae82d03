"""Movie reviews conditioned on sampled attributes (AttrPrompt-style: label x style x length).

Run it offline with the embedded model:

    python -m builders.movie_reviews --n 50 --out out/reviews
    synth-datasets generate --n 50 --out out/reviews          # the same

or against any OpenAI-compatible server with ``--model http://127.0.0.1:8080/v1 --model-name NAME``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from datasets import Dataset

from synth_datasets import LLM, Conditions, Template, TextGenerator
from synth_datasets.errors import EmptyDatasetError, SynthDatasetsError
from synth_datasets.io import check_output_dir, save_dataset

LABELS = ["positive", "negative"]
STYLES = ["enthusiastic", "sarcastic", "calm and analytical", "intense", "humorous", "nostalgic"]
LENGTHS = ["short, about 30 words", "medium, about 60 words", "long, about 100 words"]

TEMPLATE = Template(
    system="You are a movie critic who writes realistic reviews for a film website.",
    user="Write a {{ label }} review of a movie. Style: {{ style }}. Length: {{ length }}. "
         "Output only the review.",
)


def steps(*, llm: LLM, seed: int = 0, n_per_row: int = 1, max_new_tokens: int = 160):
    """The recipe's steps, in order (each has ``describe()``)."""
    conditions = Conditions(label=LABELS, style=STYLES, length=LENGTHS, seed=seed)
    generator = TextGenerator(llm, TEMPLATE, output="review", n=n_per_row, seed=seed,
                              temperature=0.8, top_p=0.95, max_new_tokens=max_new_tokens)
    return [conditions, generator]


def build(n: int = 50, *, llm: LLM | None = None, seed: int = 0, n_per_row: int = 1,
          max_new_tokens: int = 160, batch_size: int = 32) -> tuple[Dataset, list]:
    """Generate ``n * n_per_row`` reviews. Returns the dataset and the steps that made it.

    Example:
        >>> ds, _ = build(4, max_new_tokens=32)   # doctest: +SKIP
        >>> ds.column_names[:5]                   # doctest: +SKIP
        ['id', 'label', 'style', 'length', 'review']
    """
    if not isinstance(n, int) or n < 1:
        raise EmptyDatasetError(f"n={n!r}: nothing to generate. Ask for at least one row (--n 1 or more).")
    llm = llm or LLM(batch_size=batch_size)
    conditions, generator = steps(llm=llm, seed=seed, n_per_row=n_per_row, max_new_tokens=max_new_tokens)
    ds = Dataset.from_dict({"id": list(range(n))})
    ds = ds.map(conditions, batched=True, desc="Sampling conditions")
    ds = ds.map(generator, batched=True, batch_size=batch_size, desc="Generating reviews")
    return ds, [conditions, generator]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="movie_reviews", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50, help="input rows (conditions drawn per row)")
    p.add_argument("--out", required=True, help="output folder (parquet + steps.json)")
    p.add_argument("--model", default=None, help="endpoint URL, .gguf file or model folder (default: embedded)")
    p.add_argument("--model-name", default=None, help="model name sent to an endpoint")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-per-row", type=int, default=1, help="reviews per input row")
    p.add_argument("--max-new-tokens", type=int, default=160)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return p


def run(args: argparse.Namespace) -> int:
    check_output_dir(args.out, overwrite=args.overwrite)  # before any model is loaded
    if args.model and "://" in args.model:
        llm = LLM(args.model, model=args.model_name)
    else:
        llm = LLM(args.model, batch_size=args.batch_size)
    ds, used = build(args.n, llm=llm, seed=args.seed, n_per_row=args.n_per_row,
                     max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    failed = sum(e is not None for e in ds["review_error"])
    out = save_dataset(ds, args.out, overwrite=args.overwrite,
                       extra_files={"steps.json": [s.describe() for s in used],
                                    "stats.json": {"rows": ds.num_rows, "failed_rows": failed, **dict(llm.stats)}})
    print(json.dumps({"out": str(out), "rows": ds.num_rows, "failed_rows": failed, **dict(llm.stats)}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return run(args)
    except SynthDatasetsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
