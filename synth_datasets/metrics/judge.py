"""LLM judge of synthetic data quality (survey §3.3.1): a fixed 1-5 rubric, one greedy request per
text, replies read by :func:`synth_datasets.judging.parse_rating` (the judge filter's parser on the scale
1-5: one judge module for curation and evaluation). Part of the ``faithfulness`` evaluate module
(``"judge"`` config).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from synth_datasets._versions import library_versions
from synth_datasets.columns import check_columns
from synth_datasets.errors import InvalidParameterError
from synth_datasets.judging import parse_rating, rubric_requests
from synth_datasets.llm import LLM, ChatRequest, SamplingParams
from synth_datasets.metrics._checks import check_texts as _check_texts
from synth_datasets.prompts import Template
from synth_datasets.seeding import check_batched, derive_seed

__all__ = ["DEFAULT_RUBRIC", "parse_rating", "JudgeScorer", "judge_score"]


DEFAULT_RUBRIC = Template(
    system="You are a careful annotator who rates the quality of synthetic training data.",
    user=("Rate the text below on a scale from 1 to 5 using this rubric:\n"
          "5 = fluent, coherent, on-topic and plausible; ready to use as training data.\n"
          "4 = good, with minor flaws in wording or detail.\n"
          "3 = acceptable but clearly flawed: awkward, vague or partly off-topic.\n"
          "2 = poor: hard to follow, mostly off-topic or with clear errors.\n"
          "1 = unusable: incoherent, empty, or not a text of the requested kind.\n\n"
          "Text:\n{{ text }}\n\n"
          "Answer with a single digit from 1 to 5 and nothing else."),
)

_FORMAT_VERSION = 1


class JudgeScorer:
    """Rates each text 1-5 with an LLM and a fixed rubric (greedy decoding, one request per text).

    Map contract: ``ds.map(judge, batched=True)`` adds the column ``output`` (int or None when the
    answer holds no parsable rating or the request failed; the run goes on). Pickles to its
    configuration only. :meth:`rate` returns scores, raw answers and the messages sent;
    :func:`judge_score` summarizes.

    Args:
        llm (`LLM`): the judge model.
        rubric (`Template`, *optional*): must read exactly the variable ``text``; :data:`DEFAULT_RUBRIC`.
        column (`str`): the text column (map use). output (`str`): the score column.
        max_new_tokens (`int`, defaults to 8), seed (`int`, defaults to 0).

    Example:
        >>> judge = JudgeScorer(LLM(), max_new_tokens=4)                       # doctest: +SKIP
        >>> judge.rate(["A fine, moving film."])["scores"]                       # doctest: +SKIP
        [4]
    """

    def __init__(self, llm: LLM, *, rubric: Template | None = None, column: str = "text",
                 output: str = "judge_score", max_new_tokens: int = 8, seed: int = 0):
        if not isinstance(llm, LLM):
            raise InvalidParameterError(f"llm must be an LLM, got {type(llm).__name__}: use LLM() or LLM(url, model=...)")
        rubric = DEFAULT_RUBRIC if rubric is None else rubric
        if not isinstance(rubric, Template) or rubric.variables != {"text"}:
            raise InvalidParameterError("rubric must be a Template that reads exactly the variable 'text' "
                                        f"(got {getattr(rubric, 'variables', type(rubric).__name__)})")
        self.llm, self.rubric, self.column, self.output, self.seed = llm, rubric, column, output, seed
        self.params = SamplingParams.make(temperature=0.0, max_new_tokens=max_new_tokens, seed=seed)

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "llm": self.llm, "rubric": self.rubric, "column": self.column,
                "output": self.output, "seed": self.seed, "params": self.params.model_dump()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        state["params"] = SamplingParams(**state["params"])
        self.__dict__.update(state)

    def requests(self, texts: Sequence[str]) -> list[ChatRequest]:
        """The requests sent for ``texts``: the rubric rendered with each text."""
        texts = _check_texts(texts, "texts")
        return rubric_requests(self.rubric, [{"text": t} for t in texts], [derive_seed(self.seed, t) for t in texts],
                               range(len(texts)))

    def rate(self, texts: Sequence[str]) -> dict[str, list]:
        """``scores`` (int 1-5 or None), ``answers`` (raw text or None), ``errors``, ``messages``."""
        requests = self.requests(texts)
        completions = self.llm.generate(requests, self.params)
        return {"scores": [parse_rating(c.text) for c in completions], "answers": [c.text for c in completions],
                "errors": [c.error for c in completions], "messages": [r.as_messages() for r in requests]}

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        check_batched(batch, "JudgeScorer")
        check_columns(batch, [self.column], "JudgeScorer", hint="Pass column= (the text column)")
        return {self.output: self.rate(batch[self.column])["scores"]}

    def describe(self) -> dict[str, Any]:
        return {"type": "JudgeScorer", "rubric": self.rubric.describe(), "llm": self.llm.describe(),
                "params": self.params.model_dump(), "seed": self.seed, "column": self.column,
                "output": self.output, "scale": [1, 5], "parser": parse_rating.__doc__.split("\n\n")[1].strip(),
                "versions": library_versions()}


def judge_score(llm: LLM, texts: Sequence[str], *, rubric: Template | None = None,
                max_new_tokens: int = 8, seed: int = 0) -> dict[str, float]:
    """Rate ``texts`` with :class:`JudgeScorer` and summarize: ``judge_mean`` over parsed ratings (NaN if
    none), ``judge_count_<1..5>``, ``judge_unparsed`` (answers without a rating), ``judge_errors``
    (failed requests), ``judge_n``."""
    rated = JudgeScorer(llm, rubric=rubric, max_new_tokens=max_new_tokens, seed=seed).rate(texts)
    scores = [s for s in rated["scores"] if s is not None]
    out: dict[str, float] = {"judge_mean": float(np.mean(scores)) if scores else math.nan}
    out.update({f"judge_count_{v}": scores.count(v) for v in range(1, 6)})
    out["judge_errors"] = sum(e is not None for e in rated["errors"])
    out["judge_unparsed"] = len(rated["scores"]) - len(scores) - out["judge_errors"]
    out["judge_n"] = len(rated["scores"])
    return out

