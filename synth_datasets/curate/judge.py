"""LLM-as-judge (AlpaGasus, survey §3.2.1): a rubric prompt rates each sample, the score is parsed
robustly, and rows below ``threshold`` are dropped. The prompt, the raw reply and the score are
recorded in columns by ``ds.map(judge.mark, batched=True)``; a later ``ds.filter(judge, batched=True)``
decides on those recorded scores (no new LLM call).

>>> judge = LLMJudge(llm=LLM(), threshold=4)                                     # doctest: +SKIP
>>> ds = ds.map(judge.mark, batched=True)      # judge_score, judge_reply, judge_prompt, judge_reason  # doctest: +SKIP
>>> ds = ds.filter(judge, batched=True)        # keeps score >= 4, on the recorded scores      # doctest: +SKIP
>>> parse_score("Rating: 4/5. Clear and accurate.", (1, 5))
4.0
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..errors import InvalidParameterError
from ..llm import LLM, ChatRequest, SamplingParams
from ..prompts import Template
from ..seeding import derive_seed, row_keys
from .base import Filter, check_columns, check_range

DEFAULT_RUBRIC = Template(
    system="You are a strict data quality rater.",
    user=("Rate the quality of the following sample on a scale of {{ scale_min }} to {{ scale_max }} "
          "({{ scale_min }} = useless or wrong, {{ scale_max }} = excellent: accurate, helpful, fluent, on task).\n\n"
          "Sample:\n{{ text }}\n\n"
          "Answer in the form 'Score: <number>' followed by one short sentence of explanation."))

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


class LLMJudge(Filter):
    """Rate each row with an LLM and keep rows scoring >= ``threshold``.

    Args:
        llm (`LLM`): the judge model.
        template (`Template`, *optional*): the rubric; it may use ``scale_min``/``scale_max`` and any
            column (default :data:`DEFAULT_RUBRIC`, which reads ``text``).
        scale (`tuple`, defaults to (1, 5)): the score range (e.g. (0, 10)).
        threshold (`float`, defaults to 4): minimum score kept; must lie inside ``scale``.
        max_new_tokens, temperature, seed: judge sampling (greedy by default; each row's seed derives
            from ``seed`` and the row's content or ``key_column``).
        record_prompt (`bool`, defaults to True): also record the rendered user prompt per row.

    Reasons: ``low_score``, ``unparsable`` (no score in the reply), ``judge_failed`` (the call failed).
    Columns: ``<name>_score`` (float or None), ``<name>_reply``, ``<name>_prompt``.
    """

    _PARAMS = ("scale", "threshold", "max_new_tokens", "temperature", "seed", "key_column",
               "record_prompt")
    name = "judge"

    def __init__(self, *, llm: LLM, template: Template | None = None, scale: Sequence[float] = (1, 5),
                 threshold: float = 4, max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 0,
                 key_column: str | None = None, record_prompt: bool = True, name: str | None = None):
        if not isinstance(llm, LLM):
            raise InvalidParameterError(f"llm must be an LLM, got {type(llm).__name__}: use LLM() or LLM(url, model=...).")
        template = DEFAULT_RUBRIC if template is None else template
        if not isinstance(template, Template):
            raise InvalidParameterError("template must be a Template (the rubric prompt).")
        if len(scale) != 2 or not all(isinstance(v, (int, float)) for v in scale) or scale[0] >= scale[1]:
            raise InvalidParameterError(f"scale={scale!r} must be (min, max) with min < max, e.g. (1, 5) or (0, 10).")
        check_range("threshold", threshold, scale[0], scale[1])
        self.params_ = SamplingParams.make(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        self.llm, self.template, self.scale, self.threshold = llm, template, tuple(scale), threshold
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.key_column, self.record_prompt = key_column, record_prompt
        super().__init__(name=name)

    @property
    def score_columns(self):
        return [f"{self.name}_score", f"{self.name}_reply"] + ([f"{self.name}_prompt"] if self.record_prompt else [])

    @property
    def score_types(self):
        return {f"{self.name}_score": "float64", f"{self.name}_reply": "string", f"{self.name}_prompt": "string"}

    def _describe_extra(self) -> dict[str, Any]:
        return {"template": self.template.describe(), "llm": self.llm.describe(),
                "sampling": self.params_.model_dump(mode="json")}

    def annotate(self, batch, indices=None):
        cols = list(batch.keys())
        slots = set(self.template.variables) - {"scale_min", "scale_max"}
        check_columns(cols, sorted(slots), "LLMJudge")
        n = len(batch[cols[0]]) if cols else 0
        keys = row_keys({c: batch[c] for c in sorted(slots | ({self.key_column} if self.key_column else set()))},
                        None, self.key_column)
        prompts, requests = [], []
        for i in range(n):
            row = {c: batch[c][i] for c in slots}
            row.update(scale_min=self.scale[0], scale_max=self.scale[1])
            msgs = self.template.render(row, row_index=None if indices is None else int(indices[i]))
            prompts.append(msgs[-1]["content"])
            requests.append(ChatRequest.of(msgs, derive_seed(self.seed, "judge", keys[i])))
        done = self.llm.generate(requests, self.params_)
        out = {f"{self.name}_score": [None if c.error else parse_score(c.text, self.scale) for c in done],
               f"{self.name}_reply": [c.text if c.error is None else f"ERROR: {c.error}" for c in done]}
        if self.record_prompt:
            out[f"{self.name}_prompt"] = prompts
        return out

    def decide(self, batch, indices=None):
        scores, replies = batch[f"{self.name}_score"], batch[f"{self.name}_reply"]
        return [("judge_failed" if isinstance(r, str) and r.startswith("ERROR: ") else "unparsable") if s is None
                else ("low_score" if s < self.threshold else None) for s, r in zip(scores, replies)]

    def __repr__(self) -> str:
        return f"LLMJudge(llm={self.llm!r}, scale={self.scale}, threshold={self.threshold})"
