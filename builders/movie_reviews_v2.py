"""Movie reviews, v2: the movie-reviews builder with the prompt-engineering parts the ablation in
BENCHMARKS.md ("Prompt engineering ablation") supports on the embedded model, and the others opt-in.

- **Template rotation** over three wordings (Meng et al. 2022): on the embedded model it cut the share of
  reviews cut at the token limit from 39% to 24% at the same TSTR, so it is on.
- **Covering conditions**: label x style x length x film genre x wording drawn with
  ``Conditions(design="latin")`` (every value of every attribute before any repeats, so even 6 rows
  are label-balanced), and ``exclude=`` drops the contradictory "negative + enthusiastic" pair.
- **A first-paragraph stop** (``stop=["\\n\\n"]``): the small model runs on past one review.
- **Nearest real demos** (KATE): ``--demos K --demo-pool FILE`` (a local .csv/.json/.jsonl/.parquet file
  with ``text`` and ``label`` columns, labels positive/negative or fresh/rotten) shows each row the K
  real snippets of its label nearest to "a <label> review of a <genre> film". Off by default: on the
  embedded model they did not raise TSTR and tripled truncation; worth it with a larger model.
- **Model-made genres** (``--llm-genres N``, AttrPrompt): the model lists N film genres instead of the
  fixed list. Off by default: the embedded model listed half non-genres.

Then, as v1: truncated/failed reviews dropped, a length filter, exact deduplication.

    synth-datasets build movie-reviews-v2 --n 50 --out out/movie-reviews-v2
    synth-datasets build movie-reviews-v2 --n 200 --demos 3 --demo-pool rt.csv --model http://127.0.0.1:8080/v1
"""

from __future__ import annotations

import sys
from pathlib import Path

from datasets import Dataset

from builders.movie_reviews import BATCH_SIZE, LABELS, LENGTHS, STYLES, make_llm, map_batch, token_budget
from synth_datasets import Conditions, Demonstrations, LLMValues, Template, TemplateRotation, TextGenerator
from synth_datasets.curate import ExactDuplicates, Length, Truncated
from synth_datasets.errors import EmptyDatasetError, InvalidParameterError
from synth_datasets.recipe import Recipe

NAME = "movie-reviews-v2"
GENRES = ["drama", "comedy", "thriller", "horror", "science fiction", "romance", "documentary", "animation",
          "crime", "war", "musical", "western"]
EXCLUDE = [{"label": "negative", "style": "enthusiastic"}]
SYSTEM = "You are a movie critic who writes realistic reviews for a film website."
WORDINGS = {
    "critic": "Write a {{ label }} review of a {{ genre }} movie. Style: {{ style }}. Length: {{ length }}. "
              "Output only the review.",
    "blog": "You just watched a {{ genre }} movie and your opinion is {{ label }}. Write your review. Tone: "
            "{{ style }}. Length: {{ length }}. Output only the review.",
    "verdict": "Give a film critic's {{ label }} verdict on a recent {{ genre }} film, written in a {{ style }} "
               "way ({{ length }}). Give only the verdict text.",
}
DEMOS_INTRO = "Real reviews of this kind, for reference:\n{{ demos }}\n\n"


def rotation(demos: bool) -> TemplateRotation:
    """The three wordings, each with the demos block first when ``demos``."""
    head = DEMOS_INTRO if demos else ""
    return TemplateRotation({k: Template(system=SYSTEM, user=head + v) for k, v in WORDINGS.items()})


def read_pool(path: str) -> Dataset:
    """A local file of real labelled reviews (``text``, ``label``) as a Dataset."""
    p = Path(path).expanduser()
    kinds = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
    if not p.is_file() or p.suffix not in kinds:
        raise InvalidParameterError(f"--demo-pool {path!r}: not a .csv/.json/.jsonl/.parquet file. Pass a local file "
                                    "with 'text' and 'label' columns.")
    ds = getattr(Dataset, f"from_{kinds[p.suffix]}")(str(p))
    if not {"text", "label"} <= set(ds.column_names):
        raise InvalidParameterError(f"--demo-pool {path!r} has columns {ds.column_names}; it needs 'text' and 'label'.")
    return ds


