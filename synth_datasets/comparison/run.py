"""``compare(...)``: generations x curators x seeds, measured with the library's metrics."""

from __future__ import annotations

import copy
import functools
import inspect
import math
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["METRICS", "DEFAULT_METRICS", "CompareResult", "compare", "apply_curators"]

_FORMAT_VERSION = 1

#: metric family -> the columns it adds to each (variant, seed) row. ``rows`` (rows after curation)
#: is always measured.
METRICS: dict[str, tuple[str, ...]] = {
    "tstr": ("tstr_accuracy", "tstr_macro_f1"),
    "label_faithfulness": ("label_faithfulness",),
    "diversity": ("distinct_2", "self_bleu", "embedding_mean_pairwise_distance", "vendi_score"),
    "judge": ("judge_mean",),
}
DEFAULT_METRICS = ("tstr", "label_faithfulness", "diversity")


@dataclass
class CompareResult:
    """What :func:`compare` measured.

    Attributes:
        per_seed (`Dataset`): one row per (variant, seed): ``variant``, ``generation``, ``curator``,
            ``seed``, ``rows`` and one column per measured value (see :data:`METRICS`).
        summary (`Dataset`): one row per (variant, metric): ``n`` seeds, ``mean``, ``std`` (sample sd
            over seeds), ``ci_low``/``ci_high`` (95% t-interval of the mean), and the paired difference
            to the baseline variant of the same generation (``delta_mean``, ``delta_std``,
            ``delta_ci_low``, ``delta_ci_high``; None for the baseline itself).
        markdown (`str`): the card section (also ``compare.md`` in ``folder``).
        record (`dict`): everything in ``compare.json`` (configuration, per-seed values, summary).
        folder (`Path`, *optional*): where ``compare.md``, ``compare.json`` and ``plots/*.png`` were written.
    """

    per_seed: Any
    summary: Any
    markdown: str
    record: dict[str, Any]
    folder: Path | None = None
    plots: dict[str, Path] = field(default_factory=dict)


# --- validation (all of it before any generation) ---------------------------------------------------

def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "/\\|\n"):
        raise InvalidParameterError(f"{kind} name {name!r} must be a non-empty string without '/', '\\', '|' or "
                                    "newlines (it names a table row and a plot label).")


def _check_curator_spec(name: str, spec: Any, seed: int) -> None:
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    for s in items:
        if s is None and len(items) == 1:
            continue
        try:
            c = _instance(s, seed)
        except TypeError as e:
            raise InvalidParameterError(f"curator {name!r}: {getattr(s, '__name__', s)!r} cannot be made with "
                                        f"defaults ({e}). Pass an instance, e.g. NearDuplicates(threshold=0.8).") from e
        if not callable(c):
            raise InvalidParameterError(f"curator {name!r}: {s!r} is not a curator (a curate.* object, a curate "
                                        "class, a batched filter function, or None for 'no curation').")


def _instance(spec: Any, seed: int) -> Any:
    """A fresh curator for one seed: a class, or ``functools.partial(cls, **options)``, is instantiated
    (with ``seed=seed`` when it takes one and none was given); an instance is deep-copied, so fitted
    state never leaks from one seed or variant to the next."""
    if isinstance(spec, type) or (isinstance(spec, functools.partial) and isinstance(spec.func, type)):
        cls = spec if isinstance(spec, type) else spec.func
        given = spec.keywords if isinstance(spec, functools.partial) else {}
        takes_seed = "seed" in inspect.signature(cls).parameters and "seed" not in given
        return spec(seed=seed) if takes_seed else spec()
    if inspect.isfunction(spec) or inspect.ismethod(spec):
        return spec
    return copy.deepcopy(spec)


