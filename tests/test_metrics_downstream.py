"""Downstream (TSTR) metric: checked against a direct scikit-learn pipeline, on real data (Rotten
Tomatoes snippets, packaged MiniLM embeddings) and through `evaluate.load("metrics/downstream")`."""

from __future__ import annotations

import math
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from realdata import rotten_tomatoes_embeddings
from synth_datasets.errors import InvalidParameterError
from synth_datasets.metrics import tstr

METRIC_DIR = Path(__file__).resolve().parent.parent / "metrics" / "downstream"


@pytest.fixture(scope="module")
def rt():
    """1,200 Rotten Tomatoes snippets and MiniLM embeddings: parts a (stand-in for a synthetic set),
    b (real test set) and c (real training set), 400 rows each."""
    rows, x = rotten_tomatoes_embeddings(1200, seed=0)
    labels = [r["label"] for r in rows]
    part = lambda s: SimpleNamespace(x=x[s], labels=labels[s], texts=[r["text"] for r in rows[s]])  # noqa: E731
    return SimpleNamespace(a=part(slice(0, 400)), b=part(slice(400, 800)), c=part(slice(800, 1200)))


def _blobs(n, seed, classes=("x", "y", "z")):
    """One class offset per label (fixed), n noisy rows drawn with ``seed``."""
    offsets = {c: np.random.default_rng(100 + i).normal(size=6) * 0.8 for i, c in enumerate(classes)}
    rng = np.random.default_rng(seed)
    y = rng.choice(list(classes), size=n).tolist()
    return rng.normal(size=(n, 6)) + np.array([offsets[c] for c in y]), y


@pytest.mark.parametrize("classifier", ["logreg", "knn", "tree"])
def test_tstr_and_trtr_equal_direct_scikit_learn(classifier):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    x_syn, y_syn = _blobs(300, 1)
    x_test, y_test = _blobs(200, 2)
    x_real, y_real = _blobs(200, 3)
    estimators = {"logreg": LogisticRegression(max_iter=1000, random_state=0),
                  "knn": KNeighborsClassifier(n_neighbors=5, metric="cosine"),
                  "tree": DecisionTreeClassifier(max_depth=3, random_state=0)}
    arg = DecisionTreeClassifier(max_depth=3, random_state=0) if classifier == "tree" else classifier
    out = tstr(train_embeddings=x_syn, train_labels=y_syn, test_embeddings=x_test, test_labels=y_test,
               real_train_embeddings=x_real, real_train_labels=y_real, classifier=arg)
    expected = {}
    for name, (x, y) in (("tstr", (x_syn, y_syn)), ("trtr", (x_real, y_real))):
        pred = estimators[classifier].fit(x, y).predict(x_test)
        expected[f"{name}_accuracy"] = accuracy_score(y_test, pred)
        expected[f"{name}_macro_f1"] = f1_score(y_test, pred, average="macro")
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, rel=1e-12), key
    assert out["accuracy_ratio"] == pytest.approx(expected["tstr_accuracy"] / expected["trtr_accuracy"], rel=1e-12)
    assert out["macro_f1_ratio"] == pytest.approx(expected["tstr_macro_f1"] / expected["trtr_macro_f1"], rel=1e-12)
    assert (out["n_train"], out["n_test"], out["n_real_train"], out["unseen_test_labels"]) == (300, 200, 200, 0)
    assert 0.5 < out["tstr_accuracy"] < 1.0


def test_integer_labels_and_unseen_test_labels():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    x, y = _blobs(400, 3, classes=(0, 1, 2, 10))
    train = [i for i in range(300) if y[i] != 10]  # label 10 never appears in the "synthetic" set
    out = tstr(train_embeddings=x[train], train_labels=[y[i] for i in train],
               test_embeddings=x[300:], test_labels=y[300:])
    pred = LogisticRegression(max_iter=1000, random_state=0).fit(x[train], [y[i] for i in train]).predict(x[300:])
    assert out["tstr_accuracy"] == pytest.approx(accuracy_score(y[300:], pred), rel=1e-12)
    assert out["tstr_macro_f1"] == pytest.approx(f1_score(y[300:], pred, average="macro"), rel=1e-12)
    assert out["unseen_test_labels"] == 1 and "trtr_accuracy" not in out


def test_tstr_on_real_data_tracks_label_quality(rt):
    a, b, c = rt.a, rt.b, rt.c
    clean = tstr(train_embeddings=a.x, train_labels=a.labels, test_embeddings=b.x, test_labels=b.labels,
                 real_train_embeddings=c.x, real_train_labels=c.labels)
    # a set drawn like the real one is as good as real training data
    assert clean["tstr_accuracy"] >= 0.68 and clean["trtr_accuracy"] >= 0.68
    assert 0.9 <= clean["accuracy_ratio"] <= 1.1 and 0.9 <= clean["macro_f1_ratio"] <= 1.1
    # the real training set used as "synthetic": TSTR is TRTR, ratio exactly 1
    same = tstr(train_embeddings=c.x, train_labels=c.labels, test_embeddings=b.x, test_labels=b.labels,
                real_train_embeddings=c.x, real_train_labels=c.labels)
    assert same["tstr_accuracy"] == same["trtr_accuracy"] and same["accuracy_ratio"] == 1.0
    # labels that carry no signal (each swapped with probability 0.5): chance level, ratio well below 1
    rng = random.Random(0)
    swap = {"fresh": "rotten", "rotten": "fresh"}
    noisy = [swap[v] if rng.random() < 0.5 else v for v in a.labels]
    bad = tstr(train_embeddings=a.x, train_labels=noisy, test_embeddings=b.x, test_labels=b.labels,
               real_train_embeddings=c.x, real_train_labels=c.labels)
    assert bad["tstr_accuracy"] <= 0.6 and bad["accuracy_ratio"] <= 0.85
    assert bad["trtr_accuracy"] == clean["trtr_accuracy"]  # the baseline does not depend on the synthetic set


