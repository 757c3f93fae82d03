"""A small report a person would rather look at than read: PNG plots (matplotlib, Agg) + report.md.

Plots: words per text (histogram), the distribution of each label/condition column, rows kept after
every recipe step, and the scores with intervals of a preference ranking passed as a metric. ``render_report`` returns the numbers it plotted, so they can be checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

FIGSIZE = (6.4, 4.0)
DPI = 100  # every PNG is 640 x 400 pixels
MAX_LABEL_COLUMNS = 6
MAX_LABEL_VALUES = 30
MAX_LABEL_CHARS = 40  # longer strings are text, not labels
_META_SUFFIXES = ("_error", "_model", "_finish_reason", "_sample", "_tokens", "_logprobs")


def table_of(ds):
    """The rows of ``ds`` as a pyarrow Table (``ds.data`` ignores the indices a filter or select left)."""
    return ds.with_format("arrow")[:] if getattr(ds, "_indices", None) is not None else ds.data.table


def _string_columns(ds) -> list[str]:
    import pyarrow as pa

    return [f.name for f in ds.data.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def infer_text_column(ds) -> str | None:
    """The column the dataset declares as its text (:mod:`synth_datasets.columns`), else the string
    column with the longest mean length (metadata columns left out)."""
    import pyarrow.compute as pc

    from ..columns import declared_text_column

    declared = declared_text_column(ds)
    if declared is not None:
        return declared

    best, best_len = None, -1.0
    for c in _string_columns(ds):
        if c.endswith(_META_SUFFIXES):
            continue
        mean = pc.mean(pc.utf8_length(table_of(ds).column(c))).as_py() or 0.0
        if mean > best_len:
            best, best_len = c, mean
    return best


def infer_label_columns(ds, *, text_column: str | None = None) -> list[str]:
    """String or bool columns with 2 to 30 distinct, short values (conditions, labels)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = []
    for f in ds.data.schema:
        c = f.name
        if c == text_column or c.endswith(_META_SUFFIXES):
            continue
        if not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_boolean(f.type)):
            continue
        col = table_of(ds).column(c)
        n = len(pc.unique(col).drop_null())
        short = pa.types.is_boolean(f.type) or (pc.max(pc.utf8_length(col)).as_py() or 0) <= MAX_LABEL_CHARS
        if 2 <= n <= MAX_LABEL_VALUES and short:
            out.append(c)
    return out[:MAX_LABEL_COLUMNS]


def word_counts(ds, column: str) -> list[int]:
    """Whitespace-separated words per row (None rows are left out)."""
    import pyarrow.compute as pc

    col = table_of(ds).column(column).drop_null()
    return pc.list_value_length(pc.utf8_split_whitespace(col)).to_pylist()


def value_counts(ds, column: str) -> dict[str, int]:
    """Counts per value, most frequent first (ties by value)."""
    import pyarrow.compute as pc

    vc = pc.value_counts(table_of(ds).column(column)).to_pylist()
    pairs = [(str(d["values"]), int(d["counts"])) for d in vc]
    return dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=FIGSIZE, dpi=DPI)


def _integer_axis(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})  # no bbox_inches: size stays fixed
    plt.close(fig)


def plot_lengths(lengths: Sequence[int], path: Path, *, column: str) -> dict[str, Any]:
    import numpy as np

    plt, fig, ax = _figure()
    bins = np.histogram_bin_edges(lengths, bins="auto") if len(lengths) else np.array([0, 1])
    counts, edges, _ = ax.hist(lengths, bins=bins, color="#4C72B0", edgecolor="white")
    ax.set_xlabel(f"words per {column}")
    ax.set_ylabel("rows")
    _integer_axis(ax.yaxis)
    ax.set_title(f"Length of {column!r} ({len(lengths)} rows)")
    _save(plt, fig, path)
    return {"counts": [int(c) for c in counts], "edges": [float(e) for e in edges]}


def plot_counts(counts: Mapping[str, int], path: Path, *, column: str) -> None:
    plt, fig, ax = _figure()
    names = list(counts)[::-1]
    ax.barh(names, [counts[n] for n in names], color="#55A868")
    ax.set_xlabel("rows")
    _integer_axis(ax.xaxis)
    ax.set_title(f"Distribution of {column!r}")
    _save(plt, fig, path)


