"""Value pools for :class:`Conditions` whose values are not a fixed list: written by an LLM from a
description (Xu et al. 2023b; Ding et al. 2023b), or the leaves of a concept tree (UltraChat).

A pool pickles to its configuration (model configuration, description, sizes, seed), never to a live
model; its values are made on first use and come back from the LLM's response cache on every rerun.
``describe()`` records the values verbatim with the prompt that made them, and ``values=`` / ``tree=``
rebuild a pool from that record without the model.
"""

from __future__ import annotations

import random
import re
import unicodedata
from typing import Any, Mapping, Sequence

from ..errors import InvalidParameterError
from ..seeding import derive_seed

_FORMAT_VERSION = 1

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


def _key(s: str) -> str:
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
        n = _key(v)
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


def _check_llm(llm: Any, what: str) -> None:
    from ..llm import LLM

    if not isinstance(llm, LLM):
        raise InvalidParameterError(f"{what} needs an LLM to write its values, got {type(llm).__name__}. "
                                    "Pass LLM() (or values=/tree= from a recorded describe() to skip the model).")


class LLMValues(Pool):
    """A pool of ``n`` values an LLM lists from a ``description`` ("subgenres of horror films").

    The model is asked for a list, the reply parsed (:func:`parse_list`) and deduplicated (exact and
    near, :func:`dedupe_values`); further rounds with derived seeds run until ``n`` distinct values
    exist or ``rounds`` is spent (a weak model may yield fewer: ``values()`` then holds what was found,
    and an empty pool is an error). Requests go through the LLM's response cache, so a rerun costs no
    model call; ``describe()`` records the values and the prompt verbatim, and
    ``LLMValues(None, description, values=[...])`` rebuilds the pool without a model.

    Args:
        llm (`LLM`): the model that writes the values (``None`` only with ``values=``).
        description (`str`): what to list, e.g. ``"subgenres of horror films"``.
        n (`int`, defaults to 20): values wanted.
        seed (`int`, defaults to 0): seed of the requests.
        rounds (`int`, defaults to 3): requests at most (each with its own seed).
        near (`float`, defaults to 0.8): near-duplicate threshold (character-trigram Jaccard).
        max_words (`int`, defaults to 6): longer items are dropped.
        temperature, top_p, max_new_tokens: sampling of the list requests.
        values (`list[str]`, *optional*): the values already made (from a recorded ``describe()``).

    Example:
        >>> pool = LLMValues(None, "subgenres of horror films", values=["slasher", "folk horror"])
        >>> Conditions(subgenre=pool, seed=0).describe()["pools"]["subgenre"]["values"]   # doctest: +SKIP
        ['slasher', 'folk horror']
    """

    PROMPT = ("List {n} different {description}. Write one per line, each a few words, "
              "with no numbering and no explanations.")

    def __init__(self, llm: Any, description: str, *, n: int = 20, seed: int = 0, rounds: int = 3,
                 near: float = 0.8, max_words: int = 6, temperature: float = 0.8, top_p: float = 0.95,
                 max_new_tokens: int = 160, values: Sequence[str] | None = None):
        if not isinstance(description, str) or not description.strip():
            raise InvalidParameterError("LLMValues needs a description of the values, e.g. 'subgenres of horror films'.")
        for name, v, lo in (("n", n, 1), ("rounds", rounds, 1), ("max_words", max_words, 1), ("seed", seed, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise InvalidParameterError(f"LLMValues {name}={v!r} must be an integer >= {lo}.")
        if not 0 < near <= 1:
            raise InvalidParameterError(f"near={near!r} must be in (0, 1] (1 keeps near duplicates).")
        if values is None:
            _check_llm(llm, "LLMValues")
        elif isinstance(values, (str, bytes)) or not values or not all(isinstance(v, str) for v in values):
            raise InvalidParameterError("values= must be a non-empty list of strings (the recorded pool).")
        self.llm, self.description, self.n, self.seed, self.rounds = llm, description.strip(), n, seed, rounds
        self.near, self.max_words = near, max_words
        self.sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
        self.given = None if values is None else list(values)
        self._values: list[str] | None = self.given
        self._rounds_used = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "llm": self.llm if self.given is None else None,
                "description": self.description, "n": self.n, "seed": self.seed, "rounds": self.rounds,
                "near": self.near, "max_words": self.max_words, "sampling": self.sampling, "given": self.given}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        self.__dict__.update(state)
        self._values, self._rounds_used = self.given, 0

    @property
    def prompt(self) -> str:
        return self.PROMPT.format(n=self.n, description=self.description)

    def values(self) -> list[str]:
        if self._values is None:
            self._values = self._generate()
        return self._values

    def _generate(self) -> list[str]:
        from ..llm import ChatRequest, SamplingParams

        params = SamplingParams(seed=self.seed, **self.sampling)
        messages = [{"role": "user", "content": self.prompt}]
        found: list[str] = []
        for r in range(self.rounds):
            c = self.llm.generate([ChatRequest.of(messages, derive_seed(self.seed, "values", self.description, r))],
                                  params)[0]
            self._rounds_used = r + 1
            found = dedupe_values(found + parse_list(c.text, max_words=self.max_words), near=self.near)
            if len(found) >= self.n:
                break
        if not found:
            raise InvalidParameterError(
                f"The model listed no usable values for {self.description!r} in {self.rounds} round(s). "
                "Raise rounds= or max_new_tokens=, reword the description, or pass values= yourself.")
        return found[:self.n]

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "LLMValues", "format": _FORMAT_VERSION, "description": self.description,
                             "n": self.n, "seed": self.seed, "prompt": self.prompt, "sampling": self.sampling,
                             "rounds": self.rounds, "near": self.near, "max_words": self.max_words,
                             "values": self.values()}
        if self.given is None:
            d["rounds_used"] = self._rounds_used or None
            d["llm"] = self.llm.describe()
        return d

    def __repr__(self) -> str:
        return f"LLMValues({self.description!r}, n={self.n}, seed={self.seed})"


