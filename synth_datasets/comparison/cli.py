"""``synth-datasets compare``: a builder's output x curators x seeds, in one command.

    synth-datasets compare movie-reviews --n 400 --seeds 0 1 2 \\
        --curators none NearDuplicates ClassifierConsistency NeighbourConsistency StudentRelabel NoiseScore \\
        --real-test rt_test.parquet --label-map positive=fresh negative=rotten --out out/compare
    synth-datasets compare compare.yaml            # the same options in a YAML or JSON file

The builder's own parameters (``--n``, ``--max-new-tokens``, ...; see ``synth-datasets build NAME
--help``) are passed to it; the seed comes from ``--seeds``. A curator is ``none`` or a class of
``synth_datasets.curate``, with options after a colon: ``NearDuplicates:threshold=0.8,unit=word``.
``--vary PARAM=V1,V2`` adds one generation per value of a builder parameter (e.g.
``--vary max_new_tokens=96,224``). ``--decontaminate`` first drops, in every variant, the generated rows that
share a 13-word n-gram (``--decontaminate-n``) with the real test set, so no TSTR number is inflated by rows
quoting the test set (survey §3.2.1; ``curate.Decontaminate``). Every name, option, file and the output
folder are checked before the first row is generated.
"""

from __future__ import annotations

import argparse
import inspect
import shlex
from pathlib import Path
from typing import Any

from ..cli_args import public_arg, type_of
from ..errors import InvalidParameterError
from ..recipe import llms_of

EMBEDDING_COLUMN = "compare_embedding"
_KEYS = ("builder", "params", "vary", "curators", "seeds", "real_test", "real_text_column", "real_label_column",
         "text_column", "label_column", "label_map", "metrics", "classifier", "baseline", "out", "overwrite", "decontaminate",
         "decontaminate_n")


