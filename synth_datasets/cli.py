"""The synth-datasets command.

    synth-datasets build movie-reviews --n 200 --out out/movie-reviews        # data + card + provenance + report
    synth-datasets build movie-reviews --n 200 --push-to-hub user/movie-reviews
    synth-datasets build path/to/my_builder.py --out out/mine                 # your own builder script
    synth-datasets build --from-provenance out/movie-reviews/provenance.json --out again   # repeat a run
    synth-datasets push out/movie-reviews user/movie-reviews                  # push a built folder (one commit)
    synth-datasets generate --n 50 --out out/reviews                          # = build movie-reviews
    synth-datasets cache info|clear|repair                                    # the response cache
    synth-datasets review out/movie-reviews                                   # review rows in the browser
    synth-datasets compare movie-reviews --n 400 --curators none NearDuplicates --real-test rt.parquet ...  # techniques

Builder parameters become options (--n, --seed, --max-new-tokens, ...): see
`synth-datasets build NAME --help`. The Hub token comes from HF_TOKEN or `hf auth login`; there is
deliberately no --token option, so a token never lands in a recorded command or shell history.
"""


from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Sequence

from .cli_args import public_arg, type_of
from .errors import BuilderError, InvalidParameterError, SynthDatasetsError
from .secrets import scrub

BUILD_USAGE = """usage: synth-datasets build NAME_OR_SCRIPT [builder options] (--out DIR | --push-to-hub REPO_ID) [...]
       synth-datasets build --from-provenance FILE (--out DIR | --push-to-hub REPO_ID) [...]

Run a builder (a registered name or your own builder script), then publish its dataset: data, card,
provenance.json, report. `synth-datasets build NAME --help` lists that builder's options.
"""


def _models_usage() -> str:
    """What ``--model`` takes, with the named offline models (synth_datasets/llm/models.py)."""
    import textwrap

    from .llm.models import names_help

    return "\n" + textwrap.fill(
        "Models: a builder's --model takes a named offline model, a .gguf file, a model folder, a cached Hub id "
        f"or an http(s):// URL of an OpenAI-compatible server. Named offline models: {names_help()}.", 100) + "\n"


_OUTPUT_OPTIONS = {"out", "push_to_hub", "private", "revision", "create_pr", "overwrite", "no_report",
                   "from_provenance", "help", "decontaminate", "decontaminate_column", "decontaminate_n"}


def _add_output_options(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("output (at least one of --out, --push-to-hub)")
    g.add_argument("--out", help="local folder: data/*.parquet, README.md (card), provenance.json, report/")
    g.add_argument("--push-to-hub", metavar="REPO_ID", help="push to this Hub dataset repo in one commit")
    g.add_argument("--private", action="store_true", help="create the Hub repo private")
    g.add_argument("--revision", help="branch to commit to (created if missing)")
    g.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    g.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    g.add_argument("--no-report", action="store_true", help="skip the plots")
    d = ap.add_argument_group("decontamination (after the builder's own curation, before publishing)")
    d.add_argument("--decontaminate", metavar="FILE", help="drop rows sharing a word n-gram with this test set "
                   "(csv, jsonl or parquet); the card gets a Decontamination section")
    d.add_argument("--decontaminate-column", default="text", metavar="COLUMN",
                   help="the text column of --decontaminate FILE (default: text)")
    d.add_argument("--decontaminate-n", type=int, default=13, metavar="N", help="n-gram length in words (default: 13)")


def param_help(fn) -> dict[str, str]:
    """Descriptions of ``fn``'s parameters from its docstring's ``Args:`` section (Google style:
    ``name (type): text``, continued on more-indented lines).

    >>> def f(*, n=1):
    ...     '''Args:
    ...         n (`int`): rows to make,
    ...             before filtering.
    ...     '''
    >>> param_help(f)
    {'n': 'rows to make, before filtering.'}
    """
    import inspect
    import re

    doc = inspect.getdoc(fn) or ""
    out: dict[str, str] = {}
    current, indent, inside = None, None, False
    for line in doc.splitlines():
        stripped = line.strip()
        if re.fullmatch(r"(Args|Arguments|Parameters):", stripped):
            inside, current = True, None
            continue
        if not inside:
            continue
        if not stripped:
            current = None
            continue
        lead = len(line) - len(line.lstrip())
        m = re.match(r"(\w+)\s*(\([^)]*\))?\s*:\s*(.*)", stripped)
        if m and (indent is None or lead <= indent):
            indent, current = lead, m.group(1)
            out[current] = m.group(3).strip()
        elif current is not None and lead > (indent or 0):
            out[current] = (out[current] + " " + stripped).strip()
        elif lead <= (indent or 0) and not m:
            inside = False
    return {k: v.replace("``", "`") for k, v in out.items()}


def _builder_parser(builder, defaults: dict[str, Any]) -> argparse.ArgumentParser:
    doc = (builder.module.__doc__ or "").strip().split("\n\n")[0].replace("``", "`")
    helps = param_help(builder.module.recipe)
    if "model" in builder.parameters():
        from .llm.models import names_help

        helps["model"] = f"{helps.get('model', '')} Named offline models: {names_help()}.".strip()
    ap = argparse.ArgumentParser(prog=f"synth-datasets build {builder.name}", description=doc)
    ap.add_argument("--from-provenance", metavar="FILE", help=argparse.SUPPRESS)
    _add_output_options(ap)
    g = ap.add_argument_group(f"parameters of builder {builder.name}")
    for name, p in builder.parameters().items():
        if name in _OUTPUT_OPTIONS:
            raise BuilderError(f"{builder.path}: recipe() parameter {name!r} clashes with the output option "
                               f"--{name.replace('_', '-')}. Rename the parameter.")
        flag = "--" + name.replace("_", "-")
        required = p.default is p.empty and name not in defaults
        default = defaults.get(name, None if p.default is p.empty else p.default)
        t = type_of(p)
        if t is bool:
            g.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default,
                           help=helps.get(name, "") + f" (default: {default})")
        else:
            many = "list" in str(p.annotation)  # list[str]: --labels a b c
            g.add_argument(flag, dest=name, type=t, default=default, required=required, nargs="+" if many else None,
                           help=(helps.get(name, "") + f" (default: {default})").strip())
    return ap


