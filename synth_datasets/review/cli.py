"""``synth-datasets review DIR_OR_REPO``: the review page, or ``--merge`` to apply a round.

    synth-datasets review out/movie-reviews                       # serve on 127.0.0.1, open the browser
    synth-datasets review user/movie-reviews --local-dir mr       # download a Hub dataset, then serve
    synth-datasets review out/movie-reviews --merge               # apply reviews.jsonl, re-render the card
    synth-datasets review out/movie-reviews --host 0.0.0.0 --allow-remote   # token required, printed once
"""

from __future__ import annotations

import argparse
import json
from typing import Sequence

from .data import ORDERS
from .merge import CONFLICTS


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="synth-datasets review", description=__doc__.split("\n\n")[0].strip("`"),
                                 epilog=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", metavar="DIR_OR_REPO", help="a published dataset folder or a Hub dataset repo id")
    ap.add_argument("--reviewer", help="your name, recorded with each decision (optional)")
    ap.add_argument("--order", choices=ORDERS, default="evidence",
                    help="row order: least confident first (evidence), by curator reason, by judge score, random")
    ap.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    ap.add_argument("--allow-remote", action="store_true",
                    help="allow a non-loopback --host; a token is then required (SYNTH_DATASETS_REVIEW_TOKEN or random)")
    ap.add_argument("--no-open", action="store_true", help="do not open a browser")
    ap.add_argument("--reviews-file", help="decisions file (default DIR/reviews.jsonl)")
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--text-column", help="default: the declared text column, else 'text'")
    ap.add_argument("--id-column", default="id")
    ap.add_argument("--confidence-column", help="the column 'evidence' order sorts by (lowest first)")
    ap.add_argument("--neighbours", type=int, default=3, help="nearest neighbours shown per row")
    ap.add_argument("--conflicts", choices=CONFLICTS, default="error",
                    help="when reviewers disagree on a row at merge: error, majority, latest")
    ap.add_argument("--local-dir", help="where a Hub repo is downloaded (default ./NAME)")
    ap.add_argument("--merge", action="store_true", help="apply the reviews to the folder and exit (no server)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random order")
    return ap


def main(argv: Sequence[str]) -> int:
    a = parser().parse_args(list(argv))
    if a.merge:
        from .launch import _download, _looks_like_repo
        from .merge import merge_reviews
        from pathlib import Path

        folder = _download(a.source, a.local_dir) if _looks_like_repo(a.source) else Path(a.source)
        ds, s = merge_reviews(folder, reviews_file=a.reviews_file, conflicts=a.conflicts, label_column=a.label_column,
                              text_column=a.text_column, id_column=a.id_column)
        print(json.dumps({"folder": str(folder), "rows_in": s["rows_in"], "rows_out": s["rows_out"],
                          "reviewed": s["rows"], "changed": s["changed"], "dropped": s["dropped"],
                          "reviewers": s["reviewers"], "kappa_vs_llm": s["kappa_vs_llm"],
                          "inter_annotator_kappa": s["inter_annotator"]["mean_kappa"]}))
        return 0
    from .launch import review

    review(a.source, reviews_file=a.reviews_file, reviewer=a.reviewer, order=a.order, host=a.host, port=a.port,
           allow_remote=a.allow_remote, open_browser=not a.no_open, block=True, label_column=a.label_column,
           text_column=a.text_column, id_column=a.id_column, confidence_column=a.confidence_column,
           neighbours=a.neighbours, conflicts=a.conflicts, seed=a.seed, local_dir=a.local_dir)
    return 0