def _scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _pairs(items: list[str], what: str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidParameterError(f"{what} {item!r} must be KEY=VALUE.")
        out[key.strip()] = value.strip()
    return out


def parse_curator(spec: Any) -> tuple[str, Any]:
    """``(name, (class, kwargs) or None)`` from ``"none"``, ``"Name"``, ``"Name:k=v,k2=v2"`` or a config
    mapping ``{"Name": {k: v}}``.

    >>> parse_curator("NearDuplicates:threshold=0.8")
    ('NearDuplicates:threshold=0.8', ('NearDuplicates', {'threshold': 0.8}))
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "none"):
        return "none", None
    if isinstance(spec, dict) and len(spec) == 1:
        (cls, kw), = spec.items()
        name = cls + (":" + ",".join(f"{k}={v}" for k, v in (kw or {}).items()) if kw else "")
        return name, (cls, dict(kw or {}))
    if not isinstance(spec, str):
        raise InvalidParameterError(f"curator {spec!r}: write 'none', 'Name' or 'Name:key=value,...'.")
    cls, _, opts = spec.partition(":")
    opts = [o for o in opts.split(",") if o.strip()]
    kw = {k: _scalar(v) for k, v in _pairs(opts, f"curator {spec!r} option").items()}
    return spec.strip(), (cls.strip(), kw)


def make_curator(name: str, cls_name: str, kwargs: dict[str, Any], *, text_column: str | None, label_column: str,
                 llm_factory) -> Any:
    """The curator *class* bound to its options (made per seed by ``compare``), filling ``column``,
    ``label_column`` and ``llm`` when the class takes them and they were not given."""
    import functools

    from .. import curate

    cls = getattr(curate, cls_name, None)
    if not isinstance(cls, type) or not issubclass(cls, curate.Curator):
        bases = ("Curator", "Filter", "Mapper", "FittedFilter")
        known = sorted(n for n in curate.__all__ if isinstance(getattr(curate, n), type)
                       and issubclass(getattr(curate, n), curate.Curator) and n not in bases)
        raise InvalidParameterError(f"curator {name!r}: {cls_name!r} is not a curator of synth_datasets.curate. "
                                    f"Known: {known}, or none.")
    params = inspect.signature(cls).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise InvalidParameterError(f"curator {name!r}: {cls_name} has no option {unknown[0]!r}; its options: "
                                    f"{[p for p in params if p != 'self']}.")
    kw = dict(kwargs)
    if "column" in params and "column" not in kw and text_column:
        kw["column"] = text_column
    if "label_column" in params and "label_column" not in kw:
        kw["label_column"] = label_column
    if "embedding_column" in params and "embedding_column" not in kw:
        kw["embedding_column"] = EMBEDDING_COLUMN  # compare adds it once per generation: no re-embedding per curator
    if "llm" in params and "llm" not in kw:
        kw["llm"] = llm_factory()
    try:
        probe = cls(**kw)  # options checked now, before any generation
    except TypeError as e:
        raise InvalidParameterError(f"curator {name!r}: {e}") from e
    if "seed" in params and "seed" not in kwargs:
        return functools.partial(cls, **kw)  # made per seed by compare, with seed=
    return probe


def with_decontamination(curators: dict[str, Any], reference: list[str], *, n: int = 13, column: str | None = None,
                         reference_name: str | None = None) -> dict[str, Any]:
    """Every curator variant preceded by one :class:`~synth_datasets.curate.Decontaminate` against
    ``reference`` (the real test texts): ``{"none": None}`` becomes ``{"none": [Decontaminate]}``.

    >>> cur = with_decontamination({"none": None}, ["a b c d"], n=2)
    >>> [type(c).__name__ for c in cur["none"]]
    ['Decontaminate']
    """
    from ..curate import Decontaminate

    dec = Decontaminate(reference, n=n, column=column, reference_name=reference_name)
    return {name: [dec, *([] if c is None else c if isinstance(c, (list, tuple)) else [c])]
            for name, c in curators.items()}


def _read_config(path: str) -> dict[str, Any]:
    import json

    import yaml

    p = Path(path)
    if not p.is_file():
        raise InvalidParameterError(f"{path}: no such config file. Pass a .yaml/.json file or a builder name.")
    try:
        text = p.read_text(encoding="utf-8")
        cfg = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise InvalidParameterError(f"{path}: not a readable {p.suffix or 'YAML'} file ({e}).") from e
    if not isinstance(cfg, dict):
        raise InvalidParameterError(f"{path}: the file must hold a mapping of options ({list(_KEYS)}).")
    unknown = sorted(set(cfg) - set(_KEYS))
    if unknown:
        raise InvalidParameterError(f"{path}: unknown key {unknown[0]!r}. Valid keys: {list(_KEYS)}.")
    return cfg


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="synth-datasets compare", description=__doc__.split("\n\n")[0],
                                 allow_abbrev=False,
                                 epilog=__doc__.split("\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("builder", help="a builder name or script, or a .yaml/.json file of these options")
    ap.add_argument("--seeds", type=int, nargs="+", help="one run per seed (default: 0 1 2)")
    ap.add_argument("--curators", nargs="+", help="'none' and/or curate classes, e.g. NearDuplicates:threshold=0.8")
    ap.add_argument("--vary", metavar="PARAM=V1,V2", help="one generation per value of a builder parameter")
    ap.add_argument("--real-test", metavar="FILE", help="real labelled test rows (.parquet, .csv, .json, .jsonl)")
    ap.add_argument("--real-text-column", help="default: text")
    ap.add_argument("--real-label-column", help="default: label")
    ap.add_argument("--text-column", help="the synthetic texts (default: the builder's declared text column)")
    ap.add_argument("--label-column", help="the synthetic labels (default: label)")
    ap.add_argument("--label-map", nargs="+", metavar="SYN=REAL", help="synthetic label -> real label")
    ap.add_argument("--metrics", nargs="+", help="of tstr label_faithfulness diversity judge "
                                                 "(default: tstr label_faithfulness diversity)")
    ap.add_argument("--classifier", help="TSTR classifier: logreg (default) or knn")
    ap.add_argument("--baseline", help="the curator others are compared to (default: none)")
    ap.add_argument("--decontaminate", action="store_true", default=None,
                    help="drop generated rows sharing a word n-gram with --real-test before every curator")
    ap.add_argument("--decontaminate-n", type=int, metavar="N", help="n-gram length in words (default: 13)")
    ap.add_argument("--out", help="folder for compare.md, compare.json and plots/")
    ap.add_argument("--overwrite", action="store_true", default=None, help="replace a non-empty --out folder")
    return ap


def _load_real(path: str):
    from datasets import load_dataset

    p = Path(path)
    kinds = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}
    if not p.is_file():
        raise InvalidParameterError(f"--real-test {path}: no such file. Pass a parquet/csv/json file of real "
                                    "labelled rows.")
    if p.suffix not in kinds:
        raise InvalidParameterError(f"--real-test {path}: use a {sorted(kinds)} file.")
    return load_dataset(kinds[p.suffix], data_files=str(p), split="train")


def main(argv: list[str]) -> int:
    import builders

    from .run import compare

    args, rest = _parser().parse_known_args(argv)
    cfg: dict[str, Any] = {}
    if args.builder.endswith((".yaml", ".yml", ".json")):
        cfg = _read_config(args.builder)
        if not cfg.get("builder"):
            raise InvalidParameterError(f"{args.builder}: say which builder, e.g. `builder: movie-reviews`.")
    else:
        cfg["builder"] = args.builder
    for key in _KEYS:  # flags override the file
        v = getattr(args, key, None)
        if v is not None and key != "builder":
            cfg[key] = v
    builder = builders.load(cfg["builder"])
    bparams = builder.parameters()
    if "seed" not in bparams:
        raise InvalidParameterError(f"builder {builder.name} has no seed parameter: compare needs one to vary.")
    bp = argparse.ArgumentParser(prog=f"synth-datasets compare {builder.name}", add_help=False, allow_abbrev=False)
    for name, p in bparams.items():
        if name != "seed":
            bp.add_argument("--" + name.replace("_", "-"), dest=name, type=type_of(p), default=argparse.SUPPRESS)
    extra, left = bp.parse_known_args(rest)
    if left:
        raise InvalidParameterError(f"unknown option {left[0]!r}: not a compare option nor a parameter of builder "
                                    f"{builder.name} ({sorted(bparams)}).")
    params = {**dict(cfg.get("params") or {}), **vars(extra)}
    unknown = sorted(set(params) - set(bparams))
    if unknown or "seed" in params:
        raise InvalidParameterError(f"builder parameter {(unknown or ['seed'])[0]!r}: builder {builder.name} takes "
                                    f"{sorted(set(bparams) - {'seed'})} (the seed comes from --seeds).")
    generations = {"default": {}}
    if cfg.get("vary"):
        vary = cfg["vary"]
        key, _, values = (vary.partition("=") if isinstance(vary, str)
                          else (vary.get("param"), "=", vary.get("values")))
        if key not in bparams or key == "seed" or not values:
            raise InvalidParameterError(f"--vary {vary!r}: write PARAM=V1,V2 with PARAM one of "
                                        f"{sorted(set(bparams) - {'seed'})}.")
        vals = [_scalar(v) for v in values.split(",")] if isinstance(values, str) else list(values)
        generations = {f"{key}={v}": {key: v} for v in vals}
    if not cfg.get("real_test"):
        raise InvalidParameterError("--real-test FILE is required: TSTR tests on real labelled rows.")
    real = _load_real(cfg["real_test"])
    label_map = cfg.get("label_map")
    if isinstance(label_map, list):
        label_map = _pairs(label_map, "--label-map")
    label_column = cfg.get("label_column") or "label"
    llms: dict[str, Any] = {}

    local = "://" not in str(params.get("model") or "")

    def shared_llm():
        """The model curators and the judge use: the builder's own when it is local (one copy in memory)."""
        if "llm" not in llms:
            from ..llm import LLM

            kw = {"batch_size": params["batch_size"]} if "batch_size" in params else {}
            llms["llm"] = LLM(params["model"], **kw) if params.get("model") and local else LLM()
        return llms["llm"]

    curators = {}
    for spec in cfg.get("curators") or ["none"]:
        name, made = parse_curator(spec)
        if name in curators:
            raise InvalidParameterError(f"curator {name!r} is listed twice.")
        curators[name] = None if made is None else make_curator(name, *made, text_column=cfg.get("text_column"),
                                                                 label_column=label_column, llm_factory=shared_llm)
    if cfg.get("decontaminate"):
        curators = with_decontamination(curators, list(real[cfg.get("real_text_column") or "text"]),
                                        n=int(cfg.get("decontaminate_n") or 13), column=cfg.get("text_column"),
                                        reference_name=Path(cfg["real_test"]).name)
    # a local model made for the curators is the builder's too (a 1.5B model twice would not fit)
    holder: dict[str, Any] = {"llm": llms["llm"]} if "llm" in llms and local else {}

    def generation(overrides):
        def run(seed: int):
            r = builder.recipe(llm=holder.get("llm"), **{**params, **overrides, "seed": seed})
            if "llm" not in holder:
                found = [x for s in r.steps for x in llms_of(s.obj)]
                if found:
                    holder["llm"] = found[0]
            return r
        return run

    res = compare({g: generation(o) for g, o in generations.items()}, curators=curators,
                  seeds=tuple(cfg.get("seeds") or (0, 1, 2)), real_test=real, text_column=cfg.get("text_column"),
                  label_column=label_column, real_text_column=cfg.get("real_text_column") or "text",
                  real_label_column=cfg.get("real_label_column") or "label", label_map=label_map,
                  metrics=tuple(cfg.get("metrics") or ("tstr", "label_faithfulness", "diversity")),
                  classifier=cfg.get("classifier") or "logreg", baseline=cfg.get("baseline"),
                  embedding_column=EMBEDDING_COLUMN,
                  judge_llm=shared_llm() if "judge" in (cfg.get("metrics") or ()) else None,
                  output_dir=cfg.get("out"), overwrite=bool(cfg.get("overwrite")),
                  command=shlex.join(["synth-datasets", "compare", *map(public_arg, argv)]))
    print(res.markdown)
    if res.folder:
        print(f"wrote {res.folder}/compare.md, compare.json and plots/")
    return 0
