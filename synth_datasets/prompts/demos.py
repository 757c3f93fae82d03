"""``Demonstrations``: in-context examples chosen per row from a fitted pool (survey §3.1.1).

Strategies: ``random`` (Self-Instruct), ``balanced`` (round-robin over labels), ``nearest`` to the
row's query by sentence embedding (KATE, Liu et al. 2022), ``diverse`` (maximal marginal relevance:
relevant to the query and unlike each other); and synthetic demos when no labelled pool exists
(Self-Prompting, Li et al. 2022) and demos with explanations (He et al. 2023, explain-then-annotate,
shown by ``{{ explanation }}``): the model writes or explains the pool in
:func:`synth_datasets.generate.fit_synthetic` / :func:`synth_datasets.generate.fit_explained`, which then
call :meth:`Demonstrations.fit` (this module makes no model call).
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Mapping, Sequence

import numpy as np

from ..columns import check_columns, check_new_columns
from ..errors import EmptyDatasetError, InvalidParameterError, MissingColumnError, NotFittedError
from ..seeding import derive_seed, row_keys
from .template import Template

_FORMAT_VERSION = 1
STRATEGIES = ("random", "balanced", "nearest", "diverse")
EXPLAIN = Template(
    system="You explain labelled examples briefly and precisely.",
    user="Text: {{ text }}\nLabel: {{ label }}\n\nIn one or two sentences, explain why this text has this label. "
         "Output only the explanation.")


def rows_of(pool: Any) -> tuple[list[str], dict[str, list]]:
    """(column names, columns) of a Dataset, a dict of lists or a list of dicts."""
    if hasattr(pool, "column_names") and hasattr(pool, "to_dict"):
        return list(pool.column_names), pool.to_dict()
    if isinstance(pool, Mapping):
        return list(pool), {k: list(v) for k, v in pool.items()}
    if isinstance(pool, Sequence) and pool and all(isinstance(r, Mapping) for r in pool):
        cols = list(dict.fromkeys(k for r in pool for k in r))
        return cols, {c: [r.get(c) for r in pool] for c in cols}
    raise InvalidParameterError(f"The demo pool must be a Dataset, a dict of lists or a list of dicts, got "
                                f"{type(pool).__name__}.")


_POOL_EMBEDDINGS: dict[str, np.ndarray] = {}  # sha256 of the texts -> embeddings (refits in one process)


def _embed_pool(texts: list[str], progress: bool) -> np.ndarray:
    from ..embeddings import embed_texts

    key = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()
    if key not in _POOL_EMBEDDINGS:
        if len(_POOL_EMBEDDINGS) >= 4:
            _POOL_EMBEDDINGS.pop(next(iter(_POOL_EMBEDDINGS)))
        _POOL_EMBEDDINGS[key] = np.asarray(embed_texts(texts, progress=progress), dtype=np.float32)
    return _POOL_EMBEDDINGS[key]


class Demonstrations:
    """Fills a column (default ``demos``) with ``k`` demonstrations per row, from a fitted pool.

    Fit-then-map: ``demos.fit(pool)`` renders every pool row with ``item`` and, for ``nearest`` and
    ``diverse``, embeds the pool's texts once (all-MiniLM-L6-v2, offline); then ``ds.map(demos,
    batched=True)`` (``with_indices=True`` optional) adds the column ``output`` (the chosen items
    joined by ``separator``, for a ``{{ demos }}`` slot) and ``{output}_ids`` (pool row indices). The
    choice is vectorized over the batch (one matrix product per batch, no loop over the pool) and
    seeded per row, so a resumed run picks the same demos. The object pickles to its configuration
    and the fitted pool (no model), so ``datasets`` caches the map.

    Args:
        k (`int`, defaults to 3): demos per row (fewer if the pool or the row's label has fewer).
        strategy (`str`, defaults to ``"random"``): ``"random"``, ``"balanced"``, ``"nearest"`` or ``"diverse"``.
        text_column (`str`, defaults to ``"text"``): the pool's text (what ``nearest``/``diverse`` embed).
        label_column (`str`, *optional*): the pool's label (needed by ``balanced`` and ``same_label``).
        query (`str`, *optional*): Jinja over the row's columns, the text demos are compared with
            (``"{{ label }} review of a {{ subgenre }} film"``); required by ``nearest``, optional for
            ``diverse`` (without it: a seeded first demo, then farthest-first).
        same_label (`str`, *optional*): a row column; only pool rows whose label equals its value
            (after ``label_map``) are chosen (demos of the class being generated).
        label_map (`dict`, *optional*): row value -> pool label (``{"positive": "fresh"}``).
        item (`str`, defaults to ``"{{ text }}"``): Jinja over a pool row: how one demo is shown.
        separator (`str`, defaults to two newlines); output (`str`, defaults to ``"demos"``);
        seed (`int`, defaults to 0); mmr_lambda (`float`, defaults to 0.5): relevance vs. novelty in ``diverse``;
        key_column (`str`, *optional*): column that identifies a row for seeding.
        candidates (`int`, defaults to 100): ``diverse`` runs MMR over each row's ``candidates`` most
            relevant pool rows (a seeded sample of them without a query), so picking for 100,000 rows
            from a 10,000-row pool takes seconds; the result equals MMR over the whole pool whenever the
            pool has at most ``candidates`` rows (or the demos MMR would pick lie among them).

    Example:
        >>> from datasets import Dataset
        >>> pool = Dataset.from_dict({"text": ["Loved it.", "Dull.", "A gem.", "Awful."],
        ...                           "label": ["pos", "neg", "pos", "neg"]})
        >>> demos = Demonstrations(k=2, strategy="balanced", label_column="label",
        ...                        item="({{ label }}) {{ text }}").fit(pool)
        >>> out = Dataset.from_dict({"id": [0, 1]}).map(demos, batched=True)
        >>> sorted(out[0]["demos"].split("\\n\\n")[i][:5] for i in range(2))
        ['(neg)', '(pos)']
    """

    def __init__(self, k: int = 3, *, strategy: str = "random", text_column: str = "text",
                 label_column: str | None = None, query: str | None = None, same_label: str | None = None,
                 label_map: Mapping[Any, Any] | None = None, item: str = "{{ text }}", separator: str = "\n\n",
                 output: str = "demos", seed: int = 0, mmr_lambda: float = 0.5, key_column: str | None = None,
                 candidates: int = 100):
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidParameterError(f"k={k!r} must be an integer >= 1 (demos per row).")
        if strategy not in STRATEGIES:
            raise InvalidParameterError(f"strategy={strategy!r}: use one of {list(STRATEGIES)}.")
        if strategy == "nearest" and not query:
            raise InvalidParameterError("strategy='nearest' needs query=, the text demos are compared with, e.g. "
                                        "query='{{ label }} review of a {{ subgenre }} film'.")
        if strategy == "balanced" and not label_column:
            raise InvalidParameterError("strategy='balanced' needs label_column=, the pool's label column.")
        if same_label and not label_column:
            raise InvalidParameterError("same_label= needs label_column=, the pool's label column.")
        if strategy == "balanced" and same_label:
            raise InvalidParameterError("strategy='balanced' mixes labels; same_label= keeps one. Choose one of them.")
        if not isinstance(seed, int) or seed < 0:
            raise InvalidParameterError(f"seed={seed!r} must be a non-negative integer.")
        if not isinstance(candidates, int) or candidates < 1:
            raise InvalidParameterError(f"candidates={candidates!r} must be an integer >= 1 (pool rows MMR considers).")
        if not 0 <= mmr_lambda <= 1:
            raise InvalidParameterError(f"mmr_lambda={mmr_lambda!r} must be in [0, 1].")
        self.k, self.strategy, self.text_column, self.label_column = k, strategy, text_column, label_column
        self.query, self.same_label, self.item, self.separator = query, same_label, item, separator
        self.label_map = None if label_map is None else dict(label_map)
        self.output, self.seed, self.mmr_lambda, self.key_column = output, seed, float(mmr_lambda), key_column
        self.candidates = candidates
        self._item_t = Template(user=item)
        self._query_t = Template(user=query) if query else None
        self.pool: dict[str, Any] | None = None  # fitted: items, labels, embeddings, fingerprint, source

    # -- contract 2: configuration + fitted pool, no model ----------------------------------------
    _CONFIG = ("k", "strategy", "text_column", "label_column", "query", "same_label", "label_map", "item",
               "separator", "output", "seed", "mmr_lambda", "key_column", "candidates")

    def config(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._CONFIG}

    def __getstate__(self) -> dict[str, Any]:
        state = {"format": _FORMAT_VERSION, **self.config(), "pool": self.pool}
        if state["candidates"] == 100:  # the default: configurations made before the option hash as before
            del state["candidates"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**{name: state.get(name, 100) if name == "candidates" else state[name] for name in self._CONFIG})
        self.pool = state["pool"]

    @property
    def _embeds(self) -> bool:
        return self.strategy in ("nearest", "diverse")

    def pool_rows(self, pool: Any) -> tuple[list[str], dict[str, list]]:
        """(column names, columns) of ``pool`` (a Dataset, a dict of lists or a list of dicts), checked: it
        has rows, the text (and label) columns exist, and every text is non-empty."""
        cols, data = rows_of(pool)
        n = len(data[cols[0]]) if cols else 0
        if n == 0:
            raise EmptyDatasetError("The demo pool has no rows. Pass labelled examples, or have the model write "
                                    "them: synth_datasets.generate.fit_synthetic(demos, llm, template, rows).")
        for c in [self.text_column] + ([self.label_column] if self.label_column else []):
            check_columns(cols, [c], "Demo pool", hint="Set text_column=/label_column= to the pool's columns")
        for i, t in enumerate(data[self.text_column]):
            if not isinstance(t, str) or not t.strip():
                raise InvalidParameterError(f"Demo pool row {i} has no text in {self.text_column!r} ({t!r}). "
                                            "Drop empty rows from the pool first.")
        return cols, data

    # -- contract 3: fit -----------------------------------------------------------------------
    def fit(self, pool: Any, *, progress: bool = False, source: dict[str, Any] | None = None) -> "Demonstrations":
        """Index the pool: render each row with ``item``, keep labels, embed texts (``nearest``/``diverse``).

        A pool whose labels the model should explain first (He et al. 2023, an ``explanation`` column
        that ``item`` shows) is fitted by :func:`synth_datasets.generate.fit_explained`; a pool the model
        writes, by :func:`synth_datasets.generate.fit_synthetic`. ``source`` is what ``describe()``
        records about where the pool came from.
        """
        cols, data = self.pool_rows(pool)
        n, texts = len(data[cols[0]]), data[self.text_column]
        if "explanation" in self._item_t.variables and "explanation" not in data:
            raise MissingColumnError("item= shows {{ explanation }} but the pool has no 'explanation' column. Use "
                                     "synth_datasets.generate.fit_explained(demos, pool, llm) to have the model "
                                     "explain each demo, or add the column.")
        labels = list(data[self.label_column]) if self.label_column else None
        items = [self._item_t.render({c: data[c][i] for c in cols}, row_index=i)[0]["content"] for i in range(n)]
        blob = json.dumps([items, texts, labels], default=str, ensure_ascii=False).encode()
        fitted: dict[str, Any] = {"items": items, "labels": labels, "size": n,
                                  "sha256": hashlib.sha256(blob).hexdigest(), "embeddings": None,
                                  "source": source or {"source": "pool"}}
        if self._embeds:
            fitted["embeddings"] = _embed_pool(list(texts), progress)
        self.pool = fitted
        return self

    # -- contract 1: map ---------------------------------------------------------------------------
    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> dict[str, list]:
        if self.pool is None:
            raise NotFittedError("Demonstrations is not fitted: call demos.fit(pool) (or "
                                 "synth_datasets.generate.fit_synthetic) before map.")
        first = next(iter(batch.values()), []) if isinstance(batch, Mapping) else None
        if first is None or isinstance(first, (str, bytes)) or not hasattr(first, "__len__"):
            raise InvalidParameterError("Demonstrations works on batches: use ds.map(demos, batched=True).")
        check_new_columns([self.output, f"{self.output}_ids"], batch)
        cols = list(batch)
        check_columns(cols, [self.same_label or None] + sorted(self._query_t.variables if self._query_t else []),
                      "Demonstrations", hint="Add it (e.g. with Conditions) before this step")
        size = len(batch[cols[0]]) if cols else 0
        keys = row_keys(batch, indices, self.key_column)
        rows = [{c: batch[c][i] for c in cols} for i in range(size)]
        where = [int(indices[i]) if indices is not None else i for i in range(size)]
        picks = self.select(rows, keys, where)
        items = self.pool["items"]
        return {self.output: [self.separator.join(items[j] for j in p) for p in picks],
                f"{self.output}_ids": picks}

    def _groups(self) -> dict[str, list[int]]:
        """Pool indices by label (JSON of the label), computed once per fitted pool."""
        if getattr(self, "_rt_groups", (None,))[0] != self.pool["sha256"]:
            groups: dict[str, list[int]] = {}
            for j, lab in enumerate(self.pool["labels"]):
                groups.setdefault(json.dumps(lab, default=str), []).append(j)
            self._rt_groups = (self.pool["sha256"], groups)
        return self._rt_groups[1]

    def _label_codes(self) -> tuple[dict[str, int], np.ndarray]:
        """(JSON label -> code, code of every pool row), once per fitted pool."""
        if getattr(self, "_rt_codes", (None,))[0] != self.pool["sha256"]:
            codes = {g: c for c, g in enumerate(sorted(self._groups()))}
            pool_codes = np.array([codes[json.dumps(lab, default=str)] for lab in self.pool["labels"]], dtype=np.int64)
            self._rt_codes = (self.pool["sha256"], codes, pool_codes)
        return self._rt_codes[1], self._rt_codes[2]

    def _wanted(self, rows: list[dict], where: list[int]) -> list[str] | None:
        """The JSON of the pool label each row asks for (``same_label``), checked against the pool."""
        if not self.same_label:
            return None
        by_label, out = self._groups(), []
        for r, w in zip(rows, where):
            want = r[self.same_label]
            want = self.label_map.get(want, want) if self.label_map else want
            key = json.dumps(want, default=str)
            if key not in by_label:
                raise InvalidParameterError(
                    f"Row {w}: no demo in the pool has label {want!r} (column {self.same_label!r}); pool labels: "
                    f"{sorted({str(x) for x in self.pool['labels']})}. Map it with label_map= or add such demos.")
            out.append(key)
        return out

    def select(self, rows: list[dict], keys: list[str], where: list[int] | None = None) -> list[list[int]]:
        """Pool indices of the demos for each row (in the order they are shown)."""
        where = where if where is not None else list(range(len(rows)))
        n, k = self.pool["size"], self.k
        wanted = self._wanted(rows, where)
        rngs = [random.Random(derive_seed(self.seed, key, "demos")) for key in keys] \
            if self.strategy != "nearest" else [None] * len(keys)  # nearest draws nothing
        if self.strategy == "random":
            if wanted is None:
                return [rng.sample(range(n), min(k, n)) for rng in rngs]
            groups = self._groups()
            return [rng.sample(groups[g], min(k, len(groups[g]))) for rng, g in zip(rngs, wanted)]
        if self.strategy == "balanced":
            return [self._balanced(rng) for rng in rngs]
        if self._query_t is None:
            return self.choose(None, self._mask(wanted), rngs)
        texts = [self._query_t.render(r, row_index=w)[0]["content"] for r, w in zip(rows, where)]
        return self.by_query(texts, wanted)

    def _mask(self, wanted: list[str] | None) -> np.ndarray | None:
        if wanted is None:
            return None
        codes, pool_codes = self._label_codes()  # one comparison of label codes, no loop over the pool
        return np.array([codes[g] for g in wanted], dtype=np.int64)[:, None] == pool_codes[None, :]

    def by_query(self, texts: list[str], wanted: list[str] | None = None, *, embed: Any = None) -> list[list[int]]:
        """Picks for rows given their query texts (and wanted labels): with a query the picks depend on
        (query, label) only, so each distinct pair is embedded and picked once (rows often share a query,
        "a {{ genre }} film"). ``embed`` (default all-MiniLM-L6-v2) maps texts to normalized vectors."""
        if embed is None:
            from ..embeddings import embed_texts as embed
        pairs = list(zip(texts, wanted if wanted is not None else [None] * len(texts)))
        unique = list(dict.fromkeys(pairs))
        at = {p: i for i, p in enumerate(unique)}
        q = np.asarray(embed([t for t, _ in unique]), dtype=np.float32)
        picks = self.choose(q, self._mask(None if wanted is None else [w for _, w in unique]), [None] * len(unique))
        return [list(picks[at[p]]) for p in pairs]

    def choose(self, queries: np.ndarray | None, mask: np.ndarray | None, rngs) -> list[list[int]]:
        """``nearest``/``diverse`` picks from query embeddings (rows x d, or None: no query) and an
        allowed-pool mask (rows x pool, or None). Vectorized over the batch: one matrix product, a top-k
        by ``k`` argmax passes; MMR runs over each row's ``candidates`` most relevant pool rows only."""
        emb = self.pool["embeddings"]
        b, n = len(rngs), self.pool["size"]
        rel = queries @ emb.T if queries is not None else np.zeros((b, n), dtype=np.float32)
        score = np.where(mask, rel, np.float32(-np.inf)) if mask is not None else rel  # a fresh array either way
        if self.strategy == "nearest":
            return self._top_k(score)
        out: list[list[int]] = []
        for lo in range(0, b, 256):  # chunks keep the gathered candidates small (256 x c x d)
            hi = lo + 256
            out += self._mmr(score[lo:hi], None if mask is None else mask[lo:hi], emb, rngs[lo:hi])
        return out

    def _balanced(self, rng: random.Random) -> list[int]:
        groups = self._groups()
        order = sorted(groups)
        rng.shuffle(order)
        take = {g: rng.sample(groups[g], min(len(groups[g]), self.k)) for g in order}  # O(k) per class
        out: list[int] = []
        for t in range(self.k):
            out += [take[g][t] for g in order if t < len(take[g])]
        return out[:self.k]

    def _top_k(self, s: np.ndarray) -> list[list[int]]:
        """The k highest scores of each row (ties to the lower pool index), shown least similar first so
        the most similar sits next to the task (KATE). ``s`` is overwritten."""
        b, n = s.shape
        rows = np.arange(b)
        picks, vals = [], []
        for _ in range(min(self.k, n)):  # k argmax passes: cheaper than a partition for a small k
            j = s.argmax(1)
            picks.append(j)
            vals.append(s[rows, j].copy())
            s[rows, j] = -np.inf
        idx, val = np.stack(picks, 1)[:, ::-1], np.stack(vals, 1)[:, ::-1]
        if np.isfinite(val).all():
            return idx.tolist()
        return [[int(j) for j, v in zip(r, vr) if np.isfinite(v)] for r, vr in zip(idx, val)]

    def _mmr(self, score: np.ndarray, mask: np.ndarray | None, emb: np.ndarray, rngs) -> list[list[int]]:
        """MMR on one chunk of rows; ``score`` is the relevance with disallowed pool rows at -inf."""
        b, n = score.shape
        c = min(n, max(self.candidates, self.k))
        if c >= n:
            cand = np.tile(np.arange(n), (b, 1))
        elif self._query_t is not None:  # the c most relevant allowed pool rows of each row
            cand = np.argpartition(-score, c - 1, axis=1)[:, :c]
        else:  # no query: a seeded sample of c allowed pool rows
            cand = np.zeros((b, c), dtype=np.int64)
            for i, rng in enumerate(rngs):
                ok = np.flatnonzero(mask[i]) if mask is not None else None
                m = n if ok is None else len(ok)
                pick = rng.sample(range(m), min(c, m))
                pick += [pick[0]] * (c - len(pick))  # a repeat is never chosen twice (it is marked chosen)
                cand[i] = pick if ok is None else ok[pick]
        cand.sort(axis=1)  # pool order, so ties go to the lower pool index as over the full pool
        r = np.take_along_axis(score, cand, 1) if c < n else score.copy()
        allowed = np.isfinite(r) if (mask is not None or self._query_t is None) else np.ones(r.shape, dtype=bool)
        if self._query_t is None:
            r = np.zeros(r.shape, dtype=np.float32)
        else:
            r = np.where(allowed, r, 0.0)
        ce = emb[cand] if c < n else None  # rows x c x d (the whole pool: one matrix product per step)
        steps = int(min(self.k, allowed.sum(1).max())) if b else 0
        closest = np.full((b, c), -np.inf, dtype=np.float32)  # max similarity to the demos chosen so far
        chosen = np.full((b, steps), -1, dtype=np.int64)
        rows = np.arange(b)
        lam = self.mmr_lambda
        for t in range(steps):
            if t == 0 and self._query_t is None:  # no query: a seeded first demo, then farthest-first
                pick = np.asarray([rng.choice(np.flatnonzero(a)) for rng, a in zip(rngs, allowed)], dtype=np.int64)
            else:
                red = np.where(np.isfinite(closest), closest, 0.0) if t else 0.0
                pick = np.where(allowed, lam * r - (1 - lam) * red, -np.inf).argmax(1)
            live = allowed[rows, pick]
            chosen[live, t] = cand[rows[live], pick[live]]
            if c < n:
                allowed[cand == cand[rows, pick][:, None]] = False  # the pick (and any repeat of it) is used
            else:
                allowed[rows, pick] = False
            if t + 1 < steps:
                sims = np.matmul(ce, ce[rows, pick][:, :, None])[:, :, 0] if ce is not None else emb[pick] @ emb.T
                closest = np.maximum(closest, sims)
        return [[int(j) for j in r if j >= 0] for r in chosen]

    # -- contract 4 ----------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": "Demonstrations", "format": _FORMAT_VERSION, **self.config()}
        if self.pool is not None:
            p = self.pool
            d["pool"] = {"size": p["size"], "sha256": p["sha256"], **p["source"]}
            if p["labels"] is not None:
                counts: dict[str, int] = {}
                for lab in p["labels"]:
                    counts[str(lab)] = counts.get(str(lab), 0) + 1
                d["pool"]["labels"] = counts
        if self._embeds:
            from ..embeddings import embedding_model_identity

            d["embeddings"] = embedding_model_identity()
        return d

    def __repr__(self) -> str:
        size = self.pool["size"] if self.pool else "not fitted"
        return f"Demonstrations(k={self.k}, strategy={self.strategy!r}, pool={size})"
