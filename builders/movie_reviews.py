"""Movie reviews conditioned on sampled attributes (AttrPrompt-style: label x style x length), then
truncated and failed reviews dropped, a length filter and exact deduplication.

The token budget follows the longest requested length with a margin (``max_new_tokens`` by default:
100 words x 1.4 tokens per word x 1.6 = 224), so a review is rarely cut; the few that still end at the
limit are dropped, and the card reports how many.

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
from synth_datasets.curate import ExactDuplicates, Length, TrimToSentence, Truncated
from synth_datasets.errors import EmptyDatasetError
from synth_datasets.recipe import Recipe
from synth_datasets.target import DropColumns, add_realness_steps, load_examples


NAME = "movie-reviews"
LABELS = ["positive", "negative"]
STYLES = ["enthusiastic", "sarcastic", "calm and analytical", "intense", "humorous", "nostalgic"]
LENGTHS = ["short, about 30 words", "medium, about 60 words", "long, about 100 words"]
WORDS = {"short, about 30 words": 30, "medium, about 60 words": 60, "long, about 100 words": 100}
TOKENS_PER_WORD = 1.4  # SmolLM2's tokenizer on English prose (GPT-2-like BPE)
MARGIN = 1.6           # room for a model that overshoots the asked length


def token_budget(lengths: list[str] = LENGTHS) -> int:
    """``max_new_tokens`` that fits the longest requested length with the margin.

    >>> token_budget()
    224
    """
    return int(max(WORDS[x] for x in lengths) * TOKENS_PER_WORD * MARGIN + 0.5)

TEMPLATE = Template(
    system="You are a movie critic who writes realistic reviews for a film website.",
    user="Write a {{ label }} review of a movie. Style: {{ style }}. Length: {{ length }}. "
         "Output only the review.",
)


RT_LABELS = {"fresh": "positive", "rotten": "negative"}  # Rotten Tomatoes' labels, accepted in --examples
AIMED = ("Real reviews of this kind:\n{{ demos }}\n\nWrite one more {{ label }} review like these, "
         "in your own words. Style: {{ style }}. Length: %s. Output only the review.")


def aimed_template(length: str) -> Template:
    """The prompt with --examples: real demos of the row's label and the sample's length (``length``)."""
    return Template(system=TEMPLATE.system, user=AIMED % length)


BATCH_SIZE = 128  # rows a local model decodes at once: its fastest setting here (BENCHMARKS.md, local generation)


def map_batch(batch_size: int) -> int:
    """Rows handed to the generator per ``map`` call: twice the model's running batch, so the slots of rows
    that finish early are refilled from the rest (continuous batching) rather than left idle.

    >>> map_batch(BATCH_SIZE)
    256
    """
    return 2 * batch_size


def make_llm(model: str | None, model_name: str | None, batch_size: int) -> LLM:
    """An endpoint for an ``http(s)://`` model, else a local model (embedded when ``model`` is None)."""
    if model and "://" in model:
        return LLM(model, model=model_name)
    return LLM(model, batch_size=batch_size)


