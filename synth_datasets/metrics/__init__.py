"""Evaluation (survey §3.3): implementations behind the evaluate modules in metrics/."""

from synth_datasets.metrics.diversity import (
    compression_ratio,
    distinct_n,
    diversity,
    embed_texts,
    mean_pairwise_distance,
    ngram_entropy,
    ngram_stats,
    self_bleu,
    tokenize,
    vendi_score,
)

__all__ = [
    "compression_ratio",
    "distinct_n",
    "diversity",
    "embed_texts",
    "mean_pairwise_distance",
    "ngram_entropy",
    "ngram_stats",
    "self_bleu",
    "tokenize",
    "vendi_score",
]
from synth_datasets.metrics.faithfulness import (  # noqa: E402
    DEFAULT_RUBRIC,
    JudgeScorer,
    exact_match,
    judge_score,
    label_faithfulness,
    mauve,
    mauve_from_histograms,
    normalize_answer,
    parse_rating,
    prdc,
    reference_agreement,
    token_f1,
)
from synth_datasets.metrics.downstream import make_classifier, tstr  # noqa: E402

__all__ += [
    "DEFAULT_RUBRIC",
    "JudgeScorer",
    "exact_match",
    "judge_score",
    "label_faithfulness",
    "make_classifier",
    "mauve",
    "mauve_from_histograms",
    "normalize_answer",
    "parse_rating",
    "prdc",
    "reference_agreement",
    "token_f1",
    "tstr",
]
