"""Annotator (label + confidence from one scoring pass, or votes), calibration, and selective annotation."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from realdata import rotten_tomatoes, rotten_tomatoes_embeddings
from synth_datasets import LLM, Annotator, Selector
from synth_datasets.errors import InvalidParameterError, NotFittedError
from synth_datasets.generate.annotate import annotation_report, expected_calibration_error
from synth_datasets.generate.select import knn, uncertainty, vote_k
from synth_datasets.llm import ChatRequest
from synth_datasets.llm.scoring import continuation_logprobs

RT_TEMPLATE = ("Is the following movie review positive or negative? Answer with one word.\n\n"
               "Review: {{ text }}")
RT_VERBALIZERS = {"fresh": "positive", "rotten": "negative"}


# -- pieces without a model -----------------------------------------------------------------------------
def test_ece_against_a_direct_computation():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 500)
    correct = rng.uniform(size=500) < conf ** 2
    expected = 0.0
    for lo in np.arange(10) / 10:
        sel = (conf >= lo) & (conf < lo + 0.1)
        if sel.any():
            expected += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    assert expected_calibration_error(conf, correct) == pytest.approx(expected)
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0


def test_bad_configuration_is_refused_before_any_call():
    llm = LLM("http://127.0.0.1:9/v1", model="m")
    with pytest.raises(InvalidParameterError, match="not in labels"):
        Annotator(llm, ["fresh", "rotten"], RT_TEMPLATE, verbalizers={"good": "positive"})
    with pytest.raises(InvalidParameterError, match="method='score' needs a local model"):
        Annotator(llm, ["a", "b"], RT_TEMPLATE, method="score")
    with pytest.raises(InvalidParameterError, match="distinct"):
        Annotator(llm, ["a", "a"], RT_TEMPLATE)
    ann = Annotator(llm, ["fresh", "rotten"], RT_TEMPLATE)
    assert ann.method == "logprobs"  # an endpoint: first-token logprobs (votes where there are none)
    with pytest.raises(InvalidParameterError, match="top_logprobs=30"):
        Annotator(llm, ["a", "b"], RT_TEMPLATE, top_logprobs=30)
    with pytest.raises(InvalidParameterError, match="method='logprobs' reads an endpoint"):
        Annotator(LLM(), ["a", "b"], RT_TEMPLATE, method="logprobs")
    with pytest.raises(InvalidParameterError, match="Output column 'label' already exists"):
        ann({"text": ["x"], "label": ["y"]})


def test_uncertainty_scores():
    p = np.array([[0.9, 0.1, 0.0], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0]])
    assert list(np.argsort(-uncertainty(p, "entropy"))) == [1, 2, 0]
    assert list(np.argsort(-uncertainty(p, "least_confidence"), kind="stable")) == [1, 2, 0]
    assert list(np.argsort(-uncertainty(p, "margin"), kind="stable")) == [2, 1, 0]


def _vote_k_reference(x, budget, k=10, rho=10.0):
    """Su et al.'s stage-1 rule recomputed from scratch at every pick."""
    nbr, n, picked = knn(x, k), len(x), []
    for _ in range(budget):
        chosen = set(picked)
        score = np.zeros(n)
        for v in range(n):
            if v not in chosen:
                score[nbr[v]] += rho ** -len(chosen.intersection(nbr[v]))
        score[list(chosen)] = -np.inf
        picked.append(int(np.argmax(score)))
    return picked


def test_vote_k_matches_the_rule_recomputed_at_every_pick():
    x = np.random.default_rng(1).normal(size=(300, 16))
    assert vote_k(x, 12) == _vote_k_reference(x, 12)
    # exact k-NN
    sims = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (x / np.linalg.norm(x, axis=1, keepdims=True)).T
    np.fill_diagonal(sims, -np.inf)
    assert (knn(x, 5) == np.argsort(-sims, axis=1)[:, :5]).all()


