"""The card's "How close to real" lines, from the record of a ``CloseToReal`` step
(:class:`synth_datasets.target.CloseToReal`): TSTR/TRTR on the held-out real rows and the distance.

>>> step = {"name": "close-to-real", "describe": {"type": "CloseToReal", "sample": {"name": "rt.csv", "rows": 40},
...         "results": {"synthetic_rows": 8, "real_train_rows": 28, "held_out_rows": 12, "tstr_accuracy": 0.75,
...                     "trtr_accuracy": 0.8333, "accuracy_ratio": 0.9}}}
>>> print(close_to_real([step])[0])
Against **rt.csv** (40 real rows; 12 held out, never shown to generation): a classifier trained on the 8 synthetic rows scores **0.75** accuracy on the held-out rows (TSTR), one trained on the 28 real train rows **0.8333** (TRTR): **0.9 of real**.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..record import steps_of_type


def _f(v: Any) -> str:
    return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def close_to_real(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """One paragraph per ``CloseToReal`` step (markdown)."""
    out = []
    for _, d in steps_of_type(steps, "CloseToReal"):
        r, sample = d.get("results") or {}, d.get("sample") or {}
        head = (f"Against **{sample.get('name', 'the real sample')}** ({sample.get('rows', '?')} real rows; "
                f"{r.get('held_out_rows', '?')} held out, never shown to generation): ")
        if r.get("skipped") or "tstr_accuracy" not in r:
            out.append(head + f"not measured ({r.get('skipped', 'no result recorded')}).")
            continue
        line = (head + f"a classifier trained on the {r['synthetic_rows']} synthetic rows scores "
                f"**{_f(r['tstr_accuracy'])}** accuracy on the held-out rows (TSTR), one trained on the "
                f"{r['real_train_rows']} real train rows **{_f(r.get('trtr_accuracy'))}** (TRTR): "
                f"**{_f(r.get('accuracy_ratio'))} of real**.")
        if r.get("tstr_accuracy_same_size") is not None:
            line += (f" Trained on as many synthetic rows as real ones: {_f(r['tstr_accuracy_same_size'])} "
                     f"({_f(r.get('accuracy_ratio_same_size'))} of real).")
        if r.get("precision") is not None:
            line += (f" Distance (all-MiniLM-L6-v2 embeddings, k={r.get('prdc_k')}): precision "
                     f"{_f(r['precision'])}, recall {_f(r['recall'])}, density {_f(r.get('density'))}, coverage "
                     f"{_f(r.get('coverage'))}; a real-vs-synthetic discriminator's AUC {_f(r.get('discriminator_auc'))} "
                     "(0.5: indistinguishable); mean pairwise embedding distance "
                     f"{_f(r.get('mean_pairwise_distance_synthetic'))} synthetic vs "
                     f"{_f(r.get('mean_pairwise_distance_real'))} real.")
        out.append(line)
    return out
