"""Merge a review round into the data: relabels through :class:`~synth_datasets.curate.ReviewedLabels`
(the same validation as a hand-edited file: labels outside the set, unknown ids and conflicting
corrections are errors and nothing is applied), then text edits and drops.

With several reviewers, each row's decision is resolved first (``conflicts=``): ``"error"`` lets
``ReviewedLabels`` refuse rows whose reviewers disagree (listing them), ``"majority"`` takes the most
common decision (ties: the latest), ``"latest"`` the latest decision.

A published folder is rewritten atomically (data, provenance.json with a ``review`` record and a
``human_review`` step, the card with a "Human review" section, the report), and a ``merged`` marker
is appended to the reviews file, which stays beside the data as the record of the round.

>>> merged, summary = merge_reviews(ds, reviews_file="reviews.jsonl")      # doctest: +SKIP
>>> merge_reviews(Path("out/movie-reviews"))                                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import InvalidParameterError, ReviewFileError
from .agreement import summarize
from .data import ReviewData, load_folder
from .log import ReviewLog, RowState

REVIEWS_FILE = "reviews.jsonl"
CONFLICTS = ("error", "majority", "latest")
_ROW = "__review_row"


def _resolve(states: dict[str, dict[int, RowState]], conflicts: str, log: ReviewLog) -> dict[int, list[RowState]]:
    """row -> the decided states to apply (several only when ``conflicts='error'`` and they disagree)."""
    last_seq: dict[tuple[str, int], int] = {}
    for r in log.effective():
        last_seq[(r.get("reviewer"), int(r["row"]))] = r["seq"]
    per_row: dict[int, list[tuple[int, RowState]]] = {}
    for reviewer, rows in states.items():
        for i, s in rows.items():
            if s.decided:
                per_row.setdefault(i, []).append((last_seq.get((reviewer, i), 0), s))
    out = {}
    for i, items in per_row.items():
        items.sort(key=lambda t: t[0])
        key = lambda s: (s.dropped, s.final_label(), s.text)  # noqa: E731
        if conflicts == "latest" or len({key(s) for _, s in items}) == 1:
            out[i] = [items[-1][1]]
        elif conflicts == "majority":
            counts = Counter(key(s) for _, s in items)
            top = max(counts.values())
            out[i] = [next(s for _, s in reversed(items) if counts[key(s)] == top)]
        else:
            out[i] = [s for _, s in items]
    return out


def apply_reviews(data: ReviewData, log: ReviewLog, *, conflicts: str = "error"):
    """``(merged dataset, summary)`` for the current round of ``log`` over ``data``."""
    from datasets import Value

    from ..curate import ReviewedLabels

    if conflicts not in CONFLICTS:
        raise InvalidParameterError(f"conflicts={conflicts!r}: one of {list(CONFLICTS)}.")
    states = log.states()
    summary = summarize(states, label_name=data.label_name)
    if not summary["rows"]:
        raise ReviewFileError(f"{log.path}: no decisions to merge in this round (every row is undecided, or the "
                              "round was merged already). Review some rows first.")
    resolved = _resolve(states, conflicts, log)
    for i in resolved:
        if not 0 <= i < data.num_rows:
            raise ReviewFileError(f"{log.path}: row {i} is outside the dataset ({data.num_rows} rows): the reviews "
                                  "file belongs to other data. Review this dataset with its own file.")
    ds = data.ds
    id_col = data.id_column or _ROW
    if data.id_column is None:
        ds = ds.add_column(_ROW, list(range(ds.num_rows)))
    ids = ds[id_col]
    for i, ss in resolved.items():
        for s in ss:
            if s.id is not None and str(s.id) != str(ids[i]):
                raise ReviewFileError(f"{log.path}: row {i} was reviewed as id {s.id!r} but the data holds id "
                                      f"{ids[i]!r} there: the data changed since. Nothing was applied.")
    if conflicts == "error":
        other = [i for i, ss in resolved.items() if len(ss) > 1
                 and (len({s.dropped for s in ss}) > 1 or len({s.text for s in ss}) > 1)]
        if other:
            raise ReviewFileError(f"{log.path}: reviewers disagree on dropping or editing row(s) {sorted(other)[:10]}. "
                                  "Nothing was applied. Pass conflicts='majority' or 'latest' "
                                  "(--conflicts) to resolve disagreements between reviewers.")
    # labels: a JSONL in export_for_review's format, read back by ReviewedLabels (its validation)
    with tempfile.TemporaryDirectory(prefix="synth-datasets-review-") as tmp:
        path = Path(tmp) / "corrections.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for i, ss in sorted(resolved.items()):
                for s in ss:
                    if s.dropped or s.label is None and len(ss) == 1:
                        continue
                    f.write(json.dumps({"id": ids[i], "corrected_label": s.final_label(), "note": s.note},
                                       ensure_ascii=False, default=str) + "\n")
        try:
            merge = ReviewedLabels.from_file(path, labels=[lab["value"] for lab in data.labels], id_column=id_col,
                                             label_column=data.label_column)
        except ReviewFileError as e:
            raise ReviewFileError(f"{log.path}: {str(e).split(': ', 1)[-1].replace('Fix the file', 'Resolve them')} "
                                  "Pass conflicts='majority' or 'latest' (--conflicts) to resolve disagreements "
                                  "between reviewers.") from e
        merge.source = str(log.path)
        ds = ds.map(merge.fit(ds), batched=True, desc="merging labels")
    final = {i: ss[-1] for i, ss in resolved.items()}
    text_col = data.text_column
    edited = {i: s.text for i, s in final.items() if s.text is not None and not s.dropped}
    dropped = {i for i, s in final.items() if s.dropped}

    def apply(batch, indices):
        reasons, texts = list(batch["review_reason"]), list(batch[text_col])
        before = list(texts)
        for k, i in enumerate(indices):
            if i in edited:
                texts[k] = edited[i]
                reasons[k] = "human_corrected_and_edited" if reasons[k] else "human_edited"
            elif i in final and reasons[k] is None:
                reasons[k] = "human_dropped" if i in dropped else "human_accepted"
        out = {**batch, text_col: texts, "review_reason": reasons}
        if edited:
            out[f"{text_col}_before_review"] = before
        return out

    features = ds.features.copy()
    features[f"{data.label_column}_before_review"] = data.ds.features[data.label_column]  # a ClassLabel stays one
    if edited:
        features[f"{text_col}_before_review"] = Value("string")
    ds = ds.map(apply, batched=True, with_indices=True, features=features, desc="merging edits")
    ds = ds.filter(lambda b, idx: [i not in dropped for i in idx], batched=True, with_indices=True,
                   desc="dropping rows")
    if data.id_column is None:
        ds = ds.remove_columns(_ROW)
    summary.update(rows_in=data.num_rows, rows_out=ds.num_rows, conflicts=conflicts,
                   file=log.path.name, relabeled_rows=len(merge.corrections), edited_rows=len(edited),
                   dropped_rows=len(dropped))
    return ds, summary


def merge_reviews(source, *, reviews_file: str | os.PathLike | None = None, conflicts: str = "error",
                  label_column: str = "label", text_column: str | None = None, id_column: str = "id"):
    """Merge the current round of a reviews file.

    Args:
        source (`Path` or `Dataset`): a published folder (rewritten in place, atomically) or a dataset.
        reviews_file (`str`, *optional*): defaults to ``<folder>/reviews.jsonl``; required for a dataset.
        conflicts (`str`): ``"error"``, ``"majority"`` or ``"latest"`` (see the module docstring).

    Returns:
        ``(dataset, summary)``: the merged rows and the round's counts and agreement.
    """
    if isinstance(source, (str, os.PathLike)):
        folder = Path(source)
        ds, prov = load_folder(folder)
        log = ReviewLog(reviews_file or folder / REVIEWS_FILE)
        data = ReviewData(ds, provenance=prov, label_column=label_column, text_column=text_column,
                          id_column=id_column, neighbours=0)
        merged, summary = apply_reviews(data, log, conflicts=conflicts)
        rewrite_folder(folder, merged, prov, summary, log)
        return merged, summary
    if reviews_file is None:
        raise InvalidParameterError("merge_reviews(ds, ...) needs reviews_file= (the file the review page wrote).")
    data = ReviewData(source, label_column=label_column, text_column=text_column, id_column=id_column, neighbours=0)
    log = ReviewLog(reviews_file)
    merged, summary = apply_reviews(data, log, conflicts=conflicts)
    log.append({"type": "merged", "rows_in": summary["rows_in"], "rows_out": summary["rows_out"]})
    return merged, summary


def rewrite_folder(folder: Path, ds, prov: dict[str, Any], summary: dict[str, Any], log: ReviewLog) -> None:
    """Re-publish ``folder`` with the merged rows: data, report, provenance (+ review record and a
    ``human_review`` step), card; the reviews file is carried over with a ``merged`` marker appended."""
    from ..hub import card as _card
    from ..hub.publish import stage
    from ..io import write_folder_atomically
    from ..record import RunRecord, StepRecord
    from ..secrets import known_secrets, scrub

    record = RunRecord.from_dict(prov) if prov.get("steps") is not None else RunRecord.from_steps([], name=folder.name)
    rounds = sum(1 for s in record.steps if s.kind == "review") + 1
    describe = {"type": "HumanReview", "file": summary["file"], "round": rounds, "conflicts": summary["conflicts"],
                "reviewers": summary["reviewers"]}
    record.steps.append(StepRecord(len(record.steps), "human_review", "review", describe,
                                   rows_in=summary["rows_in"], rows_out=summary["rows_out"],
                                   seconds=round(sum(r["seconds_per_row"] * r["reviewed"] for r in
                                                     summary["by_reviewer"].values() if r["seconds_per_row"]), 1),
                                   stats={k: summary[k] for k in ("reviewed", "changed", "dropped")}))
    record.rows_out = ds.num_rows
    metrics = prov.get("metrics") or {}
    text_column = prov.get("metrics_column")

    def write(tmp: Path) -> None:
        for p in folder.iterdir():  # everything that is not regenerated (builder.py, script.py, other files)
            if p.name in ("data", "report", "README.md", "provenance.json", REVIEWS_FILE):
                continue
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, tmp / p.name)
        builder = folder / "builder.py" if (folder / "builder.py").is_file() and record.builder else None
        new = stage(ds, tmp, record=record,
                    metrics=[metrics] if metrics and text_column in ds.column_names else [],
                    local_name=str(folder), report=(folder / "report").is_dir(), builder_file=builder,
                    script=prov.get("script"))
        new["review"] = {**summary, "round": rounds, "metrics_before_review": bool(metrics)}
        secrets = known_secrets(hub_login=True)
        text = scrub(json.dumps(new, indent=2, ensure_ascii=False, default=str), secrets=secrets, patterns=False)
        (tmp / "provenance.json").write_text(text + "\n", encoding="utf-8")
        report = sorted(p.name for p in (tmp / "report").glob("*.png")) if (tmp / "report").is_dir() else []
        card = _card.build_card(json.loads(text), local_name=str(folder), report_files=report)
        (tmp / "README.md").write_text(scrub(str(card), secrets=secrets, patterns=False), encoding="utf-8")
        if log.path.resolve().parent == folder.resolve():
            shutil.copy2(log.path, tmp / log.path.name)
            ReviewLog(tmp / log.path.name).append({"type": "merged", "rows_in": summary["rows_in"],
                                                   "rows_out": summary["rows_out"]})

    write_folder_atomically(folder, write, overwrite=True, keep_foreign=True)  # write() carries the other files
    if log.path.resolve().parent != folder.resolve():
        log.append({"type": "merged", "rows_in": summary["rows_in"], "rows_out": summary["rows_out"]})