def plot_steps(steps: Sequence[tuple[str, int]], path: Path) -> None:
    plt, fig, ax = _figure()
    names, rows = [s[0] for s in steps], [s[1] for s in steps]
    bars = ax.bar(range(len(rows)), rows, color="#C44E52")
    ax.bar_label(bars, labels=[str(r) for r in rows])
    ax.set_xticks(range(len(rows)), names, rotation=20, ha="right")
    ax.set_ylabel("rows")
    _integer_axis(ax.yaxis)
    ax.set_title("Rows after each step")
    _save(plt, fig, path)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v + 0.0:.4g}" if isinstance(v, float) else str(v)  # + 0.0: no "-0"


def is_ranking(values: Mapping[str, Any]) -> bool:
    """Whether a metric result is a preference ranking (what ``metrics/preference`` returns)."""
    return isinstance(values.get("models"), list) and isinstance(values.get("bradley_terry_elo_scale"), Mapping)


def plot_scores(result: Mapping[str, Any], path, *, key: str = "bradley_terry_elo_scale", title: str | None = None):
    """A PNG of the scores with their intervals (one row per system, best on top): a preference ranking
    (``metrics/preference``'s result, :func:`synth_datasets.metrics.preference.rank`)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, ci = result[key], result.get(f"{key}_ci") or {}
    models = sorted(scores, key=scores.get)
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(models) + 1.2))
    y = np.arange(len(models))
    x = np.array([scores[m] for m in models])
    lo = np.array([(ci.get(m) or [None, None])[0] if (ci.get(m) or [None])[0] is not None else scores[m] for m in models])
    hi = np.array([(ci.get(m) or [None, None])[1] if (ci.get(m) or [None, None])[1] is not None else scores[m]
                   for m in models])
    # the interval as drawn from its ends, not as errors around the score: a percentile bootstrap interval of a
    # few prompts may lie wholly on one side of the point estimate (matplotlib refuses negative error bars)
    ax.hlines(y, lo, hi, color="C0")
    ax.plot(lo, y, "|", hi, y, "|", color="C0", markersize=10)
    ax.plot(x, y, "o", color="C0")
    ax.set_yticks(y, models)
    label = {"bradley_terry_elo_scale": "Bradley-Terry score (Elo scale)", "bradley_terry": "Bradley-Terry log-strength",
             "elo": "Elo"}.get(key, key)
    ax.set_xlabel(f"{label}, {int(result.get('confidence', 0.95) * 100)}% bootstrap interval")
    ax.set_title(title or f"Preference ranking ({result.get('matches')} matches)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})  # no version stamp: same scores, same bytes
    plt.close(fig)
    return path


def ranking_section(name: str, values: Mapping[str, Any], path: Path) -> list[str]:
    """The report's lines for a ranking: the plot (written to ``path``), a table per system, position bias."""
    plot_scores(values, path, title=f"{name}: {values.get('matches')} matches")
    scores = values["bradley_terry_elo_scale"]
    ci, elo, elo_ci = (values.get(k) or {} for k in ("bradley_terry_elo_scale_ci", "elo", "elo_ci"))
    win = values.get("win_rate") or {}

    def span(pair):
        return "-" if not pair or pair[0] is None else f"{pair[0]:.0f} to {pair[1]:.0f}"

    rows = [(m, f"{scores[m]:.0f}", span(ci.get(m)), _fmt(elo.get(m, "-")), span(elo_ci.get(m)), _fmt(win.get(m, "-")))
            for m in sorted(scores, key=scores.get, reverse=True)]
    conf = f"{float(values.get('confidence') or 0.95):.0%}"
    md = [f"## Ranking: {name}", "", f"![{name}]({path.name})", "",
          _md_table(["system", "Bradley-Terry (Elo scale)", f"{conf} interval", "Elo", f"{conf} interval", "win rate"],
                    rows), "",
          f"{values.get('matches')} judged matches, {values.get('ties')} ties, {values.get('no_verdict')} without a "
          f"verdict; intervals from {values.get('bootstrap')} bootstrap resamples."]
    bias = values.get("position_bias")
    if isinstance(bias, Mapping) and bias.get("first_position_rate") is not None:
        md += [f"Position bias: the judge chose the first slot in {bias['first_position_rate']:.0%} of its decisive "
               f"verdicts; its two orders agreed on {bias['order_consistency']:.0%} of the pairs (every pair was "
               "judged in both orders, which cancels the bias)."]
    return md + [""]


