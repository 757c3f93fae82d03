"""Trivia question-answer pairs, a declared sample-wise chain (survey §3.1.2): sampled topic x
difficulty -> question -> (failed or too-short questions dropped) -> answer, then exact duplicate
questions removed.

    synth-datasets build qa-pairs --n 100 --out out/qa-pairs
"""

from __future__ import annotations

import sys

from datasets import Dataset

from builders.movie_reviews import BATCH_SIZE, make_llm, map_batch
from synth_datasets import LLM, Conditions, Template, TextGenerator
from synth_datasets.generate import Chain, Gate
from synth_datasets.curate import ExactDuplicates, Length
from synth_datasets.errors import EmptyDatasetError
from synth_datasets.recipe import Recipe

NAME = "qa-pairs"
TOPICS = ["astronomy", "world geography", "cooking", "ancient history", "music", "the human body", "sports",
          "computers"]
DIFFICULTIES = ["easy", "medium", "hard"]

QUESTION = Template(system="You write trivia questions for a quiz show.",
                    user="Write one {{ difficulty }} trivia question about {{ topic }}. Output only the question.")
ANSWER = Template(system="You are a helpful, accurate assistant.",
                  user="Answer this trivia question in one or two sentences.\n\nQuestion: {{ question }}")


#: token budgets by default: a question (one sentence, ~25 words) and an answer ("one or two
#: sentences", ~60 words), each x 1.4 tokens per word x ~1.7 margin, so few end at the limit; the card
#: reports the share that still does (``*_finish_reason == "length"``)
QUESTION_TOKENS, ANSWER_TOKENS = 64, 144


def qa_chain(llm: LLM, *, seed: int = 0, max_new_tokens: int | None = None, min_question_words: int = 4) -> Chain:
    """The declared chain: question -> gate (drops failed or short questions) -> answer. ``max_new_tokens``
    (both steps) defaults to :data:`QUESTION_TOKENS` / :data:`ANSWER_TOKENS`."""
    return Chain([
        TextGenerator(llm, QUESTION, output="question", seed=seed, temperature=0.9, top_p=0.95,
                      max_new_tokens=max_new_tokens or QUESTION_TOKENS),
        Gate(Length(column="question", min_words=min_question_words), name="question-length"),
        TextGenerator(llm, ANSWER, output="answer", seed=seed, temperature=0.2,
                      max_new_tokens=max_new_tokens or ANSWER_TOKENS),
    ])


def recipe(*, n: int = 50, seed: int = 0, max_new_tokens: int | None = None, batch_size: int = BATCH_SIZE,
           min_question_words: int = 4, model: str | None = None, model_name: str | None = None,
           llm: LLM | None = None) -> Recipe:
    """``n`` topic/difficulty draws -> a chain (one question each -> well-formed questions -> answers) ->
    deduplicated by question.

    Args:
        n (`int`): topic x difficulty draws, one question each.
        seed (`int`): seed of the draws and of every sample.
        max_new_tokens (`int`, *optional*): token limit of each question and answer; default: 64 for a
            question and 144 for an answer, so few are cut (the card reports the share that is).
        batch_size (`int`): rows a local model decodes at once; each map call hands the generator twice
            as many, so the slots of rows that finish early are refilled.
        min_question_words (`int`): shorter (or failed) questions are not answered.
        model (`str`, *optional*): a .gguf file, a model folder, a cached Hub id or an http(s) URL of an
            OpenAI-compatible server; default: the embedded SmolLM2-135M-Instruct.
        model_name (`str`, *optional*): the model name to ask the server for (with an http(s) --model).

    Example:
        >>> ds, record = recipe(n=4, max_new_tokens=32).run()     # doctest: +SKIP
        >>> ds.column_names[:4]                                   # doctest: +SKIP
        ['id', 'topic', 'difficulty', 'question']
    """
    if not isinstance(n, int) or n < 1:
        raise EmptyDatasetError(f"n={n!r}: nothing to generate. Ask for at least one row (--n 1 or more).")
    llm = llm or make_llm(model, model_name, batch_size)
    r = Recipe(NAME, source=lambda: Dataset.from_dict({"id": list(range(n))}), seed=seed, license="apache-2.0",
               task_categories=["question-answering"], language=["en"], tags=["trivia", "qa"],
               pretty_name="Synthetic trivia QA pairs", text_column="question", label_columns=["topic", "difficulty"],
               description="Trivia questions and answers written by a language model: a question per sampled "
                           "topic and difficulty, then an answer to each question (a two-step chain).")
    r.map(Conditions(topic=TOPICS, difficulty=DIFFICULTIES, seed=seed), name="conditions", desc="Sampling topics")
    r.map(qa_chain(llm, seed=seed, max_new_tokens=max_new_tokens, min_question_words=min_question_words),
          name="qa-chain", batch_size=map_batch(batch_size), desc="Writing and answering questions")
    r.fit_filter(ExactDuplicates(column="question"), name="dedup", with_indices=True, desc="Removing duplicates")
    return r


if __name__ == "__main__":
    from synth_datasets.cli import main

    sys.exit(main(["build", __file__, *sys.argv[1:]]))
