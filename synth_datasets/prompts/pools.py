"""Value pools for :class:`Conditions` beside plain lists: the :class:`Pool` base and the text helpers
that read a model's list (:func:`parse_list`, :func:`dedupe_values`). Text only: the pools a model
writes (``LLMValues``, ``ConceptTree``) live in :mod:`synth_datasets.generate.pools`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Sequence

_BULLET = re.compile(r"^\s*(?:[-*\u2022>#]+|\(?\d{1,3}[.):]|\(?[a-zA-Z][.)])\s+")
_MARKUP = re.compile(r"[*_`\"\u201c\u201d\u2018\u2019]")
_SPLIT = re.compile(r"\s*[,;]\s*|\s+/\s+")
_INTRO = re.compile(r"\s*(?:here|some|the following|examples?|list)\b", re.I)
_INLINE_NUMBER = re.compile(r"(?:^|\s)\(?\d{1,2}[.)]\s+")
_CLAUSE = re.compile(r"(?:which|that|who|where|when|with|such as|e\.g|i\.e)\b", re.I)  # a description, not an item


class Pool:
    """Base of the pools :class:`Conditions` accepts beside plain lists.

    A subclass implements :meth:`values` (the materialized list) and :meth:`describe`; it may override
    :meth:`pick` to draw otherwise than uniformly (e.g. covering every value before any repeats).
    """

    needs_index = False  # draws by row index (needs ``map(..., with_indices=True)``)
    finite = True  # values() lists every value a row can get (Conditions.combinations uses it)

    def values(self) -> list[Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def pick(self, *, u: float, seed: int, name: str, key: str, index: int | None) -> Any:
        """One value for a row: ``u`` is the row's uniform draw in [0, 1) for this attribute."""
        vals = self.values()
        return vals[int(u * len(vals))]

    def describe(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def normalize_value(s: str) -> str:
    """Casefolded alphanumerics and single spaces: what exact deduplication compares."""
    s = unicodedata.normalize("NFKC", s).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", s).split())


def value_key(s: str) -> str:
    """:func:`normalize_value` with a crude plural folded ("slashers" == "slasher")."""
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
                    for w in normalize_value(s).split())


def _trigrams(s: str) -> set[str]:
    s = f"  {s} "
    return {s[i:i + 3] for i in range(len(s) - 2)}


def dedupe_values(values: Sequence[str], *, near: float = 0.8) -> list[str]:
    """Drop exact duplicates (after :func:`normalize_value`, plurals folded) and near duplicates (character-trigram
    Jaccard similarity ``>= near``; ``near=1`` keeps near duplicates), keeping the first of each.

    >>> dedupe_values(["Slasher", "slasher!", "Slashers", "Body horror"])
    ['Slasher', 'Body horror']
    """
    kept: list[str] = []
    seen: set[str] = set()
    grams: list[set[str]] = []
    for v in values:
        n = value_key(v)
        if not n or n in seen:
            continue
        g = _trigrams(n)
        if near < 1 and any(len(g & h) / len(g | h) >= near for h in grams):
            continue
        seen.add(n)
        grams.append(g)
        kept.append(v)
    return kept


def parse_list(text: str | None, *, max_words: int = 8) -> list[str]:
    """Items of a list an LLM wrote: one per line or comma-separated, bullets, numbering, markup and
    intro sentences ("Here are ten subgenres:") removed; items longer than ``max_words`` dropped.

    >>> parse_list("Here are some:\\n1. **Slasher** films\\n2. Found footage - shaky\\n- Folk horror, Body horror.")
    ['Slasher films', 'Found footage - shaky', 'Folk horror', 'Body horror']
    >>> parse_list("Some subgenres: 1. Gothic horror, which is old. It is good. 2. The Shocker, with ghosts")
    ['Gothic horror', 'The Shocker']
    """
    items: list[str] = []
    for line in (text or "").splitlines():
        line = _BULLET.sub("", _MARKUP.sub("", _BULLET.sub("", line))).strip()
        if not line:
            continue
        if ":" in line:
            head, _, tail = line.partition(":")
            if not tail.strip():
                continue  # a header line ("Here are ten subgenres:")
            # "The following ten subgenres are: a, b" -> the tail; "Slasher: a masked killer" -> the head
            intro = len(head.split()) > 3 or _INTRO.match(head) or _INLINE_NUMBER.search(tail)
            line = tail if intro else head
        for segment in _INLINE_NUMBER.split(line):  # "1. Slasher, a masked killer. 2. Gothic"
            for part in _SPLIT.split(segment.split(". ")[0]):
                part = re.sub(r"^(?:and|or)\s+", "", part.strip(), flags=re.I).strip(" .!?-\u2013\u2014()[]'")
                if (part and re.search(r"[^\W\d_]", part) and len(part.split()) <= max_words
                        and not _CLAUSE.match(part)):
                    items.append(part)
    return items
