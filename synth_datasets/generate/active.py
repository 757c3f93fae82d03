"""LLMAAA-style active annotation (Zhang et al. 2023; survey §3.1, App. A): the LLM annotates a seed,
a student (all-MiniLM-L6-v2 embeddings + logistic regression) learns from the LLM's labels, and the
rows the student is least sure about are the next ones the LLM annotates, for ``rounds`` rounds, until
``budget`` rows carry an LLM label.

Fit-then-map: ``active.fit(ds)`` runs the loop (it calls the LLM on ``budget`` rows only), then
``ds.map(active, batched=True, with_indices=True)`` adds ``{output}`` (True for the annotated rows),
``{output}_round`` (0 = the seed) and the annotator's columns (label, confidence, distribution, error;
None on rows that were not annotated). Per-round counts are in :meth:`ActiveAnnotator.describe`.

>>> active = ActiveAnnotator(Annotator(LLM(), ["fresh", "rotten"], template), text_column="text",  # doctest: +SKIP
...                          budget=200, seed_size=50, rounds=5).fit(ds)
>>> ds.map(active, batched=True, with_indices=True).filter(lambda r: r["selected"])      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._versions import library_versions
from ..columns import check_columns, check_new_columns
from ..errors import InvalidParameterError, NotFittedError
from .annotate import Annotator, _softmax
from .base import input_columns
from .select import _UNCERTAINTY, check_fitted_indices, uncertainty

_FORMAT_VERSION = 1


def student_proba(x_train: np.ndarray, y: np.ndarray, x: np.ndarray, n_labels: int, *, C: float = 1.0,
                  sample_weight: np.ndarray | None = None) -> np.ndarray | None:
    """A logistic regression fitted on ``(x_train, y)`` (label indices), its ``(rows, n_labels)``
    probabilities on ``x`` (0 for labels it never saw); None when ``y`` holds fewer than two labels."""
    from sklearn.linear_model import LogisticRegression

    seen = np.unique(y)
    if len(seen) < 2:
        return None
    model = LogisticRegression(C=C, max_iter=1000).fit(x_train, y, sample_weight=sample_weight)
    p = np.zeros((len(x), n_labels))
    p[:, model.classes_] = model.predict_proba(x)
    return p


def pick_uncertain(probs: np.ndarray, candidates: np.ndarray, k: int, strategy: str,
                   rng: np.random.Generator) -> np.ndarray:
    """The ``k`` candidates with the highest ``strategy`` uncertainty (ties broken at random)."""
    u = uncertainty(probs, strategy)
    order = np.lexsort((rng.random(len(candidates)), -u))
    return candidates[order[:k]]


class ActiveAnnotator:
    """Active annotation under a budget of LLM calls (see the module docstring).

    Args:
        annotator (`Annotator`): labels the chosen rows (its template reads the row's columns).
        budget (`int`): rows the LLM annotates in all.
        text_column (`str`) or embedding_column (`str`): the student's input, texts embedded with
            all-MiniLM-L6-v2 or precomputed vectors.
        seed_size (`int`, *optional*): rows annotated first, drawn at random (default: budget // (rounds + 1)).
        rounds (`int`, defaults to 4): student-guided rounds after the seed; the rest of the budget is split
            evenly over them.
        strategy (`str`, defaults to ``"entropy"``): ``entropy``, ``least_confidence`` or ``margin`` of the
            student's predictions.
        weight_by_confidence (`bool`, defaults to False): train the student with the LLM's confidence
            as sample weight (LLMAAA's label reweighting, in its simplest form).
        C (`float`, defaults to 1.0): the logistic regression's inverse regularisation.
        output (`str`, defaults to ``"selected"``), seed (`int`, defaults to 0).

    Example:
        >>> ann = Annotator(LLM(), ["fresh", "rotten"], "Positive or negative?\\n{{ text }}",   # doctest: +SKIP
        ...                 verbalizers={"fresh": "positive", "rotten": "negative"})
        >>> active = ActiveAnnotator(ann, budget=200, text_column="text", rounds=5).fit(ds)      # doctest: +SKIP
        >>> [r["picked"] for r in active.describe()["per_round"]]                               # doctest: +SKIP
        [33, 34, 34, 33, 33, 33]
    """

    def __init__(self, annotator: Annotator, *, budget: int, text_column: str | None = None,
                 embedding_column: str | None = None, seed_size: int | None = None, rounds: int = 4,
                 strategy: str = "entropy", weight_by_confidence: bool = False, C: float = 1.0,
                 output: str = "selected", seed: int = 0):
        if not isinstance(annotator, Annotator):
            raise InvalidParameterError(f"annotator must be an Annotator, got {type(annotator).__name__}.")
        if not isinstance(budget, int) or budget < 2:
            raise InvalidParameterError(f"budget={budget!r} must be an integer >= 2.")
        if not isinstance(rounds, int) or rounds < 0:
            raise InvalidParameterError(f"rounds={rounds!r} must be an integer >= 0.")
        if seed_size is None:
            seed_size = max(2, budget // (rounds + 1))
        if not isinstance(seed_size, int) or not 2 <= seed_size <= budget or (rounds and budget - seed_size < rounds):
            raise InvalidParameterError(f"seed_size={seed_size!r} must be an integer from 2 to budget={budget}, "
                                        f"leaving at least one row per round (rounds={rounds}).")
        if strategy not in _UNCERTAINTY:
            raise InvalidParameterError(f"strategy={strategy!r} must be one of {list(_UNCERTAINTY)}.")
        if bool(text_column) == bool(embedding_column):
            raise InvalidParameterError("Give exactly one of text_column= (embedded with all-MiniLM-L6-v2) or "
                                        "embedding_column= (vectors) for the student.")
        if C <= 0:
            raise InvalidParameterError(f"C={C!r} must be > 0.")
        self.annotator, self.budget, self.seed_size, self.rounds = annotator, budget, seed_size, rounds
        self.text_column, self.embedding_column, self.strategy = text_column, embedding_column, strategy
        self.weight_by_confidence, self.C, self.output, self.seed = weight_by_confidence, C, output, seed
        self.round_: np.ndarray | None = None  # per fitted row: round it was annotated in, or -1
        self.annotations_: dict[int, tuple] | None = None  # row -> (label, confidence, probs, error)
        self.records_: list[dict[str, Any]] = []
        self.fitted_rows_: int | None = None

    # -- contract 2 ---------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("round_", "annotations_")}
        state["format"] = _FORMAT_VERSION
        state["round_"] = None if self.round_ is None else self.round_.tolist()
        state["annotations_"] = None if self.annotations_ is None else sorted(self.annotations_.items())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        rounds, ann = state.pop("round_"), state.pop("annotations_")
        self.__dict__.update(state)
        self.round_ = None if rounds is None else np.asarray(rounds, dtype=np.int64)
        self.annotations_ = None if ann is None else {int(i): tuple(v) for i, v in ann}

    @property
    def output_columns(self) -> list[str]:
        return [self.output, f"{self.output}_round", *self.annotator.output_columns]

    # -- the loop -------------------------------------------------------------------------------
    def _vectors(self, ds, cols: list[str]) -> np.ndarray:
        name = self.embedding_column or self.text_column
        check_columns(cols, [name], "ActiveAnnotator")
        if self.embedding_column:
            x = np.asarray(list(ds[name]), dtype=np.float32)
            if x.ndim != 2:
                raise InvalidParameterError(f"Column {name!r} must hold equal-length vectors.")
            return x
        from ..embeddings import embed_texts_cached

        return np.asarray(embed_texts_cached([str(t) for t in ds[name]]), dtype=np.float32)

    def _annotate(self, ds, cols: list[str], rows: np.ndarray) -> list[tuple]:
        sub = {c: [ds[c][int(i)] for i in rows] for c in cols} if isinstance(ds, dict) \
            else ds.select([int(i) for i in rows]).to_dict()
        z, errors = self.annotator.logits(sub, [int(i) for i in rows])
        p = _softmax(z, self.annotator.temperature_) if len(rows) else z
        labels = self.annotator.labels
        return [(None, None, None, e) if e else (labels[int(p[j].argmax())], float(p[j].max()), [float(v) for v in p[j]],
                                                  None) for j, e in enumerate(errors)]

    def fit(self, ds) -> "ActiveAnnotator":
        """Run the loop on ``ds`` (a ``datasets.Dataset`` or a dict of columns): ``budget`` LLM annotations."""
        cols = list(ds.column_names if hasattr(ds, "column_names") else ds)
        n = ds.num_rows if hasattr(ds, "num_rows") else len(ds[cols[0]]) if cols else 0
        if n < self.budget:
            raise InvalidParameterError(f"budget={self.budget} is more than the {n} rows given: lower the budget.")
        self.annotator.template.check_columns(cols)
        x = self._vectors(ds, cols)
        rng = np.random.default_rng(self.seed)
        labels = self.annotator.labels
        round_of = np.full(n, -1, dtype=np.int64)
        found: dict[int, tuple] = {}
        sizes = [self.seed_size] + [len(a) for a in np.array_split(np.arange(self.budget - self.seed_size),
                                                                   self.rounds)] if self.rounds else [self.budget]
        records = []
        picks = rng.choice(n, self.seed_size, replace=False)
        for r, size in enumerate(sizes):
            if r > 0:  # train the student on every LLM label so far, pick what it is least sure of
                done = np.array(sorted(i for i, a in found.items() if a[3] is None), dtype=np.int64)
                y = np.array([labels.index(found[i][0]) for i in done], dtype=np.int64)
                w = np.array([found[i][1] for i in done]) if self.weight_by_confidence else None
                candidates = np.flatnonzero(round_of < 0)
                probs = student_proba(x[done], y, x[candidates], len(labels), C=self.C, sample_weight=w) \
                    if len(done) else None
                if probs is None:  # the LLM gave fewer than two labels so far: no student yet, pick at random
                    picks, mean_u = rng.choice(candidates, size, replace=False), None
                else:
                    picks = pick_uncertain(probs, candidates, size, self.strategy, rng)
                    u = uncertainty(probs, self.strategy)
                    mean_u = float(u[np.isin(candidates, picks)].mean())
            else:
                mean_u = None
            round_of[picks] = r
            new = self._annotate(ds, cols, picks)
            found.update(zip((int(i) for i in picks), new))
            got = [a[0] for a in new if a[3] is None]
            records.append({"round": r, "picked": int(len(picks)), "by": "random seed" if r == 0 else
                            ("student " + self.strategy if mean_u is not None else "random (no student yet)"),
                            "mean_uncertainty": mean_u, "errors": int(len(new) - len(got)),
                            "labels": {lab: got.count(lab) for lab in labels}, "annotated_total": int(len(found))})
        self.round_, self.annotations_, self.records_, self.fitted_rows_ = round_of, found, records, n
        return self

    @property
    def selected_indices(self) -> list[int]:
        """The annotated rows, in the order of their rounds."""
        if self.round_ is None:
            raise NotFittedError("Call fit(ds) before reading the selection.")
        rows = np.flatnonzero(self.round_ >= 0)
        return [int(i) for i in rows[np.argsort(self.round_[rows], kind="stable")]]

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        import pyarrow as pa

        check_fitted_indices(self, self.round_, indices, name="active", what="loop")
        check_new_columns(self.output_columns, batch, hint="Choose other output names")
        size = len(indices)
        arrays, names = input_columns(batch, list(batch), size, 1)
        none = (None, None, None, None)
        got = [self.annotations_.get(int(i), none) for i in indices]
        r = self.round_[np.asarray(indices, dtype=np.int64)] if size else []
        o, a = self.output, self.annotator.output
        new = {o: pa.array([bool(x >= 0) for x in r], type=pa.bool_()),
               f"{o}_round": pa.array([int(x) if x >= 0 else None for x in r], type=pa.int64()),
               a: pa.array([g[0] for g in got], type=pa.string()),
               f"{a}_confidence": pa.array([g[1] for g in got], type=pa.float32()),
               f"{a}_probs": pa.array([g[2] for g in got], type=pa.list_(pa.float32())),
               f"{a}_error": pa.array([g[3] for g in got], type=pa.string())}
        return pa.Table.from_arrays(arrays + list(new.values()), names=names + list(new))

    # -- contract 4 -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        d = {"type": "ActiveAnnotator", "format": _FORMAT_VERSION, "method": "LLMAAA active annotation",
             "budget": self.budget, "seed_size": self.seed_size, "rounds": self.rounds, "strategy": self.strategy,
             "student": {"model": "sklearn LogisticRegression", "C": self.C,
                         "weight_by_confidence": self.weight_by_confidence},
             "text_column": self.text_column, "embedding_column": self.embedding_column, "output": self.output,
             "seed": self.seed, "fitted_rows": self.fitted_rows_, "per_round": list(self.records_),
             "annotator": self.annotator.describe(), "library": library_versions()}
        if self.text_column:
            from ..embeddings import embedding_model_identity

            d["embedding_model"] = embedding_model_identity()
        return d

    def __repr__(self) -> str:
        return (f"ActiveAnnotator({self.annotator!r}, budget={self.budget}, seed_size={self.seed_size}, "
                f"rounds={self.rounds}, strategy={self.strategy!r})")
