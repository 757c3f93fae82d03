"""Curation (survey §3.2): heuristic filters, dedup, LLM judge, confidence signals, re-weighting,
student relabelling, decontamination against a test set and a human review round-trip. Every
curator is a ``datasets`` map/filter callable with ``describe()`` and a stable fingerprint (see
:mod:`.base`).

>>> from synth_datasets import curate
>>> 'NearDuplicates' in curate.__all__
True
"""

from .base import Curator, Filter, FittedFilter, Mapper
from .combined import NoiseScore
from .confidence import ClassifierConsistency, NeighbourConsistency, knn
from .decontaminate import Decontaminate
from .dedup import ExactDuplicates, NearDuplicates
from .generation import GenerationProbability, SelfConsistency
from .heuristics import (REFUSAL_PATTERNS, BannedStrings, Format, InstructionDebris, Length, Refusals, Repetition, Script,
                         Truncated)
from .judge import DEFAULT_RUBRIC, LABEL_RUBRIC, LLMJudge, parse_score
from .novelty import Novelty, lcs_length, rouge_l, rouge_tokens
from .review import ReviewedLabels, export_for_review
from .trim import TrimToSentence, trim_to_sentence
from .student import ConfidenceWeights, StudentRelabel, weighted_sample
from .weights import SunGenWeights

__all__ = ["Curator", "Filter", "FittedFilter", "Mapper", "Length", "Format", "Repetition", "Script", "BannedStrings",
           "Refusals", "REFUSAL_PATTERNS", "Truncated", "ExactDuplicates", "NearDuplicates", "ClassifierConsistency",
           "NeighbourConsistency", "knn", "NoiseScore", "ConfidenceWeights", "SunGenWeights", "StudentRelabel", "weighted_sample",
           "LLMJudge", "DEFAULT_RUBRIC", "LABEL_RUBRIC", "parse_score", "GenerationProbability", "SelfConsistency",
           "Novelty", "rouge_l", "rouge_tokens", "lcs_length", "export_for_review", "ReviewedLabels", "Decontaminate",
           "TrimToSentence", "trim_to_sentence", "InstructionDebris"]