def render_report(ds, folder: str | Path, *, record=None, text_column: str | None = None,
                  label_columns: Sequence[str] | None = None, metrics: Mapping[str, Mapping] | None = None,
                  title: str = "dataset") -> dict[str, Any]:
    """Write ``folder/report.md`` and its PNGs; return what was plotted.

    Returns:
        ``{"files": [names], "text_column", "lengths": {"counts", "edges"}, "labels": {column: {value:
        count}}, "steps": [(name, rows)]}``, plus ``"rankings": {metric: {system: score}}`` when a metric
        is a preference ranking (``metrics/preference``), whose scores and intervals are plotted.

    Example:
        >>> from datasets import Dataset
        >>> import tempfile
        >>> ds = Dataset.from_dict({"text": ["a b", "c d e"], "label": ["x", "y"]})
        >>> render_report(ds, tempfile.mkdtemp())["labels"]
        {'label': {'x': 1, 'y': 1}}
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text_column = text_column or infer_text_column(ds)
    if label_columns is None:
        label_columns = infer_label_columns(ds, text_column=text_column)
    out: dict[str, Any] = {"files": [], "text_column": text_column, "lengths": None, "labels": {}, "steps": []}
    md = [f"# Report: {title}", "", f"{ds.num_rows} rows; columns: {', '.join(f'`{c}`' for c in ds.column_names)}.", ""]
    if text_column:
        lengths = word_counts(ds, text_column)
        out["lengths"] = plot_lengths(lengths, folder / "lengths.png", column=text_column)
        out["files"].append("lengths.png")
        if lengths:
            import numpy as np

            a = np.asarray(lengths)
            md += ["## Lengths", "", "![Words per text](lengths.png)", "",
                   f"Words per `{text_column}`: mean {a.mean():.1f}, median {np.median(a):g}, "
                   f"min {a.min()}, max {a.max()} ({a.size} non-empty rows).", ""]
    for c in label_columns:
        counts = value_counts(ds, c)
        name = f"labels_{''.join(ch if ch.isalnum() else '_' for ch in c)}.png"
        plot_counts(counts, folder / name, column=c)
        out["labels"][c] = counts
        out["files"].append(name)
        md += [f"## Distribution of `{c}`", "", f"![{c}]({name})", "",
               _md_table([c, "rows", "share"], [(k, v, f"{v / max(1, ds.num_rows):.1%}") for k, v in counts.items()]), ""]
    if record is not None and record.steps and record.steps[0].rows_in is not None:
        steps = [("input", record.rows_in)] + [(s.name, s.rows_out) for s in record.steps]
        plot_steps(steps, folder / "steps.png")
        out["steps"], out["files"] = steps, out["files"] + ["steps.png"]
        md += ["## Rows kept per step", "", "![Rows after each step](steps.png)", "",
               _md_table(["step", "kind", "rows in", "rows out", "kept"],
                         [(s.name, s.kind, s.rows_in, s.rows_out, f"{s.rows_out / max(1, s.rows_in):.1%}")
                          for s in record.steps]), ""]
    for name, values in (metrics or {}).items():
        if is_ranking(values):  # a preference ranking (metrics/preference): its scores plotted with intervals
            png = f"ranking_{''.join(ch if ch.isalnum() else '_' for ch in name)}.png"
            md += ranking_section(name, values, folder / png)
            out.setdefault("rankings", {})[name] = values["bradley_terry_elo_scale"]
            out["files"].append(png)
            continue
        md += [f"## Metric: {name}", "", _md_table(["measure", "value"], [(k, _fmt(v)) for k, v in values.items()]), ""]
    (folder / "report.md").write_text("\n".join(md), encoding="utf-8")
    out["files"].append("report.md")
    return out