def _label_names(ds, column: str) -> list:
    from datasets import ClassLabel

    feature = ds.features.get(column)
    values = list(ds[column])
    if isinstance(feature, ClassLabel):
        return [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
    return values


def _check_real(real_test, text_column: str, label_column: str, label_map) -> tuple[list[str], list]:
    from datasets import Dataset

    if not isinstance(real_test, Dataset):
        raise InvalidParameterError(f"real_test must be a datasets.Dataset of real labelled rows, got "
                                    f"{type(real_test).__name__}. Load it, e.g. load_dataset('parquet', "
                                    "data_files='test.parquet', split='train').")
    missing = [c for c in (text_column, label_column) if c not in real_test.column_names]
    if missing:
        raise InvalidParameterError(f"real_test has no column {missing[0]!r}. Current columns: "
                                    f"{real_test.column_names}. Pass real_text_column= / real_label_column= "
                                    "(--real-text-column, --real-label-column).")
    texts, labels = list(real_test[text_column]), _label_names(real_test, label_column)
    bad = next((i for i, (t, y) in enumerate(zip(texts, labels))
                if not isinstance(t, str) or not t.strip() or y is None), None)
    if bad is not None:
        raise InvalidParameterError(f"real_test row {bad} has no text or no label ({texts[bad]!r}, "
                                    f"{labels[bad]!r}): drop incomplete rows first.")
    if len(set(labels)) < 2:
        raise InvalidParameterError(f"real_test has {len(set(labels))} distinct label(s) "
                                    f"{sorted(set(map(str, labels)))}: TSTR needs a test set with at least two labels.")
    if label_map is not None:
        if not isinstance(label_map, Mapping) or not label_map:
            raise InvalidParameterError("label_map must be a non-empty dict synthetic label -> real label, "
                                        "e.g. {'positive': 'fresh', 'negative': 'rotten'}.")
        unknown = sorted({str(v) for v in label_map.values()} - {str(v) for v in labels})
        if unknown:
            raise InvalidParameterError(f"label_map maps to {unknown[0]!r}, which is not a label of real_test "
                                        f"{sorted(set(map(str, labels)))}. Fix the mapping.")
    return texts, labels


def _check(generations, curators, seeds, metrics, judge_llm, baseline) -> None:
    if not isinstance(generations, Mapping) or not generations:
        raise InvalidParameterError("generations must be a non-empty dict name -> (function seed -> Recipe or "
                                    "Dataset, or a Dataset), e.g. {'builder': lambda seed: movie_reviews.recipe("
                                    "n=400, seed=seed)}.")
    from datasets import Dataset

    for name, spec in generations.items():
        _check_name("generation", name)
        if not (isinstance(spec, Dataset) or callable(spec)):
            raise InvalidParameterError(f"generation {name!r} is a {type(spec).__name__}: pass a function seed -> "
                                        "Recipe/Dataset (e.g. lambda seed: movie_reviews.recipe(n=400, seed=seed)) or "
                                        "a Dataset.")
        if hasattr(spec, "steps") and hasattr(spec, "run"):
            raise InvalidParameterError(f"generation {name!r} is a Recipe, whose seed is fixed: pass a function "
                                        "seed -> Recipe instead, e.g. lambda seed: my_recipe(seed=seed).")
    if not isinstance(curators, Mapping) or not curators:
        raise InvalidParameterError("curators must be a non-empty dict name -> curator (None = no curation).")
    ok = isinstance(seeds, Sequence) and not isinstance(seeds, str) and len(seeds) > 0 and len(set(seeds)) == len(seeds)
    if not ok or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise InvalidParameterError(f"seeds={seeds!r} must be distinct non-negative integers, e.g. (0, 1, 2).")
    for name, spec in curators.items():
        _check_name("curator", name)
        _check_curator_spec(name, spec, seeds[0])
    unknown = [m for m in metrics if m not in METRICS]
    if isinstance(metrics, str) or unknown or not metrics:
        raise InvalidParameterError(f"metrics={metrics!r}: use a list of {sorted(METRICS)}.")
    if "judge" in metrics and judge_llm is None:
        raise InvalidParameterError("metric 'judge' needs judge_llm= (an LLM that rates each text; the embedded "
                                    "one is LLM()).")
    if baseline is not None and baseline not in curators:
        raise InvalidParameterError(f"baseline={baseline!r} is not a curator name; names: {list(curators)}.")


# --- running ----------------------------------------------------------------------------------------

def _generate(spec: Any, seed: int, progress: bool) -> tuple[Any, dict[str, Any]]:
    from datasets import Dataset

    t0 = time.perf_counter()
    out = spec if isinstance(spec, Dataset) else spec(seed)
    record = {}
    if hasattr(out, "steps") and hasattr(out, "run"):  # a Recipe: run it, keep its record
        ds, run = out.run(progress=progress)
        record = {"recipe": out.describe(), "rows_out": run.rows_out, "usage": run.usage,
                  "steps": [{"name": s.name, "rows_in": s.rows_in, "rows_out": s.rows_out, "errors": s.errors}
                            for s in run.steps]}
    elif isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Dataset):
        ds = out[0]
    else:
        ds = out
    if not isinstance(ds, Dataset):
        raise InvalidParameterError(f"a generation returned {type(out).__name__}; it must return a Dataset, a Recipe "
                                    "or (Dataset, RunRecord).")
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return ds, record


