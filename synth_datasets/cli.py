"""The ``synth-datasets`` command.

    synth-datasets generate --n 50 --out out/reviews     # movie reviews, embedded model, offline
    synth-datasets cache info                            # where the response cache is, how big
    synth-datasets cache clear
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="synth-datasets", description="LLM-driven synthetic datasets.")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="build the movie-reviews dataset (see builders/movie_reviews.py)",
                   add_help=False)
    cache = sub.add_parser("cache", help="inspect or clear the response cache")
    cache.add_argument("action", choices=["info", "clear"])
    if argv and argv[0] == "generate":
        from builders import movie_reviews

        return movie_reviews.main(argv[1:])
    args = ap.parse_args(argv)
    if args.command == "cache":
        from .llm import ResponseCache

        c = ResponseCache()
        if args.action == "clear":
            c.clear()
        size = c.path.stat().st_size if c.path.exists() else 0
        print(json.dumps({"path": str(c.path), "responses": len(c), "bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