class ConceptTree(Pool):
    """A topic tree grown by an LLM level by level (UltraChat): the root's subtopics, their subtopics,
    ... ``depth`` levels deep with up to ``branching`` children a node; its leaves are the pool.

    Every node of one level is expanded in one batched call; children are parsed and deduplicated
    against their siblings and ancestors; a node the model gives no children stays a leaf. Leaves are
    drawn with coverage:

    - ``"cover"``: every leaf once before any repeats (row ``i`` of cycle ``i // L`` takes position
      ``i % L`` of that cycle's seeded permutation); needs ``ds.map(..., with_indices=True)``;
    - ``"uniform"``: each row a uniform leaf, i.e. a top-level topic in proportion to its subtree size;
    - ``"per-level"``: a uniform child at each level (small subtrees get as many rows as large ones).

    Args:
        llm (`LLM`): the model (``None`` only with ``tree=``).
        root (`str`): the root topic.
        depth (`int`, defaults to 2): levels under the root.
        branching (`int`, defaults to 4): children wanted per node.
        sampling (`str`, defaults to ``"cover"``): ``"cover"``, ``"uniform"`` or ``"per-level"``.
        leaf_format (`str`, defaults to ``"path"``): ``"path"`` ("movies > comedy > satire") or ``"leaf"``.
        seed (`int`, defaults to 0); near, max_words, temperature, top_p, max_new_tokens: as :class:`LLMValues`.
        tree (`dict`, *optional*): the recorded tree (``describe()["tree"]``), to skip the model.

    Example:
        >>> t = ConceptTree(None, "movies", tree={"comedy": {"satire": {}, "farce": {}}, "horror": {}})
        >>> t.values()
        ['movies > comedy > satire', 'movies > comedy > farce', 'movies > horror']
    """

    PROMPT = ("List {k} different subtopics of {path}. Write one per line, each a few words, "
              "with no numbering and no explanations.")
    MODES = ("cover", "uniform", "per-level")

    def __init__(self, llm: Any, root: str, *, depth: int = 2, branching: int = 4, sampling: str = "cover",
                 leaf_format: str = "path", seed: int = 0, near: float = 0.8, max_words: int = 6,
                 temperature: float = 0.8, top_p: float = 0.95, max_new_tokens: int = 120,
                 tree: Mapping[str, Any] | None = None):
        if not isinstance(root, str) or not root.strip():
            raise InvalidParameterError("ConceptTree needs a root topic, e.g. ConceptTree(llm, 'movies').")
        for name, v, lo in (("depth", depth, 1), ("branching", branching, 1), ("seed", seed, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise InvalidParameterError(f"ConceptTree {name}={v!r} must be an integer >= {lo}.")
        if sampling not in self.MODES:
            raise InvalidParameterError(f"sampling={sampling!r}: use one of {list(self.MODES)}.")
        if leaf_format not in ("path", "leaf"):
            raise InvalidParameterError(f"leaf_format={leaf_format!r}: use 'path' or 'leaf'.")
        if tree is None:
            _check_llm(llm, "ConceptTree")
        elif not isinstance(tree, Mapping):
            raise InvalidParameterError("tree= must be the nested dict recorded in describe()['tree'].")
        self.llm, self.root, self.depth, self.branching = llm, root.strip(), depth, branching
        self.sampling_mode, self.leaf_format, self.seed = sampling, leaf_format, seed
        self.near, self.max_words = near, max_words
        self.sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens}
        self.given = None if tree is None else _plain(tree)
        self.needs_index = sampling == "cover"
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._tree: dict[str, Any] | None = self.given
        self._leaves: list[tuple[str, ...]] | None = None
        self._perms: dict[int, list[int]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "llm": self.llm if self.given is None else None, "root": self.root,
                "depth": self.depth, "branching": self.branching, "sampling_mode": self.sampling_mode,
                "leaf_format": self.leaf_format, "seed": self.seed, "near": self.near,
                "max_words": self.max_words, "sampling": self.sampling, "given": self.given}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        self.__dict__.update(state)
        self.needs_index = self.sampling_mode == "cover"
        self._init_runtime()

    # -- growing ------------------------------------------------------------------------------
    def tree(self) -> dict[str, Any]:
        """The tree under the root as nested dicts (a leaf maps to ``{}``)."""
        if self._tree is None:
            self._tree = self._grow()
        return self._tree

    def _grow(self) -> dict[str, Any]:
        from ..llm import ChatRequest, SamplingParams

        params = SamplingParams(seed=self.seed, **self.sampling)
        tree: dict[str, Any] = {}
        frontier: list[tuple[tuple[str, ...], dict]] = [((self.root,), tree)]
        for _level in range(self.depth):
            reqs = [ChatRequest.of([{"role": "user", "content": self.prompt_for(path)}],
                                   derive_seed(self.seed, "tree", *path)) for path, _ in frontier]
            completions = self.llm.generate(reqs, params)
            nxt = []
            for (path, node), c in zip(frontier, completions):
                taken = {_key(p) for p in path}
                kids = [v for v in dedupe_values(list(path) + parse_list(c.text, max_words=self.max_words),
                                                 near=self.near) if _key(v) not in taken]
                for kid in kids[:self.branching]:
                    node[kid] = {}
                    nxt.append((path + (kid,), node[kid]))
            frontier = nxt
            if not frontier:
                break
        if not tree:
            raise InvalidParameterError(
                f"The model gave no subtopics of {self.root!r}. Raise max_new_tokens=, reword the root, "
                "or pass tree= yourself.")
        return tree

    def prompt_for(self, path: Sequence[str]) -> str:
        return self.PROMPT.format(k=self.branching, path=" > ".join(path))

    # -- sampling -------------------------------------------------------------------------------
    def leaves(self) -> list[tuple[str, ...]]:
        """Root-to-leaf paths, depth first in tree order."""
        if self._leaves is None:
            out: list[tuple[str, ...]] = []

            def walk(node: Mapping[str, Any], path: tuple[str, ...]) -> None:
                for k, v in node.items():
                    walk(v, path + (k,)) if v else out.append(path + (k,))
            walk(self.tree(), (self.root,))
            self._leaves = out
        return self._leaves

    def _show(self, path: tuple[str, ...]) -> str:
        return " > ".join(path) if self.leaf_format == "path" else path[-1]

    def values(self) -> list[str]:
        return [self._show(p) for p in self.leaves()]

    def pick(self, *, u: float, seed: int, name: str, key: str, index: int | None) -> str:
        leaves = self.leaves()
        if self.sampling_mode == "uniform":
            return self._show(leaves[int(u * len(leaves))])
        if self.sampling_mode == "per-level":
            node, path, level = self.tree(), (self.root,), 0
            while node:
                kids = list(node)
                kid = kids[int(derive_seed(seed, key, name, level) % len(kids))]
                node, path, level = node[kid], path + (kid,), level + 1
            return self._show(path)
        if index is None:
            raise InvalidParameterError(
                f"Attribute {name!r} covers every leaf before repeats, which needs row indices: use "
                "ds.map(conditions, batched=True, with_indices=True), or sampling='uniform'.")
        cycle, pos = divmod(int(index), len(leaves))
        perm = self._perms.get(cycle)
        if perm is None:
            perm = list(range(len(leaves)))
            random.Random(derive_seed(seed, name, "cover", cycle)).shuffle(perm)
            if len(self._perms) > 64:
                self._perms.clear()
            self._perms[cycle] = perm
        return self._show(leaves[perm[pos]])

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "ConceptTree", "format": _FORMAT_VERSION, "root": self.root,
                             "depth": self.depth, "branching": self.branching, "sampling": self.sampling_mode,
                             "leaf_format": self.leaf_format, "seed": self.seed, "prompt": self.PROMPT,
                             "generation": self.sampling, "near": self.near, "max_words": self.max_words,
                             "tree": self.tree(), "leaves": len(self.leaves())}
        if self.given is None:
            d["llm"] = self.llm.describe()
        return d

    def __repr__(self) -> str:
        return f"ConceptTree({self.root!r}, depth={self.depth}, branching={self.branching}, sampling={self.sampling_mode!r})"


def _plain(tree: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in tree.items():
        if not isinstance(k, str) or not (v is None or isinstance(v, Mapping)):
            raise InvalidParameterError(f"tree= node {k!r}: keys must be strings and children dicts ({{}} for a leaf).")
        out[k] = _plain(v or {})
    return out
