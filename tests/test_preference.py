"""Open evaluation by ranking: Bradley–Terry against a direct scipy MLE, Elo by hand, position-bias
cancellation, bootstrap intervals, the evaluate module, the plot, and the judge on the embedded model."""

from __future__ import annotations

import numpy as np
import pytest

from synth_datasets.errors import InvalidParameterError
from synth_datasets.metrics.preference import (PAIRWISE_RUBRIC_TEMPLATE, PreferenceJudge, bradley_terry, combine,
                                               elo, outcome_table, position_bias, rank)
from synth_datasets.hub.report import plot_scores

# wins[i, j]: matches system i won against j (a fixed table; ties counted as half a win each way)
TABLE = np.array([[0, 7, 9, 5.5],
                  [3, 0, 6, 4],
                  [1, 4, 0, 2.5],
                  [4.5, 6, 7.5, 0]])


def _scipy_mle(wins: np.ndarray, prior: float = 0.0) -> np.ndarray:
    from scipy.optimize import minimize

    w = wins + prior / 2 * (1 - np.eye(len(wins)))

    def nll(free):
        t = np.concatenate([[0.0], free])
        d = t[:, None] - t[None, :]
        return -(w * (d - np.logaddexp(0.0, d))).sum()

    res = minimize(nll, np.zeros(len(w) - 1), method="BFGS", options={"gtol": 1e-12})
    t = np.concatenate([[0.0], res.x])
    return t - t.mean()


@pytest.mark.parametrize("prior", [0.0, 0.5, 3.0])
def test_bradley_terry_equals_scipy_mle(prior):
    np.testing.assert_allclose(bradley_terry(TABLE, prior=prior), _scipy_mle(TABLE, prior), atol=1e-6)


def test_bradley_terry_refuses_infinite_strengths():
    wins = np.array([[0, 5], [0, 0]], dtype=float)
    with pytest.raises(InvalidParameterError, match="prior > 0"):
        bradley_terry(wins)
    assert bradley_terry(wins, prior=1.0)[0] > 0


def test_outcome_table_counts_ties_as_half():
    models, wins = outcome_table(["x", "x", "y"], ["y", "y", "x"], ["a", "tie", "a"])
    assert models == ["x", "y"] and wins.tolist() == [[0, 1.5], [1.5, 0]]


def test_elo_by_hand():
    r = elo(["x", "x"], ["y", "y"], ["a", "tie"], ["x", "y"], k=32)
    first = 16.0                                    # expected 0.5, scored 1
    ex = 1 / (1 + 10 ** ((-2 * first) / 400))       # x is now 32 points ahead
    second = 32 * (0.5 - ex)
    np.testing.assert_allclose(r, [1000 + first + second, 1000 - first - second])


def test_position_bias_is_measured_and_cancelled():
    # a judge that always prefers the first slot: every pair is a tie after cancelling
    table = {"model_a": ["x"] * 6, "model_b": ["y"] * 6, "verdict_ab": ["A"] * 6, "verdict_ba": ["A"] * 6}
    table["winner"] = [combine(a, b) for a, b in zip(table["verdict_ab"], table["verdict_ba"])]
    assert set(table["winner"]) == {"tie"}
    bias = position_bias(table)
    assert (bias["first_position_rate"], bias["order_consistency"]) == (1.0, 0.0)
    r = rank(table, bootstrap=50)
    assert r["bradley_terry"] == {"x": 0.0, "y": 0.0} and r["ties"] == 6
    # a consistent judge: x wins in both orders
    assert combine("A", "B") == "a" and combine("B", "A") == "b" and combine("C", "C") == "tie"


