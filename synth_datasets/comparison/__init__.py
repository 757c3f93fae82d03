"""Compare techniques at the same budget (the survey's open call for "empirical studies comparing the
effectiveness of different techniques ... using standardized metrics").

A grid of **generations** (how rows are made: templates, condition sources, demos, models) x
**curators** (what is done to the rows afterwards), each run over several seeds, each variant
measured with the library's metrics (TSTR on a real labelled test set, label faithfulness,
diversity, judge score). Every generation runs once per seed; every curator of the grid is applied
to *those same rows*, so the curation variants of one generation differ only in curation and
their differences are paired by seed.

    >>> from synth_datasets.comparison import compare                       # doctest: +SKIP
    >>> from builders import movie_reviews                               # doctest: +SKIP
    >>> from synth_datasets import curate                                # doctest: +SKIP
    >>> res = compare({"builder": lambda seed: movie_reviews.recipe(n=400, seed=seed)},
    ...               curators={"none": None, "near_dup": curate.NearDuplicates(),
    ...                         "clf": curate.ClassifierConsistency},
    ...               real_test=rt_test, label_map={"positive": "fresh", "negative": "rotten"},
    ...               output_dir="out/compare")                          # doctest: +SKIP
    >>> print(res.markdown)                                              # doctest: +SKIP
"""

from .report import plot_metric, summarize
from .run import METRICS, CompareResult, apply_curators, compare

__all__ = ["compare", "CompareResult", "METRICS", "apply_curators", "summarize", "plot_metric"]