def test_selector_fit_then_map():
    probs = [[0.9, 0.1], [0.5, 0.5], None, [0.7, 0.3], [0.6, 0.4]]
    ds = Dataset.from_dict({"p": probs, "text": list("abcde")})
    sel = Selector("least_confidence", budget=2, probs_column="p")
    with pytest.raises(NotFittedError):
        ds.map(sel, batched=True, with_indices=True)
    out = ds.map(sel.fit(ds), batched=True, with_indices=True, batch_size=2)
    assert out["selected"] == [False, True, False, False, True]
    assert out["selected_rank"] == [3, 0, 4, 2, 1]  # the row without a distribution comes last
    assert sel.selected_indices == [1, 4]
    with pytest.raises(InvalidParameterError, match="with_indices=True"):
        ds.map(sel, batched=True)
    rnd = Selector("random", budget=3, seed=4).fit(ds)
    assert len(rnd.selected_indices) == 3 and rnd.selected_indices == Selector("random", budget=3, seed=4).fit(ds).selected_indices
    assert sel.describe()["strategy"] == "least_confidence" and sel.describe()["selected"] == 2


def test_diverse_selection_covers_real_reviews_better_than_random():
    """On 4,866 embedded Rotten Tomatoes snippets, k-means and vote-k picks leave every review closer to
    a picked one (diverse), and sit in denser neighbourhoods (representative), than random picks."""
    rows, x = rotten_tomatoes_embeddings(4866, 0)
    x = x.astype(np.float32)
    ds = {"emb": x}

    def coverage(idx):  # mean cosine similarity of each row to its nearest pick
        return float((x @ x[idx].T).max(1).mean())

    nbr = knn(x, 10)
    density = np.einsum("nd,nkd->nk", x, x[nbr]).mean(1)  # mean similarity to the 10 nearest reviews

    picks = {s: Selector(s, budget=50, embedding_column="emb", seed=0).fit(ds).selected_indices
             for s in ("kmeans", "vote_k")}
    rand = [Selector("random", budget=50, seed=s).fit(ds).selected_indices for s in range(5)]
    for s, idx in picks.items():
        assert len(set(idx)) == 50
        assert coverage(idx) > max(coverage(r) for r in rand), s
        assert density[idx].mean() > max(density[r].mean() for r in rand), s


# -- the embedded model ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_scoring_equals_a_full_forward_per_label(embedded_llm):
    """The cached-prompt scoring pass gives each label's total log-probability, multi-token labels
    included, as a plain forward pass over prompt + label does."""
    import torch

    backend = embedded_llm.backend
    tok, model = backend.tokenizer, backend._model
    reqs = [ChatRequest.of([{"role": "user", "content": f"Is '{t}' positive or negative?"}], 0)
            for t in ("a dull, lifeless film", "pure joy from start to finish", "ok")]
    labels = ["positive", "negative", "somewhat mixed feelings"]
    got = [c.logprobs for c in continuation_logprobs(embedded_llm, reqs, labels)]
    # single-token labels take the backend's one-step pass (shared prefix computed once): same values
    single = [c.logprobs for c in continuation_logprobs(embedded_llm, reqs, labels[:2])]
    assert np.allclose(np.array(single), np.array(got)[:, :2], atol=2e-3)
    for r, row in zip(reqs, got):
        prompt = backend._prompt_text(r.as_messages())
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        for label, value in zip(labels, row):
            full = tok(prompt + label, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].float(), -1)
            ref = sum(float(logp[j - 1, full[j]]) for j in range(len(p_ids), len(full)))
            assert value == pytest.approx(ref, abs=2e-3), (label, value, ref)


@pytest.mark.slow
def test_annotator_on_real_reviews_with_calibration(embedded_llm):
    rows = rotten_tomatoes(60, seed=3)
    ds = Dataset.from_dict({"text": [r["text"] for r in rows], "gold": [r["label"] for r in rows]})
    ann = Annotator(embedded_llm, ["fresh", "rotten"], RT_TEMPLATE, verbalizers=RT_VERBALIZERS)
    assert ann.method == "score"
    out = ds.map(ann, batched=True, batch_size=32)
    assert out["label_error"] == [None] * 60
    probs = np.array(out["label_probs"])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.allclose(np.array(out["label_confidence"]), probs.max(1), atol=1e-6)
    assert [ann.labels[i] for i in probs.argmax(1)] == out["label"]
    report = annotation_report(out, "label", "gold")
    assert report["accuracy"] > 0.6, report  # zero-shot, 135M parameters: well above chance (0.5)

    # temperature fitted on 20 other labelled rows; later confidences follow softmax(logits / T)
    cal_rows = rotten_tomatoes(80, seed=3)[60:]
    fit = ann.calibrate(Dataset.from_dict({"text": [r["text"] for r in cal_rows],
                                           "gold": [r["label"] for r in cal_rows]}), "gold")
    assert fit["rows"] == 20 and fit["nll_after"] <= fit["nll_before"] + 1e-9
    assert ann.describe()["calibration"]["temperature"] == fit["temperature"] != 1.0
    z, _ = ann.logits(ds[:5])
    e = np.exp(z / fit["temperature"] - (z / fit["temperature"]).max(1, keepdims=True))
    again = ds.select(range(5)).map(ann, batched=True)
    assert np.allclose(np.array(again["label_probs"]), e / e.sum(1, keepdims=True), atol=1e-5)


