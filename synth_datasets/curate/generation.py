"""Signals from the generating model itself (survey §3.2.1): generation probability (SuperGen) and
self-consistency across k samples for the same input.

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"text": ["a", "b"], "text_logprobs": [[-0.1, -0.3], [-2.0, -3.0]]})
>>> list(ds.map(GenerationProbability(min_mean_logprob=-1.0).mark, batched=True)["genprob_reason"])
[None, 'low_probability']
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

import numpy as np

from ..columns import TextColumn, check_column_option
from ..errors import InvalidParameterError
from .base import Filter, FittedFilter, check_columns, check_range


class GenerationProbability(TextColumn, Filter):
    """Mean per-token log-probability of each generated text under the model that generated it
    (SuperGen): rows below ``min_mean_logprob`` -> ``low_probability``; rows without log-probs ->
    ``no_logprobs``. Reads ``<column>_logprobs``, which ``TextGenerator(..., logprobs=True)`` writes on
    every backend (transformers, llama.cpp / OpenAI-compatible servers). Column: ``<name>_score``.
    """

    _PARAMS = ("column", "logprobs_column", "min_mean_logprob")
    name = "genprob"

    def __init__(self, *, column: str | None = None, logprobs_column: str | None = None,
                 min_mean_logprob: float = -1.0, name: str | None = None):
        check_range("min_mean_logprob", min_mean_logprob, hi=0.0)
        check_column_option(column)
        self.column, self.logprobs_column = column, logprobs_column
        self.min_mean_logprob = float(min_mean_logprob)
        super().__init__(name=name)

    @property
    def score_columns(self):
        return [f"{self.name}_score"]

    @property
    def score_types(self):
        return {f"{self.name}_score": "float64"}

    def annotate(self, batch, indices=None):
        lp_col = self.logprobs_column or f"{self._text_column(batch)}_logprobs"
        check_columns(list(batch.keys()), [lp_col], "GenerationProbability (generate with logprobs=True)")
        return {f"{self.name}_score": [float(np.mean(lp)) if lp else None for lp in batch[lp_col]]}

    def decide(self, batch, indices=None):
        return ["no_logprobs" if s is None else ("low_probability" if s < self.min_mean_logprob else None)
                for s in batch[f"{self.name}_score"]]


class SelfConsistency(FittedFilter):
    """Agreement of k sampled answers for the same input (e.g. ``TextGenerator(n=k)`` rows).

    Rows are grouped by ``group_columns`` (the input); each row's answer is ``label_column``, parsed to
    the first of ``labels`` it mentions (whole word, case-insensitive) when ``labels`` is given
    (unparsable -> None, which counts as disagreeing). Per group: the majority answer (ties: the one seen
    first) and the agreement = share of the group's samples that give it. Reasons:
    ``low_agreement`` (agreement < ``min_agreement``), ``not_majority`` (the row's answer differs from
    the majority) and, with ``one_per_group``, ``extra_sample`` for majority rows after the first.
    Columns: ``<name>_answer``, ``<name>_majority``, ``<name>_agreement``.
    """

    _PARAMS = ("group_columns", "label_column", "labels", "min_agreement", "one_per_group", "id_column")
    name = "self_consistency"

    def __init__(self, *, group_columns: Sequence[str], label_column: str, labels: Sequence[str] | None = None,
                 min_agreement: float = 0.5, one_per_group: bool = True, id_column: str | None = None,
                 name: str | None = None):
        if isinstance(group_columns, str) or not group_columns:
            raise InvalidParameterError("group_columns must be a non-empty list of the columns that identify an input.")
        check_range("min_agreement", min_agreement, 0.0, 1.0)
        self.group_columns, self.label_column = list(group_columns), label_column
        self.labels = list(labels) if labels is not None else None
        self.min_agreement, self.one_per_group, self.id_column = min_agreement, one_per_group, id_column
        self._fitted = None
        super().__init__(name=name)

    @property
    def score_columns(self):
        return [f"{self.name}_answer", f"{self.name}_majority", f"{self.name}_agreement"]

    @property
    def score_types(self):
        return {**super().score_types, f"{self.name}_answer": "string", f"{self.name}_majority": "string"}

    def parse(self, text) -> str | None:
        if self.labels is None:
            return None if text is None else str(text).strip()
        if not isinstance(text, str):
            return None
        rx = re.compile(r"\b(" + "|".join(re.escape(v) for v in self.labels) + r")\b", re.I)
        m = rx.search(text)
        return None if m is None else next(v for v in self.labels if v.lower() == m.group(1).lower())

    def _fit(self, ds):
        check_columns(ds.column_names, self.group_columns + [self.label_column], "SelfConsistency")
        cols = [list(ds[c]) for c in self.group_columns]
        groups = [repr(g) for g in zip(*cols)]
        answers = [self.parse(t) for t in ds[self.label_column]]
        members: dict[str, list[int]] = {}
        for i, g in enumerate(groups):
            members.setdefault(g, []).append(i)
        n = len(groups)
        majority: list = [None] * n
        agreement = np.zeros(n)
        codes = np.zeros(n, dtype=np.int16)
        for rows in members.values():
            votes = Counter(answers[i] for i in rows if answers[i] is not None)
            top = max(votes.values()) if votes else 0
            maj = next((answers[i] for i in rows if answers[i] is not None and votes[answers[i]] == top), None)
            agr = top / len(rows)
            first = True
            for i in rows:
                majority[i], agreement[i] = maj, agr
                if agr < self.min_agreement:
                    codes[i] = 1
                elif answers[i] != maj:
                    codes[i] = 2
                elif self.one_per_group and not first:
                    codes[i] = 3
                else:
                    first = False
        return codes, ["low_agreement", "not_majority", "extra_sample"], {
            f"{self.name}_answer": answers, f"{self.name}_majority": majority, f"{self.name}_agreement": agreement}