def _read_provenance(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        prov = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InvalidParameterError(f"--from-provenance {path}: no such file. Pass the provenance.json of a "
                                    "published dataset.") from e
    except (OSError, ValueError) as e:
        raise InvalidParameterError(f"--from-provenance {path}: not a readable JSON file ({e}).") from e
    from .provenance import validate_provenance

    prov = validate_provenance(prov, path)  # `builder` and `params` checked against a schema
    if not prov.get("builder"):
        raise BuilderError(f"{path} records a dataset published from Python, not by a builder, so there is no "
                           "command to repeat. Re-run its steps (see the card) instead.")
    return prov


def _check_recorded_params(builder, params: dict[str, Any], path: str) -> None:
    """Every recorded parameter is one the builder takes, with a value of its type: a parameter that
    would be silently dropped, or a value argparse would choke on, is an error naming it."""
    valid = builder.parameters()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise InvalidParameterError(
            f"--from-provenance {path}: params.{unknown[0]} is not a parameter of builder {builder.name} (its "
            f"parameters: {sorted(valid)}). The builder changed since the recorded run, or the file was edited: "
            "remove the parameter, or run the recorded builder script (builder.py beside provenance.json).")
    checks = {bool: lambda v: isinstance(v, bool), int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), str: lambda v: isinstance(v, str)}
    for name, value in params.items():
        t = type_of(valid[name])
        if isinstance(value, list) and "list" in str(valid[name].annotation):  # list[str]: check the items
            value = next((v for v in value if not isinstance(v, str)), None)
        if value is not None and t in checks and not checks[t](value):
            raise InvalidParameterError(f"--from-provenance {path}: params.{name} must be a {t.__name__} for builder "
                                        f"{builder.name}, but it holds {value!r}. Fix the value in the file.")


def _builder_from_provenance(prov: dict[str, Any], path: str):
    import builders

    b = prov["builder"]
    if b.get("registered") and b.get("name") in builders.BUILDERS:
        builder = builders.load(b["name"])
    else:
        here = Path(path).resolve().parent
        # the copy shipped beside provenance.json is the recorded script itself; then the recorded path
        shipped = [here / b["file"]] if b.get("file") else []
        candidates = [*shipped, Path(b["path"]), Path(builders.__file__).resolve().parent.parent / b["path"],
                      here / Path(b["path"]).name]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise BuilderError(f"The builder script of {path} ({b['path']}) was not found (nor builder.py beside "
                               "it). Put it back at that path and run again.")
        builder = builders.load(str(found))
    if builder.sha256 != b.get("sha256"):
        print(f"warning: builder {builder.path} changed since the recorded run (sha256 {b.get('sha256', '?')[:12]} "
              f"-> {builder.sha256[:12]}): rows may differ.", file=sys.stderr)
    from ._versions import library_versions

    now = library_versions()
    diff = {k: (v, now.get(k)) for k, v in (prov.get("library") or {}).items() if k in now and now[k] != v}
    if diff:
        print("warning: library versions differ from the recorded run: "
              + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in diff.items()), file=sys.stderr)
    return builder


