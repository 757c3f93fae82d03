"""Human review round-trip: export the least-confident rows of a real noisy set, a 'reviewer' fills in
the true labels, the file is merged back by id; bad files are refused with nothing applied."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from datasets import Dataset
from datasets.fingerprint import Hasher

from synth_datasets import curate
from synth_datasets.errors import ReviewFileError

from test_curate_confidence import rt_noisy  # noqa: F401  (session fixture: embeddings computed once)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_round_trip_fixes_reviewed_labels(rt_noisy, tmp_path, fmt):  # noqa: F811
    ds, x, clean, noisy, flipped = rt_noisy
    cc = curate.ClassifierConsistency(embedding_column="emb").fit(ds)
    marked = ds.map(cc.mark, batched=True, with_indices=True).remove_columns("emb")
    path = tmp_path / f"review.{fmt}"
    n = curate.export_for_review(marked, path, confidence_column="clf_consistency_confidence", n=200,
                                 evidence_columns=["clf_consistency_predicted", "clf_consistency_reason"])
    assert n == 200
    conf = np.array(marked["clf_consistency_confidence"])
    if fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    else:
        rows = list(csv.DictReader(path.open()))
    assert [r["id"] for r in rows] == [f"rt{i}" for i in np.argsort(conf, kind="stable")[:200]]
    assert set(rows[0]) == {"id", "text", "label", "confidence", "clf_consistency_predicted",
                            "clf_consistency_reason", "corrected_label", "note"}
    # the least-confident rows are where the flipped labels are
    picked = np.array([int(r["id"][2:]) for r in rows])
    print(f"review: {flipped[picked].mean():.2f} of exported rows are flipped (base rate {flipped.mean():.2f})")
    assert flipped[picked].mean() > 2 * flipped.mean()
    # the reviewer writes the true label on the rows they judge wrong, leaves the rest empty
    for r in rows:
        i = int(r["id"][2:])
        r["corrected_label"] = clean[i] if clean[i] != noisy[i] else ("" if fmt == "csv" else None)
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    merge = curate.ReviewedLabels.from_file(path, labels=["fresh", "rotten"]).fit(marked)
    out = marked.map(merge, batched=True, batch_size=300)
    new = np.array(out["label"], dtype=object)
    fixed = flipped[picked].sum()
    assert (new[picked] == clean[picked]).all()
    assert int((new != noisy).sum()) == fixed == merge.stats["corrected"]
    assert list(out["label_before_review"]) == list(noisy)
    assert out["review_reason"].count("human_corrected") == fixed
    assert merge.describe()["params"]["corrections"] == fixed
    other = curate.ReviewedLabels({"rt0": "fresh"}, labels=["fresh", "rotten"]).fit(marked)
    assert Hasher.hash(other) != Hasher.hash(merge)


def test_bad_review_files_apply_nothing(tmp_path):
    ds = Dataset.from_dict({"id": [1, 2, 3], "text": ["a", "b", "c"], "label": ["fresh", "rotten", "fresh"],
                            "conf": [0.2, 0.9, 0.1]})
    path = tmp_path / "r.csv"
    assert curate.export_for_review(ds, path, confidence_column="conf", n=2) == 2
    rows = list(csv.DictReader(path.open()))
    assert [r["id"] for r in rows] == ["3", "1"]

    def write(rows):
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)

    write([{**rows[0], "corrected_label": "rotten"}, {**rows[1], "corrected_label": "meh"}])
    with pytest.raises(ReviewFileError, match=r"row 2 \(id '1'\): invalid label 'meh'.*nothing was applied"):
        curate.ReviewedLabels.from_file(path, labels=["fresh", "rotten"])
    write([{**rows[0], "id": "99", "corrected_label": "rotten"}])
    merge = curate.ReviewedLabels.from_file(path, labels=["fresh", "rotten"])
    with pytest.raises(ReviewFileError, match=r"not in column 'id': \['99'\].*nothing was applied"):
        merge.fit(ds)
    write([{"identifier": "3", "corrected_label": "rotten"}])
    with pytest.raises(ReviewFileError, match=r"column\(s\) \['id'\] missing"):
        curate.ReviewedLabels.from_file(path, labels=["fresh", "rotten"])
    write([{**rows[0], "corrected_label": "rotten"}, {**rows[0], "corrected_label": "fresh"}])
    with pytest.raises(ReviewFileError, match="conflicting corrections"):
        curate.ReviewedLabels.from_file(path, labels=["fresh", "rotten"])
    write([{**rows[0], "corrected_label": "rotten"}])
    ok = curate.ReviewedLabels.from_file(path, labels=["fresh", "rotten"])
    with pytest.raises(Exception, match=r"call \.fit\(ds\)"):
        ds.map(ok, batched=True)
    out = ds.map(ok.fit(ds), batched=True)  # CSV ids are text; the id column holds ints: matched by text
    assert list(out["label"]) == ["fresh", "rotten", "rotten"] and list(out["review_reason"]) == [None, None,
                                                                                                  "human_corrected"]
    with pytest.raises(ReviewFileError, match="does not exist"):
        curate.ReviewedLabels.from_file(tmp_path / "nope.jsonl", labels=["a", "b"])
