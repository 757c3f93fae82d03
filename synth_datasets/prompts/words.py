"""Random words per row (TinyStories, Eldan & Li 2023): each story must use a few words drawn from a
vocabulary by part of speech, which spreads the generations over far more content than a list of
attributes does."""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from ..errors import InvalidParameterError
from ..seeding import derive_seed
from .pools import Pool

_FORMAT_VERSION = 1


class RandomWords(Pool):
    """A :class:`Conditions` attribute whose value is ``k`` words per part of speech, drawn per row.

    Words of one part of speech are distinct within a row; the draw is a pure function of the
    Conditions seed, the row key and the attribute name, so a resumed run draws the same words. The
    default vocabulary ships with the library (``synth_datasets/prompts/_vocabulary.py``: 175 nouns,
    111 verbs, 101 adjectives of simple English, CC0); pass ``vocabulary=`` for another.

    Args:
        noun, verb, adjective (`int`): words of each part of speech per row (at least one > 0).
        vocabulary (`dict[str, list[str]]`, *optional*): part of speech -> words; its keys are then the
            parts of speech to pass counts for (``RandomWords(vocabulary={"color": [...]}, color=2)``).
        join (`str` or None, defaults to ``", "``): joins the words into one string; None keeps a list.

    Example:
        >>> from datasets import Dataset
        >>> from synth_datasets import Conditions
        >>> c = Conditions(words=RandomWords(noun=1, verb=1, adjective=1), seed=0)
        >>> row = Dataset.from_dict({"id": [0]}).map(c, batched=True, with_indices=True)[0]
        >>> len(row["words"].split(", "))
        3
    """

    finite = False

    def __init__(self, *, vocabulary: Mapping[str, Sequence[str]] | None = None, join: str | None = ", ",
                 **counts: int):
        if vocabulary is None:
            from ._vocabulary import VOCABULARY

            vocabulary, self.source = VOCABULARY, "synth_datasets/prompts/_vocabulary.py"
        else:
            self.source = "user"
        vocab = {}
        for pos, words in vocabulary.items():
            words = list(dict.fromkeys(w for w in words if isinstance(w, str) and w.strip()))
            if not words:
                raise InvalidParameterError(f"vocabulary[{pos!r}] has no words: give it a list of strings.")
            vocab[str(pos)] = words
        if not counts:
            raise InvalidParameterError(f"Say how many words per part of speech, e.g. RandomWords(noun=1, verb=1, "
                                        f"adjective=1). Parts of speech: {sorted(vocab)}.")
        for pos, k in counts.items():
            if pos not in vocab:
                raise InvalidParameterError(f"No words for {pos!r} in the vocabulary. Parts of speech: {sorted(vocab)}.")
            if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= len(vocab[pos]):
                raise InvalidParameterError(f"{pos}={k!r} must be an integer from 0 to {len(vocab[pos])}.")
        if sum(counts.values()) == 0:
            raise InvalidParameterError("RandomWords draws no word: give one part of speech a count above 0.")
        if join is not None and not isinstance(join, str):
            raise InvalidParameterError("join= must be a string (e.g. ', ') or None for a list.")
        self.counts = dict(counts)
        self.vocabulary = {pos: vocab[pos] for pos in counts}
        self.join = join

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "counts": self.counts, "vocabulary": self.vocabulary,
                "join": self.join, "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        self.__dict__.update(state)

    def values(self) -> list[str]:
        """Every word that can be drawn (the pool has no finite list of row values)."""
        return [w for words in self.vocabulary.values() for w in words]

    def draw(self, seed: int, key: str, name: str = "words") -> list[str]:
        rng = random.Random(derive_seed(seed, key, name, "random-words"))
        return [w for pos, k in self.counts.items() for w in rng.sample(self.vocabulary[pos], k)]

    def pick(self, *, u: float, seed: int, name: str, key: str, index: int | None) -> Any:
        words = self.draw(seed, key, name)
        return words if self.join is None else self.join.join(words)

    def describe(self) -> dict[str, Any]:
        return {"type": "RandomWords", "format": _FORMAT_VERSION, "counts": self.counts, "join": self.join,
                "vocabulary_source": self.source,
                "vocabulary_size": {pos: len(w) for pos, w in self.vocabulary.items()},
                **({"vocabulary": self.vocabulary} if self.source == "user" else {})}

    def __repr__(self) -> str:
        return f"RandomWords({', '.join(f'{k}={v}' for k, v in self.counts.items())})"
