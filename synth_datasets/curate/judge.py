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

from typing import Any, Sequence

from ..columns import TextColumn, check_column_option
from ..errors import InvalidParameterError
from ..judging import expected_rating, parse_score, rubric_requests
from ..llm import LLM, SamplingParams
from ..llm.choices import choice_logprobs, supports_choice_logprobs
from ..prompts import Template
from ..seeding import derive_seed, row_keys
from .base import Filter, check_columns, check_range

DEFAULT_RUBRIC = Template(
    system="You are a strict data quality rater.",
    user=("Rate the quality of the following sample on a scale of {{ scale_min }} to {{ scale_max }} "
          "({{ scale_min }} = useless or wrong, {{ scale_max }} = excellent: accurate, helpful, fluent, on task).\n\n"
          "Sample:\n{{ text }}\n\n"
          "Answer in the form 'Score: <number>' followed by one short sentence of explanation."))

LABEL_RUBRIC = Template(
    system="You are a strict data quality rater.",
    user=("The following sample is meant to be an example of the label '{{ label }}'. Rate it on a scale of "
          "{{ scale_min }} to {{ scale_max }} ({{ scale_min }} = it does not fit the label or is useless, "
          "{{ scale_max }} = it clearly fits the label and is fluent and on task).\n\n"
          "Sample:\n{{ text }}\n\n"
          "Answer in the form 'Score: <number>' followed by one short sentence of explanation."))

