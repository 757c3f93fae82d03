"""LLM-based curation on real models: the judge and generation probability on the embedded model and
on llama.cpp's server, self-consistency over k real samples. Few short rows, small max_new_tokens."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from datasets import Dataset, load_from_disk

from synth_datasets import LLM, Template, TextGenerator, curate
from synth_datasets.llm import ChatRequest
from synth_datasets.errors import InvalidParameterError, MissingColumnError

SAMPLES = ["The movie was a delight: sharp writing and warm performances.",
           "film bad bad bad the the the",
           "Paris is the capital of France.",
           "asdf qwer zxcv"]


def _disk(tmp_path, rows, name="ds"):
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / name))
    return load_from_disk(str(tmp_path / name))


def test_parse_score_is_robust():
    cases = {"Score: 4\nGood.": 4.0, '{"score": 2, "why": "x"}': 2.0, "Rating: 5/5": 5.0, "**Score**: 3": 3.0,
             "I would rate this 4 out of 5.": 4.0, "Score: 7": None, "no number": None, None: None,
             "Score: 4.5 (very good)": 4.5, "1. Clarity: fine. Score: 2": 2.0}
    assert {k: curate.parse_score(k, (1, 5)) for k in cases} == cases
    assert curate.parse_score("Score: 7", (0, 10)) == 7.0


def _check_judge(llm, tmp_path):
    ds = _disk(tmp_path, {"text": SAMPLES})
    judge = curate.LLMJudge(llm=llm, threshold=3, max_new_tokens=16, method="generate")
    marked = ds.map(judge.mark, batched=True, batch_size=2)
    replies, scores = list(marked["judge_reply"]), list(marked["judge_score"])
    assert all(isinstance(r, str) and r for r in replies)
    assert scores == [curate.parse_score(r, (1, 5)) for r in replies]       # the recorded score is the parse
    assert all(p.endswith("'Score: <number>' followed by one short sentence of explanation.") and s in p
               for p, s in zip(marked["judge_prompt"], SAMPLES))
    expected = ["unparsable" if s is None else ("low_score" if s < 3 else None) for s in scores]
    assert list(marked["judge_reason"]) == expected
    requests = llm.stats["requests"] + llm.stats["cache_hits"]
    kept = marked.filter(judge, batched=True)                                  # decides on the recorded scores
    assert llm.stats["requests"] + llm.stats["cache_hits"] == requests         # no LLM call at all
    assert list(kept["text"]) == [t for t, r in zip(SAMPLES, expected) if r is None]
    assert judge.counts(marked)["total"] == 4
    d = judge.describe()
    assert d["template"]["user"] == curate.DEFAULT_RUBRIC.user and d["llm"]["kind"] == llm.kind
    assert ds.map(curate.LLMJudge(llm=llm, threshold=3, max_new_tokens=16, method="generate").mark, batched=True,
                  batch_size=2).cache_files == marked.cache_files
    return scores


def _check_genprob(llm, tmp_path):
    ds = _disk(tmp_path, {"topic": ["cats", "the sea", "a city at night"]}, "topics")
    gen = TextGenerator(llm, Template(user="Write one sentence about {{ topic }}."), max_new_tokens=16,
                        logprobs=True, temperature=0.8)
    out = ds.map(gen, batched=True)
    lps = list(out["text_logprobs"])
    means = [float(np.mean(lp)) for lp in lps]
    assert all(len(lp) > 0 and max(lp) <= 0 for lp in lps)
    threshold = float(np.median(means))
    gp = curate.GenerationProbability(min_mean_logprob=threshold)
    marked = out.map(gp.mark, batched=True)
    assert list(marked["genprob_score"]) == pytest.approx(means)
    assert list(marked["genprob_reason"]) == [None if m >= threshold else "low_probability" for m in means]
    assert marked.filter(gp, batched=True).num_rows == sum(m >= threshold for m in means) == 2


@pytest.mark.slow
def test_judge_and_generation_probability_on_embedded_model(embedded_llm, tmp_path):
    scores = _check_judge(embedded_llm, tmp_path)
    print("embedded judge scores:", scores)
    _check_genprob(embedded_llm, tmp_path)


@pytest.mark.slow
def test_judge_scores_every_row_from_rating_logprobs(embedded_llm, tmp_path):
    """method="logprobs" (the default on a local model): the score is the expected rating under the
    model's next-token distribution over "1".."5" after "Score: ", so every row gets one; it reads the
    text column given by column= and the label column given by label_column=."""
    from synth_datasets.llm.choices import choice_logprobs

    llm = embedded_llm
    ds = _disk(tmp_path, {"review": SAMPLES, "sentiment": ["positive", "negative", "positive", "negative"]})
    judge = curate.LLMJudge(llm=llm, column="review", threshold=3)
    assert judge.mode == "logprobs"
    marked = ds.map(judge.mark, batched=True, batch_size=2)
    scores = list(marked["judge_score"])
    assert all(isinstance(s, float) and 1 <= s <= 5 for s in scores)          # every row scored
    assert list(marked["judge_reason"]) == [None if s >= 3 else "low_score" for s in scores]
    assert all(r.startswith("Score: ") and "expected" in r for r in marked["judge_reply"])
    assert scores[0] > scores[1]  # a fluent review over "film bad bad bad the the the"
    # the score is the expectation under the rating tokens' distribution, computed directly
    requests = [ChatRequest.of(curate.DEFAULT_RUBRIC.render({"text": t, "scale_min": 1, "scale_max": 5}), 0)
                for t in SAMPLES]
    before = llm.stats["cache_hits"]
    direct = choice_logprobs(llm, requests, ["1", "2", "3", "4", "5"], prefix="Score: ")
    assert llm.stats["cache_hits"] - before == 4                              # judged once, cached
    for s, c in zip(scores, direct):
        p = np.exp(np.array(c.logprobs) - max(c.logprobs))
        assert s == pytest.approx(float(p @ np.arange(1, 6)) / p.sum(), abs=1e-3)
    d = judge.describe()
    assert d["mode"] == "logprobs" and d["text_column"] == "review" and d["scoring"]["choices"] == list("12345")
    # a label-aware rubric: label_column= feeds {{ label }}
    labelled = curate.LLMJudge(llm=llm, column="review", label_column="sentiment", threshold=3)
    out = ds.map(labelled.mark, batched=True)
    assert all("the label 'positive'" in p or "the label 'negative'" in p for p in out["judge_prompt"])
    assert all(isinstance(s, float) for s in out["judge_score"])
    rubric = Template(user="Is this a {{ label }} movie review? Rate it {{ scale_min }}-{{ scale_max }}. "
                           "Review: {{ text }} Answer 'Score: <number>'.")
    custom = ds.map(curate.LLMJudge(llm=llm, template=rubric, column="review", label_column="sentiment").mark,
                    batched=True)
    assert custom["judge_prompt"][1] == f"Is this a negative movie review? Rate it 1-5. Review: {SAMPLES[1]} " \
                                        "Answer 'Score: <number>'."
    with pytest.raises(MissingColumnError, match="column 'mood' is not in the dataset"):
        ds.map(curate.LLMJudge(llm=llm, column="review", label_column="mood").mark, batched=True)
    with pytest.raises(InvalidParameterError, match="not distinct single tokens"):   # "10" is two tokens
        ds.map(curate.LLMJudge(llm=llm, column="review", scale=(0, 10), method="logprobs").mark, batched=True)
    assert curate.LLMJudge(llm=llm, scale=(0, 10), threshold=5).mode == "generate"     # auto: digits only
    assert curate.LLMJudge(llm=llm, scale=(1.0, 2.5), threshold=2).mode == "generate"
    with pytest.raises(InvalidParameterError, match="needs a local model"):
        curate.LLMJudge(llm=LLM("http://127.0.0.1:9/v1", model="m"), method="logprobs")


@pytest.mark.slow
def test_judge_and_generation_probability_on_llama_server(llama_server, tmp_path):
    llm = LLM(llama_server, model="smollm2", cache=tmp_path / "c.sqlite")
    assert curate.LLMJudge(llm=llm).mode == "generate"          # endpoints: generate and parse
    scores = _check_judge(llm, tmp_path)
    print("llama.cpp judge scores:", scores)
    _check_genprob(llm, tmp_path)


@pytest.mark.slow
def test_self_consistency_over_real_samples(embedded_llm, tmp_path):
    ds = _disk(tmp_path, {"review": ["I loved every minute of it.", "Dull, long and pointless.",
                                     "It was fine, I guess."]})
    gen = TextGenerator(embedded_llm, Template(user="Is this review positive or negative? Answer with one word.\n"
                                                    "Review: {{ review }}"),
                        output="answer", n=5, max_new_tokens=4, temperature=1.0)
    samples = ds.map(gen, batched=True)
    assert samples.num_rows == 15
    sc = curate.SelfConsistency(group_columns=["review"], label_column="answer", labels=["positive", "negative"],
                                min_agreement=0.6).fit(samples)
    m = samples.map(sc.mark, batched=True, with_indices=True)
    for g in range(3):
        rows = list(range(5 * g, 5 * g + 5))
        answers = [sc.parse(samples["answer"][i]) for i in rows]
        votes = Counter(a for a in answers if a is not None)
        agreement = max(votes.values()) / 5 if votes else 0.0
        assert all(m["self_consistency_agreement"][i] == pytest.approx(agreement) for i in rows)
        assert [m["self_consistency_answer"][i] for i in rows] == answers
        reasons = [m["self_consistency_reason"][i] for i in rows]
        if agreement < 0.6:
            assert set(reasons) == {"low_agreement"}
        else:
            assert reasons.count(None) == 1 and m["self_consistency_majority"][rows[reasons.index(None)]] == \
                votes.most_common(1)[0][0]
    print("self-consistency:", list(m["self_consistency_agreement"])[::5])


def test_self_consistency_rules_and_errors():
    ds = Dataset.from_dict({"q": ["a"] * 4 + ["b"] * 4, "ans": ["Positive!", "positive", "negative", "meh",
                                                             "negative", "Negative.", "negative", "positive"]})
    sc = curate.SelfConsistency(group_columns=["q"], label_column="ans", labels=["positive", "negative"]).fit(ds)
    m = ds.map(sc.mark, batched=True, with_indices=True)
    assert list(m["self_consistency_answer"]) == ["positive", "positive", "negative", None,
                                                  "negative", "negative", "negative", "positive"]
    assert list(m["self_consistency_agreement"]) == [0.5] * 4 + [0.75] * 4
    assert list(m["self_consistency_reason"]) == [None, "extra_sample", "not_majority", "not_majority",
                                                  None, "extra_sample", "extra_sample", "not_majority"]
    strict = curate.SelfConsistency(group_columns=["q"], label_column="ans", labels=["positive", "negative"],
                                    min_agreement=0.6).fit(ds)
    assert strict.stats["dropped_low_agreement"] == 4
    with pytest.raises(MissingColumnError, match="column 'answer' is not in the dataset"):
        curate.SelfConsistency(group_columns=["q"], label_column="answer").fit(ds)
    with pytest.raises(InvalidParameterError, match="threshold=6 must be a number in"):
        curate.LLMJudge(llm=LLM(), threshold=6)
    with pytest.raises(InvalidParameterError, match="scale="):
        curate.LLMJudge(llm=LLM(), scale=(5, 1))
    with pytest.raises(MissingColumnError, match="generate with logprobs=True"):
        Dataset.from_dict({"text": ["x"]}).filter(curate.GenerationProbability(), batched=True)
    with pytest.raises(InvalidParameterError, match="min_mean_logprob=0.5"):
        curate.GenerationProbability(min_mean_logprob=0.5)