def apply_curators(ds, curator: Any, *, seed: int = 0) -> tuple[Any, list[dict[str, Any]]]:
    """``ds`` after ``curator`` (None; a curate object, deep-copied; a curate class, made with
    ``seed=seed``; a batched filter function; or a list of these, applied in order), and each step's
    ``describe()`` after fitting. A ``curate.Mapper`` (e.g. ``StudentRelabel``) is mapped; anything
    else filters. Fit-then-map curators are fitted on the rows they then decide on.

    >>> from datasets import Dataset
    >>> from synth_datasets.curate import ExactDuplicates
    >>> out, steps = apply_curators(Dataset.from_dict({"text": ["a", "b", "a"]}), ExactDuplicates(column="text"))
    >>> list(out["text"]), steps[0]["type"]
    (['a', 'b'], 'ExactDuplicates')
    """
    from ..curate.base import Mapper
    from ..recipe import describe_step

    items = [] if curator is None else list(curator) if isinstance(curator, (list, tuple)) else [curator]
    described = []
    for spec in items:
        c = _instance(spec, seed)
        fitted = callable(getattr(c, "fit", None))
        if fitted:
            c.fit(ds)
        kw = {"with_indices": True} if fitted else {}
        ds = ds.map(c, batched=True, **kw) if isinstance(c, Mapper) else ds.filter(c, batched=True, **kw)
        described.append(describe_step(c))
    return ds, described


def _measure(texts: list[str], labels: list, *, metrics, real_x, real_labels, classifier, seed: int,
             judge_llm, vectors: dict[str, Any] | None = None) -> dict[str, float]:
    from ..embeddings import embed_texts_cached

    out: dict[str, float] = {"rows": len(texts)}
    keys = [k for m in metrics for k in METRICS[m]]
    out.update({k: math.nan for k in keys})
    counts = Counter(labels)
    if len(counts) < 2 or min(counts.values()) < 2:
        return out  # nothing a classifier can learn from: NaN, and the table says so
    vectors = vectors or {}
    if all(t in vectors for t in texts):  # the generation's embeddings, computed once per (generation, seed)
        x = np.stack([vectors[t] for t in texts]) if texts else np.zeros((0, 384))
    else:  # a curator changed texts
        x = embed_texts_cached(texts)
    if "tstr" in metrics:
        from ..metrics.downstream import tstr

        r = tstr(train_embeddings=x, train_labels=labels, test_embeddings=real_x, test_labels=real_labels,
                 classifier=classifier, seed=seed)
        out["tstr_accuracy"], out["tstr_macro_f1"] = r["tstr_accuracy"], r["tstr_macro_f1"]
    if "label_faithfulness" in metrics:
        from ..metrics.faithfulness import label_faithfulness

        out["label_faithfulness"] = label_faithfulness(labels, embeddings=x, seed=seed)["overall"]
    if "diversity" in metrics:
        from ..metrics.diversity import diversity

        d = diversity(texts, embeddings=x, ngram_orders=(2,), seed=seed)
        out.update({k: d[k] for k in METRICS["diversity"]})
    if "judge" in metrics:
        from ..metrics.judge import judge_score

        out["judge_mean"] = judge_score(judge_llm, texts, seed=seed)["judge_mean"]
    return {k: float(v) if k != "rows" else int(v) for k, v in out.items()}


def _variant_name(gen: str, cur: str, n_gen: int, n_cur: int) -> str:
    if n_gen == 1:
        return cur
    return gen if n_cur == 1 else f"{gen}+{cur}"


