"""Faithfulness of synthetic data: an `evaluate` wrapper over `synth_datasets.metrics.faithfulness`.

Four configurations, one per question: "default" (agreement with references), "label" (label
faithfulness by an out-of-fold classifier), "distribution" (precision/recall/density/coverage and
MAUVE against a real set) and "judge" (an LLM rates each text 1-5 with a fixed rubric).
"""

import datasets
import evaluate
import numpy as np

from synth_datasets.metrics.faithfulness import judge_score
from synth_datasets.metrics.faithfulness import label_faithfulness
from synth_datasets.metrics.faithfulness import mauve
from synth_datasets.metrics.faithfulness import prdc
from synth_datasets.metrics.faithfulness import reference_agreement
from synth_datasets.metrics.faithfulness import embeddings_from


_CITATION = """\
@inproceedings{rajpurkar-etal-2016-squad,
    title = "{SQ}u{AD}: 100,000+ Questions for Machine Comprehension of Text",
    author = "Rajpurkar, Pranav and Zhang, Jian and Lopyrev, Konstantin and Liang, Percy",
    booktitle = "Proceedings of EMNLP",
    year = "2016",
}
@inproceedings{naeem2020reliable,
    title = "Reliable Fidelity and Diversity Metrics for Generative Models",
    author = "Naeem, Muhammad Ferjad and Oh, Seong Joon and Uh, Youngjung and Choi, Yunjey and Yoo, Jaejun",
    booktitle = "ICML",
    year = "2020",
}
@inproceedings{pillutla2021mauve,
    title = "MAUVE: Measuring the Gap Between Neural Text and Human Text using Divergence Frontiers",
    author = "Pillutla, Krishna and Swayamdipta, Swabha and Zellers, Rowan and Thickstun, John and Welleck, Sean and Choi, Yejin and Harchaoui, Zaid",
    booktitle = "NeurIPS",
    year = "2021",
}
@inproceedings{long2024llms,
    title = "On LLMs-Driven Synthetic Data Generation, Curation, and Evaluation: A Survey",
    author = "Long, Lin and Wang, Rui and Xiao, Ruixuan and Zhao, Junbo and Ding, Xiao and Chen, Gang and Wang, Haobo",
    booktitle = "Findings of ACL",
    year = "2024",
}
"""

_DESCRIPTION = """\
Faithfulness of a synthetic dataset (survey section 3.3.1), chosen by configuration:
- "default": agreement of generated labels/answers with references: accuracy, macro-F1 and, for
  strings, SQuAD v1.1 exact match and token F1 (fractions in [0, 1]).
- "label": label faithfulness: a logistic regression on sentence embeddings, trained by stratified
  K-fold cross-partition (no row is scored by a model that saw it), agrees with the generated label
  on what share of the rows, overall and per class.
- "distribution": fidelity to a real set: precision, recall, density and coverage (Naeem et al.,
  2020; k-NN balls on embeddings) and MAUVE (Pillutla et al., 2021; k-means histograms, divergence
  frontier, scaling constant 5).
- "judge": an LLM rates each text 1-5 with a fixed rubric; mean and distribution of the ratings.
Texts are embedded with the packaged all-MiniLM-L6-v2 (offline, CPU) unless embeddings are given.
"""

_KWARGS_DESCRIPTION = """
Args (config "default"):
    predictions (`list` of `str` or `int`): generated labels or answers.
    references (`list` of `str` or `int`, or `list` of `list` of `str`): one reference (or several
        acceptable answers) per prediction.
Args (config "label"):
    labels (`list` of `str` or `int`): the generated label of each row.
    texts (`list` of `str`) or embeddings (array (n, d)): the row contents, same order (exactly one).
    folds (`int`, default 5), seed (`int`, default 0): cross-partition of the classifier.
Args (config "distribution"):
    predictions (`list` of `str` or of embedding rows): the synthetic set.
    reference_texts (`list` of `str`) or reference_embeddings (array (m, d)): the real set.
    k (`int`, default 5): neighbours for precision/recall/density/coverage.
    measures (`tuple`, default ("prdc", "mauve")): which measures to compute.
    num_buckets ("auto" or `int`), kmeans_n_init (`int`, default 5), kmeans_max_iter (`int`, default
        500), seed (`int`, default 25): MAUVE's k-means quantization.
Args (config "judge"):
    predictions (`list` of `str`): the texts to rate.
    llm (`synth_datasets.LLM`): the judge (required). rubric (`Template`, optional), max_new_tokens
        (`int`, default 8), seed (`int`, default 0).
Returns:
    "default": accuracy, macro_f1 (single references), exact_match, token_f1 (strings), n.
    "label": label_faithfulness, label_faithfulness_<class>, label_faithfulness_mean_proba, n.
    "distribution": precision, recall, density, coverage, mauve, mauve_star, frontier_integral,
        frontier_integral_star, num_buckets, n_synthetic, n_reference.
    "judge": judge_mean, judge_count_1 .. judge_count_5, judge_unparsed, judge_errors, judge_n.
Examples:
    >>> faithfulness = evaluate.load("metrics/faithfulness")
    >>> faithfulness.compute(predictions=["Paris", "the Beatles"], references=["paris!", "Beatles"])
    {'accuracy': 0.0, 'macro_f1': 0.0, 'exact_match': 1.0, 'token_f1': 1.0, 'n': 2}
"""

