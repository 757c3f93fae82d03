"""Pools a model writes (they call an LLM, so they live in generate/, above prompts/):

- :class:`LLMValues`: values an LLM lists from a description (Xu et al. 2023b; Ding et al. 2023b);
- :class:`ConceptTree`: the leaves of a topic tree an LLM grows (UltraChat);
- :func:`fit_synthetic` / :func:`fit_explained`: a :class:`~synth_datasets.prompts.Demonstrations` pool
  the model writes (Self-Prompting, Li et al. 2022) or explains (He et al. 2023).

A pool pickles to its configuration (model configuration, description, sizes, seed), never to a live
model; its values are made on first use and come back from the LLM's response cache on every rerun.
``describe()`` records the values verbatim with the prompt that made them, and ``values=`` / ``tree=``
rebuild a pool from that record without the model.
"""

from __future__ import annotations

import random
import hashlib
import json
from typing import Any, Mapping, Sequence

from ..errors import EmptyDatasetError, InvalidParameterError
from ..llm import LLM, ChatRequest, SamplingParams
from ..prompts import Demonstrations, Template
from ..prompts.demos import EXPLAIN, rows_of
from ..prompts.pools import Pool, dedupe_values, parse_list, value_key
from ..seeding import derive_seed
from .base import Configured, as_template, check_llm

__all__ = ["LLMValues", "ConceptTree", "fit_synthetic", "fit_explained"]


def _without_llm_when_given(state: dict[str, Any]) -> dict[str, Any]:
    """A pool rebuilt from recorded values needs no model: its state holds None in its place."""
    if state["given"] is not None:
        state["llm"] = None
    return state


def _check_llm(llm: Any, what: str) -> None:
    if not isinstance(llm, LLM):
        raise InvalidParameterError(f"{what} needs an LLM to write its values, got {type(llm).__name__}. "
                                    "Pass LLM() (or values=/tree= from a recorded describe() to skip the model).")


class LLMValues(Configured, Pool):
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
        self._init_runtime()

    _STATE = ("llm", "description", "n", "seed", "rounds", "near", "max_words", "sampling", "given")

    def _init_runtime(self) -> None:
        self._values: list[str] | None = self.given
        self._rounds_used = 0

    def __getstate__(self) -> dict[str, Any]:
        return _without_llm_when_given(super().__getstate__())

    @property
    def prompt(self) -> str:
        return self.PROMPT.format(n=self.n, description=self.description)

    def values(self) -> list[str]:
        if self._values is None:
            self._values = self._generate()
        return self._values

    def _generate(self) -> list[str]:
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
        d: dict[str, Any] = {"type": "LLMValues", "format": self._FORMAT, "description": self.description,
                             "n": self.n, "seed": self.seed, "prompt": self.prompt, "sampling": self.sampling,
                             "rounds": self.rounds, "near": self.near, "max_words": self.max_words,
                             "values": self.values()}
        if self.given is None:
            d["rounds_used"] = self._rounds_used or None
            d["llm"] = self.llm.describe()
        return d

    def __repr__(self) -> str:
        return f"LLMValues({self.description!r}, n={self.n}, seed={self.seed})"