def compare(generations: Mapping[str, Any], *, curators: Mapping[str, Any] | None = None,
            seeds: Sequence[int] = (0, 1, 2), real_test, text_column: str | None = None, label_column: str = "label",
            real_text_column: str = "text", real_label_column: str = "label", label_map: Mapping | None = None,
            metrics: Sequence[str] = DEFAULT_METRICS, classifier: Any = "logreg", judge_llm=None,
            baseline: str | None = None, embedding_column: str | None = None,
            output_dir: str | Path | None = None, overwrite: bool = False,
            command: str | None = None, progress: bool = True) -> CompareResult:
    """Run every generation once per seed, apply every curator to those rows, measure each variant.

    Args:
        generations (`dict[str, callable | Dataset]`): name -> a function ``seed -> Recipe`` (run here),
            ``seed -> Dataset`` or ``seed -> (Dataset, RunRecord)``; or a fixed ``Dataset`` (then only
            the curators and classifiers vary with the seed). Generation is the expensive part: it runs
            once per (generation, seed), and LLM answers go through the response cache, so a rerun is free.
        curators (`dict[str, Any]`, *optional*): name -> ``None`` (no curation), a curate object (copied
            per seed), a curate class or ``functools.partial(cls, **options)`` (made per seed, with
            ``seed=`` when it takes one), a batched filter function, or a list of these. Default: ``{"none": None}``.
        seeds (`Sequence[int]`): one run per seed (the generation's seed, the curators' and classifiers').
        real_test (`Dataset`): real labelled rows for TSTR (train on synthetic, test on real).
        text_column (`str`, *optional*): the synthetic texts; default: the generated data's declared
            text column, else ``"text"``.
        label_column (`str`): the synthetic labels.
        real_text_column, real_label_column (`str`): the columns of ``real_test``.
        label_map (`dict`, *optional*): synthetic label -> real label (``{"positive": "fresh"}``).
        metrics (`Sequence[str]`): any of ``"tstr"``, ``"label_faithfulness"``, ``"diversity"``, ``"judge"``.
        classifier (`str` or estimator): TSTR's classifier on MiniLM embeddings (``"logreg"``, ``"knn"``).
        judge_llm (`LLM`, *optional*): the rater for ``"judge"``.
        baseline (`str`, *optional*): the curator the others are compared to, paired by seed; default
            ``"none"`` if present, else the first curator.
        output_dir (`str` or `Path`, *optional*): write ``compare.md`` (card section), ``compare.json``
            and ``plots/<metric>.png`` there (checked before any generation).
        embedding_column (`str`, *optional*): add this column (all-MiniLM-L6-v2 embeddings of the texts)
            to each generated dataset before curation, so curators made with ``embedding_column=`` read
            it instead of embedding the rows again (the CLI does this). The texts are embedded once per
            (generation, seed) either way; every variant's measures reuse those vectors.
        overwrite (`bool`): replace a non-empty ``output_dir``.

    Returns:
        :class:`CompareResult`.

    Raises:
        InvalidParameterError: a bad name, curator, metric, seed list, real test set or label map,
            before any generation.

    Example:
        >>> res = compare({"builder": lambda seed: movie_reviews.recipe(n=400, seed=seed)},   # doctest: +SKIP
        ...               curators={"none": None, "clf": curate.ClassifierConsistency},
        ...               real_test=rt_test, label_map={"positive": "fresh", "negative": "rotten"})
        >>> res.summary.filter(lambda r: r["metric"] == "tstr_accuracy").to_pandas()        # doctest: +SKIP
    """
    from datasets import Dataset

    from .report import summarize, write_outputs

    curators = dict(curators) if curators is not None else {"none": None}
    metrics = tuple(metrics) if not isinstance(metrics, str) else metrics
    _check(generations, curators, seeds, metrics, judge_llm, baseline)
    real_texts, real_labels = _check_real(real_test, real_text_column, real_label_column, label_map)
    folder = None
    if output_dir is not None:
        from ..io import COMPARISON_OUTPUT, check_output_dir

        folder = check_output_dir(output_dir, overwrite=overwrite, kind=COMPARISON_OUTPUT)
    baseline = baseline or ("none" if "none" in curators else next(iter(curators)))
    from ..embeddings import embed_texts_cached

    real_x = embed_texts_cached(real_texts)
    start = time.perf_counter()
    rows, gen_records, cur_records = [], {g: {} for g in generations}, {c: {} for c in curators}
    for gname, gspec in generations.items():
        for seed in seeds:
            _say(progress, f"compare: generation {gname!r}, seed {seed}")
            ds, grec = _generate(gspec, seed, progress)
            column = text_column or _declared(ds) or "text"
            for c in (column, label_column):
                if c not in ds.column_names:
                    raise InvalidParameterError(f"generation {gname!r} (seed {seed}) has no column {c!r}. Current "
                                                f"columns: {ds.column_names}. Pass text_column= / label_column=.")
            grec["rows"] = ds.num_rows
            ds, vectors = _embed_generation(ds, column, embedding_column)
            gen_records[gname][str(seed)] = grec
            for cname, cspec in curators.items():
                cds, described = apply_curators(ds, cspec, seed=seed)
                texts, labels = _texts_labels(cds, column, label_column, label_map, gname, seed)
                m = _measure(texts, labels, metrics=metrics, real_x=real_x, real_labels=real_labels,
                             classifier=classifier, seed=seed, judge_llm=judge_llm, vectors=vectors)
                variant = _variant_name(gname, cname, len(generations), len(curators))
                rows.append({"variant": variant, "generation": gname, "curator": cname, "seed": seed, **m})
                cur_records[cname].setdefault(gname, {})[str(seed)] = described
                _say(progress, f"  {variant} seed {seed}: " + ", ".join(
                    f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()))
    keys = ["rows", *[k for m in metrics for k in METRICS[m]]]
    summary = summarize(rows, keys, baseline=baseline)
    record = {
        "format": _FORMAT_VERSION, "seeds": list(seeds), "metrics": list(metrics), "keys": keys, "baseline": baseline,
        "classifier": classifier if isinstance(classifier, str) else type(classifier).__name__,
        "real_test": {"rows": len(real_labels), "labels": {str(k): v for k, v in sorted(Counter(real_labels).items(),
                                                                                         key=lambda kv: str(kv[0]))},
                      "text_column": real_text_column, "label_column": real_label_column,
                      "fingerprint": getattr(real_test, "_fingerprint", None)},
        "label_map": dict(label_map) if label_map else None, "generations": gen_records, "curators": cur_records,
        "per_seed": rows, "summary": summary, "command": command, "seconds": round(time.perf_counter() - start, 1),
    }
    from .._versions import library_versions

    record["library"] = library_versions()
    if folder is None:
        markdown, plots = write_outputs(record, None)
    else:  # written beside, then swapped in: an existing comparison is replaced only if it is ours
        from ..io import COMPARISON_OUTPUT, write_folder_atomically

        made = {}
        write_folder_atomically(folder, lambda tmp: made.update(zip(("markdown", "plots"), write_outputs(record, tmp))),
                                overwrite=overwrite, kind=COMPARISON_OUTPUT)
        markdown = made["markdown"]
        plots = {k: folder / p.relative_to(p.parent.parent) for k, p in made["plots"].items()}
    return CompareResult(per_seed=Dataset.from_list(rows), summary=Dataset.from_list(summary), markdown=markdown,
                         record=record, folder=folder, plots=plots)


