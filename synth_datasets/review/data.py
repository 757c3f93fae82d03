"""What the review page shows: the rows in a chosen order, each with its evidence, and the guidelines.

The evidence comes from the curators' columns, recognised by their suffixes (see :data:`EVIDENCE`):
classifier and neighbour confidence (``*_confidence``, ``*_agreement``), their predicted labels
(``*_predicted``, ``*_majority``), judge score and reply (``*_score``, ``*_reply``), curator reasons
(``*_reason``), prompts (``*_prompt``). The nearest neighbours are computed here (TF-IDF cosine over
the text column, k per row, on demand), with their labels. The generating prompt is a ``*_prompt``
column when the data has one, else the recorded template (``provenance.json``) rendered for the row.

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"text": ["good film", "bad film", "fine film"], "label": ["pos", "neg", "pos"],
...                         "clf_confidence": [0.9, 0.2, 0.5]})
>>> data = ReviewData(ds)
>>> data.order("evidence"), [lab["value"] for lab in data.labels]
([1, 2, 0], ['neg', 'pos'])
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..columns import resolve_text_column
from ..errors import InvalidParameterError, MissingColumnError
from ..io import json_value

#: column suffix -> evidence kind (longest suffix wins)
EVIDENCE = {"_predicted_confidence": "confidence", "_confidence": "confidence", "_agreement": "confidence",
            "_predicted": "predicted label", "_majority": "predicted label", "_score": "judge score",
            "_reply": "judge reply", "_reason": "curator reason", "_prompt": "prompt"}
ORDERS = ("evidence", "reason", "judge", "random")
_SHOWN_CHARS = 2000


def _kind(column: str) -> str | None:
    if column.endswith("_finish_reason"):  # generation metadata, not a curator's verdict
        return None
    for suffix in sorted(EVIDENCE, key=len, reverse=True):
        if column.endswith(suffix) and column != suffix.lstrip("_"):
            return EVIDENCE[suffix]
    return None


def _jsonable(v: Any) -> Any:
    """What the page shows of a value: JSON, at most 50 items and ``_SHOWN_CHARS`` characters a string."""
    return json_value(v, max_items=50, max_chars=_SHOWN_CHARS)


def load_folder(folder: str | os.PathLike):
    """``(dataset, provenance)`` of a published folder (``data/*.parquet`` + ``provenance.json``), read
    into memory (no cache files: the folder may be rewritten by a merge)."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    folder = Path(folder)
    files = sorted((folder / "data").glob("*.parquet")) if (folder / "data").is_dir() else []
    if not files:
        raise InvalidParameterError(f"{folder} holds no data/*.parquet: pass a folder written by publish() or "
                                    "`synth-datasets build --out`, or a Hub dataset repo id.")
    import pyarrow as pa

    table = pa.concat_tables([pq.read_table(f) for f in files])
    ds = Dataset(table)
    prov_file = folder / "provenance.json"
    prov = json.loads(prov_file.read_text(encoding="utf-8")) if prov_file.is_file() else {}
    return ds, prov


def _walk(d: Any, types: Sequence[str], where: str = ""):
    if isinstance(d, Mapping):
        if d.get("type") in types:
            yield where, d
            if d.get("type") == "TaskSpec":
                return  # its inner Template is shown with the spec
        for k, v in d.items():
            yield from _walk(v, types, f"{where}.{k}" if where else str(k))
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            yield from _walk(v, types, f"{where}[{i}]")


def guidelines_from(provenance: Mapping[str, Any] | None = None, extra: Any = None) -> dict[str, Any]:
    """The codebook the reviewers follow: every ``TaskSpec`` (its fields) and ``Template`` (verbatim)
    recorded in the provenance, plus ``extra`` (a TaskSpec/Template, anything with ``describe()``, or
    text)."""
    specs, templates, text = [], [], None
    sources: list[tuple[str, Any]] = [(s.get("name", f"step {i}"), s.get("describe") or {})
                                      for i, s in enumerate((provenance or {}).get("steps") or [])]
    if extra is not None:
        if isinstance(extra, str):
            text = extra
        elif hasattr(extra, "describe"):
            sources.insert(0, ("guidelines", extra.describe()))
        else:
            raise InvalidParameterError(f"guidelines={type(extra).__name__}: pass a TaskSpec, a Template or text.")
    for step, d in sources:
        for where, t in _walk(d, ("TaskSpec", "Template")):
            if t["type"] == "TaskSpec":
                spec = dict(t.get("spec") or {})
                specs.append({"step": step, "where": where, "fields": {k: v for k, v in spec.items() if v},
                              "messages": _messages(t.get("template") or {})})
            else:
                templates.append({"step": step, "where": where, "messages": _messages(t)})
    return {"specs": specs, "templates": templates, "text": text}


def _messages(t: Mapping[str, Any]) -> list[list[str]]:
    msgs = [["system", t["system"]]] if t.get("system") else []
    for e in t.get("examples") or []:
        msgs += [["example user", e.get("user", "")], ["example assistant", e.get("assistant", "")]]
    return msgs + [["user", t.get("user", "")]]


class ReviewData:
    """A dataset to review: its rows in an order, their evidence, the label set and the guidelines.

    Args:
        ds (`Dataset`): the rows.
        provenance (`dict`, *optional*): the dataset's ``provenance.json`` (templates, specs).
        label_column (`str`): the column a reviewer corrects; its label set comes from the data (a
            ``ClassLabel``'s names, else its distinct values).
        text_column (`str`, *optional*): defaults to the declared text column, else ``text``.
        id_column (`str`): row ids used in the reviews file and by the merge; row positions without it.
        confidence_column (`str`, *optional*): the column "evidence" ordering sorts by (lowest first);
            default: the lowest of the ``*_confidence`` / ``*_agreement`` columns.
        neighbours (`int`): nearest neighbours shown per row (0: none).
        guidelines: extra guidelines (a TaskSpec, Template or text) shown beside the recorded ones.
        seed (`int`): the "random" ordering's seed.
    """

    def __init__(self, ds, *, provenance: Mapping[str, Any] | None = None, label_column: str = "label",
                 text_column: str | None = None, id_column: str = "id", confidence_column: str | None = None,
                 neighbours: int = 3, guidelines: Any = None, seed: int = 0):
        from datasets import ClassLabel

        if ds.num_rows == 0:
            raise InvalidParameterError("Nothing to review: the dataset has no rows.")
        self.ds, self.provenance = ds, dict(provenance or {})
        self.text_column = resolve_text_column(ds, text_column, "review")
        if label_column not in ds.column_names:
            raise MissingColumnError(f"review: label column {label_column!r} is not in the dataset. Current "
                                     f"columns: {sorted(ds.column_names)}. Pass label_column= (--label-column).")
        if confidence_column is not None and confidence_column not in ds.column_names:
            raise MissingColumnError(f"review: confidence column {confidence_column!r} is not in the dataset. "
                                     f"Current columns: {sorted(ds.column_names)}.")
        if not isinstance(neighbours, int) or neighbours < 0:
            raise InvalidParameterError(f"neighbours={neighbours!r} must be an integer >= 0.")
        self.label_column, self.confidence_column, self.k, self.seed = label_column, confidence_column, neighbours, seed
        self.id_column = id_column if id_column in ds.column_names else None
        feature = ds.features[label_column]
        values = ds[label_column]
        self.llm_labels = list(values)
        if isinstance(feature, ClassLabel):
            self.labels = [{"value": i, "name": n} for i, n in enumerate(feature.names)]
        else:
            distinct = sorted({v for v in values if v is not None}, key=lambda v: (str(type(v)), v))
            self.labels = [{"value": v, "name": str(v)} for v in distinct]
        self._names = {lab["value"]: lab["name"] for lab in self.labels}
        self.ids = list(ds[self.id_column]) if self.id_column else list(range(ds.num_rows))
        self.evidence = {c: _kind(c) for c in ds.column_names if _kind(c)}
        self.guidelines = guidelines_from(self.provenance, guidelines)
        self._orders: dict[str, list[int]] = {}
        self._tfidf = None

    @property
    def num_rows(self) -> int:
        return self.ds.num_rows

    def label_name(self, value: Any) -> str | None:
        return None if value is None else self._names.get(value, str(value))

    def coerce_label(self, value: Any) -> Any:
        """The label value for ``value`` as sent by the page (a value or a name); error if outside the set."""
        for lab in self.labels:
            if value == lab["value"] or value == lab["name"] or str(value) == str(lab["value"]):
                return lab["value"]
        raise InvalidParameterError(f"label {value!r} is not in the label set {[lab['name'] for lab in self.labels]}.")

    # -- orderings -------------------------------------------------------------------------------
    def available_orders(self) -> list[str]:
        out = ["evidence"]
        if any(k == "curator reason" for k in self.evidence.values()):
            out.append("reason")
        if self._judge_column():
            out.append("judge")
        return out + ["random"]

    def _numeric(self, column: str) -> np.ndarray:
        vals = [v if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in self.ds[column]]
        return np.array([np.nan if v is None else float(v) for v in vals], dtype=np.float64)

    def _confidence(self) -> np.ndarray:
        cols = [self.confidence_column] if self.confidence_column else [
            c for c, k in self.evidence.items() if k == "confidence" and not c.endswith("_predicted_confidence")]
        cols = [c for c in cols if self.ds.features[c].dtype not in ("string", "large_string")] if not \
            self.confidence_column else cols
        if not cols:
            judge = self._judge_column()
            return self._numeric(judge) if judge else np.zeros(self.num_rows)
        stacked = np.vstack([self._numeric(c) for c in cols])
        with np.errstate(all="ignore"):
            conf = np.nanmin(np.where(np.isnan(stacked), np.inf, stacked), axis=0)
        return conf

    def _judge_column(self) -> str | None:
        return next((c for c, k in self.evidence.items() if k == "judge score"
                     and getattr(self.ds.features[c], "dtype", "") not in ("string", "large_string")), None)

    def order(self, name: str = "evidence") -> list[int]:
        """Row positions in review order: ``evidence`` (least confident first), ``reason`` (rows a
        curator flagged first, grouped by reason), ``judge`` (lowest judge score first), ``random``."""
        if name not in ORDERS:
            raise InvalidParameterError(f"order={name!r}: one of {list(ORDERS)}.")
        if name in self._orders:
            return self._orders[name]
        n = self.num_rows
        if name == "random":
            out = np.random.default_rng(self.seed).permutation(n).tolist()
        elif name == "judge":
            col = self._judge_column()
            if col is None:
                raise InvalidParameterError(f"order='judge': the data has no judge score column (*_score). "
                                            f"Columns: {sorted(self.ds.column_names)}. Choose another order.")
            s = self._numeric(col)
            out = np.argsort(np.where(np.isnan(s), np.inf, s), kind="stable").tolist()
        else:
            conf = np.nan_to_num(self._confidence(), nan=np.inf)
            out = np.argsort(conf, kind="stable").tolist()
            if name == "reason":
                reasons = [c for c, k in self.evidence.items() if k == "curator reason"]
                if not reasons:
                    raise InvalidParameterError("order='reason': the data has no curator reason column (*_reason). "
                                                "Choose another order.")
                cols = {c: self.ds[c] for c in reasons}
                first = [next((f"{c}={cols[c][i]}" for c in reasons if cols[c][i]), None) for i in range(n)]
                rank = {i: p for p, i in enumerate(out)}
                out = sorted(range(n), key=lambda i: (first[i] is None, first[i] or "", rank[i]))
        self._orders[name] = [int(i) for i in out]
        return self._orders[name]

    # -- one row ---------------------------------------------------------------------------------
    def row(self, i: int) -> dict[str, Any]:
        """Everything the page shows for row ``i``."""
        if not isinstance(i, int) or not 0 <= i < self.num_rows:
            raise InvalidParameterError(f"row {i!r} is outside the dataset (0 to {self.num_rows - 1}).")
        r = self.ds[i]
        label = r[self.label_column]
        evidence: dict[str, dict[str, Any]] = {}
        for c, kind in self.evidence.items():
            v = _jsonable(r[c])
            if kind == "predicted label" and self.label_column:
                v = self.label_name(v) if v in self._names else v
            evidence.setdefault(kind, {})[c] = v
        skip = {self.text_column, self.label_column, self.id_column, *self.evidence}
        conditions = {c: _jsonable(v) for c, v in r.items() if c not in skip}
        return {"row": i, "id": _jsonable(self.ids[i]), "text": r[self.text_column] or "",
                "label": _jsonable(label), "label_name": self.label_name(label), "conditions": conditions,
                "evidence": evidence, "neighbours": self.neighbours(i), "prompt": self.prompt(r)}

    def neighbours(self, i: int) -> list[dict[str, Any]]:
        """The ``k`` rows nearest to row ``i`` (character 3-5-gram TF-IDF cosine over the text column), with
        their labels."""
        if self.k == 0 or self.num_rows < 2:
            return []
        if self._tfidf is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            texts = [t or "" for t in self.ds[self.text_column]]
            try:
                vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
                self._tfidf = vec.fit_transform(texts).tocsr()
            except ValueError:  # empty vocabulary: nothing to compare
                self._tfidf = False
        if self._tfidf is False:
            return []
        sims = (self._tfidf @ self._tfidf[i].T).toarray().ravel()
        sims[i] = -1.0
        top = np.argsort(-sims, kind="stable")[:self.k]
        texts = self.ds.select(top.tolist())
        return [{"row": int(j), "id": _jsonable(self.ids[j]), "similarity": round(float(sims[j]), 3),
                 "label": _jsonable(self.llm_labels[j]), "label_name": self.label_name(self.llm_labels[j]),
                 "text": (t or "")[:300]} for j, t in zip(top.tolist(), texts[self.text_column])]

    def prompt(self, r: Mapping[str, Any]) -> dict[str, Any] | None:
        """The prompt that generated the row: a ``*_prompt`` column that is not a judge's, else the recorded
        template of the step that wrote the text column, rendered for this row."""
        cols = [c for c, k in self.evidence.items() if k == "prompt" and "judge" not in c]
        if cols and r[cols[0]]:
            return {"source": f"column {cols[0]}", "messages": [["prompt", str(r[cols[0]])]]}
        for s in self.provenance.get("steps") or []:
            d = s.get("describe") or {}
            if d.get("output") != self.text_column or not isinstance(d.get("template"), Mapping):
                continue
            t = d["template"]
            t = t.get("template", t) if t.get("type") == "TaskSpec" else t
            try:
                from ..prompts import Template

                values = {c: self.label_name(v) if c == self.label_column else v for c, v in r.items()}
                msgs = Template(t.get("user", ""), system=t.get("system"), examples=t.get("examples")).render(values)
                return {"source": f"step {s.get('name')}: recorded template, rendered for this row",
                        "messages": [[m["role"], m["content"]] for m in msgs]}
            except Exception as e:  # noqa: BLE001 - a row the template cannot render: show it verbatim
                return {"source": f"step {s.get('name')}: recorded template (not renderable here: {e})",
                        "messages": _messages(t)}
        return None
