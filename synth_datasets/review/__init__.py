"""Human review in the browser (survey §3.2.2 human intervention, §4.4 human-model collaboration).

``synth-datasets review DIR_OR_REPO`` or ``review(ds_or_folder)`` starts a local page: rows in the
order of the curators' evidence, each with that evidence (confidence, judge score and reply, nearest
neighbours with their labels, the generating prompt), keyboard actions (accept, relabel, edit, drop,
skip, note, undo), several named reviewers, the task spec as guidelines. Every decision is appended
to ``reviews.jsonl`` and fsync-ed at once; :func:`merge_reviews` applies a round through
:class:`~synth_datasets.curate.ReviewedLabels` and the card records counts and Cohen's kappa.

>>> from synth_datasets.review import review, merge_reviews       # doctest: +SKIP
>>> srv = review(Path("out/movie-reviews"), block=False)           # doctest: +SKIP
>>> merged, summary = srv.merge()                                  # doctest: +SKIP
"""

from .agreement import summarize
from .data import ReviewData, guidelines_from, load_folder
from .launch import ReviewServer, review
from .log import ReviewLog, RowState
from .merge import merge_reviews

__all__ = ["review", "ReviewServer", "ReviewData", "ReviewLog", "RowState", "merge_reviews", "summarize",
           "guidelines_from", "load_folder"]