class LLMJudge(TextColumn, Filter):
    """Rate each row with an LLM and keep rows scoring >= ``threshold``.

    Two ways to read a score (``method``):

    - ``"logprobs"``: one forward pass per row, no sampling. The reply is fixed to start with
      ``reply_prefix`` (``"Score: "``) and the score is the expected rating under the model's
      next-token distribution over the scale's integers (``"1"``..``"5"``), renormalized over them:
      every row gets a score, and the score is graded (3.6, not just 4). Local models only; the scale
      must be integers that are single tokens (1-5 is; 0-10 is not, "10" being two tokens).
    - ``"generate"``: a greedy reply of up to ``max_new_tokens``, parsed by :func:`parse_score`; a
      reply without a score is dropped as ``unparsable``. Works with every backend (endpoints too).
    - ``"auto"`` (default): ``"logprobs"`` on a local model with a scale of single digits (e.g. 1-5),
      else ``"generate"``.

    On the embedded SmolLM2-135M, 16 Rotten Tomatoes snippets: generate-and-parse scores 11 of 16 rows;
    log-probs score 16 of 16, ~12x less time per row (BENCHMARKS.md, "LLM judge").

    Args:
        llm (`LLM`): the judge model.
        template (`Template`, *optional*): the rubric; it may use ``scale_min``/``scale_max``, ``text``
            (the text column), ``label`` (the label column) and any other column by name. Default:
            :data:`DEFAULT_RUBRIC` (reads ``text``), or :data:`LABEL_RUBRIC` (reads ``text`` and
            ``label``: does the text fit its label?) when ``label_column`` is given.
        column (`str`, *optional*): the column the rubric's ``text`` reads; default: the dataset's
            declared text column, else ``text`` (:func:`synth_datasets.columns.resolve_text_column`).
        label_column (`str`, *optional*): the column the rubric's ``label`` reads (default ``label``).
        scale (`tuple`, defaults to (1, 5)): the score range (e.g. (0, 10)).
        threshold (`float`, defaults to 4): minimum score kept; must lie inside ``scale``.
        method (`str`, defaults to "auto"): ``"auto"``, ``"logprobs"`` or ``"generate"`` (above).
        reply_prefix (`str`, defaults to "Score: "): what the reply starts with (``"logprobs"``).
        max_new_tokens, temperature, seed: judge sampling for ``"generate"`` (greedy by default; each
            row's seed derives from ``seed`` and the row's content or ``key_column``).
        record_prompt (`bool`, defaults to True): also record the rendered user prompt per row.

    Reasons: ``low_score``, ``unparsable`` (no score in the reply), ``judge_failed`` (the call failed).
    Columns: ``<name>_score`` (float or None), ``<name>_reply`` (the reply; with log-probs, the
    likeliest rating, the expected one and the distribution), ``<name>_prompt``.

    Example:
        >>> rubric = Template(user="Is this a {{ label }} movie review? Rate it {{ scale_min }}-{{ scale_max }}. "
        ...                        "Review: {{ text }} Answer 'Score: <number>'.")        # doctest: +SKIP
        >>> judge = LLMJudge(llm=LLM(), template=rubric, column="review", label_column="label",
        ...                  threshold=3)                                                  # doctest: +SKIP
        >>> ds = ds.map(judge.mark, batched=True)                                         # doctest: +SKIP
    """

    _PARAMS = ("column", "label_column", "scale", "threshold", "method", "reply_prefix", "max_new_tokens",
               "temperature", "seed", "key_column", "record_prompt")
    _FORMAT = 2
    name = "judge"

    def __init__(self, *, llm: LLM, template: Template | None = None, column: str | None = None,
                 label_column: str | None = None, scale: Sequence[float] = (1, 5), threshold: float = 4,
                 method: str = "auto", reply_prefix: str = "Score: ", max_new_tokens: int = 64,
                 temperature: float = 0.0, seed: int = 0, key_column: str | None = None, record_prompt: bool = True,
                 name: str | None = None):
        if not isinstance(llm, LLM):
            raise InvalidParameterError(f"llm must be an LLM, got {type(llm).__name__}: use LLM() or LLM(url, model=...).")
        template = (LABEL_RUBRIC if label_column is not None else DEFAULT_RUBRIC) if template is None else template
        if not isinstance(template, Template):
            raise InvalidParameterError("template must be a Template (the rubric prompt).")
        if len(scale) != 2 or not all(isinstance(v, (int, float)) for v in scale) or scale[0] >= scale[1]:
            raise InvalidParameterError(f"scale={scale!r} must be (min, max) with min < max, e.g. (1, 5) or (0, 10).")
        check_range("threshold", threshold, scale[0], scale[1])
        if method not in ("auto", "logprobs", "generate"):
            raise InvalidParameterError(f"method={method!r} must be 'auto', 'logprobs' or 'generate'.")
        integer_scale = all(float(v).is_integer() for v in scale) and scale[1] - scale[0] <= 20
        if method == "logprobs" and not integer_scale:
            raise InvalidParameterError(f"method='logprobs' scores the integers of the scale; scale={scale!r} is not "
                                        "a small integer range: use integers (e.g. (1, 5)) or method='generate'.")
        if method == "logprobs" and not supports_choice_logprobs(llm):
            raise InvalidParameterError(f"method='logprobs' needs a local model ({llm!r} is an endpoint): use "
                                        "method='generate' (or 'auto').")
        check_column_option(column)
        check_column_option(label_column)
        self.params_ = SamplingParams.make(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        self.llm, self.template, self.scale, self.threshold = llm, template, tuple(scale), threshold
        self.column, self.label_column, self.method, self.reply_prefix = column, label_column, method, reply_prefix
        self.max_new_tokens, self.temperature, self.seed = max_new_tokens, temperature, seed
        self.key_column, self.record_prompt = key_column, record_prompt
        super().__init__(name=name)

    @property
    def mode(self) -> str:
        """The method in use: ``"logprobs"`` or ``"generate"``."""
        if self.method != "auto":
            return self.method
        digits = all(float(v).is_integer() for v in self.scale) and 0 <= self.scale[0] and self.scale[1] <= 9
        return "logprobs" if digits and supports_choice_logprobs(self.llm) else "generate"

    @property
    def score_columns(self):
        return [f"{self.name}_score", f"{self.name}_reply"] + ([f"{self.name}_prompt"] if self.record_prompt else [])

    @property
    def score_types(self):
        return {f"{self.name}_score": "float64", f"{self.name}_reply": "string", f"{self.name}_prompt": "string"}

    def _describe_extra(self) -> dict[str, Any]:
        d = {"template": self.template.describe(), "llm": self.llm.describe(), "mode": self.mode}
        if self.mode == "generate":
            d["sampling"] = self.params_.model_dump(mode="json")
        else:
            d["scoring"] = {"reply_prefix": self.reply_prefix, "choices": self._choices(),
                            "score": "expected rating under the next-token distribution over the choices"}
        return d

    def _choices(self) -> list[str]:
        return [str(k) for k in range(int(self.scale[0]), int(self.scale[1]) + 1)]

    def _row_values(self, batch, slots: set[str]) -> dict[str, list]:
        """The rubric's variables per row: ``text`` from the text column, ``label`` from the label
        column, any other variable from the column of that name."""
        cols = list(batch.keys())
        values: dict[str, list] = {}
        for v in sorted(slots):
            if v == "text":
                values[v] = batch[self._text_column(batch)]
            elif v == "label":
                src = self.label_column or "label"
                check_columns(cols, [src], "LLMJudge (label_column=)")
                values[v] = batch[src]
            else:
                check_columns(cols, [v], "LLMJudge (a rubric variable)")
                values[v] = batch[v]
        return values

    def annotate(self, batch, indices=None):
        slots = set(self.template.variables) - {"scale_min", "scale_max"}
        values = self._row_values(batch, slots)
        if self.key_column is not None:
            check_columns(list(batch.keys()), [self.key_column], "LLMJudge (key_column=)")
        n = len(next(iter(batch.values()))) if len(batch) else 0
        keys = row_keys({**values, **({self.key_column: batch[self.key_column]} if self.key_column else {})},
                        None, self.key_column)
        rows = [{**{c: values[c][i] for c in slots}, "scale_min": self.scale[0], "scale_max": self.scale[1]}
                for i in range(n)]
        requests = rubric_requests(self.template, rows, [derive_seed(self.seed, "judge", k) for k in keys[:n]],
                                   None if indices is None else [int(i) for i in indices])
        prompts = [r.messages[-1][1] for r in requests]
        if self.mode == "logprobs":
            scores, replies = self._score_logprobs(requests)
        else:
            done = self.llm.generate(requests, self.params_)
            scores = [None if c.error else parse_score(c.text, self.scale) for c in done]
            replies = [c.text if c.error is None else f"ERROR: {c.error}" for c in done]
        out = {f"{self.name}_score": scores, f"{self.name}_reply": replies}
        if self.record_prompt:
            out[f"{self.name}_prompt"] = prompts
        return out

    def _score_logprobs(self, requests) -> tuple[list, list]:
        choices = self._choices()
        rated = [expected_rating(c, choices, self.reply_prefix)
                 for c in choice_logprobs(self.llm, requests, choices, prefix=self.reply_prefix)]
        return [s for s, _ in rated], [r for _, r in rated]

    def decide(self, batch, indices=None):
        scores, replies = batch[f"{self.name}_score"], batch[f"{self.name}_reply"]
        return [("judge_failed" if isinstance(r, str) and r.startswith("ERROR: ") else "unparsable") if s is None
                else ("low_score" if s < self.threshold else None) for s, r in zip(scores, replies)]

    def __repr__(self) -> str:
        return f"LLMJudge(llm={self.llm!r}, scale={self.scale}, threshold={self.threshold}, method={self.method!r})"