# -- an endpoint: votes ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_votes_through_llama_server(llama_server, tmp_path):
    llm = LLM(llama_server, model="smollm2", cache=tmp_path / "c.sqlite")
    ann = Annotator(llm, ["fresh", "rotten"], RT_TEMPLATE, verbalizers=RT_VERBALIZERS, votes=3, max_new_tokens=6,
                    method="vote")
    rows = rotten_tomatoes(4, seed=5)
    out = Dataset.from_dict({"text": [r["text"] for r in rows]}).map(ann, batched=True)
    assert llm.stats["requests"] == 12  # 3 sampled replies per row
    for label, conf, probs, err in zip(out["label"], out["label_confidence"], out["label_probs"], out["label_error"]):
        if err is None:
            assert label in ("fresh", "rotten") and abs(sum(probs) - 1) < 1e-5 and conf == max(probs)
            # the (smoothed) share of the replies that named a label: a/b with b <= 3 such replies
            assert min(abs(conf - a / b) for b in (1, 2, 3) for a in range(1, b + 1)) < 0.01 and conf >= 0.5
        else:
            assert label is None and "no label named in 3 replies" in err
    assert sum(e is None for e in out["label_error"]) >= 2


# -- an endpoint: the first token's top_logprobs ---------------------------------------------------------
@pytest.mark.slow
def test_logprobs_through_llama_server(llama_server, tmp_path):
    import json
    import urllib.request

    llm = LLM(llama_server, model="smollm2", cache=tmp_path / "c.sqlite")
    template = RT_TEMPLATE + "\nAnswer:"
    ann = Annotator(llm, ["fresh", "rotten"], template, verbalizers=RT_VERBALIZERS, votes=3, max_new_tokens=6)
    assert ann.method == "logprobs"
    rows = rotten_tomatoes(6, seed=5)
    out = Dataset.from_dict({"text": [r["text"] for r in rows]}).map(ann, batched=True)
    by = ann.describe()["scored_by"]
    assert by.get("logprobs", 0) >= 4, by  # the embedded model starts most replies with a label word
    assert llm.stats["requests"] == 6 + 3 * by.get("vote", 0)  # one request per row, votes only where needed
    # recompute the logprob rows from the server's raw answer: every spelling of the label's first token
    spellings = {lab: {w[:i] for i in range(1, len(w) + 1)} for lab, w in RT_VERBALIZERS.items()}
    checked = 0
    for r, probs in zip(rows, out["label_probs"]):
        body = {"model": "smollm2", "messages": [{"role": "user", "content": template.replace(
            "{{ text }}", r["text"])}], "max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": 20,
            "seed": 0}
        req = urllib.request.Request(llama_server + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        top = json.loads(urllib.request.urlopen(req, timeout=120).read())["choices"][0]["logprobs"]["content"][0]
        alts = {a["token"]: a["logprob"] for a in top["top_logprobs"]}
        mass = {lab: sum(np.exp(v) for t, v in alts.items() if t.strip().lower() in sp) for lab, sp in spellings.items()}
        if all(m > 0 for m in mass.values()):
            total = mass["fresh"] + mass["rotten"]
            assert probs == pytest.approx([mass["fresh"] / total, mass["rotten"] / total], abs=1e-4)
            checked += 1
    assert checked >= 3

    # one verbalizer begins the other: no first token names one label alone, so every row is voted on
    llm2 = LLM(llama_server, model="smollm2", cache=tmp_path / "c2.sqlite")
    ann2 = Annotator(llm2, ["fresh", "rotten"], template, verbalizers={"fresh": "goodreview", "rotten": "goodreviews"},
                     votes=3, max_new_tokens=6)
    Dataset.from_dict({"text": [r["text"] for r in rows[:2]]}).map(ann2, batched=True)
    assert ann2.describe()["scored_by"] == {"vote": 2} and llm2.stats["requests"] == 2 + 6