#: the most rows one build may ask for (``--n``); more is refused before any work
MAX_BUILD_ROWS = 1_000_000


def _check_n(params: dict[str, Any]) -> None:
    n = params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > MAX_BUILD_ROWS:
        raise InvalidParameterError(f"--n {n:,} is more than the most rows one build makes ({MAX_BUILD_ROWS:,}). "
                                    "Pass a smaller --n; for more rows, run several builds with different --seed "
                                    "values and concatenate them.")


def run_build(builder, params: dict[str, Any], *, out: str | None = None, push_to_hub: str | None = None,
              private: bool = False, revision: str | None = None, create_pr: bool = False, overwrite: bool = False,
              report: bool = True, llm=None, command: str | None = None, decontaminate=None):
    """Check the targets, run the builder's recipe, publish. Everything that can be wrong with the
    targets (repo id, token, output folder) fails before any row is generated. ``decontaminate`` (a
    ``curate.Decontaminate``) is added as the recipe's last step."""
    from .hub import check_hub_access, publish
    from .io import check_output_dir

    _check_n(params)
    if not out and not push_to_hub:
        raise InvalidParameterError("Nothing to write: pass --out DIR and/or --push-to-hub REPO_ID.")
    if push_to_hub:
        check_hub_access(push_to_hub)
    if out:
        check_output_dir(out, overwrite=overwrite)
    recipe = builder.recipe(llm=llm, **params)
    if decontaminate is not None:
        if decontaminate.column is None and not recipe.card.get("text_column"):
            raise InvalidParameterError(f"Builder {builder.name} declares no text column (Recipe(text_column=...)), "
                                        "so --decontaminate cannot tell which column to check: declare one.")
        recipe.fit_filter(decontaminate, name="decontaminate", with_indices=True)
    _load_models(recipe)
    print(scrub(f"Building {builder.name} with {json.dumps(recipe.params, default=str)}"), file=sys.stderr)
    ds, record = recipe.run()
    record.builder = builder.describe()
    record.command = command
    from .hub.card import reproduced_dir

    # run from the dataset's folder, where builder.py and provenance.json are shipped (see the card)
    record.reproduce = builder.command(recipe.params, script="builder.py", out=reproduced_dir(recipe.name))
    if decontaminate is not None:  # the reference file is not shipped: the command names it
        record.reproduce += " " + shlex.join(["--decontaminate", decontaminate.params()["reference_name"],
                                              "--decontaminate-column", decontaminate.reference_column,
                                              "--decontaminate-n", str(decontaminate.n)])
    options = dict(private=private, revision=revision, create_pr=create_pr, report=report,
                   builder_file=builder.path)
    if out:
        return ds, publish(ds, Path(out), record=record, push_to_hub=push_to_hub, overwrite=overwrite, **options)
    return ds, publish(ds, push_to_hub, record=record, **options)