class ConceptTree(Configured, Pool):
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
        self._init_runtime()

    _STATE = ("llm", "root", "depth", "branching", "sampling_mode", "leaf_format", "seed", "near", "max_words",
              "sampling", "given")

    def _init_runtime(self) -> None:
        self.needs_index = self.sampling_mode == "cover"
        self._tree: dict[str, Any] | None = self.given
        self._leaves: list[tuple[str, ...]] | None = None
        self._perms: dict[int, list[int]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return _without_llm_when_given(super().__getstate__())

    # -- growing ------------------------------------------------------------------------------
    def tree(self) -> dict[str, Any]:
        """The tree under the root as nested dicts (a leaf maps to ``{}``)."""
        if self._tree is None:
            self._tree = self._grow()
        return self._tree

    def _grow(self) -> dict[str, Any]:
        params = SamplingParams(seed=self.seed, **self.sampling)
        tree: dict[str, Any] = {}
        frontier: list[tuple[tuple[str, ...], dict]] = [((self.root,), tree)]
        for _level in range(self.depth):
            reqs = [ChatRequest.of([{"role": "user", "content": self.prompt_for(path)}],
                                   derive_seed(self.seed, "tree", *path)) for path, _ in frontier]
            completions = self.llm.generate(reqs, params)
            nxt = []
            for (path, node), c in zip(frontier, completions):
                taken = {value_key(p) for p in path}
                kids = [v for v in dedupe_values(list(path) + parse_list(c.text, max_words=self.max_words),
                                                 near=self.near) if value_key(v) not in taken]
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
        d: dict[str, Any] = {"type": "ConceptTree", "format": self._FORMAT, "root": self.root,
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


# -- demonstrations the model writes or explains ------------------------------------------------------
def fit_synthetic(demos: Demonstrations, llm: LLM, template: Template | str, rows: Any, *, n: int = 2, seed: int = 0,
                  temperature: float = 0.8, top_p: float = 0.95, max_new_tokens: int = 128,
                  progress: bool = False) -> Demonstrations:
    """Self-Prompting (Li et al. 2022): the model writes the demo pool first (``n`` texts per row of
    ``rows``, e.g. ``[{"label": "positive"}, {"label": "negative"}]``, rendered with ``template``), then
    ``demos.fit`` indexes it; returns ``demos``.

    Requests go through the LLM's response cache (a refit costs no model call); failed or empty
    completions are dropped; ``demos.describe()`` records the prompt, the model and every text made.

    >>> d = fit_synthetic(Demonstrations(k=2, label_column="label"), LLM(), "Write a {{ label }} review.",
    ...                   [{"label": "positive"}, {"label": "negative"}])             # doctest: +SKIP
    """
    check_llm(llm, "fit_synthetic's llm")
    template = as_template(template)
    if not isinstance(n, int) or n < 1:
        raise InvalidParameterError(f"n={n!r} must be an integer >= 1 (demos written per row).")
    cols, data = rows_of(rows)
    m = len(data[cols[0]]) if cols else 0
    if m == 0:
        raise EmptyDatasetError("fit_synthetic needs rows to condition on, e.g. [{'label': 'positive'}].")
    template.check_columns(cols)
    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed)
    conds = [{c: data[c][i] for c in cols} for i in range(m)]
    reqs = [ChatRequest.of(template.render(r, row_index=i), derive_seed(seed, "self-prompting", i, j))
            for i, r in enumerate(conds) for j in range(n)]
    done = llm.generate(reqs, params, progress=progress)
    made = [{**conds[i // n], demos.text_column: c.text.strip()} for i, c in enumerate(done)
            if c.error is None and c.text and c.text.strip()]
    if not made:
        raise EmptyDatasetError("The model wrote no usable demonstration (all failed or empty). Check the "
                                "template and max_new_tokens=, or pass a labelled pool to fit().")
    source = {"source": "synthetic (Self-Prompting)", "template": template.describe(), "llm": llm.describe(),
              "rows": conds, "n": n, "seed": seed, "sampling": params.model_dump(mode="json"),
              "texts": [r[demos.text_column] for r in made], "failed": len(done) - len(made)}
    return demos.fit(made, progress=progress, source=source)


def fit_explained(demos: Demonstrations, pool: Any, llm: LLM, *, template: Template | None = None, tokens: int = 64,
                  seed: int = 0, progress: bool = False, source: dict[str, Any] | None = None) -> Demonstrations:
    """He et al. 2023 (explain-then-annotate): the model explains each pool row's label once (``template``,
    default :data:`~synth_datasets.prompts.demos.EXPLAIN`, reading ``{{ text }}`` and ``{{ label }}``;
    greedy, ``tokens`` new tokens, through the response cache, so a refit costs no model call), then
    ``demos.fit`` indexes the pool with the ``explanation`` column that ``item`` shows
    (``"{{ text }}\\nWhy: {{ explanation }}\\nLabel: {{ label }}"``); returns ``demos``. Rows whose
    explanation failed are left out; ``describe()`` records the model, the prompt and the counts.

    >>> item = "{{ text }}\\nWhy: {{ explanation }}\\nLabel: {{ label }}"
    >>> d = fit_explained(Demonstrations(k=2, label_column="label", item=item), pool, LLM())   # doctest: +SKIP
    """
    cols, data = demos.pool_rows(pool)
    template = EXPLAIN if template is None else template
    check_llm(llm, "fit_explained's llm")
    if not demos.label_column:
        raise InvalidParameterError("fit_explained explains each demo's label: set label_column= to the pool's labels.")
    if "explanation" not in Template(user=demos.item).variables:
        raise InvalidParameterError("fit_explained writes an 'explanation' per demo, but item= does not show it. Add "
                                    "{{ explanation }} to item=, e.g. item='{{ text }}\\nWhy: {{ explanation }}'.")
    if "explanation" in data:
        raise InvalidParameterError("The pool already has an 'explanation' column. Drop it, or use demos.fit(pool).")
    if not template.variables <= {"text", "label"}:
        raise InvalidParameterError(f"The explain template may read only {{{{ text }}}} and {{{{ label }}}}, it reads "
                                    f"{sorted(template.variables)}.")
    if not isinstance(tokens, int) or tokens < 1:
        raise InvalidParameterError(f"tokens={tokens!r} must be an integer >= 1.")
    n = len(data[cols[0]])
    params = SamplingParams(temperature=0.0, max_new_tokens=tokens, seed=seed)
    reqs = [ChatRequest.of(template.render({"text": data[demos.text_column][i], "label": data[demos.label_column][i]},
                                           row_index=i), derive_seed(seed, "explain", i)) for i in range(n)]
    done = llm.generate(reqs, params, progress=progress)
    why = [" ".join(c.text.strip().split("\n\n")[0].split()) if c.error is None and c.text and c.text.strip()
           else None for c in done]
    keep = [i for i, w in enumerate(why) if w]
    if not keep:
        raise EmptyDatasetError("The model explained no demonstration (all failed or empty). Check the explain "
                                "template and tokens=, or fit without explanations.")
    data = {c: [data[c][i] for i in keep] for c in cols}
    data["explanation"] = [why[i] for i in keep]
    blob = json.dumps(data["explanation"], ensure_ascii=False).encode()
    record = {"llm": llm.describe(), "template": template.describe(), "max_new_tokens": tokens, "seed": seed,
              "explained": len(keep), "failed": n - len(keep), "sha256": hashlib.sha256(blob).hexdigest()}
    return demos.fit(data, progress=progress, source={**(source or {"source": "pool"}), "explanations": record})