def recipe(*, n: int = 50, seed: int = 0, max_new_tokens: int | None = None, batch_size: int = BATCH_SIZE,
           min_words: int = 10, max_words: int = 200, demos: int = 0, demo_pool: str | None = None,
           llm_genres: int = 0, model: str | None = None, model_name: str | None = None, llm=None) -> Recipe:
    """``n`` rows of covering conditions -> one review each (rotated wording, first paragraph) ->
    truncated and failed reviews dropped -> ``min_words`` to ``max_words`` words -> exact duplicates removed.

    Args:
        n (`int`): rows (one review each).
        seed (`int`): seed of the conditions, the demos and every sample.
        max_new_tokens (`int`, *optional*): token limit per review; default: the longest asked length with a
            margin (224).
        batch_size (`int`): rows a local model decodes at once; each map call hands the generator twice
            as many, so the slots of rows that finish early are refilled.
        min_words (`int`): shortest review kept, in words.
        max_words (`int`): longest review kept, in words.
        demos (`int`): real demonstrations per prompt, nearest to the row's label and genre (needs
            --demo-pool); 0: none.
        demo_pool (`str`, *optional*): a local .csv/.json/.jsonl/.parquet file of real reviews with 'text' and
            'label' (positive/negative or fresh/rotten) columns.
        llm_genres (`int`): film genres the model lists (0: the fixed list of 12).
        model (`str`, *optional*): a .gguf file, a model folder, a cached Hub id or an http(s) URL of an
            OpenAI-compatible server; default: the embedded SmolLM2-135M-Instruct.
        model_name (`str`, *optional*): the model name to ask the server for (with an http(s) --model).

    Example:
        >>> ds, record = recipe(n=4, max_new_tokens=32).run()                  # doctest: +SKIP
        >>> ds.column_names[:5]                                                # doctest: +SKIP
        ['id', 'label', 'style', 'length', 'genre']
    """
    if not isinstance(n, int) or n < 1:
        raise EmptyDatasetError(f"n={n!r}: nothing to generate. Ask for at least one row (--n 1 or more).")
    if not isinstance(demos, int) or demos < 0:
        raise InvalidParameterError(f"demos={demos!r} must be an integer >= 0 (real demonstrations per prompt).")
    if demos and not demo_pool:
        raise InvalidParameterError("--demos needs --demo-pool FILE: real labelled reviews to pick them from.")
    if not isinstance(llm_genres, int) or llm_genres < 0:
        raise InvalidParameterError(f"llm_genres={llm_genres!r} must be an integer >= 0.")
    pool = read_pool(demo_pool) if demos else None  # checked before the model loads
    llm = llm or make_llm(model, model_name, batch_size)
    templates = rotation(demos > 0)
    genres = LLMValues(llm, "film genres and subgenres", n=llm_genres, seed=seed) if llm_genres else GENRES
    conditions = Conditions(label=LABELS, style=STYLES, length=LENGTHS, genre=genres, template_id=templates.ids,
                            exclude=EXCLUDE, design="latin", seed=seed)
    generator = TextGenerator(llm, templates, output="review", seed=seed, temperature=0.8, top_p=0.95,
                              max_new_tokens=max_new_tokens or token_budget(), stop=["\n\n"], progress=True)
    r = Recipe(NAME, source=lambda: Dataset.from_dict({"id": list(range(n))}), seed=seed,
               license="apache-2.0", task_categories=["text-classification"], language=["en"],
               tags=["movie-reviews", "sentiment", "attrprompt", "template-rotation"],
               pretty_name="Synthetic movie reviews (v2)", text_column="review",
               label_columns=["label", "style", "length", "genre", "template_id"], class_labels={"label": LABELS},
               description="Movie reviews written by a language model from rotated prompt wordings, each "
                           "conditioned on a sentiment label, style, length and film genre covered evenly "
                           "(every value before repeats, contradictory pairs excluded)"
                           + (", with the nearest real reviews of the label as demonstrations" if demos else "")
                           + "; truncated ones dropped, filtered by length and deduplicated.")
    r.map(conditions, name="conditions", with_indices=True, desc="Covering conditions")
    if demos:
        labels = set(pool["label"])
        label_map = {"positive": "fresh", "negative": "rotten"} if labels <= {"fresh", "rotten"} else None
        picker = Demonstrations(k=demos, strategy="nearest", query="a {{ label }} review of a {{ genre }} film",
                                label_column="label", same_label="label", label_map=label_map, seed=seed)
        picker.fit(pool, source={"source": f"demo pool {Path(demo_pool).name}"})
        r.map(picker, name="demos", with_indices=True, desc="Picking demonstrations")
    r.map(generator, name="generate", batch_size=map_batch(batch_size), desc="Generating reviews")
    r.filter(Truncated(column="review"), name="truncated", desc="Dropping truncated or failed reviews")
    r.filter(Length(column="review", min_words=min_words, max_words=max_words), name="length",
             desc="Filtering by length")
    r.fit_filter(ExactDuplicates(column="review"), name="dedup", with_indices=True, desc="Removing duplicates")
    return r


if __name__ == "__main__":
    from synth_datasets.cli import main

    sys.exit(main(["build", __file__, *sys.argv[1:]]))
