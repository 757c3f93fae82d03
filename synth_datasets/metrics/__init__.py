"""Evaluation (survey §3.3): implementations behind the evaluate modules in metrics/."""

from synth_datasets.metrics.diversity import (
    compression_ratio,
    distinct_n,
    diversity,
    embed_texts,
    mean_pairwise_distance,
    ngram_entropy,
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
    "self_bleu",
    "tokenize",
    "vendi_score",
]
