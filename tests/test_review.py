"""The review page's parts without a browser: the append-only log, orderings, agreement, the merge
through ReviewedLabels, the HTTP API (real uvicorn on 127.0.0.1), token protection and the CLI.
The browser acceptance test is tests/test_review_page.py."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import warnings

import pytest
from datasets import Dataset

from synth_datasets.errors import InvalidParameterError, MissingColumnError, ReviewFileError
from synth_datasets.review import ReviewData, ReviewLog, merge_reviews, review, summarize

pytest.importorskip("uvicorn", reason="the review extra is not installed: pip install -e '.[review]'")


def _ds(n: int = 8) -> Dataset:
    return Dataset.from_dict({
        "id": [f"r{i}" for i in range(n)],
        "text": [f"review number {i} {'great fun' if i % 2 else 'dull mess'}" for i in range(n)],
        "label": ["pos" if i % 2 else "neg" for i in range(n)],
        "clf_confidence": [0.9, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4][:n],
        "knn_agreement": [1.0, 1.0, 0.2, 1.0, 1.0, 1.0, 0.05, 1.0][:n],
        "judge_score": [5.0, 1.0, None, 2.0, 4.0, 3.0, 5.0, 1.5][:n],
        "judge_reply": ["fine"] * n,
        "clf_reason": [None, "classifier_disagrees", None, None, "classifier_disagrees", None, None, None][:n],
        "style": ["calm", "intense"] * (n // 2),
    })


def _decide(log: ReviewLog, data: ReviewData, reviewer: str, row: int, action: str, **kw):
    return log.append({"type": "decision", "action": action, "row": row, "id": data.ids[row], "reviewer": reviewer,
                       "llm_label": data.llm_labels[row], **kw})


# -- the log ---------------------------------------------------------------------------------------
def test_log_appends_replays_and_undoes(tmp_path):
    data = ReviewData(_ds())
    log = ReviewLog(tmp_path / "reviews.jsonl")
    _decide(log, data, "ana", 1, "relabel", label="neg")
    _decide(log, data, "ana", 2, "drop")
    _decide(log, data, "ana", 3, "edit", text="new text", original_text=data.ds[3]["text"])
    _decide(log, data, "ana", 4, "note", note="check the tone")
    assert log.undo("ana")["action"] == "note"
    assert log.undo("ana")["action"] == "edit"
    lines = (tmp_path / "reviews.jsonl").read_text().splitlines()
    assert len(lines) == 6 and [json.loads(x)["seq"] for x in lines] == [1, 2, 3, 4, 5, 6]
    states = ReviewLog(tmp_path / "reviews.jsonl").states()["ana"]  # a fresh reader replays the same
    assert states[1].label == "neg" and states[1].changed and states[2].dropped
    assert 3 not in states and 4 not in states  # undone: as if never decided


def test_log_torn_line_is_ignored_and_next_append_starts_fresh(tmp_path):
    data = ReviewData(_ds())
    path = tmp_path / "reviews.jsonl"
    log = ReviewLog(path)
    _decide(log, data, "ana", 0, "accept")
    with open(path, "a") as f:
        f.write('{"v": 1, "seq": 2, "type": "decis')  # a write cut off by a crash
    with pytest.warns(UserWarning, match="incomplete"):
        again = ReviewLog(path)
    assert len(again.records()) == 1
    _decide(again, data, "ana", 1, "drop")
    with pytest.warns(UserWarning, match="line 2 is an incomplete record"):
        recs = ReviewLog(path).records()
    assert [r["action"] for r in recs] == ["accept", "drop"]


def test_log_unreadable_lines_are_skipped_once_each_with_their_line_number(tmp_path):
    data = ReviewData(_ds())
    path = tmp_path / "reviews.jsonl"
    ok = '{"v": 1, "seq": %d, "type": "decision", "action": "accept", "row": %d, "id": "r%d", "reviewer": "ana"}'
    path.write_text("\n".join([
        ok % (1, 0, 0),
        "hello",                                                                       # 2: not JSON
        (ok % (2, 1, 1))[:-1] + ', "seconds": NaN}',                                  # 3: NaN
        (ok % (3, 2, 2))[:-1] + ', "seconds": 1e309}',                                # 4: infinite
        (ok % (4, 3, 3))[:-1] + ', "seconds": -Infinity}',                            # 5: -Infinity
        '{"v": 1, "seq": 5, "type": "decision", "action": "accept", "id": "r4"}',     # 6: no row
        '{"v": 1, "seq": 6, "type": "decision", "action": "accept", "row": "7"}',     # 7: row is text
        '{"v": 1, "seq": 7, "type": "undo", "undoes": null}',                         # 8: undoes nothing
        '[1, 2]',                                                                      # 9: not a record
        ok % (8, 5, 5),
    ]) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log = ReviewLog(path)
        states = log.states()
        log.states()  # a second replay warns about nothing new
    assert [n for n, _ in log.skipped] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert sorted(states["ana"]) == [0, 5]
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 8 and all("is skipped" in m for m in msgs)
    assert "line 3 is skipped: not valid JSON (NaN" in msgs[1] and "'row' is '7'" in msgs[5]
    rec = _decide(log, data, "ana", 6, "drop")  # appending goes on after the bad lines
    assert rec["seq"] == 9 and sorted(ReviewLog(path).states()["ana"]) == [0, 5, 6]


def test_log_refuses_to_write_a_nan_or_out_of_range_seconds(tmp_path):
    data = ReviewData(_ds())
    log = ReviewLog(tmp_path / "r.jsonl")
    for bad in (float("nan"), float("inf"), -1.0, True, "3"):
        with pytest.raises(InvalidParameterError, match="seconds=.*finite number of seconds"):
            _decide(log, data, "ana", 0, "accept", seconds=bad)
    with pytest.raises(InvalidParameterError, match="NaN or infinite"):
        _decide(log, data, "ana", 0, "accept", note_score=float("nan"))
    assert not log.path.exists()  # nothing was written


def test_two_writers_on_one_file_see_each_other(tmp_path):
    data = ReviewData(_ds())
    a, b = ReviewLog(tmp_path / "r.jsonl"), ReviewLog(tmp_path / "r.jsonl")
    _decide(a, data, "ana", 0, "accept")
    rec = _decide(b, data, "bob", 0, "relabel", label="pos")
    assert rec["seq"] == 2 and set(a.states()) == {"ana", "bob"}


# -- data and orderings -----------------------------------------------------------------------------
def test_orderings():
    data = ReviewData(_ds())
    # evidence: the lowest of clf_confidence and knn_agreement, least first
    assert data.order("evidence") == [6, 1, 2, 5, 3, 7, 4, 0]
    assert data.order("reason")[:2] == [1, 4]          # rows a curator flagged first
    assert data.order("judge")[:3] == [1, 7, 3] and data.order("judge")[-1] == 2   # None last
    assert sorted(data.order("random")) == list(range(8))
    assert data.available_orders() == ["evidence", "reason", "judge", "random"]
    row = data.row(1)
    assert row["evidence"]["judge score"] == {"judge_score": 1.0}
    assert row["evidence"]["curator reason"] == {"clf_reason": "classifier_disagrees"}
    assert row["conditions"] == {"style": "intense"}
    assert len(row["neighbours"]) == 3 and all(n["row"] != 1 for n in row["neighbours"])


def test_bad_inputs_name_the_fix():
    with pytest.raises(MissingColumnError, match="label column 'verdict'.*Current columns"):
        ReviewData(_ds(), label_column="verdict")
    with pytest.raises(InvalidParameterError, match="order='judge'.*no judge score"):
        ReviewData(_ds().remove_columns("judge_score")).order("judge")
    with pytest.raises(InvalidParameterError, match="not in the label set"):
        ReviewData(_ds()).coerce_label("maybe")


# -- agreement --------------------------------------------------------------------------------------
def test_kappa_and_inter_annotator_match_sklearn(tmp_path):
    from sklearn.metrics import cohen_kappa_score

    data = ReviewData(_ds())
    log = ReviewLog(tmp_path / "r.jsonl")
    ana = {0: "pos", 1: "pos", 2: "neg", 3: "neg", 4: "pos", 5: "pos"}
    bob = {0: "neg", 1: "pos", 2: "neg", 3: "pos", 4: "pos", 6: "neg"}
    for who, plan in (("ana", ana), ("bob", bob)):
        for i, lab in plan.items():
            _decide(log, data, who, i, "relabel", label=lab)
    s = summarize(log.states())
    assert s["by_reviewer"]["ana"]["kappa_vs_llm"] == pytest.approx(
        cohen_kappa_score([data.llm_labels[i] for i in ana], list(ana.values())), abs=1e-4)
    shared = sorted(set(ana) & set(bob))
    pair = s["inter_annotator"]["pairs"][0]
    assert pair["rows"] == len(shared)
    assert pair["kappa"] == pytest.approx(cohen_kappa_score([ana[i] for i in shared], [bob[i] for i in shared]), abs=1e-4)
    assert s["rows"] == 7 and s["reviewers"] == ["ana", "bob"]


# -- merge ------------------------------------------------------------------------------------------
def test_merge_dataset_applies_labels_edits_drops(tmp_path):
    ds = _ds()
    data = ReviewData(ds)
    log = ReviewLog(tmp_path / "r.jsonl")
    _decide(log, data, "ana", 0, "relabel", label="pos")
    _decide(log, data, "ana", 1, "accept")
    _decide(log, data, "ana", 2, "drop")
    _decide(log, data, "ana", 3, "edit", text="rewritten", original_text=ds[3]["text"])
    merged, s = merge_reviews(ds, reviews_file=log.path)
    assert merged.num_rows == 7 and "r2" not in merged["id"]
    rows = {r["id"]: r for r in merged}
    assert (rows["r0"]["label"], rows["r0"]["label_before_review"], rows["r0"]["review_reason"]) == ("pos", "neg", "human_corrected")
    assert rows["r1"]["review_reason"] == "human_accepted" and rows["r4"]["review_reason"] is None
    assert (rows["r3"]["text"], rows["r3"]["review_reason"]) == ("rewritten", "human_edited")
    assert rows["r3"]["text_before_review"] == ds[3]["text"]
    assert (s["reviewed"], s["changed"], s["dropped"]) == (4, 2, 1)
    with pytest.raises(ReviewFileError, match="no decisions to merge"):  # the round is closed by the marker
        merge_reviews(ds, reviews_file=log.path)


def test_merge_conflicts_go_through_reviewed_labels(tmp_path):
    ds = _ds()
    data = ReviewData(ds)
    log = ReviewLog(tmp_path / "r.jsonl")
    for who, lab in (("ana", "pos"), ("bob", "neg"), ("cy", "pos")):
        _decide(log, data, who, 0, "relabel", label=lab)
    with pytest.raises(ReviewFileError, match="conflicting corrections.*--conflicts"):
        merge_reviews(ds, reviews_file=log.path)
    assert len(log.records()) == 3  # nothing applied, no marker
    merged, _ = merge_reviews(ds, reviews_file=log.path, conflicts="majority")
    assert merged[0]["label"] == "pos"


# -- the server -------------------------------------------------------------------------------------
@pytest.fixture()
def folder(tmp_path):
    from synth_datasets import TaskSpec, publish

    spec = TaskSpec("movie review", role="a film critic", label_type="sentiment")
    publish(_ds(), tmp_path / "ds", steps=[spec], metrics=[], report=False, text_column="text",
            class_labels={"label": ["neg", "pos"]}, license="cc0-1.0")
    return tmp_path / "ds"


def _call(url, body=None, *, headers=None, method=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={
        **({"Content-Type": "application/json"} if body is not None else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        e.close()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, text


def test_api_round_trip_two_reviewers_and_card(folder):
    srv = review(folder, block=False, open_browser=False, quiet=True, conflicts="latest")
    try:
        assert srv.url.startswith("http://127.0.0.1:")
        status, meta = _call(srv.url + "api/meta")
        assert status == 200 and [lab["name"] for lab in meta["labels"]] == ["neg", "pos"]
        assert meta["guidelines"]["specs"][0]["fields"]["role"] == "a film critic"
        order = _call(srv.url + "api/order?name=evidence")[1]["order"]
        for who in ("ana", "bob"):
            for k, i in enumerate(order[:4]):
                action = {"action": "relabel", "label": "pos"} if (who == "bob" and k == 0) else {"action": "accept"}
                status, out = _call(srv.url + "api/decide", {"reviewer": who, "row": i, "seconds": 3.0, **action})
                assert status == 200, out
        status, out = _call(srv.url + "api/decide", {"reviewer": "ana", "row": 999, "action": "accept"})
        assert status == 400 and "row=999" in out["error"]
        status, out = _call(srv.url + "api/decide", {"reviewer": "ana", "row": 0, "action": "approve"})
        assert status == 400 and "one of" in out["error"]
        status, out = _call(srv.url + "api/decide", b"action=accept", headers={"Content-Type": "text/plain"})
        assert status == 415
        status, _ = _call(srv.url + "api/meta", headers={"Host": "evil.example"})
        assert status == 400  # DNS rebinding: a foreign Host header is refused
        status, state = _call(srv.url + "api/state?reviewer=ana")
        assert len(state["decisions"]) == 4 and state["stats"]["inter_annotator"]["pairs"][0]["rows"] == 4
        status, out = _call(srv.url + "api/merge", {})
        assert status == 200 and out["rows"] == 8
    finally:
        srv.stop()
    card = (folder / "README.md").read_text()
    assert "## Human review" in card and "**4 rows reviewed** by ana, bob" in card
    assert "| ana / bob | 4 |" in card
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["review"]["inter_annotator"]["pairs"][0]["agreement"] == 0.75


def test_remote_needs_allow_remote_and_a_token(folder):
    with pytest.raises(InvalidParameterError, match="Refusing to serve.*allow_remote"):
        review(folder, host="0.0.0.0", block=False, open_browser=False, quiet=True)
    token = "t0k3n-" + "x" * 20
    srv = review(folder, host="0.0.0.0", allow_remote=True, token=token, block=False, open_browser=False, quiet=True)
    try:
        base = srv.url.replace("0.0.0.0", "127.0.0.1")
        status, text = _call(base + "api/meta")
        assert status == 401 and "access token" in text
        assert _call(base + "api/meta", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert _call(base + "api/meta", headers={"Authorization": f"Bearer {token}"})[0] == 200
    finally:
        srv.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InvalidParameterError, match="at least 16"):
            review(folder, host="0.0.0.0", allow_remote=True, token="short", block=False, open_browser=False)


def test_cli_merge_and_refusal(folder, capsys):
    from synth_datasets.cli import main

    data = ReviewData(Dataset.from_parquet(str(folder / "data" / "train-00000-of-00001.parquet")))
    log = ReviewLog(folder / "reviews.jsonl")
    _decide(log, data, "ana", 0, "relabel", label=1)
    _decide(log, data, "ana", 1, "drop")
    assert main(["review", str(folder), "--merge"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (out["rows_in"], out["rows_out"], out["changed"], out["dropped"]) == (8, 7, 1, 1)
    assert main(["review", str(folder), "--host", "0.0.0.0", "--no-open"]) == 2
    assert "Refusing to serve" in capsys.readouterr().err


# -- bad numbers (issue 22, item 3) -------------------------------------------------------------------
def test_api_refuses_non_finite_seconds_and_survives_a_nan_line_already_in_the_file(folder):
    """One POST with "seconds": NaN used to be written, and from then on /api/state, /api/row and
    /api/decide answered 500 for everyone (also after a restart) and the card showed "nan s"."""
    path = folder / "reviews.jsonl"
    path.write_text('{"v": 1, "seq": 1, "time": "t", "type": "decision", "action": "accept", "row": 0, "id": "r0", '
                    '"reviewer": "ana", "llm_label": 0, "seconds": NaN}\n'
                    '{"v": 1, "seq": 2, "time": "t", "type": "decision", "action": "drop", "row": 1, "id": "r1", '
                    '"reviewer": "ana", "llm_label": 1, "seconds": 2.5}\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        srv = review(folder, block=False, open_browser=False, quiet=True)
        try:
            for raw in (b"NaN", b"1e309", b"-Infinity", b"-3", b"true", b'"5"', b"1e9"):
                body = b'{"reviewer": "bob", "row": 2, "action": "accept", "seconds": ' + raw + b"}"
                status, out = _call(srv.url + "api/decide", body)
                assert status == 400 and "seconds=" in out["error"] and "finite number" in out["error"], (raw, out)
            status, state = _call(srv.url + "api/state?reviewer=ana")
            assert status == 200 and state["skipped_lines"] == 1 and list(state["decisions"]) == ["1"]
            assert _call(srv.url + "api/row/0?reviewer=ana")[0] == 200
            status, out = _call(srv.url + "api/decide", {"reviewer": "bob", "row": 2, "action": "accept", "seconds": 4})
            assert status == 200 and out["record"]["seconds"] == 4.0
            status, out = _call(srv.url + "api/merge", {})
            assert status == 200, out
        finally:
            srv.stop()
    assert sum("line 1 is skipped" in str(w.message) for w in caught) >= 1
    lines = path.read_text().splitlines()
    assert "NaN" in lines[0] and not any("Infinity" in x or "1e309" in x for x in lines)  # the file is append-only
    card = (folder / "README.md").read_text()
    assert "## Human review" in card and not re.search(r"\b(nan|inf)\b", card, re.IGNORECASE)
    prov = json.loads((folder / "provenance.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in provenance"))
    assert prov["review"]["by_reviewer"]["ana"]["seconds_per_row"] == 2.5