def _embed_generation(ds, column: str, embedding_column: str | None) -> tuple[Any, dict[str, Any]]:
    """Embed the generated texts once: ``{text: vector}`` for the measures, and the ``embedding_column``
    (when asked and absent) for the curators."""
    from ..embeddings import embed_texts_cached

    texts = [t.strip() if isinstance(t, str) else "" for t in ds[column]]
    x = embed_texts_cached(texts)
    if embedding_column and embedding_column not in ds.column_names:
        from datasets import List, Value

        ds = ds.add_column(embedding_column, x.astype("float32").tolist(), feature=List(Value("float32")))
    return ds, {t: x[i] for i, t in enumerate(texts) if t}


def _declared(ds) -> str | None:
    from ..columns import declared_text_column

    return declared_text_column(ds)


def _texts_labels(ds, column: str, label_column: str, label_map, gname: str, seed: int) -> tuple[list[str], list]:
    texts, labels = list(ds[column]), _label_names(ds, label_column)
    keep = [i for i, (t, y) in enumerate(zip(texts, labels)) if isinstance(t, str) and t.strip() and y is not None]
    texts, labels = [texts[i].strip() for i in keep], [labels[i] for i in keep]
    if label_map:
        unmapped = sorted({str(y) for y in labels if y not in label_map})
        if unmapped:
            raise InvalidParameterError(f"generation {gname!r} (seed {seed}) has label {unmapped[0]!r}, which "
                                        f"label_map does not map (it maps {sorted(map(str, label_map))}). Add it.")
        labels = [label_map[y] for y in labels]
    return texts, labels  # none left (a curator dropped every row): measured as rows=0, metrics NaN


def _say(on: bool, msg: str) -> None:
    if on:
        print(msg, file=sys.stderr, flush=True)