_CONFIGS = ("default", "label", "distribution", "judge")
_LABEL = [datasets.Value("string"), datasets.Value("int64")]


def _features_for(config):
    if config == "default":
        return [
            datasets.Features({"predictions": p, "references": r})
            for p, r in [(datasets.Value("string"), datasets.Value("string")),
                         (datasets.Value("string"), datasets.Sequence(datasets.Value("string"))),
                         (datasets.Value("int64"), datasets.Value("int64"))]
        ]
    if config == "label":
        return [datasets.Features({"labels": v}) for v in _LABEL]
    if config == "distribution":
        return [datasets.Features({"predictions": datasets.Value("string")}),
                datasets.Features({"predictions": datasets.Sequence(datasets.Value("float32"))})]
    return datasets.Features({"predictions": datasets.Value("string")})


def _float32(rows):
    try:
        return np.asarray(rows, dtype=np.float32)
    except (ValueError, TypeError):
        return rows  # ragged or not numeric: embeddings_from names the problem


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Faithfulness(evaluate.Metric):
    def _info(self):
        if self.config_name not in _CONFIGS:
            raise ValueError(f"Unknown configuration {self.config_name!r} of metrics/faithfulness: use one of "
                             f"{list(_CONFIGS)}, e.g. evaluate.load('metrics/faithfulness', 'label')")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_features_for(self.config_name),
            reference_urls=[
                "https://arxiv.org/abs/2406.15126",
                "https://arxiv.org/abs/2002.09797",
                "https://arxiv.org/abs/2102.01454",
            ],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute the metric of this configuration (keyword arguments only; see the Args below)."""
        if references is not None and self.config_name != "default":
            raise ValueError(f"config {self.config_name!r} takes no references=: "
                             + ("pass the real set as reference_texts= or reference_embeddings="
                                if self.config_name == "distribution" else "see the metric card for its inputs"))
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions=None, references=None, labels=None, **kwargs):
        if self.config_name == "default":
            return reference_agreement(list(predictions), list(references))
        if self.config_name == "label":
            return self._label(labels, **kwargs)
        if self.config_name == "distribution":
            return self._distribution(predictions, **kwargs)
        return self._judge(predictions, **kwargs)

    def _label(self, labels, texts=None, embeddings=None, folds=5, seed=0):
        r = label_faithfulness(labels, texts=texts, embeddings=embeddings, folds=folds, seed=seed)
        out = {"label_faithfulness": r["overall"]}
        out.update({f"label_faithfulness_{c}": v for c, v in r["per_class"].items()})
        out["label_faithfulness_mean_proba"] = r["mean_label_proba"]
        out["n"] = r["n"]
        return out

    def _distribution(self, predictions, reference_texts=None, reference_embeddings=None, k=5,
                      measures=("prdc", "mauve"), num_buckets="auto", kmeans_n_init=5, kmeans_max_iter=500,
                      seed=25):
        unknown = set(measures) - {"prdc", "mauve"}
        if unknown or not measures:
            raise ValueError(f"measures={measures!r}: choose from ('prdc', 'mauve')")
        predictions = list(predictions or [])
        synthetic = (embeddings_from(predictions, None) if predictions and isinstance(predictions[0], str)
                     else embeddings_from(None, predictions))
        if reference_embeddings is not None:  # evaluate stores predictions as float32: treat both sets alike
            reference_embeddings = _float32(reference_embeddings)
        reference = embeddings_from(reference_texts, reference_embeddings, prefix="reference_")
        out = {}
        if "prdc" in measures:
            out.update(prdc(reference, synthetic, k=k))
        if "mauve" in measures:
            out.update(mauve(reference, synthetic, num_buckets=num_buckets, kmeans_n_init=kmeans_n_init,
                             kmeans_max_iter=kmeans_max_iter, seed=seed))
        out["n_synthetic"], out["n_reference"] = len(synthetic), len(reference)
        return out

    def _judge(self, predictions, llm=None, rubric=None, max_new_tokens=8, seed=0):
        if llm is None:
            raise ValueError("config 'judge' needs llm=: pass a synth_datasets.LLM, e.g. llm=LLM()")
        return judge_score(llm, list(predictions), rubric=rubric, max_new_tokens=max_new_tokens, seed=seed)
