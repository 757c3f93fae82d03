"""The dataset card: ``huggingface_hub.DatasetCardData`` (YAML) + a Jinja body, both from the provenance.

The body is rendered only from ``provenance.json``'s content, so the card and the machine-readable
record never disagree.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..record import steps_of_type
from .closeness import close_to_real

SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]
BASE_TAGS = ["synthetic", "synth-datasets"]

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}

{{ summary }}

{% if description %}{{ description }}

{% endif %}| | |
|---|---|
| rows | {{ rows_out }} |
| columns | {{ columns }} |
| models | {{ models }} |
| made with | synth-datasets {{ version }}{% if builder %}, builder `{{ builder.name }}`{% endif %} |
| cost to produce the rows | {{ produced.calls }} model calls, {{ produced.prompt_tokens }} prompt + {{ produced.completion_tokens }} completion tokens |
| created | {{ created }} |

```python
from datasets import load_dataset
ds = load_dataset({{ load_arg }}, split="train")
```

Machine-readable provenance: [provenance.json](provenance.json). Plots: [report](report/report.md).

## How it was made

Recipe `{{ recipe_name }}`{% if seed is not none %}, seed {{ seed }}{% endif %}, parameters:

```json
{{ params_json }}
```
{% for s in steps %}
### Step {{ s.index + 1 }}: `{{ s.name }}` ({{ s.kind }}, {{ s.type }})
{% if s.rows_in is not none %}
Rows {{ s.rows_in }} -> {{ s.rows_out }} in {{ s.seconds }} s{% if s.usage %}; {{ s.usage.requests }} model calls{% if s.usage.batch_requests %} ({{ s.usage.batch_requests }} batch calls){% endif %}, {{ s.usage.cache_hits }} cached, {{ s.usage.prompt_tokens }} prompt + {{ s.usage.completion_tokens }} completion tokens{% endif %}; {{ s.errors }} failed rows.
{% endif %}{% if s.links %}
| sub-step | rows in | rows out | dropped (gate) | skipped (an input failed) |
|---|---|---|---|---|
{% for p in s.links %}| `{{ p.name }}` | {{ p.rows_in }} | {{ p.rows_out }} | {{ p.dropped }} | {{ p.skipped }} |
{% endfor %}
{% endif %}{% if s.rounds %}
| round | made | kept | conditions | metrics | seconds | model calls |
|---|---|---|---|---|---|---|
{% for r in s.rounds %}| {{ r.round }} | {{ r.made }} | {{ r.kept }} | {{ r.conditions_shown }} | {{ r.metrics_shown }} | {{ r.seconds }}{% if r.resumed %} (resumed){% endif %} | {{ r.usage.requests }} |
{% endfor %}
{% endif %}{% for m in s.models %}
- Model: `{{ m.name }}` ({{ m.kind }}{% if m.sha256 %}, file sha256 `{{ m.sha256 }}`{% endif %}{% if m.license %}, license {{ m.license }}{% endif %}{% if m.revision %}, revision `{{ m.revision }}`{% endif %}{% if m.base_url %}, endpoint `{{ m.base_url }}`{% endif %})
{% endfor %}{% if s.sampling %}- {{ 'Sampling' if s.models else 'Parameters' }}: {{ s.sampling }}
{% endif %}{% if s.seed is not none %}- Seed: {{ s.seed }}
{% endif %}{% for t in s.templates %}- Template{% if t.where %} (`{{ t.where }}`){% endif %}, verbatim:
{% for role, text in t.messages %}
  {{ role }}:

{{ t.fence }}text
{{ text }}
{{ t.fence }}
{% endfor %}{% endfor %}
<details><summary>All parameters of this step</summary>

```json
{{ s.json }}
```

</details>
{% endfor %}
## Rows after every step

| step | kind | rows in | rows out | kept | seconds |
|---|---|---|---|---|---|
{% for s in steps %}| {{ s.name }} | {{ s.kind }} | {{ s.rows_in_shown }} | {{ s.rows_out_shown }} | {{ s.kept }} | {{ s.seconds_shown }} |
{% endfor %}
## Fields

| column | type | description |
|---|---|---|
{% for f in fields %}| `{{ f.name }}` | {{ f.type }} | {{ f.description }} |
{% endfor %}
## Quality findings

Measured on the published rows (and, for truncation, on every generated row):
{% for f in findings %}
- {{ f }}{% endfor %}

{% if decontamination %}## Decontamination
{% for d in decontamination %}
Step `{{ d.step }}` checked every row against **{{ d.name }}** ({{ d.rows }} rows, {{ d.ngrams }} distinct word {{ d.n }}-grams, content hash `{{ d.hash }}`); a row sharing any {{ d.n }}-gram with it (after normalising case, punctuation and whitespace) was removed: **{{ d.removed }} rows removed**{% if d.checked is not none %} of {{ d.checked }}{% endif %}.
{% if d.examples %}
| row (before this step) | reference row | shared n-gram (normalised) |
|---|---|---|
{% for e in d.examples %}| {{ e.row }} | {{ e.reference_row }} | {{ e.ngram }} |
{% endfor %}{% endif %}{% endfor %}
{% endif %}{% if close_to_real %}## How close to real
{% for line in close_to_real %}
{{ line }}
{% endfor %}
{% endif %}## Errors and retries

{{ errors }} rows failed (their `*_error` column says why; they are kept in the data with the text empty unless a later step dropped them); {{ usage.retries }} requests were retried and {{ usage.errors }} requests failed after their retries.

## Token usage

| | model calls | cached | prompt tokens | completion tokens | completion tokens in the rows |
|---|---|---|---|---|---|
{% for s in steps if s.usage %}| {{ s.name }} | {{ s.usage.requests }} | {{ s.usage.cache_hits }} | {{ s.usage.prompt_tokens }} | {{ s.usage.completion_tokens }} | {{ s.usage.row_completion_tokens }} |
{% endfor %}| **total** | {{ usage.requests }} | {{ usage.cache_hits }} | {{ usage.prompt_tokens }} | {{ usage.completion_tokens }} | {{ usage.row_completion_tokens }} |

Prompt and completion tokens are those spent in this run; cached calls were answered from synth-datasets'
response cache for free. The last column counts the tokens of every generated row, cached or not, at the
step that made it.

**Cost of producing these rows**: {{ produced.calls }} model calls, {{ produced.prompt_tokens }} prompt + {{ produced.completion_tokens }}
completion tokens, whichever run paid for them. **This run paid** {{ usage.requests }} model calls{% if usage.batch_requests %} ({{ usage.batch_requests }} batch calls, sent through the provider's Batch API){% endif %},
{{ usage.prompt_tokens }} prompt + {{ usage.completion_tokens }} completion tokens; {{ usage.cache_hits }} calls were answered
from the cache, where an earlier run had paid {{ usage.cached_prompt_tokens }} prompt + {{ usage.cached_completion_tokens }} completion tokens for them.
{% if metrics %}
## Metrics
{% for name, values in metrics.items() %}
{{ name }}{% if metric_column %} (on `{{ metric_column }}`){% endif %}:

| measure | value |
|---|---|
{% for k, v in values.items() %}| {{ k }} | {{ v }} |
{% endfor %}{% endfor %}{% endif %}{% if report_images %}
## Report

{% for img in report_images %}![{{ img }}](report/{{ img }})
{% endfor %}
Details: [report/report.md](report/report.md).
{% endif %}
{% if review %}## Human review

Round {{ review.round }} of human review (the page of `synth-datasets review`; every decision is in
[{{ review.file }}]({{ review.file }})): **{{ review.rows }} rows reviewed**{% if review.reviewers %} by {{ review.reviewers | join(", ") }}{% endif %};
**{{ review.changed }} changed** ({{ review.relabeled }} relabeled, {{ review.edited }} edited), **{{ review.dropped }} dropped**;
rows {{ review.rows_in }} -> {{ review.rows_out }}. Reviewer-vs-LLM label agreement: Cohen's kappa
**{{ review.kappa_vs_llm if review.kappa_vs_llm is not none else "undefined (one label only)" }}**{% if review.codebook.accuracy is defined %},
observed agreement {{ review.codebook.accuracy }} on {{ review.codebook.rows }} kept rows{% endif %}.

| reviewer | reviewed | changed | dropped | kappa vs LLM | seconds per row |
|---|---|---|---|---|---|
{% for name, r in review.by_reviewer.items() %}| {{ name }} | {{ r.reviewed }} | {{ r.changed }} | {{ r.dropped }} | {{ r.kappa_vs_llm if r.kappa_vs_llm is not none else "-" }} | {{ r.seconds_per_row if r.seconds_per_row is not none else "-" }} |
{% endfor %}{% if review.codebook.per_label %}
The LLM's labels against the reviewers' (codebook comparison, Pangakis et al. 2023):

| label | precision | recall | F1 | rows |
|---|---|---|---|---|
{% for lab, m in review.codebook.per_label.items() %}| {{ lab }} | {{ m.precision }} | {{ m.recall }} | {{ m.f1 }} | {{ m.support }} |
{% endfor %}{% endif %}{% if review.inter_annotator.pairs %}
Inter-annotator agreement (Cohen's kappa on the rows both reviewed; mean {{ review.inter_annotator.mean_kappa if review.inter_annotator.mean_kappa is not none else "-" }}):

| reviewers | shared rows | kappa | agreement |
|---|---|---|---|
{% for p in review.inter_annotator.pairs %}| {{ p.reviewers | join(" / ") }} | {{ p.rows }} | {{ p.kappa if p.kappa is not none else "-" }} | {{ p.agreement if p.agreement is not none else "-" }} |
{% endfor %}{% endif %}{% if review.metrics_before_review %}
The metrics above were computed before this review.
{% endif %}
{% endif %}## Library versions

| library | version |
|---|---|
{% for k, v in library.items() %}| {{ k }} | {{ v }} |
{% endfor %}
## How to reproduce
{% if builder %}
Run these **in this dataset's folder** ({% if repo_id %}`hf download {{ repo_id }} --repo-type dataset --local-dir {{ folder }} && cd {{ folder }}`{% else %}the folder that holds this card{% endif %}); the result goes to a new sibling folder:

```bash
synth-datasets build --from-provenance provenance.json --out {{ reproduced }}
# the same run, spelled out:
{{ reproduce }}
```

Builder `{{ builder.name }}` (`{{ builder.path }}`, sha256 `{{ builder.sha256 }}`){% if builder.file %}, shipped here as
[`{{ builder.file }}`]({{ builder.file }}){% endif %}. Every sample's seed is derived from the step seed and the row, and
responses are cached by model identity + prompt + parameters + seed, so the same command on the same model
file gives the same rows (and costs nothing the second time on the same machine).{% if command %} The command
that made this dataset: `{{ command }}`.{% endif %}
{% elif script %}
This dataset was published from Python by the script `{{ script.path }}` (sha256 `{{ script.sha256 }}`){% if script.file %},
shipped here as [`{{ script.file }}`]({{ script.file }}){% endif %}. Repeat it with `{{ script.rerun }}` (run it where its
inputs are); the seeds and parameters above make the same rows from the same model file.
{% else %}
This dataset was published from Python (`synth_datasets.publish`) without a script on record (an interactive
session): repeat it by running the steps above with the recorded parameters and seeds, or publish from a
script with `publish(..., script=__file__)` so the next card ships it.
{% endif %}
## Limitations

Every row is machine-generated by the model(s) above. Expect factual slips, repetition and the biases of
the generating model; check the metrics, the quality findings and the report before training on it.
{% if not_checked %}
**Not checked** by this run:
{% for x in not_checked %}
- {{ x }}{% endfor %}
{% endif %}"""