def _load_models(recipe) -> None:
    """Load the recipe's local models now, saying so: loading takes seconds to minutes, and a bar
    sitting at 0% meanwhile looks like a hang."""
    import time

    from .recipe import llms_of

    seen = set()
    for step in recipe.steps:
        for llm in llms_of(step.obj):
            backend = getattr(llm, "backend", None)
            load = getattr(backend, "_load", None)
            if id(llm) in seen or load is None or getattr(backend, "_model", True) is not None:
                continue
            seen.add(id(llm))
            t0 = time.perf_counter()
            print(f"Loading model {getattr(backend, 'source', llm)} ...", file=sys.stderr, flush=True)
            load()
            print(f"Loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


def _build(argv: list[str]) -> int:
    import builders

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--from-provenance")
    known, _ = pre.parse_known_args(argv)
    if known.from_provenance:
        prov = _read_provenance(known.from_provenance)
        builder, defaults = _builder_from_provenance(prov, known.from_provenance), dict(prov["params"])
        _check_recorded_params(builder, defaults, known.from_provenance)
        rest = argv
    else:
        if not argv or argv[0].startswith("-"):
            if argv and argv[0] in ("-h", "--help"):
                print(BUILD_USAGE + _models_usage() + "\n" + __doc__.split("\n", 1)[1].strip("\n"))
                return 0
            raise BuilderError(f"Which builder? `synth-datasets build NAME_OR_PATH ...` with one of "
                               f"{sorted(builders.BUILDERS)} or a builder script; or --from-provenance FILE.")
        builder, defaults, rest = builders.load(argv[0]), {}, argv[1:]
    args = vars(_builder_parser(builder, defaults).parse_args(rest))
    params = {k: args[k] for k in builder.parameters() if k in args}
    command = shlex.join(["synth-datasets", "build", *map(public_arg, argv)])
    decontaminate = None
    if args["decontaminate"]:
        from .curate import Decontaminate

        decontaminate = Decontaminate.from_file(args["decontaminate"], column=args["decontaminate_column"],
                                                n=args["decontaminate_n"])
    ds, res = run_build(builder, params, out=args["out"], push_to_hub=args["push_to_hub"], private=args["private"],
                        revision=args["revision"], create_pr=args["create_pr"], overwrite=args["overwrite"],
                        report=not args["no_report"], command=command, decontaminate=decontaminate)
    prov = res.provenance
    print(json.dumps({"out": str(res.folder) if res.folder else None, "repo_id": res.repo_id, "commit": res.commit,
                      "pr_url": res.pr_url, "rows": ds.num_rows,
                      "failed_rows": sum(s.get("errors") or 0 for s in prov.get("steps", [])), **prov.get("usage", {})}))
    return 0


def _push(argv: list[str]) -> int:
    from .hub import push_folder

    ap = argparse.ArgumentParser(prog="synth-datasets push", description="Push a built folder in one commit.")
    ap.add_argument("folder")
    ap.add_argument("repo_id")
    ap.add_argument("--private", action="store_true")
    ap.add_argument("--revision")
    ap.add_argument("--create-pr", action="store_true")
    a = ap.parse_args(argv)
    res = push_folder(a.folder, a.repo_id, private=a.private, revision=a.revision, create_pr=a.create_pr)
    print(json.dumps({"repo_id": res.repo_id, "commit": res.commit, "url": res.url, "pr_url": res.pr_url}))
    return 0


def _cache(action: str) -> int:
    """Exit 0: healthy, read-only, missing or empty (a note on stderr); 2: damaged, or not our file."""
    from .llm import ResponseCache

    c = ResponseCache()
    if action == "repair":
        print(json.dumps(c.repair()))
        return 0
    if action == "clear":
        c.clear()
    st = c.status()
    print(json.dumps(st))
    state, path = st["state"], c.path
    if state == "missing":
        print(f"note: no cache at {path} (nothing stored yet, or SYNTH_DATASETS_CACHE points elsewhere).",
              file=sys.stderr)
    elif state == "empty":
        print(f"warning: the response cache {path} is empty (0 bytes): answers stored earlier are not in it. If "
              "it should hold answers, restore it from a copy.", file=sys.stderr)
    elif state == "foreign":
        print(f"error: {path} is not a synth-datasets cache ({st['problems'][0]}); it is left as it is. Move it "
              "away, or set SYNTH_DATASETS_CACHE to another folder.", file=sys.stderr)
        return 2
    elif state == "damaged":
        print(f"error: The response cache {path} is damaged ({st['problems'][0]}). Run `synth-datasets cache repair` "
              "to keep its readable answers (the damaged file is moved aside), or `synth-datasets cache clear`.",
              file=sys.stderr)
        return 2
    elif st["read_only"]:
        print(f"note: the response cache {path} is read-only: its answers are used, new ones are not kept.",
              file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="synth-datasets", description="LLM-driven synthetic datasets.",
                                 epilog=__doc__.split("\n", 1)[1].strip("\n"), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="run a builder (name or script) and publish its dataset", add_help=False)
    sub.add_parser("push", help="push a built folder to the Hub in one commit", add_help=False)
    sub.add_parser("generate", help="alias of `build movie-reviews`", add_help=False)
    sub.add_parser("compare", help="a builder's output x curators x seeds, measured (TSTR, faithfulness, diversity)",
                   add_help=False)
    sub.add_parser("review", help="review rows in the browser (synth-datasets review DIR_OR_REPO), or --merge",
                   add_help=False)
    cache = sub.add_parser("cache", help="inspect, check, clear or repair the response cache",
                           description="info: path, rows, size and an integrity check (PRAGMA quick_check); "
                                       "clear: delete every stored response (works on a damaged file); repair: "
                                       "copy the readable rows of a damaged file into a new one and move the "
                                       "damaged file aside.")
    cache.add_argument("action", choices=["info", "clear", "repair"])
    try:
        if argv and argv[0] in ("build", "generate", "push"):
            if argv[0] == "push":
                return _push(argv[1:])
            return _build(argv[1:] if argv[0] == "build" else ["movie-reviews", *argv[1:]])
        if argv and argv[0] == "compare":
            from .comparison.cli import main as _compare

            return _compare(argv[1:])
        if argv and argv[0] == "review":
            from .review.cli import main as _review

            return _review(argv[1:])
        args = ap.parse_args(argv)
        if args.command == "cache":
            return _cache(args.action)
        return 0
    except SynthDatasetsError as e:
        print(f"error: {scrub(str(e))}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
