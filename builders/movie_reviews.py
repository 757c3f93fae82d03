"""Movie reviews conditioned on sampled attributes (AttrPrompt-style: label x style x length),
then a length filter (which also drops failed generations) and exact deduplication.

Run it offline with the embedded model:

    synth-datasets build movie-reviews --n 50 --out out/movie-reviews
    python -m builders.movie_reviews --n 50 --out out/movie-reviews        # the same
    synth-datasets build movie-reviews --n 200 --push-to-hub user/movie-reviews

or against any OpenAI-compatible server with ``--model http://127.0.0.1:8080/v1 --model-name NAME``.
"""

from __future__ import annotations

import sys

from datasets import Dataset

from synth_datasets import LLM, Conditions, Template, TextGenerator
from synth_datasets.curate import ExactDuplicates, Length
from synth_datasets.errors import EmptyDatasetError
from synth_datasets.recipe import Recipe


NAME = "movie-reviews"
LABELS = ["positive", "negative"]
STYLES = ["enthusiastic", "sarcastic", "calm and analytical", "intense", "humorous", "nostalgic"]
LENGTHS = ["short, about 30 words", "medium, about 60 words", "long, about 100 words"]

TEMPLATE = Template(
    system="You are a movie critic who writes realistic reviews for a film website.",
    user="Write a {{ label }} review of a movie. Style: {{ style }}. Length: {{ length }}. "
         "Output only the review.",
)


def make_llm(model: str | None, model_name: str | None, batch_size: int) -> LLM:
    """An endpoint for an ``http(s)://`` model, else a local model (embedded when ``model`` is None)."""
    if model and "://" in model:
        return LLM(model, model=model_name)
    return LLM(model, batch_size=batch_size)


def recipe(*, n: int = 50, seed: int = 0, n_per_row: int = 1, max_new_tokens: int = 160, batch_size: int = 32,
           min_words: int = 10, max_words: int = 200, model: str | None = None, model_name: str | None = None,
           llm: LLM | None = None) -> Recipe:
    """``n`` rows of sampled conditions -> ``n * n_per_row`` reviews -> ``min_words`` to ``max_words``
    words (failed rows dropped) -> exact duplicates removed.

    Example:
        >>> ds, record = recipe(n=4, max_new_tokens=32).run()                 # doctest: +SKIP
        >>> [(s.name, s.rows_out) for s in record.steps]                      # doctest: +SKIP
        [('conditions', 4), ('generate', 4), ('length', 4), ('dedup', 4)]
    """
    if not isinstance(n, int) or n < 1:
        raise EmptyDatasetError(f"n={n!r}: nothing to generate. Ask for at least one row (--n 1 or more).")
    llm = llm or make_llm(model, model_name, batch_size)
    conditions = Conditions(label=LABELS, style=STYLES, length=LENGTHS, seed=seed)
    generator = TextGenerator(llm, TEMPLATE, output="review", n=n_per_row, seed=seed,
                              temperature=0.8, top_p=0.95, max_new_tokens=max_new_tokens)
    r = Recipe(NAME, source=lambda: Dataset.from_dict({"id": list(range(n))}), seed=seed,
               license="apache-2.0", task_categories=["text-classification"], language=["en"],
               tags=["movie-reviews", "sentiment", "attrprompt"], pretty_name="Synthetic movie reviews",
               text_column="review", label_columns=["label", "style", "length"],
               description="Movie reviews written by a language model, each conditioned on a sampled sentiment "
                           "label, writing style and length (attributed prompts, AttrPrompt-style), then "
                           "filtered by length and deduplicated.")
    r.map(conditions, name="conditions", desc="Sampling conditions")
    r.map(generator, name="generate", batch_size=batch_size, desc="Generating reviews")
    r.filter(Length(column="review", min_words=min_words, max_words=max_words), name="length",
             desc="Filtering by length")
    r.fit_filter(ExactDuplicates(column="review"), name="dedup", with_indices=True, desc="Removing duplicates")
    return r


if __name__ == "__main__":
    from synth_datasets.cli import main

    sys.exit(main(["build", __file__, *sys.argv[1:]]))
