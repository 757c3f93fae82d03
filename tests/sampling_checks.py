"""A check shared by the local engines' tests: a seeded sample depends on its own seed only."""

from __future__ import annotations

from typing import Callable

from synth_datasets.llm import ChatRequest, Completion, SamplingParams


def check_seed_only(generate: Callable[[list[ChatRequest], SamplingParams], list[Completion]],
                    params: SamplingParams) -> tuple[list[ChatRequest], list[Completion]]:
    """Four seeded requests (two prompts x seeds 1, 2) give the same texts together, in reverse order and
    one at a time, and another seed gives another sample. Returns the requests and the first answers."""
    reqs = [ChatRequest.of([{"role": "user", "content": f"Describe a {w} in one sentence."}], seed=s)
            for w in ["lake", "city wall"] for s in (1, 2)]
    a = generate(reqs, params)
    b = generate(reqs[::-1], params)[::-1]
    c = [generate([r], params)[0] for r in reqs]
    assert [x.text for x in a] == [x.text for x in b] == [x.text for x in c]
    assert a[0].text != a[1].text  # another seed, another sample
    return reqs, a
