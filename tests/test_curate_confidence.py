"""Classifier and neighbour consistency, student relabelling and weights on real Rotten Tomatoes
snippets (packaged MiniLM embeddings) with 20% of the labels flipped at random by the test.

Floors (measured on this data, 2,000 snippets, seed 0; see the printed numbers): MiniLM + logistic
regression reaches only ~0.75 accuracy on fresh/rotten critic snippets, so a flag based on it cannot
reach 0.6 precision at 0.6 recall when 20% of labels are wrong (a clean row is flagged whenever the
student errs). The floors are therefore set against chance: a random flag has precision 0.2 (the
noise rate); we require >= 0.33 precision (a 1.65x lift) at >= 0.55-0.6 recall, and an AUROC of the
score >= 0.72 (chance is 0.5). Measured here: classifier (default: confident-learning thresholds)
precision 0.434 / recall 0.621 / AUROC 0.768 (0.377 / 0.692 at min_confidence=0.5);
neighbours (k=50) precision 0.387 / recall 0.668 / AUROC 0.751 at min_agreement 0.5 (0.414 / 0.585 with
the default confident-learning thresholds); student relabelling at min_confidence 0.55 restores 0.60 of
the flipped labels but also changes 319 clean ones (label accuracy 0.790 -> 0.757), the default
self-chosen thresholds relabel 268 rows, 59% correctly (0.790 -> 0.816); NoiseScore F1 0.544 (learned
combiner; 0.524 rank-averaged) vs cleanlab's find_label_issues 0.487 on the same out-of-fold
probabilities; SunGenWeights: a model trained with them is 0.728 accurate on real held-out snippets
(0.696 unweighted, 0.706 with ConfidenceWeights).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from datasets.fingerprint import Hasher

from realdata import CACHE, rotten_tomatoes
from synth_datasets import curate
from synth_datasets.embeddings import embed_texts, embedding_model_identity, out_of_fold_proba
from synth_datasets.errors import InvalidParameterError, MissingColumnError

N, NOISE = 2000, 0.2


def _pr(flag, truth):
    tp = int((flag & truth).sum())
    return tp / max(int(flag.sum()), 1), tp / int(truth.sum())


def _auroc(score, truth):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(truth, score)


@pytest.fixture(scope="session")
def rt_noisy(tmp_path_factory):
    """2,000 real snippets with embeddings (computed once, cached on disk by content + model version),
    20% labels flipped; saved to disk so `datasets` caching applies."""
    rows = rotten_tomatoes(N, seed=0)
    texts = [r["text"] for r in rows]
    key = hashlib.sha256(json.dumps([texts, embedding_model_identity()]).encode()).hexdigest()[:16]
    path = CACHE / f"rt_minilm_{key}.npy"
    if path.exists():
        x = np.load(path)
    else:
        x = embed_texts(texts)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, x)
    clean = [r["label"] for r in rows]
    rng = np.random.default_rng(0)
    flipped = rng.random(N) < NOISE
    noisy = [({"fresh": "rotten", "rotten": "fresh"}[v] if f else v) for v, f in zip(clean, flipped)]
    d = tmp_path_factory.mktemp("rt") / "ds"
    Dataset.from_dict({"id": [f"rt{i}" for i in range(N)], "text": texts, "label": noisy, "clean": clean,
                       "emb": x.tolist()}).save_to_disk(str(d))
    return load_from_disk(str(d)), x, np.array(clean, dtype=object), np.array(noisy, dtype=object), flipped


def test_classifier_consistency_flags_flipped_labels(rt_noisy):
    ds, x, clean, noisy, flipped = rt_noisy
    cc = curate.ClassifierConsistency(embedding_column="emb", labels=["fresh", "rotten"]).fit(ds)
    m = ds.map(cc.mark, batched=True, batch_size=500, with_indices=True)
    flag = np.array([r is not None for r in m["clf_consistency_reason"]])
    prec, rec = _pr(flag, flipped)
    auc = _auroc(1 - np.array(m["clf_consistency_confidence"]), flipped)
    print(f"classifier consistency: precision {prec:.3f} recall {rec:.3f} AUROC {auc:.3f} flagged {flag.sum()}")
    assert prec >= 0.33 and rec >= 0.6 and auc >= 0.72
    # the recorded scores are the cross-partition probabilities, computed directly
    p, classes = out_of_fold_proba(x, list(noisy), folds=5, seed=0)
    given = np.array([classes.index(v) for v in noisy])
    np.testing.assert_allclose(m["clf_consistency_confidence"], p[np.arange(N), given], rtol=1e-6)
    assert list(m["clf_consistency_predicted"]) == [classes[i] for i in p.argmax(1)]
    # why cross-partition: a classifier that saw the rows finds far fewer of its own training errors
    from sklearn.linear_model import LogisticRegression

    seen = LogisticRegression(max_iter=1000).fit(x, given).predict(x) != given
    assert _pr(seen, flipped)[1] < _pr(p.argmax(1) != given, flipped)[1]
    assert cc.describe()["counts"] == {"total": N, "kept": N - int(flag.sum()), "dropped": int(flag.sum()),
                                       "dropped_classifier_disagrees": int(flag.sum())}
    assert cc.describe()["embeddings"] == {"column": "emb"}
    kept = ds.filter(cc, batched=True, with_indices=True)
    assert kept.num_rows == N - flag.sum()
    again = curate.ClassifierConsistency(embedding_column="emb", labels=["fresh", "rotten"]).fit(ds)
    assert Hasher.hash(again) == Hasher.hash(cc)
    assert ds.filter(again, batched=True, with_indices=True).cache_files == kept.cache_files
    assert Hasher.hash(curate.ClassifierConsistency(embedding_column="emb").fit(ds.select(range(500)))) != Hasher.hash(cc)


def test_default_thresholds_keep_correct_labels_and_still_catch_flips(rt_noisy):
    """The default rule (confident learning's per-class thresholds) on real labels: with 400 correct
    labels it drops far fewer rows than min_confidence=0.5 (which, with two labels, drops every row the
    out-of-fold classifier gets wrong); with 20% of 2,000 labels flipped it still finds them."""
    ds, x, clean, noisy, flipped = rt_noisy
    correct = Dataset.from_dict({"emb": x[:400].tolist(), "label": list(clean[:400])})
    default = curate.ClassifierConsistency(embedding_column="emb").fit(correct)
    strict = curate.ClassifierConsistency(embedding_column="emb", min_confidence=0.5).fit(correct)
    dropped, dropped_05 = int((~default.keep_mask).sum()), int((~strict.keep_mask).sum())
    p, classes = out_of_fold_proba(x[:400], list(clean[:400]), folds=5, seed=0)
    y = np.array([classes.index(v) for v in clean[:400]])
    wrong = int((p.argmax(1) != y).sum())
    print(f"400 correct labels: default drops {dropped}, min_confidence=0.5 drops {dropped_05} "
          f"(classifier wrong on {wrong}); thresholds {default.describe()['thresholds']}")
    assert dropped_05 == wrong                      # 0.5 with two labels = every classifier error
    assert dropped <= 0.2 * 400 and dropped < 0.7 * dropped_05   # measured 64 vs 109
    # the thresholds are each class's mean self-confidence; the rule is confident learning's
    t = np.array([p[y == j, j].mean() for j in range(2)])
    assert default.describe()["thresholds"] == pytest.approx({c: t[j] for j, c in enumerate(classes)})
    assert strict.describe().get("thresholds") is None
    other = 1 - y
    expected = p[np.arange(400), other] >= t[other]  # binary: the other class reaches its threshold
    assert ((~default.keep_mask) == expected).all()
    # flipped labels are still caught
    found = curate.ClassifierConsistency(embedding_column="emb").fit(ds)
    prec, rec = _pr(~found.keep_mask, flipped)
    print(f"20% flipped of {N}: default precision {prec:.3f} recall {rec:.3f}")
    assert prec >= 0.4 and rec >= 0.6                # measured 0.434 / 0.621 (0.5: 0.377 / 0.692)


def test_support_set_of_real_labels_trains_the_auxiliary_model(rt_noisy):
    """support= (50 real, correctly labelled rows not in the data): with the folds, every fold's model also
    trains on them; with support_only=True one model trained on them alone scores every row. Both are
    recomputed directly with scikit-learn. Measured (flip detection, default thresholds, 2,000 rows, 20%
    flipped): out-of-fold F1 0.511, out-of-fold + 50 support 0.514, 50 support alone 0.411 (200 support
    alone: 0.516)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    ds, x, clean, noisy, flipped = rt_noisy
    extra = rotten_tomatoes(N + 50, seed=0)[N:]
    sx = embed_texts([r["text"] for r in extra]).astype(np.float64)
    sy = [r["label"] for r in extra]
    support = Dataset.from_dict({"emb": sx.tolist(), "label": sy})
    classes = ["fresh", "rotten"]
    y, s_idx = np.array([classes.index(v) for v in noisy]), np.array([classes.index(v) for v in sy])

    alone = curate.ClassifierConsistency(embedding_column="emb", support=support, support_only=True).fit(ds)
    ref = LogisticRegression(max_iter=1000).fit(sx, s_idx).predict_proba(x)
    np.testing.assert_allclose(alone._fitted["columns"]["clf_consistency_confidence"], ref[np.arange(N), y], rtol=1e-6)
    both = curate.ClassifierConsistency(embedding_column="emb", support=support).fit(ds)
    ref = np.zeros((N, 2))
    for train, test in StratifiedKFold(n_splits=5, shuffle=True, random_state=0).split(x, y):
        clf = LogisticRegression(max_iter=1000).fit(np.r_[x[train], sx], np.r_[y[train], s_idx])
        ref[test] = clf.predict_proba(x[test])
    np.testing.assert_allclose(both._fitted["columns"]["clf_consistency_confidence"], ref[np.arange(N), y], rtol=1e-6)

    def f1(cc):
        prec, rec = _pr(~cc.keep_mask, flipped)
        return 2 * prec * rec / (prec + rec)
    plain = curate.ClassifierConsistency(embedding_column="emb").fit(ds)
    print(f"flip F1: out-of-fold {f1(plain):.3f}, + 50 support {f1(both):.3f}, 50 support alone {f1(alone):.3f}")
    assert f1(both) >= f1(plain) - 0.01 and _pr(~alone.keep_mask, flipped)[0] > 1.4 * NOISE  # above chance
    assert both.describe()["support"] == {"rows": 50, "labels": dict(sorted(Counter(sy).items())), "support_only": False}
    assert "support" not in plain.describe() and Hasher.hash(both) != Hasher.hash(plain)
    # the student and the weights take it too
    w = curate.ConfidenceWeights(embedding_column="emb", support=support).fit(ds)
    assert w._fitted["weight"][flipped].mean() < 0.8 * w._fitted["weight"][~flipped].mean()
    rl = curate.StudentRelabel(embedding_column="emb", support=support, support_only=True).fit(ds)
    assert rl.describe()["support"]["support_only"] is True
    with pytest.raises(InvalidParameterError, match=r"support labels \['pos'\] are not labels of the data"):
        curate.ClassifierConsistency(embedding_column="emb", support=support.map(lambda r: {"label": "pos"})).fit(ds)
    with pytest.raises(InvalidParameterError, match="support_only=True needs support="):
        curate.ConfidenceWeights(support_only=True)
    with pytest.raises(MissingColumnError, match=r"\(support=\): column 'label' is not in the dataset"):
        curate.StudentRelabel(embedding_column="emb", support=support.remove_columns("label"))


def test_neighbour_consistency_flags_flipped_labels_and_matches_sklearn(rt_noisy):
    from sklearn.neighbors import NearestNeighbors

    ds, x, clean, noisy, flipped = rt_noisy
    nc = curate.NeighbourConsistency(embedding_column="emb", k=50, min_agreement=0.5).fit(ds)
    m = ds.map(nc.mark, batched=True, batch_size=500, with_indices=True)
    agree = np.array(m["knn_consistency_agreement"])
    flag = np.array([r is not None for r in m["knn_consistency_reason"]])
    assert (flag == (agree < 0.5)).all()
    prec, rec = _pr(flag, flipped)
    auc = _auroc(1 - agree, flipped)
    print(f"neighbour consistency (k=50): precision {prec:.3f} recall {rec:.3f} AUROC {auc:.3f}")
    assert prec >= 0.33 and rec >= 0.55 and auc >= 0.7
    # reference: scikit-learn's exact brute-force cosine neighbours (self excluded)
    _, nn = NearestNeighbors(n_neighbors=51, metric="cosine", algorithm="brute").fit(x).kneighbors(x)
    ref = np.array([np.mean(noisy[[j for j in row if j != i][:50]] == noisy[i]) for i, row in enumerate(nn)])
    assert np.mean(np.abs(ref - agree) > 1e-9) < 0.005  # identical but for rare exact-similarity ties
    assert nc.describe()["counts"]["dropped_neighbours_disagree"] == int(flag.sum())


def test_student_relabel_restores_flipped_labels(rt_noisy):
    ds, x, clean, noisy, flipped = rt_noisy
    rl = curate.StudentRelabel(embedding_column="emb", labels=["fresh", "rotten"], min_confidence=0.55).fit(ds)
    out = ds.map(rl, batched=True, batch_size=500, with_indices=True)
    new = np.array(out["label"], dtype=object)
    assert list(out["label_original"]) == list(noisy)
    restored = float(np.mean(new[flipped] == clean[flipped]))
    broken = int(((new != clean) & ~flipped).sum())
    before, after = float(np.mean(noisy == clean)), float(np.mean(new == clean))
    print(f"relabel: restored {restored:.3f} of flipped, broke {broken} clean labels, "
          f"label accuracy {before:.3f} -> {after:.3f}, relabelled {rl.stats['relabelled']}")
    assert restored >= 0.5
    changed = new != noisy
    assert list(out["relabel_reason"]) == ["relabelled" if c else None for c in changed]
    assert rl.stats["relabelled"] == int(changed.sum())
    assert rl.stats["relabelled_fresh->rotten"] + rl.stats["relabelled_rotten->fresh"] == int(changed.sum())
    # a stricter student changes fewer labels, and those it changes are more often right
    strict = curate.StudentRelabel(embedding_column="emb", min_confidence=0.75).fit(ds)
    s_new = np.array(strict.new_labels, dtype=object)
    s_changed = s_new != noisy
    assert s_changed.sum() < changed.sum()
    assert np.mean(s_new[s_changed] == clean[s_changed]) > np.mean(new[changed] == clean[changed])
    # by id, on a shuffled dataset
    by_id = curate.StudentRelabel(embedding_column="emb", id_column="id", min_confidence=0.55).fit(ds)
    sh = ds.shuffle(seed=3).select(range(200)).map(by_id, batched=True)
    pos = [int(i[2:]) for i in sh["id"]]
    assert list(sh["label"]) == [new[i] for i in pos]
    with pytest.raises(InvalidParameterError, match="fit on the same dataset you map"):
        out.map(rl, batched=True, with_indices=True)  # labels already changed


def test_student_relabel_default_thresholds_raise_label_accuracy(rt_noisy):
    """The self-chosen per-class thresholds (mean confidence over the rows the student agrees with)
    never lower label accuracy here, where a fixed 0.55 does (measured 0.790 -> 0.816 vs 0.757)."""
    from synth_datasets.curate.student import relabel_thresholds

    ds, x, clean, noisy, flipped = rt_noisy
    rl = curate.StudentRelabel(embedding_column="emb").fit(ds)
    new = np.array(rl.new_labels, dtype=object)
    before, after = float(np.mean(noisy == clean)), float(np.mean(new == clean))
    fixed = np.array(curate.StudentRelabel(embedding_column="emb", min_confidence=0.55).fit(ds).new_labels, dtype=object)
    changed = new != noisy
    print(f"relabel (default thresholds {rl.describe()['thresholds']}): label accuracy {before:.3f} -> {after:.3f}, "
          f"relabelled {int(changed.sum())}, {np.mean(new[changed] == clean[changed]):.3f} of them correctly; "
          f"min_confidence=0.55: {np.mean(fixed == clean):.3f}")
    assert after >= before + 0.01 and after > float(np.mean(fixed == clean))
    assert np.mean(new[changed] == clean[changed]) > 0.5   # a relabel is right more often than not
    # the recorded thresholds are recomputed from the out-of-fold probabilities, and they are the rule
    p, classes = out_of_fold_proba(x, list(noisy), folds=5, seed=0)
    yi = np.array([classes.index(v) for v in noisy])
    t = relabel_thresholds(p, yi)
    assert rl.describe()["thresholds"] == pytest.approx({c: t[j] for j, c in enumerate(classes)}, abs=1e-6)
    pred = p.argmax(1)
    expect = np.where((pred != yi) & (p[np.arange(N), pred] >= t[pred]), np.array(classes, dtype=object)[pred], noisy)
    assert (expect == new).all()
    assert rl.stats["relabelled"] == int(changed.sum())
    assert curate.StudentRelabel(embedding_column="emb", min_confidence=0.55).fit(ds).describe().get("thresholds") is None


def test_neighbour_consistency_default_thresholds(rt_noisy):
    """Default (no min_agreement): confident learning on the neighbour vote, thresholds recorded."""
    from synth_datasets.curate.confidence import confident_flags, confident_thresholds

    ds, x, clean, noisy, flipped = rt_noisy
    nc = curate.NeighbourConsistency(embedding_column="emb", k=50).fit(ds)
    flag = ~nc.keep_mask
    prec, rec = _pr(flag, flipped)
    print(f"neighbour consistency (k=50, default thresholds {nc.describe()['thresholds']}): precision {prec:.3f} "
          f"recall {rec:.3f} flagged {int(flag.sum())}")
    assert prec >= 0.38 and rec >= 0.55          # measured 0.414 / 0.585 (0.387 / 0.668 at min_agreement=0.5)
    classes = sorted(set(noisy.tolist()))
    yi = np.array([classes.index(v) for v in noisy])
    share, vclasses, _ = nc.vote(ds)
    assert vclasses == classes
    t = confident_thresholds(share, yi)
    assert nc.describe()["thresholds"] == pytest.approx({c: t[j] for j, c in enumerate(classes)}, abs=1e-6)
    assert (confident_flags(share, yi, t) == flag).all()


def test_weights_down_weight_flipped_rows(rt_noisy):
    from sklearn.linear_model import LogisticRegression

    ds, x, clean, noisy, flipped = rt_noisy
    w = curate.ConfidenceWeights(embedding_column="emb").fit(ds)
    out = ds.map(w, batched=True, with_indices=True)
    weight = np.array(out["weight"])
    assert weight.mean() == pytest.approx(1.0) and weight.min() > 0
    print(f"weights: mean on flipped {weight[flipped].mean():.3f}, on clean {weight[~flipped].mean():.3f}")
    assert weight[flipped].mean() < 0.8 * weight[~flipped].mean()  # measured 0.74x
    # training with the weights: accuracy against the clean labels of held-out rows, 5 splits
    gains = []
    for s in range(5):
        idx = np.random.default_rng(s).permutation(N)
        tr, te = idx[:1500], idx[1500:]
        plain = LogisticRegression(max_iter=1000).fit(x[tr], noisy[tr])
        weighted = LogisticRegression(max_iter=1000).fit(x[tr], noisy[tr], sample_weight=weight[tr])
        gains.append(np.mean(weighted.predict(x[te]) == clean[te]) - np.mean(plain.predict(x[te]) == clean[te]))
    print(f"weighted training: accuracy gain on clean held-out labels {np.mean(gains):+.4f} ({np.round(gains, 3)})")
    assert np.mean(gains) > 0
    sample = curate.weighted_sample(out, seed=0)
    assert sample.num_rows == N and np.mean(np.array(sample["label"]) == np.array(sample["clean"])) > np.mean(noisy == clean)
    assert w.describe()["counts"]["weight_mean"] == pytest.approx(1.0)


def test_consistency_bad_input(rt_noisy):
    ds = rt_noisy[0].select(range(40))
    with pytest.raises(InvalidParameterError, match=r"label 'fresh' in row \d+ of column 'label' is not one of"):
        curate.ClassifierConsistency(embedding_column="emb", labels=["pos", "neg"]).fit(ds)
    with pytest.raises(MissingColumnError, match="column 'vector' is not in the dataset"):
        curate.NeighbourConsistency(embedding_column="vector").fit(ds)
    with pytest.raises(InvalidParameterError, match=r"min_agreement=1.5 must be a number in \[0.0, 1.0\]"):
        curate.NeighbourConsistency(min_agreement=1.5)
    with pytest.raises(InvalidParameterError, match="min_confidence=-0.1"):
        curate.StudentRelabel(min_confidence=-0.1)
    with pytest.raises(InvalidParameterError, match="single label"):
        curate.ClassifierConsistency(embedding_column="emb").fit(ds.filter(lambda r: r["label"] == "fresh"))
    with pytest.raises(InvalidParameterError, match="k=40 must be smaller"):
        curate.NeighbourConsistency(embedding_column="emb", k=40).fit(ds)


def test_consistency_embeds_text_with_packaged_model(rt_noisy):
    ds = rt_noisy[0].select(range(60))
    from_text = curate.NeighbourConsistency(column="text", k=5).fit(ds)
    from_column = curate.NeighbourConsistency(embedding_column="emb", k=5).fit(ds)
    assert from_text.describe()["embeddings"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    np.testing.assert_allclose(from_text._fitted["columns"]["knn_consistency_agreement"],
                               from_column._fitted["columns"]["knn_consistency_agreement"])


def test_ivf_neighbours_against_exact_on_real_embeddings(rt_noisy):
    ds, x, clean, noisy, flipped = rt_noisy
    exact, _ = curate.knn(x, 20, method="exact")
    approx, _ = curate.knn(x, 20, method="ivf", nprobe=16)
    recall = np.mean([len(set(a) & set(b)) / 20 for a, b in zip(exact, approx)])
    agree_exact = (noisy[exact] == noisy[:, None]).mean(1)
    agree_ivf = (noisy[approx] == noisy[:, None]).mean(1)
    print(f"IVF neighbour recall {recall:.3f}; mean |agreement difference| {np.abs(agree_exact - agree_ivf).mean():.4f}")
    assert (approx != np.arange(N)[:, None]).all()
    assert recall >= 0.8 and np.abs(agree_exact - agree_ivf).mean() < 0.05


def test_noise_score_combines_signals_and_beats_cleanlab(rt_noisy):
    """Combined evidence (classifier + neighbours; default: a logistic-regression combiner fitted on flips
    simulated on the data, prune-and-retrain second round) against cleanlab's find_label_issues on the
    same first-round out-of-fold probabilities, and against rank averaging. Measured (2,000 rows, 20%
    flips, seed 0): learned 0.545, rank average 0.524, cleanlab 0.487, classifier alone 0.511."""
    from cleanlab.filter import find_label_issues
    from synth_datasets.curate.combined import rank_average

    ds, x, clean, noisy, flipped = rt_noisy

    def f1(flag):
        prec, rec = _pr(flag, flipped)
        return 2 * prec * rec / (prec + rec)

    ns = curate.NoiseScore(embedding_column="emb", labels=["fresh", "rotten"]).fit(ds)
    m = ds.map(ns.mark, batched=True, batch_size=500, with_indices=True)
    flag = np.array([r is not None for r in m["noise_reason"]])
    assert (flag == ~ns.keep_mask).all()
    own, dist, yi = ns.signals(ds)
    p, classes = out_of_fold_proba(x, list(noisy), folds=5, seed=0)
    assert np.allclose(dist["classifier"], p)
    ref = f1(find_label_issues(yi, p))
    alone = f1(~curate.ClassifierConsistency(embedding_column="emb").fit(ds).keep_mask)
    rank = curate.NoiseScore(embedding_column="emb", combine="rank").fit(ds)
    d = ns.describe()
    print(f"noise score: F1 {f1(flag):.3f} (precision/recall {_pr(flag, flipped)}), rank average "
          f"{f1(~rank.keep_mask):.3f}, cleanlab {ref:.3f}, classifier alone {alone:.3f}; estimated noise rate "
          f"{d['estimated_noise_rate']} (true {flipped.mean():.3f}); combiner {d['combiner']}")
    assert f1(flag) >= ref + 0.04 and f1(flag) > alone and f1(flag) > f1(~rank.keep_mask) + 0.01
    assert _auroc(np.array(m["noise_score"]), flipped) > _auroc(1 - p[np.arange(N), yi], flipped) + 0.01
    assert d["flagged"] == int(flag.sum()) and d["estimated_noise_rate"] == pytest.approx(flag.mean(), abs=1e-6)
    assert 0.1 <= d["estimated_noise_rate"] <= 0.4
    assert d["counts"]["dropped_noisy_label"] == int(flag.sum())
    score = np.array(m["noise_score"])
    assert score[flag].min() >= score[~flag].max()       # the flagged rows are the top scores
    # the combiner recorded in the card is the score: a logistic function of the signals' log-odds
    c = d["combiner"]
    assert c["features"] == ["logit p(classifier)", "logit p(neighbours)", "label=1"]
    assert c["coef"][0] < 0 and c["coef"][1] < 0       # a likelier own label = less likely flipped
    feats = [np.log(np.clip(v, 1e-3, 1 - 1e-3) / np.clip(1 - v, 1e-3, 1 - 1e-3))
             for v in (np.array(m["noise_classifier"]), np.array(m["noise_neighbours"]))] + [yi]
    z = np.column_stack(feats) @ np.array(c["coef"]) + c["intercept"]
    assert np.allclose(score, 1 / (1 + np.exp(-z)), atol=1e-3)
    # rank averaging, one round: the rank average of the two signals, recomputed directly
    one = curate.NoiseScore(embedding_column="emb", rounds=1, combine="rank").fit(ds)
    nc = curate.NeighbourConsistency(embedding_column="emb", k=50).fit(ds)
    agree = np.array(ds.map(nc.mark, batched=True, batch_size=500, with_indices=True)["knn_consistency_agreement"])
    expect = rank_average(1 - p[np.arange(N), yi], 1 - agree)
    got = np.array(ds.map(one.mark, batched=True, batch_size=500, with_indices=True)["noise_score"])
    assert np.allclose(got, expect)
    assert "combiner" not in one.describe() and one.describe()["combine"] == "rank average"


def test_noise_score_bad_input_and_fingerprint(rt_noisy):
    ds = rt_noisy[0]
    for kw in ({"rounds": 3}, {"k": 0}, {"folds": 1}, {"method": "lsh"}, {"combine": "mean"}, {"inject": 0.9},
               {"simulate": 0}, {"head": "svm"}):
        with pytest.raises(InvalidParameterError):
            curate.NoiseScore(embedding_column="emb", **kw)
    with pytest.raises(MissingColumnError):
        curate.NoiseScore(embedding_column="nope").fit(ds)
    a, b = curate.NoiseScore(embedding_column="emb"), curate.NoiseScore(embedding_column="emb")
    assert Hasher.hash(a) == Hasher.hash(b) != Hasher.hash(curate.NoiseScore(embedding_column="emb", rounds=1))
    assert Hasher.hash(a) != Hasher.hash(curate.NoiseScore(embedding_column="emb", combine="rank"))
    with pytest.raises(InvalidParameterError, match="smallest class"):
        curate.NoiseScore(embedding_column="emb", folds=5).fit(ds.select(range(N - 20, N)).map(
            lambda b: {"label": ["fresh"] * 17 + ["rotten"] * 3}, batched=True))


def test_noise_score_takes_a_label_probability_column(rt_noisy):
    """An extra signal (one probability per label, e.g. an LLM's label distribution) enters the score
    and the noise estimate. Here a column that knows the clean label 90% of the time (a strong but
    imperfect third opinion): detection must improve well beyond the two embedding signals."""
    ds, x, clean, noisy, flipped = rt_noisy
    rng = np.random.default_rng(1)
    right = rng.random(N) < 0.9
    guess = np.where(right, clean, np.where(clean == "fresh", "rotten", "fresh"))
    probs = [[0.8, 0.2] if g == "fresh" else [0.2, 0.8] for g in guess]
    ds3 = ds.add_column("llm_probs", probs)
    ns = curate.NoiseScore(embedding_column="emb", labels=["fresh", "rotten"], probs_columns=["llm_probs"]).fit(ds3)
    base = curate.NoiseScore(embedding_column="emb").fit(ds)

    def f1(flag):
        prec, rec = _pr(flag, flipped)
        return 2 * prec * rec / (prec + rec)

    print(f"noise score with a 90%-right probability column: F1 {f1(~ns.keep_mask):.3f} vs {f1(~base.keep_mask):.3f}")
    assert f1(~ns.keep_mask) >= f1(~base.keep_mask) + 0.1
    # a weak soft opinion, as accurate as the embedded SmolLM2's zero-shot label probability on these
    # snippets (0.73): log-odds of the clean label ~ N(0.6, 1), independent of the flips. The learned
    # combiner must beat cleanlab on the classifier's probabilities by the issue's +0.10 and beat rank
    # averaging of the same three signals (measured: 0.610 vs cleanlab 0.487 vs rank 0.596).
    from cleanlab.filter import find_label_issues

    z = np.random.default_rng(2).normal(0.6, 1.0, N)
    pc = 1 / (1 + np.exp(-z))
    weak = np.where(clean == "fresh", pc, 1 - pc)
    dsw = ds.add_column("llm_probs", np.column_stack([weak, 1 - weak]).tolist())
    kw = {"embedding_column": "emb", "labels": ["fresh", "rotten"], "probs_columns": ["llm_probs"]}
    learned = curate.NoiseScore(**kw).fit(dsw)
    rank = curate.NoiseScore(**kw, combine="rank").fit(dsw)
    own, dist, yi = learned.signals(dsw)
    ref = f1(find_label_issues(yi, dist["classifier"]))
    print(f"weak column (accuracy {np.mean((weak > 0.5) == (clean == 'fresh')):.3f}): learned F1 "
          f"{f1(~learned.keep_mask):.3f}, rank {f1(~rank.keep_mask):.3f}, cleanlab {ref:.3f}")
    assert f1(~learned.keep_mask) >= ref + 0.10 and f1(~learned.keep_mask) > f1(~rank.keep_mask)
    assert ns.describe()["signals"] == ["classifier", "neighbours", "llm_probs"]
    # the label order of the column is the labels= order, not the sorted classes
    rev = ds.add_column("llm_probs", [p[::-1] for p in probs])
    ns_rev = curate.NoiseScore(embedding_column="emb", labels=["rotten", "fresh"], probs_columns="llm_probs").fit(rev)
    assert (ns_rev.keep_mask == ns.keep_mask).all()
    with pytest.raises(InvalidParameterError, match="needs labels="):
        curate.NoiseScore(embedding_column="emb", probs_columns=["llm_probs"])
    with pytest.raises(InvalidParameterError, match="row 0 of column 'llm_probs'"):
        curate.NoiseScore(embedding_column="emb", labels=["fresh", "rotten"], probs_columns=["llm_probs"]).fit(
            ds.add_column("llm_probs", [[1.0]] * N))


def test_mlp_head_is_an_option_of_the_student_curators(rt_noisy):
    """head="mlp" (one hidden layer over frozen MiniLM) against the default logistic head, out-of-fold on
    the noisy labels, scored on the clean ones: measured 0.697 vs 0.696 accuracy here (and ~30x the fit time, see
    BENCHMARKS.md), which is why logistic stays the default. Both must beat chance by far."""
    from sklearn.neural_network import MLPClassifier

    ds, x, clean, noisy, flipped = rt_noisy
    p_mlp, classes = out_of_fold_proba(x, list(noisy), folds=5, seed=0, head="mlp")
    p_log, _ = out_of_fold_proba(x, list(noisy), folds=5, seed=0)
    acc = {h: np.mean(np.array(classes, dtype=object)[p.argmax(1)] == clean) for h, p in (("mlp", p_mlp), ("log", p_log))}
    print(f"out-of-fold accuracy on the clean labels: {acc}")
    assert acc["mlp"] > 0.65 and acc["log"] > 0.65 and abs(acc["mlp"] - acc["log"]) < 0.05
    # the same MLP the head describes, recomputed with scikit-learn on fold 0
    from sklearn.model_selection import StratifiedKFold

    yi = np.array([classes.index(v) for v in noisy])
    train, test = next(StratifiedKFold(5, shuffle=True, random_state=0).split(x, yi))
    ref = MLPClassifier((64,), alpha=0.1, max_iter=333, early_stopping=True, random_state=0).fit(x[train], yi[train]).predict_proba(x[test])
    assert np.allclose(p_mlp[test], ref)
    cc = curate.ClassifierConsistency(embedding_column="emb", head="mlp").fit(ds)
    prec, rec = _pr(~cc.keep_mask, flipped)
    assert prec > 0.33 and rec > 0.5 and cc.describe()["params"]["head"] == "mlp"
    rl = curate.StudentRelabel(embedding_column="emb", head="mlp").fit(ds)
    assert np.mean(np.array(rl.new_labels, dtype=object) == clean) > np.mean(noisy == clean)
    assert Hasher.hash(curate.StudentRelabel(embedding_column="emb")) != Hasher.hash(
        curate.StudentRelabel(embedding_column="emb", head="mlp"))
    with pytest.raises(InvalidParameterError, match="head='svm'"):
        curate.ConfidenceWeights(embedding_column="emb", head="svm")


def test_sungen_weights_learned_beat_the_heuristic(rt_noisy):
    """SunGenWeights (bilevel-lite: weighted cross-entropy inner model, robust loss on the other half as
    judge) down-weights flipped rows, and a model trained with its weights is more accurate on real
    held-out rows than one trained without weights. Measured (train on these 2,000 noisy rows, test on
    the clean labels of 2,866 other snippets): uniform 0.696, ConfidenceWeights 0.706, SunGenWeights 0.728."""
    from realdata import rotten_tomatoes_embeddings
    from sklearn.linear_model import LogisticRegression

    ds, x, clean, noisy, flipped = rt_noisy
    sw = curate.SunGenWeights(embedding_column="emb")
    assert Hasher.hash(sw) == Hasher.hash(curate.SunGenWeights(embedding_column="emb")) != Hasher.hash(
        curate.SunGenWeights(embedding_column="emb", q=0.7))
    out = ds.map(sw.fit(ds), batched=True, batch_size=500, with_indices=True)
    w = np.array(out["weight"])
    assert w.mean() == pytest.approx(1.0) and (w > 0).all() and np.allclose(w, sw.weights)
    print(f"SunGen weights: mean on flipped {w[flipped].mean():.3f}, clean {w[~flipped].mean():.3f}, AUROC "
          f"{_auroc(-w, flipped):.3f}")
    assert w[flipped].mean() < 0.8 * w[~flipped].mean() and _auroc(-w, flipped) > 0.7
    rows, xa = rotten_tomatoes_embeddings(4866, seed=0)
    assert np.allclose(xa[:N], x, atol=1e-5)
    xte, yte = xa[N:], np.array([r["label"] for r in rows[N:]], dtype=object)

    def tstr(weight):
        return np.mean(LogisticRegression(max_iter=1000).fit(x, noisy, sample_weight=weight).predict(xte) == yte)

    cw = np.array(curate.ConfidenceWeights(embedding_column="emb").fit(ds)._fitted["weight"])
    acc = {"uniform": tstr(None), "confidence": tstr(cw), "sungen": tstr(w)}
    print(f"train on noisy, test on real: {acc}")
    assert acc["sungen"] >= acc["uniform"] + 0.01 and acc["sungen"] >= acc["confidence"]
    d = sw.describe()
    assert d["counts"]["weight_mean"] == pytest.approx(1.0) and "bilevel" in d["method"]
    for kw in ({"steps": 0}, {"q": 0.0}, {"lr": -1.0}, {"min_weight": 2.0}):
        with pytest.raises(InvalidParameterError):
            curate.SunGenWeights(embedding_column="emb", **kw)
    with pytest.raises(InvalidParameterError, match="fitted on"):
        ds.select(range(10)).map(lambda b: {"label": ["fresh" if v == "rotten" else "rotten" for v in b["label"]]},
                                 batched=True).map(sw, batched=True, with_indices=True)