def test_rank_intervals_and_plot(tmp_path):
    rng = np.random.default_rng(1)
    a, b, w = [], [], []
    for _ in range(120):  # x beats y 80% of the time, y beats z 65%
        for (p, q, pw) in (("x", "y", 0.8), ("y", "z", 0.65), ("x", "z", 0.9)):
            a.append(p), b.append(q), w.append("a" if rng.random() < pw else "b")
    r = rank({"model_a": a, "model_b": b, "winner": w}, bootstrap=200, seed=0)
    assert r["models"] == ["x", "y", "z"]
    bt, ci = r["bradley_terry"], r["bradley_terry_ci"]
    assert bt["x"] > bt["y"] > bt["z"]
    for m in bt:
        assert ci[m][0] <= bt[m] <= ci[m][1]
    assert ci["x"][0] > ci["y"][1] and ci["y"][0] > ci["z"][1]  # separated at this sample size
    assert r["elo"]["x"] > r["elo"]["z"] and r["elo_ci"]["x"][0] > r["elo_ci"]["z"][1]
    assert rank({"model_a": a, "model_b": b, "winner": w}, bootstrap=200, seed=0) == r  # seeded
    png = plot_scores(r, tmp_path / "ranking.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



def test_a_score_outside_its_bootstrap_interval_still_plots(tmp_path):
    """A percentile interval over a few prompts can lie wholly on one side of the point estimate (it did for
    the README's four-prompt example); the plot draws the interval from its ends, the same bytes each time."""
    r = {"models": ["normal", "cut"], "matches": 16, "confidence": 0.95,
         "bradley_terry_elo_scale": {"normal": 1012.0, "cut": 988.0},
         "bradley_terry_elo_scale_ci": {"normal": [1020.0, 1090.0], "cut": [900.0, 985.0]}}
    a = plot_scores(r, tmp_path / "a.png").read_bytes()
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and plot_scores(r, tmp_path / "b.png").read_bytes() == a


def test_intervals_resample_prompts_when_matches_on_a_prompt_are_correlated():
    # 3 identical matches per prompt (as when a judge sees the same answers): resampling single matches
    # pretends to 3x the evidence; resampling prompts does not
    per_prompt = ["a"] * 14 + ["b"] * 6
    table = {"prompt_index": [i for i in range(20) for _ in range(3)], "model_a": ["x"] * 60, "model_b": ["y"] * 60,
             "winner": [w for w in per_prompt for _ in range(3)]}
    by_prompt = rank(table, bootstrap=400, seed=0)
    by_match = rank(table, bootstrap=400, seed=0, resample="matches")
    assert by_prompt["resample"] == "prompts" and by_match["resample"] == "matches"
    assert by_prompt["bradley_terry"] == by_match["bradley_terry"]  # the point estimate does not change
    width = {k: np.diff(r["bradley_terry_ci"]["x"])[0] for k, r in (("p", by_prompt), ("m", by_match))}
    assert width["p"] > 1.4 * width["m"]  # ~sqrt(3) wider
    once = {k: table[k][::3] for k in table}  # the same evidence, one match per prompt
    w_once = np.diff(rank(once, bootstrap=400, seed=0, resample="matches")["bradley_terry_ci"]["x"])[0]
    assert w_once == pytest.approx(width["p"], rel=0.25)
    with pytest.raises(InvalidParameterError, match="prompt_index"):
        rank({k: table[k] for k in ("model_a", "model_b", "winner")}, resample="prompts")


def test_judge_options_are_checked_before_any_model_call():
    from synth_datasets import LLM

    llm = LLM(cache=False)  # the model loads lazily: none of these reach it
    with pytest.raises(InvalidParameterError, match="second"):
        PreferenceJudge(llm, pairwise_template="Which is better, A: {{ first }}? Answer A, B or C. {{ prompt }}")
    with pytest.raises(InvalidParameterError, match="decision"):
        PreferenceJudge(llm, decision="vote")
    with pytest.raises(InvalidParameterError, match="tie_margin"):
        PreferenceJudge(llm, tie_margin=0.5)
    judge = PreferenceJudge(llm, decision="probabilities", pairwise_template=PAIRWISE_RUBRIC_TEMPLATE)
    d = judge.describe()
    assert d["pairwise_template"] == PAIRWISE_RUBRIC_TEMPLATE and d["decision"] == "probabilities"
    with pytest.raises(InvalidParameterError, match="two systems"):
        judge.compare(["p"], {"only": ["x"]})
    with pytest.raises(InvalidParameterError, match="one response per prompt"):
        judge.compare(["p", "q"], {"x": ["a", "b"], "y": ["a"]})
    assert llm.backend._model is None  # nothing was loaded

def test_evaluate_module():
    import evaluate

    from synth_datasets import metric_path

    m = evaluate.load(metric_path("preference"))
    r = m.compute(model_a=["x"] * 4, model_b=["y"] * 4, winner=["a", "a", "tie", None], bootstrap=0, prior=0.5)
    models, wins = outcome_table(["x"] * 4, ["y"] * 4, ["a", "a", "tie", None])
    assert r["matches"] == 3 and r["no_verdict"] == 1
    assert r["bradley_terry"]["x"] == pytest.approx(_scipy_mle(wins, 0.5)[0], abs=1e-4)
    levels = evaluate.load(metric_path("preference"), "levels")
    assert levels.compute(model=["x", "x"], level=["A", "D"])["x"]["A"] == 0.5


@pytest.mark.slow
def test_the_embedded_judge_ranks_a_truncated_generator_lower(embedded_llm):
    """Full answers against the same answers cut to one word, 4 prompts, both orders (8 forward passes,
    no sampling). The 135M judge nearly always answers "A" (the first slot), so reading letters leaves
    mostly ties; its letter probabilities, averaged over both orders, prefer the full answer on every
    prompt (measured: expected score of the full answer 0.507 to 0.564)."""
    prompts = ["Describe a calm morning at the beach.", "Explain why people enjoy music.",
               "Give advice for a first job interview.", "Describe your favourite season."]
    full = ["The sun rises slowly over the quiet water, gulls call, and the sand is cool and soft underfoot.",
            "Music lifts our mood, brings back memories and lets people share feelings without words.",
            "Prepare by researching the company, practise your answers and arrive a few minutes early.",
            "Autumn is my favourite: crisp air, golden leaves and warm evenings with a good book."]
    cut = [t.split()[0] for t in full]  # deliberately degraded: truncated to one word
    table = PreferenceJudge(embedded_llm, decision="probabilities").compare(prompts, {"full": full, "truncated": cut})
    assert table["model_a"] == ["full"] * 4 and all(s > 0.5 for s in table["score_a"]), table["score_a"]
    for pab, pba, s in zip(table["probs_ab"], table["probs_ba"], table["score_a"]):  # the score is the probabilities'
        assert sum(pab) == pytest.approx(1, abs=1e-5) and s == pytest.approx((pab[0] + pab[2] / 2 + pba[1] + pba[2] / 2) / 2)
    r = rank(table, bootstrap=200)
    assert r["bradley_terry"]["full"] > r["bradley_terry"]["truncated"]
    assert r["bradley_terry_ci"]["full"][0] > r["bradley_terry_ci"]["truncated"][1]  # intervals separate
    # the same verdicts read as letters: the winner is the order-cancelled letter pair (cached: no new pass)
    letters = PreferenceJudge(embedded_llm).compare(prompts, {"full": full, "truncated": cut})
    assert letters["verdict_ab"] == table["verdict_ab"]
    assert letters["winner"] == [combine(a, b) for a, b in zip(letters["verdict_ab"], letters["verdict_ba"])]
    assert "b" not in letters["winner"]  # the truncated answer never wins in both orders
    levels = PreferenceJudge(embedded_llm).rate_levels(prompts[:2], {"full": full[:2]})
    assert all(x in ("A", "B", "C", "D") for x in levels["level"])
    for lv, p, score in zip(levels["level"], levels["level_probs"], levels["level_score"]):
        assert lv == "ABCD"[int(np.argmax(p))] and score == pytest.approx(4 * p[0] + 3 * p[1] + 2 * p[2] + p[3], abs=1e-5)

def test_a_ranking_passed_to_publish_is_plotted_in_the_report_and_kept_as_json(tmp_path):
    import json

    from datasets import Dataset

    from synth_datasets import publish

    a, b, w = ["normal"] * 30 + ["normal"] * 30, ["cut"] * 30 + ["hot"] * 30, ["a"] * 24 + ["b"] * 6 + ["a"] * 27 + ["tie"] * 3
    r = rank({"model_a": a, "model_b": b, "winner": w, "verdict_ab": ["A"] * 60, "verdict_ba": ["A"] * 60}, bootstrap=100)
    ds = Dataset.from_dict({"text": ["a short text", "another short text"]})
    res = publish(ds, tmp_path / "out", metrics=[{"ranking": r}])
    folder = tmp_path / "out"
    png = folder / "report" / "ranking_ranking.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (folder / "report" / "report.md").read_text()
    assert "![ranking](ranking_ranking.png)" in report and "## Ranking: ranking" in report
    best = max(r["bradley_terry_elo_scale"], key=r["bradley_terry_elo_scale"].get)
    first_row = next(line for line in report.splitlines() if line.startswith("| normal") or line.startswith("| hot")
                     or line.startswith("| cut"))
    assert best == "normal" and first_row.startswith(f"| normal | {r['bradley_terry_elo_scale']['normal']:.0f} |")
    assert "first slot in 100%" in report
    assert "report/ranking_ranking.png" in (folder / "README.md").read_text()  # the card shows the plot
    prov = json.loads((folder / "provenance.json").read_text())
    assert prov["metrics"]["ranking"]["bradley_terry"] == r["bradley_terry"]  # JSON, not a repr string
    assert res.provenance["metrics"]["ranking"]["bradley_terry_ci"]["normal"] == r["bradley_terry_ci"]["normal"]