def test_tstr_embeds_texts_with_packaged_minilm(rt):
    a, b = rt.a, rt.b
    from_texts = tstr(train_texts=a.texts[:30], train_labels=a.labels[:30], test_texts=b.texts[:20],
                      test_labels=b.labels[:20])
    from_x = tstr(train_embeddings=a.x[:30], train_labels=a.labels[:30], test_embeddings=b.x[:20],
                  test_labels=b.labels[:20])
    assert from_texts == from_x


X = np.random.default_rng(0).normal(size=(10, 3))
Y = ["a", "b"] * 5


@pytest.mark.parametrize("kwargs,match", [
    (dict(train_labels=[]), "train_labels is empty"),
    (dict(train_labels=None), "train_labels is missing"),
    (dict(train_labels=["a", None] * 5), r"train_labels\[1\] is None"),
    (dict(test_labels=Y[:9]), "test_embeddings has 10 rows but there are 9 labels"),
    (dict(train_labels=["a"] * 10), "single label 'a'"),
    (dict(train_embeddings=None), "exactly one of train_texts= or train_embeddings="),
    (dict(train_texts=["t"] * 10), "exactly one of train_texts= or train_embeddings="),
    (dict(test_embeddings=[[1.0, 2.0], [3.0]] * 5), "ragged"),
    (dict(test_embeddings=np.ones((10, 4))), "test features have dimension 4 but train features 3"),
    (dict(real_train_labels=Y), "exactly one of real_train_texts= or real_train_embeddings="),
    (dict(real_train_embeddings=X), "real_train_labels is missing"),
    (dict(classifier="svm"), "classifier='svm'"),
    (dict(train_texts=["a", None] * 5, train_embeddings=None), r"train_texts\[1\] is None"),
])
def test_bad_inputs_raise_clear_errors(kwargs, match):
    args = dict(train_embeddings=X, train_labels=Y, test_embeddings=X, test_labels=Y)
    args.update(kwargs)
    with pytest.raises(InvalidParameterError, match=match) as info:
        tstr(**args)
    assert isinstance(info.value, ValueError)


def test_evaluate_module_matches_library(rt):
    import evaluate

    metric = evaluate.load(str(METRIC_DIR))
    a, b, c = rt.a, rt.b, rt.c
    got = metric.compute(labels=a.labels, embeddings=a.x, test_labels=b.labels, test_embeddings=b.x,
                         real_train_labels=c.labels, real_train_embeddings=c.x)
    assert got == tstr(train_labels=a.labels, train_embeddings=a.x, test_labels=b.labels, test_embeddings=b.x,
                       real_train_labels=c.labels, real_train_embeddings=c.x)
    ints = metric.compute(labels=[int(v == "fresh") for v in a.labels], embeddings=a.x,
                          test_labels=[int(v == "fresh") for v in b.labels], test_embeddings=b.x, classifier="knn")
    assert ints == tstr(train_labels=[int(v == "fresh") for v in a.labels], train_embeddings=a.x,
                        test_labels=[int(v == "fresh") for v in b.labels], test_embeddings=b.x, classifier="knn")
    assert not math.isnan(ints["tstr_macro_f1"])
    with pytest.raises(ValueError, match="takes no predictions="):
        metric.compute(predictions=a.labels, references=b.labels)
    with pytest.raises(ValueError, match=r"train_labels\[2\] is None"):
        metric.compute(labels=["a", "b", None], embeddings=X[:3], test_labels=Y, test_embeddings=X)


def test_tstr_embeds_a_test_set_once(rt, monkeypatch):
    """Comparing variants against one real test set: the test set is embedded on the first call only
    (in memory, then from the cache folder on disk in a fresh process); the encoder's calls are counted
    on the real packaged model."""
    from synth_datasets import embeddings

    model = embeddings._minilm()
    encode, calls = model.encode, []

    def counting(texts, **kw):
        calls.append(len(texts))
        return encode(texts, **kw)

    monkeypatch.setattr(model, "encode", counting)
    a, b = rt.a, rt.b
    test = dict(test_texts=b.texts[20:60], test_labels=b.labels[20:60])
    first = tstr(train_texts=a.texts[30:60], train_labels=a.labels[30:60], **test)
    assert calls == [30, 40]                       # the variant, then the test set
    second = tstr(train_texts=a.texts[60:90], train_labels=a.labels[60:90], **test)
    assert calls == [30, 40, 30]                   # only the new variant
    embeddings._memory.clear()                     # as in a new process: the disk cache answers
    again = tstr(train_texts=a.texts[60:90], train_labels=a.labels[60:90], **test)
    assert calls == [30, 40, 30] and again == second
    files = list(embeddings.embeddings_cache_folder().glob("*.npy"))
    assert embeddings.texts_key(b.texts[20:60]) + ".npy" in {f.name for f in files}
    plain = tstr(train_embeddings=a.x[30:60], train_labels=a.labels[30:60], test_embeddings=b.x[20:60],
                 test_labels=b.labels[20:60])
    assert first == plain                          # cached embeddings are the encoder's embeddings
    uncached = tstr(train_texts=a.texts[30:60], train_labels=a.labels[30:60], cache=False, **test)
    assert calls == [30, 40, 30, 30, 40] and uncached == first
    changed = tstr(train_texts=a.texts[60:90], train_labels=a.labels[60:90], test_texts=b.texts[20:59] + ["new"],
                   test_labels=b.labels[20:60])
    assert calls[-1] == 40 and changed["n_test"] == 40  # other content: embedded again
