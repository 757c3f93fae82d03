"""Salvage generations cut by the token limit: keep their complete sentences.

A text that stopped at ``max_new_tokens`` ends mid-sentence and is usually dropped (:class:`Truncated`).
When it already holds whole sentences, cutting it after the last one gives a complete, shorter text,
which is what an excerpt of a longer text looks like (Rotten Tomatoes' snippets are exactly that).
:class:`TrimToSentence` does this for the cut rows only and marks them ``finish_reason = "trimmed"``, so
a later ``Truncated`` drops only the cut rows with no complete sentence to keep.

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"text": ["A fine film. It drags in the", "Short and sweet."],
...                         "text_finish_reason": ["length", "stop"]})
>>> list(ds.map(TrimToSentence(column="text", min_words=3), batched=True)["text"])
['A fine film.', 'Short and sweet.']
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from ..columns import TextColumn, check_column_option
from .base import Mapper, check_columns, check_range

__all__ = ["TrimToSentence", "trim_to_sentence"]

# a sentence ends at . ! ? or an ellipsis, optionally followed by closing quotes/brackets, then space or the end
_END = re.compile(r"(?:[.!?]+|…)[\"'”’)\]]*(?=\s|$)")


def trim_to_sentence(text: str, *, min_words: int = 1) -> str | None:
    """``text`` up to the end of its last complete sentence, or None when that keeps fewer than
    ``min_words`` words (or no sentence ends in it).

    >>> trim_to_sentence("Great cast. Weak plot! And the ending was")
    'Great cast. Weak plot!'
    >>> trim_to_sentence("It never ends and", min_words=1) is None
    True
    >>> trim_to_sentence('He said "wow." Then', min_words=2)
    'He said "wow."'
    """
    ends = [m.end() for m in _END.finditer(text)]
    if not ends:
        return None
    kept = text[:ends[-1]].strip()
    return kept if len(kept.split()) >= min_words else None


class TrimToSentence(TextColumn, Mapper):
    """For rows cut by the token limit (``{column}_finish_reason == "length"``): the text up to its last
    complete sentence, and the finish reason ``"trimmed"``; a cut row with no complete sentence of at least
    ``min_words`` words is left as it is (a later :class:`Truncated` drops it). Other rows are unchanged.
    ``stats`` counts ``trimmed`` and ``untrimmable`` rows (in-process calls).

    Args:
        column (`str`, *optional*): the text column (default: the declared text column).
        min_words (`int`, defaults to 5): the fewest words a trimmed text keeps.
        finish_reason_column (`str`, *optional*): default ``{column}_finish_reason``.

    Example:
        >>> r.map(TrimToSentence(column="review"), name="trim")                     # doctest: +SKIP
        >>> r.filter(Truncated(column="review"), name="truncated")                  # doctest: +SKIP
    """

    _PARAMS = ("column", "min_words", "finish_reason_column")
    name = "trim"

    def __init__(self, *, column: str | None = None, min_words: int = 5, finish_reason_column: str | None = None,
                 name: str | None = None):
        check_column_option(column)
        check_range("min_words", min_words, 1, integer=True)
        self.column, self.min_words, self.finish_reason_column = column, min_words, finish_reason_column
        super().__init__(name=name)

    def transform(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        col = self._text_column(batch)
        finish = self.finish_reason_column or f"{col}_finish_reason"
        check_columns(list(batch.keys()), [col, finish], "TrimToSentence")
        texts, reasons = list(batch[col]), list(batch[finish])
        self._rt_stats["total"] += len(texts)
        if self._rt_counts_source is None:
            self._rt_counts_source = "in-process calls"
        for i, (t, f) in enumerate(zip(texts, reasons)):
            if f != "length" or not isinstance(t, str):
                continue
            kept = trim_to_sentence(t, min_words=self.min_words)
            if kept is None:
                self._rt_stats["untrimmable"] += 1
            else:
                texts[i], reasons[i] = kept, "trimmed"
                self._rt_stats["trimmed"] += 1
        return {col: texts, finish: reasons}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["rule"] = "rows cut by the token limit keep their text up to the last complete sentence"
        return d
