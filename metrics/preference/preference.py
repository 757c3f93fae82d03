"""Open evaluation by ranking: an `evaluate` wrapper over `synth_datasets.metrics.preference`."""

import datasets
import evaluate

from synth_datasets.metrics.preference import level_shares
from synth_datasets.metrics.preference import rank


_CITATION = """\
@article{bradley1952rank,
    title = "Rank Analysis of Incomplete Block Designs: I. The Method of Paired Comparisons",
    author = "Bradley, Ralph Allan and Terry, Milton E.",
    journal = "Biometrika",
    volume = "39",
    year = "1952",
}
@article{hunter2004mm,
    title = "MM algorithms for generalized Bradley-Terry models",
    author = "Hunter, David R.",
    journal = "The Annals of Statistics",
    volume = "32",
    year = "2004",
}
@inproceedings{wang2023selfinstruct,
    title = "Self-Instruct: Aligning Language Models with Self-Generated Instructions",
    author = "Wang, Yizhong and Kordi, Yeganeh and Mishra, Swaroop and Liu, Alisa and Smith, Noah A. and Khashabi, Daniel and Hajishirzi, Hannaneh",
    booktitle = "ACL",
    year = "2023",
}
"""

_DESCRIPTION = """\
Open evaluation by ranking (survey section 3.3.2). Default config: pairwise preferences between
systems (one row per judged pair: model_a, model_b, winner in {"a", "b", "tie"} or None) become
Bradley-Terry scores (maximum likelihood, Hunter's MM algorithm, ties as half wins, a small prior of
virtual ties) and online Elo scores, each with bootstrap confidence intervals over the matches. With
the judge's verdicts in both orders (verdict_ab, verdict_ba) it also reports position bias. Config
"levels": Self-Instruct's four-level rating (A valid and satisfying, B minor imperfections, C
significant errors, D irrelevant or invalid), the share of each level per model. Produce the inputs
with synth_datasets.metrics.preference.PreferenceJudge (compare / rate_levels).
"""

_KWARGS_DESCRIPTION = """
Args (default config):
    model_a (`list` of `str`), model_b (`list` of `str`): the two systems of each match.
    winner (`list`): "a", "b", "tie", or None (no verdict: left out).
    verdict_ab, verdict_ba (`list`, optional): the judge's letters with model_a / model_b shown first.
    prompt_index (`list`, optional): the prompt of each match; given, the bootstrap resamples prompts
        (all matches of a prompt together), else single matches.
    prior (`float`, default 0.5): virtual ties added to every pair (keeps scores finite); 0 = pure MLE.
    bootstrap (`int`, default 1000), seed (`int`, default 0), confidence (`float`, default 0.95).
    elo_k (`float`, default 4.0): the Elo update size.
Args ("levels" config):
    model (`list` of `str`), level (`list`: "A".."D" or None).
Returns:
    models, matches, ties, no_verdict, bradley_terry (log-strengths, mean 0), bradley_terry_ci,
    bradley_terry_elo_scale (+ _ci), elo, elo_ci, win_rate, position_bias (with verdicts);
    "levels": {model: {A, B, C, D, none}} shares.
Examples:
    >>> preference = evaluate.load("metrics/preference")
    >>> r = preference.compute(model_a=["x", "x", "x", "x"], model_b=["y", "y", "y", "y"],
    ...                        winner=["a", "a", "tie", "b"], bootstrap=0)
    >>> r["win_rate"]
    {'x': 0.625, 'y': 0.375}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Preference(evaluate.Metric):
    def _info(self):
        if self.config_name == "levels":
            features = datasets.Features({"model": datasets.Value("string"), "level": datasets.Value("string")})
        else:
            features = datasets.Features({"model_a": datasets.Value("string"), "model_b": datasets.Value("string"),
                                          "winner": datasets.Value("string")})
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=features,
            reference_urls=["https://arxiv.org/abs/2406.15126", "https://arxiv.org/abs/2403.04132"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Rank systems from preferences (keyword arguments only; see the Args below)."""
        if predictions is not None or references is not None:
            raise ValueError("metrics/preference takes no predictions=/references=: pass model_a=, model_b= and "
                             "winner= (or, with the 'levels' config, model= and level=)")
        return super().compute(**kwargs)

    def _compute(self, model_a=None, model_b=None, winner=None, model=None, level=None, verdict_ab=None,
                 verdict_ba=None, prompt_index=None, prior=0.5, bootstrap=1000, seed=0, confidence=0.95, elo_k=4.0):
        if self.config_name == "levels":
            return level_shares({"model": list(model), "level": list(level)})
        table = {"model_a": list(model_a), "model_b": list(model_b), "winner": list(winner)}
        if verdict_ab is not None and verdict_ba is not None:
            table.update(verdict_ab=list(verdict_ab), verdict_ba=list(verdict_ba))
        if prompt_index is not None:
            table["prompt_index"] = list(prompt_index)
        return rank(table, prior=prior, bootstrap=bootstrap, seed=seed, confidence=confidence, elo_k=elo_k)