def size_category(n: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if n < limit:
            return name
    return "n>1B"


def _fence(text: str) -> str:
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _walk(d: Any, type_name: str, where: str = ""):
    """Yield (path, dict) for every nested dict whose ``type`` is ``type_name``."""
    if isinstance(d, Mapping):
        if d.get("type") == type_name:
            yield where, d
        for k, v in d.items():
            yield from _walk(v, type_name, f"{where}.{k}" if where else str(k))
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            yield from _walk(v, type_name, f"{where}[{i}]")


def _models(describe: Mapping) -> list[dict[str, Any]]:
    out = []
    for _, llm in _walk(describe, "LLM"):
        ident = dict(llm.get("identity") or {})
        out.append({"name": llm.get("name") or ident.get("name") or ident.get("model") or llm.get("model")
                    or llm.get("source"), "kind": llm.get("kind"), "sha256": ident.get("sha256"),
                    "revision": ident.get("revision"), "base_url": ident.get("base_url"), "license": llm.get("license")})
    return out


def _templates(describe: Mapping) -> list[dict[str, Any]]:
    out = []
    for where, t in _walk(describe, "Template"):
        msgs = [("system", t["system"])] if t.get("system") else []
        for e in t.get("examples") or []:
            msgs += [("example user", e["user"]), ("example assistant", e["assistant"])]
        msgs.append(("user", t.get("user", "")))
        out.append({"where": where if where != "template" else "", "messages": msgs,
                    "fence": _fence("".join(m for _, m in msgs))})
    return out


def _round_view(r: Mapping[str, Any]) -> dict[str, Any]:
    """A loop round as a table row: conditions as compact JSON (cut at 160 characters), metrics as k=v."""
    cond = json.dumps(r.get("conditions") or {}, ensure_ascii=False, separators=(",", ":"), default=str)
    cond = (cond if len(cond) <= 160 else cond[:157] + "...").replace("|", "\\|")
    metrics = ", ".join(f"{k}={v}" for k, v in (r.get("metrics") or {}).items()).replace("|", "\\|")
    return {**r, "conditions_shown": f"`{cond}`", "metrics_shown": metrics, "usage": r.get("usage") or {}}


_LINK_COUNTS = ("rows_in", "rows_out", "dropped", "skipped")


def _links(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A chain step's rows into and out of each sub-step, in order, from its ``stats``
    (``<sub-step>.rows_in`` ...). Empty when the stats are not such counts, or do not cover the step's
    rows (counts of another run in the same process, or of calls made in other processes)."""
    stats = s.get("stats")
    if not isinstance(stats, Mapping) or not stats:
        return []
    links: dict[str, dict[str, Any]] = {}
    for key, value in stats.items():
        name, dot, what = str(key).rpartition(".")
        if not dot or what not in _LINK_COUNTS or not isinstance(value, int):
            return []
        links.setdefault(name, {"name": name, **dict.fromkeys(_LINK_COUNTS, 0)})[what] = value
    first = next(iter(links.values()))
    return list(links.values()) if first["rows_in"] == s.get("rows_in") else []


def _decontamination(steps: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The decontamination steps (``curate.Decontaminate``): reference, n, rows removed, examples."""
    out = []
    for s, d in steps_of_type(steps, "Decontaminate"):
        ref, counts = d.get("reference") or {}, d.get("counts") or {}
        removed = counts.get("dropped")
        if removed is None and s.get("rows_in") is not None and s.get("rows_out") is not None:
            removed = s["rows_in"] - s["rows_out"]
        out.append({"step": s.get("name"), "name": ref.get("name"), "rows": ref.get("rows"), "ngrams": ref.get("ngrams"),
                    "hash": ref.get("content_hash"), "n": (d.get("params") or {}).get("n"),
                    "removed": "?" if removed is None else removed, "checked": counts.get("total", s.get("rows_in")),
                    "examples": (d.get("examples") or [])[:3]})
    return out


def _step_view(s: Mapping[str, Any]) -> dict[str, Any]:
    d = s.get("describe") or {}
    params = d.get("params") if isinstance(d.get("params"), Mapping) else None
    rest = {k: v for k, v in d.items() if k not in ("library",)}
    kept = (f"{s['rows_out'] / s['rows_in']:.1%}" if s.get("rows_in") else "") if s.get("rows_out") is not None else ""
    dash = {k: ("-" if s.get(k) is None else s[k]) for k in ("rows_in", "rows_out", "seconds")}
    return {**s, **{f"{k}_shown": v for k, v in dash.items()}, "type": d.get("type", "?"), "models": _models(d),
            "rounds": [_round_view(r) for r in s.get("rounds") or []], "links": _links(s),
            "templates": _templates(d),
            "sampling": ", ".join(f"{k}={v}" for k, v in params.items() if k != "seed") if params else "",
            "seed": d.get("seed"), "json": json.dumps(rest, indent=2, ensure_ascii=False, default=str), "kept": kept}


def card_data(provenance: Mapping[str, Any]):
    """The YAML header as ``DatasetCardData``."""
    from huggingface_hub import DatasetCardData

    card = provenance.get("card") or {}
    rows = provenance["dataset"]["rows"]
    tags = BASE_TAGS + [t for t in card.get("tags") or [] if t not in BASE_TAGS]
    data_files = [{"split": "train", "path": "data/train-*"}]
    summary = {"recipe": provenance.get("name"), "params": provenance.get("params"), "seed": provenance.get("seed"),
               "rows_per_step": [{"step": s["name"], "rows": s.get("rows_out")} for s in provenance.get("steps", [])],
               "usage": provenance.get("usage"), "builder": provenance.get("builder"),
               "provenance": "provenance.json"}
    return DatasetCardData(
        license=card.get("license") or "other", language=card.get("language"), pretty_name=card.get("pretty_name"),
        annotations_creators=["machine-generated"], language_creators=["machine-generated"],
        size_categories=[size_category(rows)], task_categories=list(card.get("task_categories") or []) or None,
        source_datasets=list(card.get("source_datasets") or ["original"]), tags=tags,
        configs=[{"config_name": "default", "data_files": data_files}], synth_datasets=summary)


def build_card(provenance: Mapping[str, Any], *, repo_id: str | None = None, local_name: str | None = None,
               report_files: list[str] | None = None):
    """A ``huggingface_hub.DatasetCard`` rendered from ``provenance`` with our template."""
    from huggingface_hub import DatasetCard

    card = provenance.get("card") or {}
    steps = [_step_view(s) for s in provenance.get("steps", [])]
    models = sorted({m["name"] for s in steps for m in s["models"] if m["name"]})
    title = card.get("pretty_name") or provenance.get("name") or "Synthetic dataset"
    rows = provenance["dataset"]["rows"]
    summary = (f"A synthetic dataset of {rows} rows, generated and curated with "
               f"synth-datasets from {', '.join(f'`{m}`' for m in models) or 'no model'} "
               f"in {len(steps)} steps. Everything below is generated from the run's record.")
    load_arg = json.dumps(repo_id) if repo_id else json.dumps(local_name or ".")
    metric_column = provenance.get("metrics_column")
    return DatasetCard.from_template(
        card_data(provenance), template_str=TEMPLATE, title=title, summary=summary,
        description=card.get("description"), rows_out=rows,
        columns=", ".join(f"`{c}`" for c in provenance["dataset"]["columns"]), models=", ".join(models) or "none",
        version=provenance.get("library", {}).get("synth-datasets", "?"), builder=provenance.get("builder"),
        created=provenance.get("created"), load_arg=load_arg, recipe_name=provenance.get("name"),
        seed=provenance.get("seed"), params_json=json.dumps(provenance.get("params") or {}, indent=2, default=str),
        steps=steps, errors=sum(s.get("errors") or 0 for s in steps), usage=_usage(provenance.get("usage")),
        metrics={k: {m: (f"{x + 0.0:.4g}" if isinstance(x, float) else x) for m, x in v.items()}
                 for k, v in (provenance.get("metrics") or {}).items()},
        metric_column=metric_column, report_images=[f for f in report_files or [] if f.endswith(".png")],
        library=provenance.get("library") or {}, reproduce=provenance.get("reproduce"), review=provenance.get("review"),
        command=provenance.get("command"), produced=_produced(provenance.get("usage")),
        fields=_fields(provenance["dataset"]), findings=findings(provenance),
        decontamination=_decontamination(steps), close_to_real=close_to_real(steps),
        not_checked=(provenance.get("quality") or {}).get("not_checked") or [], repo_id=repo_id,
        folder=(repo_id or provenance.get("name") or "dataset").split("/")[-1], script=provenance.get("script"),
        reproduced=reproduced_dir(provenance.get("name")))


def reproduced_dir(name: str | None) -> str:
    """Where the card's reproduce commands write: a sibling of the dataset's folder."""
    return f"../{(name or 'dataset').replace('/', '-')}-reproduced"


def _produced(u: Mapping[str, int] | None) -> dict[str, int]:
    """What the rows cost to make, whichever run paid: this run's calls and tokens plus what the cached
    answers had cost when they were made."""
    u = _usage(u)
    return {"calls": u["requests"] + u["cache_hits"],
            "prompt_tokens": u["prompt_tokens"] + u["cached_prompt_tokens"],
            "completion_tokens": u["completion_tokens"] + u["cached_completion_tokens"]}


def _type_name(f: Any) -> str:
    if isinstance(f, Mapping):
        kind = f.get("_type")
        if kind == "Value":
            return str(f.get("dtype"))
        if kind == "ClassLabel":
            return f"ClassLabel ({', '.join(map(str, f.get('names') or []))})"
        if kind in ("List", "Sequence", "LargeList"):
            return f"list of {_type_name(f.get('feature'))}"
        return str(kind or "struct")
    if isinstance(f, list) and f:
        return f"list of {_type_name(f[0])}"
    return "?"


def _fields(dataset: Mapping[str, Any]) -> list[dict[str, str]]:
    features, desc = dataset.get("features") or {}, dataset.get("fields") or {}
    return [{"name": c, "type": _type_name(features.get(c)), "description": desc.get(c, "")}
            for c in dataset.get("columns", [])]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def findings(provenance: Mapping[str, Any]) -> list[str]:
    """The quality findings, one sentence each, from ``provenance["quality"]``."""
    q = provenance.get("quality") or {}
    out = []
    for col, t in (q.get("truncated") or {}).items():
        pub, gen = t.get("published") or {}, t.get("generated")
        line = (f"**Truncated** `{col}`: {pub.get('length', 0)} of {pub.get('rows', 0)} published rows "
                f"({_pct(pub.get('share', 0.0))}) end at `max_new_tokens` (`{col}_finish_reason` = `length`)")
        if gen:
            line += (f"; at generation {gen['length']} of {gen['rows']} ({_pct(gen['share'])}) did, "
                     f"{'and later steps dropped them' if gen['length'] and not pub.get('length') else 'as generated'}")
        out.append(line + ".")
    failed = q.get("failed_rows") or {}
    out.append(f"**Failed rows**: {sum(failed.values())} published rows carry an error "
               f"({', '.join(f'`{c}`: {n}' for c, n in failed.items()) or 'no error columns'}); "
               f"{q.get('failed_in_steps', 0)} rows failed during the run.")
    for col, b in (q.get("balance") or {}).items():
        counts = ", ".join(f"{k}: {v}" for k, v in b["counts"].items())
        verdict = ("balanced" if b["balanced"] else
                   f"**unbalanced** ({'never produced: ' + ', '.join(b['missing']) if b['missing'] else ''}"
                   f"{'; ' if b['missing'] and b['ratio'] else ''}"
                   f"{'most/least common = ' + str(b['ratio']) if b['ratio'] else ''})")
        out.append(f"**Balance** of `{col}`: {counts}: {verdict}.")
    return out


def _usage(u: Mapping[str, int] | None) -> dict[str, int]:
    from ..record import USAGE_KEYS

    return {k: int((u or {}).get(k, 0)) for k in (*USAGE_KEYS, "row_completion_tokens")}
