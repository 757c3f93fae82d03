"""One judge for curation and evaluation: request building, reply parsing, both-order comparison.

Below both ``curate/`` (``LLMJudge``) and ``metrics/`` (``JudgeScorer``, ``PreferenceJudge``), above
``llm/`` and ``prompts/``:

- :func:`rubric_requests`: a rubric rendered per row, one seeded request each;
- parsing: :func:`parse_score` (a rating on any scale in a free reply), :func:`parse_rating` (the 1-5
  rating), :func:`parse_letter` (a verdict letter);
- :func:`ask_letters`: a verdict letter per request, from the next-token distribution over the letters on
  a local model (and those probabilities), or from a greedy reply on an endpoint;
  :func:`expected_rating` the same idea for a numeric scale;
- both orders: :func:`pair_messages` (every pair of systems on every prompt, each order), :func:`combine`
  and :func:`soft_score` (the order-cancelled outcome).

>>> parse_score("Rating: 4/5. Clear and accurate.", (1, 5)), parse_letter("b) is better", "ABC")
(4.0, 'B')
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .llm import LLM, ChatRequest, Completion, SamplingParams
from .llm.choices import choice_logprobs, supports_choice_logprobs
from .prompts import Template

__all__ = ["parse_score", "parse_rating", "parse_letter", "rubric_requests", "normalized", "ask_letters",
           "expected_rating", "pair_messages", "soft_score", "verdict_score", "combine"]

_NUM = r"(-?\d+(?:\.\d+)?)"
_END = r"(?!\w|\.\d)"  # a number ends here (a sentence's full stop may follow)
_PATTERNS = [  # in order; the first match inside the scale wins
    re.compile(r'"(?:score|rating)"\s*:\s*"?' + _NUM, re.I),                        # JSON field
    re.compile(r"\b(?:score|rating|grade)\b[^0-9\n]{0,20}?" + _NUM + _END, re.I),    # "Score: 4", "rating is 4"
    re.compile(r"(?<![\w.])" + _NUM + r"\s*(?:/|out of)\s*\d+", re.I),               # "4/5", "4 out of 5"
    re.compile(r"^[\W_]*?" + _NUM + _END + r"(?!\s*(?:or|and|-|to)\s*\d)"),          # a leading "4", not "1 or 5"
]
_BARE = re.compile(r"(?<![\w.])" + _NUM + _END)


def _scale_mention(scale: Sequence[float]) -> re.Pattern:
    """The scale itself ("1-5", "1 to 5", "0–10"): never a rating."""
    lo, hi = (re.escape(f"{v:g}") for v in scale)
    return re.compile(rf"(?<![\d.]){lo}\s*(?:-|–|to)\s*{hi}(?!\d|\.\d)", re.I)


def parse_score(reply: str | None, scale: Sequence[float] = (1, 5)) -> float | None:
    """The score in a judge reply, or None when there is none or it is ambiguous.

    The scale itself ("1-5", "1 to 5") is ignored; then, in order: a JSON ``"score"`` field,
    ``Score: x`` / ``Rating x``, ``x/5`` / ``x out of 5``, a leading number (not "1 or 5"), else the
    single distinct number in the reply; only values inside ``scale`` count. Used by
    :class:`LLMJudge` and by the judge score of ``metrics/faithfulness``.

    >>> [parse_score(r) for r in ['{"score": 5}', "Score - 3.5", "I'd give it 2 out of 5", "9/10", "meh"]]
    [5.0, 3.5, 2.0, None, None]
    >>> [parse_score(r) for r in ["Rating (1-5): 4", "I'd say 5.", "1 or 5?", "a 3, maybe 4"]]
    [4.0, 5.0, None, None]
    """
    if not isinstance(reply, str):
        return None
    lo, hi = scale
    reply = _scale_mention(scale).sub(" ", reply.strip())
    for rx in _PATTERNS:
        for m in rx.finditer(reply):
            v = float(m.group(1))
            if lo <= v <= hi:
                return v
    found = {v for v in (float(m.group(1)) for m in _BARE.finditer(reply)) if lo <= v <= hi}
    return found.pop() if len(found) == 1 else None


def parse_rating(text: str | None) -> int | None:
    """The 1-5 rating in a judge's answer, or None when there is none, it is ambiguous or not whole.

    The parser is curation's :func:`synth_datasets.curate.parse_score` on the scale (1, 5) (one parser
    for the judge filter and the judge metric): the scale itself ("1-5", "1 to 5") is ignored; then a
    JSON "score" field, "rating/score: N", "N/5" or "N out of 5", a leading number, else the single
    distinct number 1-5 in the text.

    >>> [parse_rating(t) for t in ["4", "Rating: 3/5", "I'd say 5.", "score: 2", "Rating (1-5): 4",
    ...                            "1 or 5?", "ten", "10", "4.5", None]]
    [4, 3, 5, 2, 4, None, None, None, None, None]
    """
    score = parse_score(text, (1, 5))
    return int(score) if score is not None and score.is_integer() else None


def parse_letter(text: str | None, letters: str) -> str | None:
    """The verdict letter of a free reply: the first standalone letter among ``letters``."""
    if not text:
        return None
    m = re.search(rf"\b([{letters}])\b", text.strip().upper())
    return m.group(1) if m else None


def rubric_requests(template: Template, rows: Sequence[Mapping[str, Any]], seeds: Sequence[int | None],
                    row_indices: Sequence[int | None] | None = None) -> list[ChatRequest]:
    """One request per row: ``template`` rendered with the row (at ``row_indices[i]``, for error messages)
    and seeded with ``seeds[i]``."""
    where = row_indices if row_indices is not None else [None] * len(rows)
    return [ChatRequest.of(template.render(dict(row), row_index=i), seed) for row, seed, i in zip(rows, seeds, where)]


def normalized(logprobs: Sequence[float]) -> np.ndarray:
    """Probabilities renormalized over the choices (log-probabilities under the full vocabulary)."""
    x = np.asarray(logprobs, dtype=np.float64)
    p = np.exp(x - x.max())
    return p / p.sum()


def ask_letters(llm: LLM, requests: list[ChatRequest], letters: str, *, max_new_tokens: int, seed: int | None,
                prefix: str = "") -> tuple[list[str | None], list[list[float] | None]]:
    """The verdict letter of every request and, on a local model, the letters' probabilities normalized
    over ``letters`` (read from one forward pass, nothing parsed); from an endpoint, a greedy reply of
    ``max_new_tokens`` parsed by :func:`parse_letter` and None probabilities. A failed request: None."""
    if supports_choice_logprobs(llm):
        done = choice_logprobs(llm, requests, list(letters), prefix=prefix)
        return ([None if c.error else c.text for c in done],
                [None if c.error else normalized(c.logprobs).round(6).tolist() for c in done])
    done = llm.generate(requests, SamplingParams.make(temperature=0.0, max_new_tokens=max_new_tokens, seed=seed))
    return [None if c.error else parse_letter(c.text, letters) for c in done], [None] * len(done)


def expected_rating(completion: Completion, choices: Sequence[str], prefix: str) -> tuple[float | None, str]:
    """The expected rating under a choice-scored completion's distribution over ``choices`` (integers as
    text), and the reply recorded for it (the likeliest choice, the expectation, the distribution)."""
    if completion.error is not None:
        return None, f"ERROR: {completion.error}"
    lp = np.asarray(completion.logprobs, dtype=np.float64)
    p = normalized(lp)
    expected = float(p @ np.array([float(c) for c in choices]))
    dist = " ".join(f"{k}={q:.2f}" for k, q in zip(choices, p))
    return round(expected, 4), (f"{prefix}{completion.text} (expected {expected:.2f}; p: {dist}; "
                                f"mass {float(np.exp(lp).sum()):.2f})")


def pair_messages(template: Template, prompts: Sequence[str], responses: Mapping[str, Sequence[str]]):
    """Every pair of systems on every prompt, in both orders: ``(pairs, messages)`` where ``pairs[k]`` is
    ``(prompt_index, a, b)`` and ``messages[2k]`` shows ``a`` first, ``messages[2k + 1]`` shows ``b`` first
    (``template`` reads ``prompt``, ``first`` and ``second``)."""
    pairs, messages = [], []
    for (a, b), i in itertools.product(itertools.combinations(list(responses), 2), range(len(prompts))):
        for first, second in ((a, b), (b, a)):
            messages.append(template.render({"prompt": prompts[i], "first": responses[first][i] or "",
                                             "second": responses[second][i] or ""}, row_index=i))
        pairs.append((i, a, b))
    return pairs, messages


def soft_score(probs_ab: Sequence[float] | None, probs_ba: Sequence[float] | None) -> float | None:
    """The expected score of ``model_a`` (win 1, tie C 0.5) under the judge's A/B/C probabilities, averaged
    over the two orders: a constant lean towards the first slot adds as much to one order as it takes
    from the other, and cancels.

    >>> round(soft_score([0.7, 0.2, 0.1], [0.6, 0.3, 0.1]), 4)   # leans to slot A; a is preferred once that cancels
    0.55
    """
    if probs_ab is None or probs_ba is None:
        return None
    s_ab = probs_ab[0] + probs_ab[2] / 2
    s_ba = probs_ba[1] + probs_ba[2] / 2
    return float((s_ab + s_ba) / 2)


def verdict_score(verdict: str | None, shown_first: bool) -> float | None:
    """Score of the system shown first (``shown_first``) or second, from one verdict letter."""
    if verdict is None:
        return None
    if verdict == "C":
        return 0.5
    return 1.0 if (verdict == "A") == shown_first else 0.0


def combine(verdict_ab: str | None, verdict_ba: str | None) -> str | None:
    """The order-cancelled winner of a pair from its two verdicts (``"a"``, ``"b"``, ``"tie"``).

    >>> combine("A", "B"), combine("A", "A"), combine("C", "B"), combine(None, "A")
    ('a', 'tie', 'a', None)
    """
    s1, s2 = verdict_score(verdict_ab, True), verdict_score(verdict_ba, False)
    if s1 is None or s2 is None:
        return None
    s = (s1 + s2) / 2
    return "a" if s > 0.5 else "b" if s < 0.5 else "tie"
