"""A labelled dataset for any text-classification task (ZeroGen / SuperGen / AttrPrompt, survey §3.1.1):
the model proposes attribute dimensions and values per class (recorded in the card), rows cover the
classes and each class's values evenly, each text is generated for its class, truncated / failed /
duplicate rows are dropped, and NoiseScore (with the model's own label probabilities) drops rows whose
text does not carry their label. Columns ``text`` and ``label`` (a ``ClassLabel`` over ``--labels``).

With ``--examples FILE`` (20-200 real labelled rows: csv/jsonl/parquet, or a Hub dataset id in the local
cache) the generation is aimed at the sample: real demos of the row's label in the prompt, the sample's
length and register asked for (and its token budget and stop rule; a text cut at the budget trimmed to
its last complete sentence), attribute values mined with its
examples, a realness gate, and a held-out TSTR/TRTR + distance line in the card.

    synth-datasets build text-classification --task "news article" --labels business entertainment politics \\
        sport tech --n 500 --label-descriptions business="company and market news" --out out/news
    synth-datasets build text-classification --task "movie review" --labels positive negative \\
        --examples rt.csv --n 400 --out out/reviews
"""

from __future__ import annotations

import sys

from datasets import Dataset

from builders.movie_reviews import BATCH_SIZE, make_llm, map_batch
from synth_datasets import Template, TextGenerator
from synth_datasets.curate import ExactDuplicates, Length, NoiseScore, TrimToSentence, Truncated
from synth_datasets.errors import EmptyDatasetError, InvalidParameterError
from synth_datasets.generate import Annotator
from synth_datasets.prompts import Conditions
from synth_datasets.recipe import Recipe
from synth_datasets.target import DropColumns, ProposedAttributes, add_realness_steps, load_examples

NAME = "text-classification"
DEFAULT_LENGTH = "a few sentences, 30 to 80 words"
DEFAULT_TOKENS = 192  # 80 words x 1.4 tokens per word x 1.7
DEMOS_INTRO = "Real examples of this kind:\n{{ demos }}\n\n"


def _raw(text: str) -> str:
    """User text inside a template, never read as Jinja."""
    return "{% raw %}" + text + "{% endraw %}"


def check_inputs(task, labels, label_descriptions) -> tuple[str, list[str], dict[str, str]]:
    """The task, the labels and the descriptions, checked: one clear error before any model call.

    >>> check_inputs("news article", ["sport", "tech"], ["tech=gadgets and software"])[2]
    {'tech': 'gadgets and software'}
    """
    if not isinstance(task, str) or not task.strip():
        raise InvalidParameterError('--task is empty: say what a text is, e.g. --task "news article".')
    if not labels or isinstance(labels, str) or len(labels) < 2:
        raise InvalidParameterError(f"--labels {labels!r}: give at least two labels, e.g. --labels sport tech.")
    labels = [str(x).strip() for x in labels]
    if any(not x for x in labels):
        raise InvalidParameterError(f"--labels {labels!r} holds an empty label: remove it.")
    folded = [x.lower() for x in labels]
    dup = sorted({x for x in labels if folded.count(x.lower()) > 1})
    if dup:
        raise InvalidParameterError(f"--labels lists {dup} more than once (case ignored): give each label once.")
    descriptions = {}
    for item in label_descriptions or []:
        name, eq, text = str(item).partition("=")
        if not eq or not text.strip():
            raise InvalidParameterError(f'--label-descriptions {item!r} is not LABEL="description": write e.g. '
                                        'business="company and market news".')
        if name.strip() not in labels:
            raise InvalidParameterError(f"--label-descriptions names {name.strip()!r}, which is not one of --labels "
                                        f"{labels}. Fix the name or add the label.")
        descriptions[name.strip()] = text.strip()
    for value in [task, *labels, *descriptions.values()]:
        if "endraw" in value:
            raise InvalidParameterError(f"{value!r} contains 'endraw': rephrase it.")
    return task.strip(), labels, descriptions


