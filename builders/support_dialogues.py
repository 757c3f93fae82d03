"""Customer-support dialogues, a two-role sample-wise chain (survey §3.1.2, UltraChat-style): a
simulated customer (sampled problem x persona) and a support agent alternate for 1 to ``max_turns``
rounds (sampled per row), until the customer says goodbye; dialogues without a complete round are
dropped. The ``messages`` column is in the chat format TRL and ``transformers`` chat templates take.

    synth-datasets build support-dialogues --n 20 --out out/support-dialogues
"""

from __future__ import annotations

import sys

from datasets import Dataset

from builders.movie_reviews import BATCH_SIZE, make_llm, map_batch
from synth_datasets import LLM, Conditions, Template
from synth_datasets.errors import EmptyDatasetError, InvalidParameterError
from synth_datasets.generate import Dialogue, Role
from synth_datasets.recipe import Recipe

NAME = "support-dialogues"
TOPICS = ["a parcel that arrived late", "a refund for a damaged item", "a forgotten password", "being charged twice",
          "changing a subscription plan", "a device that stopped working", "changing the delivery address",
          "a discount code that does not work"]
PERSONAS = ["a polite retiree who is unsure with technology", "a busy professional who wants a quick fix",
            "a frustrated customer who already wrote twice", "a student on a tight budget", "a small-business owner"]
STOP = ["goodbye", "bye"]

CUSTOMER = Template(
    system="You play a customer of an online shop in a support chat. You are {{ persona }}. Write only the "
           "customer's next message, one or two sentences.",
    user="{% if transcript %}The chat so far:\n{{ transcript }}\n\nWrite the customer's next message: ask a follow-up "
         "question, or thank the agent and say goodbye if the problem is solved."
         "{% else %}Write the customer's first message about {{ topic }}.{% endif %}")
AGENT = Template(
    system="You are a friendly, competent customer-support agent of an online shop. Reply to the customer in two "
           "to four sentences and help them solve the problem.",
    user="Greet the customer and ask how you can help.")


def complete(batch: dict[str, list]) -> list[bool]:
    """Keep dialogues with at least one complete round (customer message + agent reply)."""
    return [t >= 1 for t in batch["messages_turns"]]


def recipe(*, n: int = 20, seed: int = 0, min_turns: int = 1, max_turns: int = 3, max_new_tokens: int = 96,
           batch_size: int = BATCH_SIZE, model: str | None = None, model_name: str | None = None,
           llm: LLM | None = None) -> Recipe:
    """``n`` problem/persona draws -> a dialogue of ``min_turns`` to ``max_turns`` rounds each ->
    dialogues with at least one complete round.

    Example:
        >>> ds, record = recipe(n=2, max_turns=2, max_new_tokens=32).run()   # doctest: +SKIP
        >>> ds[0]["messages"][0]["role"]                                       # doctest: +SKIP
        'user'
    """
    if not isinstance(n, int) or n < 1:
        raise EmptyDatasetError(f"n={n!r}: nothing to generate. Ask for at least one row (--n 1 or more).")
    if not (isinstance(min_turns, int) and isinstance(max_turns, int) and 1 <= min_turns <= max_turns):
        raise InvalidParameterError(f"min_turns={min_turns!r}, max_turns={max_turns!r}: need 1 <= min_turns <= "
                                    "max_turns (rounds per dialogue).")
    llm = llm or make_llm(model, model_name, batch_size)
    dialogue = Dialogue(llm, user=Role(CUSTOMER, history="transcript", label="Customer", params={"temperature": 0.9}),
                        assistant=Role(AGENT, history="chat", label="Agent"), turns=(min_turns, max_turns),
                        stop=STOP, seed=seed, temperature=0.7, top_p=0.95, max_new_tokens=max_new_tokens)
    r = Recipe(NAME, source=lambda: Dataset.from_dict({"id": list(range(n))}), seed=seed, license="apache-2.0",
               task_categories=["text-generation"], language=["en"], tags=["dialogue", "customer-support", "chat"],
               pretty_name="Synthetic customer-support dialogues", label_columns=["topic", "persona"],
               description="Customer-support chats between a simulated customer (a sampled problem and persona) and "
                           "a support agent, both played by a language model, in the chat `messages` format.")
    r.map(Conditions(topic=TOPICS, persona=PERSONAS, seed=seed), name="conditions", desc="Sampling problems")
    r.map(dialogue, name="dialogue", batch_size=map_batch(batch_size), desc="Writing dialogues")
    r.filter(complete, name="complete", desc="Dropping dialogues without a reply")
    return r


if __name__ == "__main__":
    from synth_datasets.cli import main

    sys.exit(main(["build", __file__, *sys.argv[1:]]))
