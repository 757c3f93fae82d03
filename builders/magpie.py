"""Instruction data without seeds, Magpie-style (Xu et al. 2024; survey §3.1): a local chat model is given
only its chat template up to where the user's text would begin, writes the instruction itself, then
answers it. The paper's filters follow: instructions that were cut or failed, are not an instruction
(empty, template tokens, role markers, an assistant's voice), too short or too long, repeat themselves or
are not in Latin script are dropped, then conversations whose reply was cut or failed, then exact and near
duplicate instructions. The card records the exact template prefix the instructions were sampled from
(step ``magpie``, ``template_prefix``).

    synth-datasets build magpie --n 20 --out out/magpie
    synth-datasets build magpie --n 200 --model qwen2.5-coder-1.5b --turns 2 --out out/magpie-qwen

``--model`` must be a local model (a named one, a .gguf file, a model folder): an OpenAI-compatible
endpoint only exposes chat completions, which cannot sample the user's turn.
"""

from __future__ import annotations

import sys

from datasets import Dataset

from builders.movie_reviews import BATCH_SIZE, make_llm, map_batch
from synth_datasets import LLM, Magpie
from synth_datasets.curate import (ExactDuplicates, InstructionDebris, Length, NearDuplicates, Repetition, Script,
                                   Truncated)
from synth_datasets.errors import EmptyDatasetError
from synth_datasets.recipe import Recipe

NAME = "magpie"
INSTRUCTION_TOKENS = 256  # 43 of the 1.5B model's 200 instructions ran past 128 tokens (bench_magpie.py)
#: instruction sampling: the paper samples at temperature 1, top_p 1 (8B-70B models); a small model drifts there
#: (benchmarks/bench_magpie.py, SmolLM2-135M, 200 instructions: 43 ran past 128 tokens at 1.0/1.0, 6 at 0.8/0.95;
#: all 200 non-empty and distinct either way)
TEMPERATURE, TOP_P = 0.8, 0.95
REPLY_TOKENS = 512  # SmolLM2-135M's replies to its own instructions: median ~320 tokens, 5 of 32 past 512


def instruction_filters(*, min_words: int = 3, max_words: int = 200) -> list[tuple[str, object, str]]:
    """The per-row instruction filters, in order, as ``(step name, filter, description)`` (the benchmark
    applies the same ones)."""
    return [
        ("instruction-truncated", Truncated(column="instruction"), "Dropping cut or failed instructions"),
        ("debris", InstructionDebris(column="instruction"), "Dropping what is not an instruction"),
        ("length", Length(column="instruction", min_words=min_words, max_words=max_words),
         "Filtering instructions by length"),
        ("repetition", Repetition(column="instruction", n=3, max_ngram_ratio=0.3, max_line_ratio=0.3),
         "Dropping instructions that repeat themselves"),
        ("script", Script(column="instruction", scripts=["Latin"], min_fraction=0.9), "Keeping Latin-script text"),
    ]


def recipe(*, n: int = 50, seed: int = 0, turns: int = 1, system: str | None = None,
           max_new_tokens: int = REPLY_TOKENS, instruction_max_new_tokens: int = INSTRUCTION_TOKENS,
           temperature: float = TEMPERATURE, top_p: float = TOP_P, batch_size: int = BATCH_SIZE, min_words: int = 3,
           max_words: int = 200, near_threshold: float = 0.8, model: str | None = None,
           llm: LLM | None = None) -> Recipe:
    """``n`` conversations sampled from the template alone -> instruction filters -> conversations with a
    complete reply -> exact and near duplicate instructions removed.

    Args:
        n (`int`): conversations to sample (one per row).
        seed (`int`): seed of every turn.
        turns (`int`): rounds per conversation (instruction + reply each).
        system (`str`, *optional*): a system prompt before the open user turn; default: the template's own.
        max_new_tokens (`int`): token limit of a reply (cut replies are dropped).
        instruction_max_new_tokens (`int`): token limit of an instruction (cut instructions are dropped).
        temperature / top_p (`float`): sampling of the instructions (replies: temperature 0.7).
        batch_size (`int`): rows a local model decodes at once.
        min_words / max_words (`int`): instruction length bounds, in words.
        near_threshold (`float`): MinHash Jaccard similarity above which an instruction is a near duplicate.
        model (`str`, *optional*): a local model: a named one (``qwen2.5-coder-1.5b``), a .gguf file or a
            model folder; default: the embedded SmolLM2-135M-Instruct. An http(s) endpoint is refused.

    Example:
        >>> ds, record = recipe(n=4, max_new_tokens=32).run()        # doctest: +SKIP
        >>> ds[0]["messages"][0]["role"]                              # doctest: +SKIP
        'user'
    """
    if not isinstance(n, int) or n < 1:
        raise EmptyDatasetError(f"n={n!r}: nothing to generate. Ask for at least one row (--n 1 or more).")
    llm = llm or make_llm(model, None, batch_size)
    magpie = Magpie(llm, system=system, turns=turns, seed=seed, max_new_tokens=max_new_tokens,
                    instruction_max_new_tokens=instruction_max_new_tokens, temperature=temperature, top_p=top_p,
                    progress=True)
    r = Recipe(NAME, source=lambda: Dataset.from_dict({"id": list(range(n))}), seed=seed, license="apache-2.0",
               task_categories=["text-generation"], language=["en"], tags=["magpie", "instruction-tuning", "chat"],
               pretty_name="Synthetic instructions (Magpie)", text_column="instruction",
               description="Instructions a chat model wrote itself when given only its chat template up to where "
                           "the user's text begins (Magpie), each answered by the same model, in the chat "
                           "`messages` format; filtered by the paper's heuristics and deduplicated. The exact "
                           "template prefix is recorded in the `magpie` step below (`template_prefix`).")
    r.map(magpie, name="magpie", batch_size=map_batch(batch_size), desc="Sampling instructions and replies")
    for name, f, desc in instruction_filters(min_words=min_words, max_words=max_words):
        r.filter(f, name=name, desc=desc)
    r.filter(Truncated(column="response", error_column="messages_error"), name="response-truncated",
             desc="Dropping conversations with a cut or failed reply")
    r.fit_filter(ExactDuplicates(column="instruction"), name="dedup", with_indices=True, desc="Removing duplicates")
    r.fit_filter(NearDuplicates(column="instruction", threshold=near_threshold), name="near-dedup", with_indices=True,
                 desc="Removing near duplicates")
    return r


if __name__ == "__main__":
    from synth_datasets.cli import main

    sys.exit(main(["build", __file__, *sys.argv[1:]]))