class Noise(NoiseScore):
    """NoiseScore that fits small runs: folds lowered to the smallest class, skipped (every row kept,
    said in ``describe()``) when a class has fewer than 2 rows; a row whose LLM label failed counts as
    uniform."""

    def _probs(self, ds, col, classes):
        vals = ds[col]
        if all(v is not None for v in vals):
            return super()._probs(ds, col, classes)
        import numpy as np

        return np.asarray([v if v is not None else [1.0 / len(classes)] * len(classes) for v in vals], dtype=float)

    def _fit(self, ds):
        import numpy as np
        from collections import Counter

        counts = Counter(ds[self.label_column])
        smallest = min(counts.values()) if len(counts) == len(self.labels) else 0
        if smallest < 2:
            self._estimate = {"skipped": f"a class has fewer than 2 rows ({dict(counts)}): no noise filtering"}
            n = ds.num_rows
            return np.zeros(n, dtype=np.int16), ["noisy_label"], {f"{self.name}_score": np.zeros(n)}
        self.folds = min(self.folds, smallest)
        return super()._fit(ds)


def recipe(*, task: str | None = None, labels: list[str] | None = None, n: int = 50,
           label_descriptions: list[str] | None = None, examples: str | None = None, seed: int = 0,
           dimensions: int = 2, values: int = 4, demos: int = 4, max_new_tokens: int | None = None,
           batch_size: int = BATCH_SIZE, min_words: int = 3, max_words: int = 400, noise: bool = True,
           model: str | None = None, model_name: str | None = None, realness_gate: bool = True, llm=None) -> Recipe:
    """``n`` rows covering the labels -> attributes of each row's class -> one text each -> truncated,
    failed, out-of-range and duplicate texts dropped -> the model's label probabilities -> NoiseScore
    (-> with --examples: realness gate, held-out measurement).

    Args:
        task (`str`): what one text is, e.g. "news article".
        labels (`list[str]`): the class names (at least two, distinct).
        n (`int`): rows (one text each) before curation.
        label_descriptions (`list[str]`, *optional*): LABEL="what it means" items, shown in the prompts.
        examples (`str`, *optional*): 20-200 real labelled rows (csv/jsonl/parquet with text and label
            columns, or a Hub dataset id in the local cache) to aim the data at; 30% is held out to measure it.
        seed (`int`): seed of every draw and sample.
        dimensions (`int`): attribute dimensions the model proposes.
        values (`int`): values per dimension and class.
        demos (`int`): real demos of the row's label per prompt (with --examples).
        max_new_tokens (`int`, *optional*): token limit per text; default: 192, or from the examples' lengths.
        batch_size (`int`): rows a local model decodes at once.
        min_words (`int`): shortest text kept, in words.
        max_words (`int`): longest text kept, in words.
        noise (`bool`): drop rows NoiseScore flags (classifier, neighbours and the model's label probabilities).
        model (`str`, *optional*): a named offline model, a .gguf file, a model folder, a cached Hub id or an
            http(s) URL of an OpenAI-compatible server; default: the embedded SmolLM2-135M-Instruct.
        model_name (`str`, *optional*): the model name to ask the server for (with an http(s) --model).
        realness_gate (`bool`): with ``examples``: drop the texts a real-vs-synthetic discriminator finds least
            real (``--no-realness-gate`` keeps them; the held-out measurement is made either way).

    Example:
        >>> ds, record = recipe(task="news article", labels=["sport", "tech"], n=4).run()   # doctest: +SKIP
        >>> ds.column_names[:2]                                                            # doctest: +SKIP
        ['text', 'label']
    """
    task, labels, descriptions = check_inputs(task, labels, label_descriptions)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise EmptyDatasetError(f"n={n!r}: nothing to generate. Ask for at least one row (--n 1 or more).")
    if not isinstance(demos, int) or demos < 0:
        raise InvalidParameterError(f"demos={demos!r} must be an integer >= 0 (real demos per prompt).")
    ex = load_examples(examples, labels=labels, seed=seed) if examples else None  # before the model loads
    llm = llm or make_llm(model, model_name, batch_size)
    target = ex.length() if ex else None
    length = target.phrase if target else DEFAULT_LENGTH
    with_demos = bool(ex and demos)
    user = ((DEMOS_INTRO if with_demos else "") + f"Write a {_raw(task)} about {{{{ label }}}}{{{{ label_description }}}}. "
            f"Its {{{{ attributes }}}}. Length: {length}. Output only the {_raw(task)}.")
    template = Template(system=f"You write realistic {_raw(task)}s.", user=user)
    attrs = ProposedAttributes(llm, task=task, labels=labels, descriptions=descriptions, seed=seed,
                               examples={y: [t for t, v in zip(ex.train["text"], ex.train["label"]) if v == y]
                                         for y in labels} if ex else None, dimensions=dimensions, values=values)
    generator = TextGenerator(llm, template, output="text", seed=seed, temperature=0.8, top_p=0.95,
                              max_new_tokens=max_new_tokens or (target.max_new_tokens if target else DEFAULT_TOKENS),
                              stop=list(target.stop) if target else ["\n\n"], progress=True)
    listed = ", ".join(labels)
    annotator = Annotator(llm, labels, Template(user=f"Which label fits this {_raw(task)}: {_raw(listed)}?\n\n"
                                                     "{{ text }}\n\nAnswer with the label only."), output="llm_label")
    r = Recipe(NAME, source=lambda: Dataset.from_dict({"id": list(range(n))}), seed=seed, license="apache-2.0",
               task_categories=["text-classification"], language=["en"], tags=["text-classification", "attrprompt"],
               pretty_name=f"Synthetic {task} classification", text_column="text", label_columns=["label"],
               class_labels={"label": labels},
               description=f"{task[0].upper() + task[1:]}s written by a language model for the labels {listed}, "
                           "each conditioned on model-proposed attributes of its class (AttrPrompt), then truncated, "
                           "failed, duplicate and (NoiseScore) mislabelled-looking rows dropped"
                           + (f"; aimed at the real sample {ex.name} (demos, length, realness gate)" if ex else "") + ".")
    r.map(Conditions(label=labels, design="latin", seed=seed), name="conditions", with_indices=True,
          desc="Covering the labels")
    r.fit_map(attrs, name="attributes", with_indices=True, desc="Attributes of each class")
    if with_demos:
        r.map(ex.demonstrations(demos, seed=seed), name="demos", with_indices=True, desc="Real demos")
    r.map(generator, name="generate", batch_size=map_batch(batch_size), desc="Generating texts")
    if with_demos:
        r.map(DropColumns(["demos", "demos_ids"]), name="drop-demos", remove_columns=["demos", "demos_ids"])
    if ex:  # a text cut at the sample's budget keeps its complete sentences
        r.map(TrimToSentence(column="text", min_words=min(min_words, target.words_low)), name="trim",
              desc="Trimming cut texts to their last sentence")
    r.filter(Truncated(column="text"), name="truncated", desc="Dropping truncated or failed texts")
    r.filter(Length(column="text", min_words=min_words, max_words=max_words), name="length", desc="Length")
    r.fit_filter(ExactDuplicates(column="text"), name="dedup", with_indices=True, desc="Removing duplicates")
    if noise:
        r.map(annotator, name="llm-label", desc="The model's label probabilities")
        r.fit_filter(Noise(column="text", labels=labels, probs_columns=["llm_label_probs"], k=10),
                     name="noise", with_indices=True, desc="Dropping likely mislabelled rows")
    if ex:
        add_realness_steps(r, ex, column="text", seed=seed, gate=realness_gate)
    return r


if __name__ == "__main__":
    from synth_datasets.cli import main

    sys.exit(main(["build", __file__, *sys.argv[1:]]))
