"""Class-conditional attributes (AttrPrompt, Yu et al. 2023): the model proposes the dimensions in which
texts of a task differ and, per class, values of each (shown real examples of the class when a sample
is given); :class:`ClassAttributes` then gives every row one value per dimension of its class, covering
each class's values before repeating them.

>>> from datasets import Dataset
>>> attrs = ClassAttributes({"sport": {"subtopic": ["tennis", "rugby"]}, "tech": {"subtopic": ["chips", "apps"]}})
>>> ds = Dataset.from_dict({"label": ["sport", "tech", "sport", "tech"]})
>>> sorted(ds.map(attrs, batched=True, with_indices=True)["attributes"])
['subtopic: apps', 'subtopic: chips', 'subtopic: rugby', 'subtopic: tennis']
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from ..errors import InvalidParameterError, MissingColumnError
from ..seeding import derive_seed

__all__ = ["ClassAttributes", "ProposedAttributes", "propose_attributes", "parse_items", "FALLBACK_DIMENSIONS"]

_FORMAT = 1
#: dimensions used when the model proposes fewer usable ones (recorded as such)
FALLBACK_DIMENSIONS = ["subtopic", "style", "perspective"]
FALLBACK_VALUES = {"style": ["formal", "casual", "concise", "vivid"],
                   "perspective": ["first person", "neutral reporter", "expert", "critic"]}
SYSTEM = "You help design diverse, realistic text datasets."
DIMENSIONS_PROMPT = ("We are collecting {task}s, labelled {labels}.{examples} List {n} aspects, other than the label, in "
                     "which such {task}s differ from one another (for example subtopic or tone). Write one per "
                     "line, one or two words each, with no numbering and no explanations.")
VALUES_PROMPT = ("List {n} different {dimension} values for a {task} about {label}{description}.{examples} Write one per "
                 "line, a few words each, with no numbering and no explanations.")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]+|\d+[.)]|[a-z][.)])\s*", re.I)


def parse_items(text: str | None, *, max_words: int = 6) -> list[str]:
    """Items of a list a model wrote (one per line or comma-separated), bullets, numbering and markup
    removed, intro lines (ending in ':') and long items dropped, case-insensitive duplicates removed.

    >>> parse_items("Here are some:\\n1. **Mergers**\\n- stock markets, Startups\\n2. mergers")
    ['Mergers', 'stock markets', 'Startups']
    """
    out, seen = [], set()
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.endswith(":"):
            continue
        for part in _BULLET.sub("", line).split(","):
            item = part.strip().strip("*_`\"'").rstrip(".;:").strip()
            item = re.sub(r"\s*[-:(].*$", "", item) if len(item.split()) > max_words else item
            if not item or len(item.split()) > max_words or not re.search(r"[A-Za-z]", item):
                continue
            if item.lower() not in seen:
                seen.add(item.lower())
                out.append(item)
    return out


def _examples_block(texts: Sequence[str]) -> str:
    return (" Real examples:\n" + "\n".join(f"- {t[:300]}" for t in texts) + "\n") if texts else ""


def propose_attributes(llm: Any, *, task: str, labels: Sequence[str], descriptions: Mapping[str, str] | None = None,
                       examples: Mapping[str, Sequence[str]] | None = None, dimensions: int = 2, values: int = 4,
                       seed: int = 0, max_new_tokens: int = 96) -> "ClassAttributes":
    """Ask ``llm`` for ``dimensions`` attribute dimensions of ``task`` texts, then for ``values`` values
    of each per label (two batched rounds of requests, through the response cache). Unusable replies
    (too few items) are filled from :data:`FALLBACK_DIMENSIONS` / the label itself, and the record says
    which values came from the model. ``examples``: real texts per label, shown in the prompts (at most 3).

    >>> attrs = propose_attributes(LLM(), task="news article", labels=["sport", "tech"])   # doctest: +SKIP
    >>> attrs.describe()["params"]["dimensions"]                                          # doctest: +SKIP
    ['subtopic', 'tone']
    """
    from ..llm import ChatRequest, SamplingParams

    descriptions, examples = dict(descriptions or {}), dict(examples or {})
    params = SamplingParams(temperature=0.7, top_p=0.95, max_new_tokens=max_new_tokens, seed=seed)
    shown = [t for y in labels for t in list(examples.get(y, []))[:1]][:3]
    ask = DIMENSIONS_PROMPT.format(task=task, labels=", ".join(labels), examples=_examples_block(shown), n=dimensions)
    reply = llm.generate([ChatRequest.of([{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}],
                                         derive_seed(seed, "dimensions"))], params)[0]
    banned = {y.lower() for y in labels} | {"label", "labels", "length", "class", "category", "topic"}
    proposed = [d.lower() for d in parse_items(reply.text if reply.error is None else "", max_words=2)
                if d.lower() not in banned][:dimensions]
    dims = proposed + [d for d in FALLBACK_DIMENSIONS if d not in proposed][:dimensions - len(proposed)]
    pairs = [(y, d) for y in labels for d in dims]
    reqs = []
    for y, d in pairs:
        desc = f" ({descriptions[y]})" if descriptions.get(y) else ""
        text = VALUES_PROMPT.format(n=values, dimension=d, task=task, label=y, description=desc,
                                    examples=_examples_block(list(examples.get(y, []))[:3]))
        reqs.append(ChatRequest.of([{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
                                   derive_seed(seed, "values", y, d)))
    replies = llm.generate(reqs, params)
    table: dict[str, dict[str, list[str]]] = {y: {} for y in labels}
    origin: dict[str, dict[str, str]] = {y: {} for y in labels}
    for (y, d), c in zip(pairs, replies):
        got = [v for v in parse_items(c.text if c.error is None else "") if v.lower() not in banned][:values]
        if len(got) >= 2:
            table[y][d], origin[y][d] = got, "model"
        else:
            table[y][d] = FALLBACK_VALUES.get(d, [y])
            origin[y][d] = "fallback"
    record = {"llm": llm.describe(), "dimensions_prompt": ask, "dimensions_reply": reply.text,
              "dimensions_from_model": proposed, "values_prompt": VALUES_PROMPT, "values_origin": origin,
              "sampling": {"temperature": 0.7, "top_p": 0.95, "max_new_tokens": max_new_tokens, "seed": seed}}
    return ClassAttributes(table, seed=seed, proposal=record)


class ClassAttributes:
    """Adds ``output`` (default ``attributes``): ``"dim: value; dim: value"`` with the values of the row's
    class (``label_column``), and ``<label_column>_description`` (``" (description)"`` or empty). Map-callable, ``batched=True, with_indices=True``: within each class the
    values of a dimension walk a seeded permutation (every value before repeats) when the labels are
    themselves covered evenly (e.g. ``Conditions(design="latin")``); without indices, a seeded draw.

    Args:
        attributes (`dict`): label -> dimension -> list of values.
        label_column (`str`, defaults to ``"label"``); output (`str`, defaults to ``"attributes"``);
        seed (`int`, defaults to 0); proposal (`dict`, *optional*): how the values were made (recorded);
        descriptions (`dict`, *optional*): label -> a few words saying what it means.
    """

    def __init__(self, attributes: Mapping[str, Mapping[str, Sequence[str]]], *, label_column: str = "label",
                 output: str = "attributes", seed: int = 0, proposal: Mapping[str, Any] | None = None,
                 descriptions: Mapping[str, str] | None = None):
        if not attributes or any(not dims or any(not list(v) for v in dims.values()) for dims in attributes.values()):
            raise InvalidParameterError("attributes= must map each label to dimensions with non-empty value lists.")
        self.attributes = {str(y): {str(d): [str(v) for v in vs] for d, vs in dims.items()} for y, dims in attributes.items()}
        self.label_column, self.output, self.seed = label_column, output, seed
        self.proposal = dict(proposal or {})
        self.descriptions = {str(k): str(v) for k, v in (descriptions or {}).items()}

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT, "attributes": self.attributes, "label_column": self.label_column,
                "output": self.output, "seed": self.seed, "proposal": self.proposal, "descriptions": self.descriptions}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        self.__dict__.update(state)

    def _pick(self, label: str, dim: str, position: int) -> str:
        import random

        vals = self.attributes[label][dim]
        cycle, at = divmod(position, len(vals))
        order = list(range(len(vals)))
        random.Random(derive_seed(self.seed, label, dim, cycle)).shuffle(order)
        return vals[order[at]]

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        if self.label_column not in batch:
            raise MissingColumnError(f"ClassAttributes: column {self.label_column!r} is not in the batch. Current "
                                     f"columns: {sorted(batch)}. Add the label column first (Conditions).")
        n_labels = len(self.attributes)
        out = []
        for j, y in enumerate(batch[self.label_column]):
            y = str(y)
            if y not in self.attributes:
                raise InvalidParameterError(f"ClassAttributes: label {y!r} has no attributes (known: "
                                            f"{sorted(self.attributes)}).")
            pos = indices[j] // n_labels if indices is not None else derive_seed(self.seed, "row", str(
                {k: batch[k][j] for k in sorted(batch)}))
            out.append("; ".join(f"{d}: {self._pick(y, d, pos)}" for d in self.attributes[y]))
        return {self.output: out, f"{self.label_column}_description": [
            f" ({self.descriptions[str(y)]})" if self.descriptions.get(str(y)) else "" for y in batch[self.label_column]]}

    def describe(self) -> dict[str, Any]:
        dims = list(dict.fromkeys(d for dims in self.attributes.values() for d in dims))
        return {"type": "ClassAttributes", "format": _FORMAT, "output": self.output, "seed": self.seed,
                "params": {"dimensions": dims, "values": self.attributes, "descriptions": self.descriptions},
                "proposal": self.proposal}


class ProposedAttributes(ClassAttributes):
    """:class:`ClassAttributes` whose values the model proposes at ``fit`` (:func:`propose_attributes`), so a
    recipe step (``Recipe.fit_map``) makes them and its token usage is counted with the step.

    >>> attrs = ProposedAttributes(LLM(), task="news article", labels=["sport", "tech"])   # doctest: +SKIP
    >>> ds.map(attrs.fit(ds), batched=True, with_indices=True)                           # doctest: +SKIP
    """

    def __init__(self, llm: Any, *, task: str, labels: Sequence[str], descriptions: Mapping[str, str] | None = None,
                 examples: Mapping[str, Sequence[str]] | None = None, dimensions: int = 2, values: int = 4,
                 seed: int = 0, max_new_tokens: int = 96, label_column: str = "label", output: str = "attributes"):
        for name, v in (("dimensions", dimensions), ("values", values)):
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 10:
                raise InvalidParameterError(f"{name}={v!r} must be an integer from 1 to 10.")
        self.llm, self.task, self.labels = llm, task, list(labels)
        self.options = {"descriptions": dict(descriptions or {}), "examples": {k: list(v)[:3] for k, v in
                                                                               (examples or {}).items()},
                        "dimensions": dimensions, "values": values, "max_new_tokens": max_new_tokens}
        self.attributes, self.proposal, self.descriptions = {}, {}, dict(descriptions or {})
        self.label_column, self.output, self.seed = label_column, output, seed

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "llm": self.llm, "task": self.task, "labels": self.labels,
                "options": self.options}

    def fit(self, ds=None) -> "ProposedAttributes":
        made = propose_attributes(self.llm, task=self.task, labels=self.labels, seed=self.seed, **self.options)
        self.attributes, self.proposal = made.attributes, made.proposal
        return self

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        if not self.attributes:
            from ..errors import NotFittedError

            raise NotFittedError("ProposedAttributes is not fitted: call .fit(ds) first (the model proposes the values).")
        return super().__call__(batch, indices)
