"""Open evaluation by ranking (§3.3.2), the acceptance run of issue 15: does an LLM judge on the embedded
model (SmolLM2-135M-Instruct) rank a normal generator above deliberately degraded ones, with
non-overlapping bootstrap intervals?

    OMP_NUM_THREADS=1 python benchmarks/bench_preference.py --prompts 60 --threads 1

Prompts: Self-Instruct's seed tasks (instruction + the first instance's input), ``--prompts`` of the
175 drawn with seed 0. Systems, all on the embedded model through ``TextGenerator``:
``normal`` (temperature 0.7), ``temperature_2`` (temperature 2.0, top_p 1.0), both at most
``--max-new-tokens``; ``truncated`` is ``normal``'s text cut to its first ``--truncate-words`` words.
Judge: ``PreferenceJudge`` on the same model, every pair on every prompt in both orders, read from the
next-token distribution over A/B/C; two decision rules from the same verdicts (``letters``: each order's
likeliest letter, disagreeing orders tie; ``probabilities``: the order-averaged expected score).
Then Self-Instruct's four-level rating of every response. ``--rubric``: the pairwise question with a
rubric (``PAIRWISE_RUBRIC_TEMPLATE``) instead, no level rating (``results/preference_rubric.json``). The response cache is on (a rerun only
re-aggregates); ``--cache`` picks its file. Writes ``benchmarks/results/preference.json`` and the
plot of each decision rule (``preference_<decision>.png``).
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import _common
from realdata import self_instruct_seeds

from synth_datasets import LLM, Template, TextGenerator
from synth_datasets.metrics.preference import (PAIRWISE_RUBRIC_TEMPLATE, PAIRWISE_TEMPLATE, PreferenceJudge,
                                               level_shares, rank)
from synth_datasets.hub.report import plot_scores


def prompts_of(n: int, seed: int = 0) -> list[str]:
    tasks = random.Random(seed).sample(list(self_instruct_seeds()), n)
    out = []
    for t in tasks:
        x = (t["instances"][0].get("input") or "").strip()
        out.append(t["instruction"].strip() + (f"\n\n{x}" if x else ""))
    return out


def separated(result: dict, key: str, best: str) -> dict[str, bool]:
    """Whether ``best``'s interval lies wholly above each other system's interval."""
    ci = result[f"{key}_ci"]
    return {m: ci[best][0] > ci[m][1] for m in result["models"] if m != best}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=60)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--truncate-words", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 on a shared machine)")
    ap.add_argument("--cache", default=None, help="response cache file (default: the library's)")
    ap.add_argument("--rubric", action="store_true", help="judge with PAIRWISE_RUBRIC_TEMPLATE; no level rating")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from datasets import Dataset

    prompts = prompts_of(args.prompts)
    llm = LLM(batch_size=args.batch_size, cache=args.cache if args.cache else True)
    llm.backend._load()
    ds = Dataset.from_dict({"prompt": prompts})
    template = Template(user="{{ prompt }}")
    responses, timing = {}, {}
    for name, temperature in (("normal", 0.7), ("temperature_2", 2.0)):
        gen = TextGenerator(llm, template, output="response", temperature=temperature, top_p=1.0,
                            max_new_tokens=args.max_new_tokens, seed=0)
        t0 = time.perf_counter()
        responses[name] = list(ds.map(gen, batched=True, batch_size=args.batch_size)["response"])
        timing[f"generate_{name}_s"] = round(time.perf_counter() - t0, 1)
    responses["truncated"] = [" ".join((t or "").split()[:args.truncate_words]) for t in responses["normal"]]

    result = {"prompts": len(prompts), "model": llm.identity_string(), "max_new_tokens": args.max_new_tokens,
              "truncate_words": args.truncate_words, "bootstrap": args.bootstrap,
              "mean_words": {m: round(sum(len((t or "").split()) for t in r) / len(r), 1)
                             for m, r in responses.items()},
              "examples": {m: r[:2] for m, r in responses.items()}, "decisions": {}}
    out = Path(_common.ROOT / "benchmarks" / "results")
    out.mkdir(exist_ok=True)
    for decision in ("letters", "probabilities"):
        judge = PreferenceJudge(llm, decision=decision,
                                pairwise_template=PAIRWISE_RUBRIC_TEMPLATE if args.rubric else PAIRWISE_TEMPLATE)
        t0 = time.perf_counter()
        table = judge.compare(prompts, responses)
        seconds = time.perf_counter() - t0
        r = rank(table, bootstrap=args.bootstrap, seed=0)
        plot_scores(r, out / f"preference{'_rubric' * args.rubric}_{decision}.png",
                    title=f"Embedded judge, {decision}: {len(prompts)} prompts, both orders")
        pairs = {}
        for a, b, w, sa in zip(table["model_a"], table["model_b"], table["winner"], table["score_a"]):
            p = pairs.setdefault(f"{a} vs {b}", {"a": 0, "tie": 0, "b": 0, "no_verdict": 0, "scores": []})
            p[w or "no_verdict"] += 1
            if sa is not None:
                p["scores"].append(sa)
        for p in pairs.values():
            scores = p.pop("scores")
            p["mean_score_a"] = round(sum(scores) / len(scores), 4) if scores else None
        result["decisions"][decision] = {"pairs": pairs,
            "judge_seconds": round(seconds, 1), "judge_calls": 2 * len(table["winner"]),
            "ranking": sorted(r["bradley_terry"], key=r["bradley_terry"].get, reverse=True),
            "normal_separated_bt": separated(r, "bradley_terry", "normal"),
            "normal_separated_elo": separated(r, "elo", "normal"),
            **{k: r[k] for k in ("matches", "ties", "no_verdict", "bradley_terry", "bradley_terry_ci",
                                 "bradley_terry_elo_scale", "bradley_terry_elo_scale_ci", "elo", "elo_ci",
                                 "win_rate", "position_bias")}}
    result["template"] = "rubric" if args.rubric else "default"
    if args.rubric:
        _common.write_result("preference_rubric", {**result, "timing": timing})
        return
    judge = PreferenceJudge(llm)
    t0 = time.perf_counter()
    levels = judge.rate_levels(prompts, responses)
    result["levels_seconds"] = round(time.perf_counter() - t0, 1)
    result["level_shares"] = level_shares(levels)
    result["mean_level_score"] = {m: round(sum(s for n, s in zip(levels["model"], levels["level_score"]) if n == m)
                                           / len(prompts), 3) for m in responses}
    result["timing"] = timing
    _common.write_result("preference", result)


if __name__ == "__main__":
    main()