def recipe(*, n: int = 50, seed: int = 0, n_per_row: int = 1, max_new_tokens: int | None = None,
           batch_size: int = BATCH_SIZE, min_words: int = 10, max_words: int = 200, model: str | None = None,
           model_name: str | None = None, examples: str | None = None, realness_gate: bool = True, llm: LLM | None = None) -> Recipe:
    """``n`` rows of sampled conditions -> ``n * n_per_row`` reviews -> truncated and failed reviews
    dropped -> ``min_words`` to ``max_words`` words -> exact duplicates removed.

    Args:
        n (`int`): rows of sampled conditions (label x style x length).
        seed (`int`): seed of the condition draws and of every sample.
        n_per_row (`int`): reviews generated per row of conditions.
        max_new_tokens (`int`, *optional*): token limit per review; default: the longest requested
            length with a margin (224), so few reviews are cut; cut ones are dropped.
        batch_size (`int`): rows a local model decodes at once; each map call hands the generator twice
            as many, so the slots of rows that finish early are refilled.
        min_words (`int`): shortest review kept, in words.
        max_words (`int`): longest review kept, in words.
        model (`str`, *optional*): a .gguf file, a model folder, a cached Hub id or an http(s) URL of an
            OpenAI-compatible server; default: the embedded SmolLM2-135M-Instruct.
        model_name (`str`, *optional*): the model name to ask the server for (with an http(s) --model).
        examples (`str`, *optional*): 20-200 real labelled reviews (csv/jsonl/parquet with text and label,
            positive/negative or fresh/rotten; or a cached Hub dataset id) to aim at: 4 real reviews of the
            row's label as demos, the sample's length asked for (and its token budget, first-paragraph stop)
            instead of the length condition, reviews cut at the token budget trimmed to their last complete
            sentence (an excerpt, as real snippets are), a realness gate, and a held-out TSTR/TRTR line in the card.
        realness_gate (`bool`): with ``examples``: drop the reviews a real-vs-synthetic discriminator finds least
            real (``--no-realness-gate`` keeps them; the held-out measurement is made either way).

    Example:
        >>> ds, record = recipe(n=4, max_new_tokens=32).run()                 # doctest: +SKIP
        >>> [(s.name, s.rows_out) for s in record.steps]                      # doctest: +SKIP
        [('conditions', 4), ('generate', 4), ('truncated', 4), ('length', 4), ('dedup', 4)]
    """
    if not isinstance(n, int) or n < 1:
        raise EmptyDatasetError(f"n={n!r}: nothing to generate. Ask for at least one row (--n 1 or more).")
    ex = load_examples(examples, labels=LABELS, label_map=RT_LABELS, seed=seed) if examples else None  # before the model
    llm = llm or make_llm(model, model_name, batch_size)
    conditions = Conditions(label=LABELS, style=STYLES, **({} if ex else {"length": LENGTHS}), seed=seed)
    target = ex.length() if ex else None
    template = aimed_template(target.phrase) if ex else TEMPLATE
    generator = TextGenerator(llm, template, output="review", n=n_per_row, seed=seed, temperature=0.8, top_p=0.95,
                              max_new_tokens=max_new_tokens or (target.max_new_tokens if ex else token_budget()),
                              stop=list(target.stop) if ex else None, progress=True)
    r = Recipe(NAME, source=lambda: Dataset.from_dict({"id": list(range(n))}), seed=seed,
               license="apache-2.0", task_categories=["text-classification"], language=["en"],
               tags=["movie-reviews", "sentiment", "attrprompt"], pretty_name="Synthetic movie reviews",
               text_column="review", label_columns=["label", "style", *([] if ex else ["length"])],
               class_labels={"label": LABELS},
               description="Movie reviews written by a language model, each conditioned on a sampled sentiment "
                           "label, writing style and length (attributed prompts, AttrPrompt-style), then "
                           "truncated ones dropped, filtered by length and deduplicated.")
    r.map(conditions, name="conditions", desc="Sampling conditions")
    if ex:
        r.map(ex.demonstrations(4, seed=seed), name="demos", with_indices=True, desc="Real demos of the label")
    r.map(generator, name="generate", batch_size=map_batch(batch_size), desc="Generating reviews")
    if ex:  # the real demos are not published with the data
        r.map(DropColumns(["demos", "demos_ids"]), name="drop-demos", remove_columns=["demos", "demos_ids"])
        # a review cut at the budget keeps its complete sentences (an excerpt, as real snippets are)
        r.map(TrimToSentence(column="review", min_words=min(min_words, target.words_low)), name="trim",
              desc="Trimming cut reviews to their last sentence")
    r.filter(Truncated(column="review"), name="truncated", desc="Dropping truncated or failed reviews")
    r.filter(Length(column="review", min_words=min(min_words, target.words_low) if ex else min_words,
                    max_words=max_words), name="length", desc="Filtering by length")
    r.fit_filter(ExactDuplicates(column="review"), name="dedup", with_indices=True, desc="Removing duplicates")
    if ex:
        add_realness_steps(r, ex, column="review", seed=seed, gate=realness_gate)
    return r


if __name__ == "__main__":
    from synth_datasets.cli import main

    sys.exit(main(["build", __file__, *sys.argv[1:]]))
