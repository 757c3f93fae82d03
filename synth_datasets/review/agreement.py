"""Counts and agreement of a review round (replayed from the reviews file).

- Reviewer vs LLM labels: Cohen's kappa (scikit-learn's ``cohen_kappa_score``), the observed agreement,
  and the codebook comparison of Pangakis et al. (2023, "Automated annotation with generative AI
  requires validation"): per label, the precision / recall / F1 of the LLM's labels taking the
  reviewer's as the truth. Dropped rows are left out (no label was given to them).
- Between reviewers (several names, overlapping rows): Cohen's kappa for every pair on the rows both
  decided ("dropped" counts as a label there: disagreeing on a drop is disagreement), and their mean.

>>> from synth_datasets.review.log import RowState
>>> states = {"ana": {0: RowState(decided=True, llm_label="pos"), 1: RowState(decided=True, label="neg",
...           llm_label="pos"), 2: RowState(decided=True, llm_label="neg")}}
>>> s = summarize(states)
>>> s["reviewed"], s["changed"], s["kappa_vs_llm"]
(3, 1, 0.4)
"""

from __future__ import annotations

import itertools
import math
import warnings
from typing import Any, Mapping

from .log import RowState

DROPPED = "<dropped>"


def _kappa(a: list, b: list) -> float | None:
    """Cohen's kappa, or None when undefined (fewer than 2 rows, or one label everywhere)."""
    if len(a) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = cohen_kappa_score([str(x) for x in a], [str(x) for x in b])
    return None if math.isnan(k) else round(float(k), 4)


def codebook(llm: list, human: list) -> dict[str, Any]:
    """Pangakis et al.'s comparison of LLM labels against human ones: accuracy and per-label P/R/F1."""
    if not llm:
        return {"rows": 0}
    from sklearn.metrics import precision_recall_fscore_support

    a, b = [str(x) for x in llm], [str(x) for x in human]
    labels = sorted(set(a) | set(b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, n = precision_recall_fscore_support(b, a, labels=labels, zero_division=0)
    return {"rows": len(a), "accuracy": round(sum(x == y for x, y in zip(a, b)) / len(a), 4),
            "per_label": {lab: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4),
                                "f1": round(float(f[i]), 4), "support": int(n[i])} for i, lab in enumerate(labels)}}


def summarize(states: Mapping[str, Mapping[int, RowState]], *, label_name=None) -> dict[str, Any]:
    """Counts per reviewer and overall (rows reviewed, changed, relabeled, edited, dropped), reviewer-vs-LLM
    kappa (each reviewer and pooled) and pairwise inter-annotator kappa."""
    name = label_name or (lambda v: v)
    by: dict[str, Any] = {}
    pooled_llm, pooled_human = [], []
    rows_any: set[int] = set()
    for reviewer, rows in sorted(states.items()):
        decided = {i: s for i, s in rows.items() if s.decided}
        rows_any |= set(decided)
        kept = [s for s in decided.values() if not s.dropped]
        llm = [name(s.llm_label) for s in kept]
        human = [name(s.final_label()) for s in kept]
        pooled_llm += llm
        pooled_human += human
        secs = [s.seconds for s in decided.values() if s.seconds]
        by[reviewer] = {"reviewed": len(decided), "changed": sum(s.changed for s in decided.values()),
                        "relabeled": sum(s.label is not None for s in kept),
                        "edited": sum(s.text is not None for s in kept),
                        "dropped": sum(s.dropped for s in decided.values()),
                        "skipped": sum(s.skipped for s in rows.values()),
                        "notes": sum(bool(s.note) for s in rows.values()),
                        "seconds_per_row": round(sum(secs) / len(secs), 2) if secs else None,
                        "kappa_vs_llm": _kappa(llm, human),
                        "agreement_vs_llm": round(sum(a == b for a, b in zip(llm, human)) / len(llm), 4) if llm else None}
    pairs = []
    for (ra, sa), (rb, sb) in itertools.combinations(sorted(states.items()), 2):
        both = sorted(i for i in sa if i in sb and sa[i].decided and sb[i].decided)
        la = [DROPPED if sa[i].dropped else name(sa[i].final_label()) for i in both]
        lb = [DROPPED if sb[i].dropped else name(sb[i].final_label()) for i in both]
        pairs.append({"reviewers": [ra, rb], "rows": len(both), "kappa": _kappa(la, lb),
                      "agreement": round(sum(x == y for x, y in zip(la, lb)) / len(both), 4) if both else None})
    kappas = [p["kappa"] for p in pairs if p["kappa"] is not None]
    total = {k: sum(v[k] for v in by.values()) for k in ("reviewed", "changed", "relabeled", "edited", "dropped")}
    return {**total, "rows": len(rows_any), "reviewers": sorted(states), "by_reviewer": by,
            "kappa_vs_llm": _kappa(pooled_llm, pooled_human),
            "codebook": codebook(pooled_llm, pooled_human),
            "inter_annotator": {"pairs": pairs, "mean_kappa": round(sum(kappas) / len(kappas), 4) if kappas else None}}
