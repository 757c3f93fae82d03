"""A small labelled real sample (``--examples FILE``), loaded, checked and split, and what generation
takes from it: per-label demonstrations, the sample's length and register as explicit targets.

The file is read and every problem reported **before** any model loads: a missing file, an unknown
format, a missing column, an empty text or label (by row), too few or too many rows, a label outside
the builder's label set, a label with fewer than two rows.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "real.jsonl"
>>> rows = [f'{{"text": "{"good " * (i % 5 + 3)}film", "label": "{"pos" if i % 2 else "neg"}"}}' for i in range(20)]
>>> _ = p.write_text("\\n".join(rows))
>>> ex = load_examples(p, labels=["pos", "neg"])
>>> ex.describe()["rows"], len(ex.train["text"]), len(ex.test["text"])
(20, 14, 6)
>>> ex.length().words_low, ex.length().words_high
(4, 7)
>>> p.unlink(); p.parent.rmdir()
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import EmptyDatasetError, InvalidParameterError, MissingColumnError

__all__ = ["Examples", "LengthTarget", "load_examples", "DropColumns", "FILE_TYPES", "MIN_ROWS", "MAX_ROWS"]

FILE_TYPES = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
MIN_ROWS, MAX_ROWS = 20, 200
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def _read_table(path: Path, who: str):
    import pyarrow as pa

    kind = FILE_TYPES[path.suffix.lower()]
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        if kind == "csv":
            import pyarrow.csv as pcsv

            return pcsv.read_csv(path)
        import pyarrow.json as pjson

        return pjson.read_json(path)
    except (pa.ArrowException, OSError) as e:
        raise InvalidParameterError(f"{who}: {path.name} could not be read as {kind} ({e}). Fix or convert the file "
                                    f"(one of {sorted(FILE_TYPES)}, with text and label columns).") from e


def _hub_files(repo_id: str, who: str) -> list[Path]:
    """The data files of a Hub dataset already in the local cache (nothing is downloaded)."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, repo_type="dataset", local_files_only=True))
    except Exception as e:  # not cached (LocalEntryNotFoundError), or not a valid id
        raise InvalidParameterError(
            f"{who} {repo_id!r} is neither a file nor a Hub dataset in the local cache ({type(e).__name__}). Pass a "
            f"csv/jsonl/parquet file with text and label columns, or download the dataset first "
            f"(`hf download {repo_id} --repo-type dataset`).") from e
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in FILE_TYPES and p.is_file()
                   and p.name != "provenance.json")
    train = [p for p in files if "train" in p.relative_to(folder).as_posix()]
    if not (train or files):
        raise InvalidParameterError(f"{who} {repo_id!r}: its cached snapshot {folder} holds no csv/jsonl/parquet "
                                    "data file. Pass a local file instead.")
    return train or files


def _texts_labels(table, text_column: str, label_column: str, name: str, who: str) -> tuple[list[str], list[Any]]:
    for c in (text_column, label_column):
        if c not in table.column_names:
            raise MissingColumnError(f"{who} {name}: column {c!r} is not in it. Current columns: {table.column_names}. "
                                     "Rename the column, or pass the builder the column names it has.")
    texts, labels = table.column(text_column).to_pylist(), table.column(label_column).to_pylist()
    for i, (t, y) in enumerate(zip(texts, labels)):
        if not isinstance(t, str) or not t.strip():
            raise InvalidParameterError(f"{who} {name}: row {i} has no text in {text_column!r} ({t!r}). Drop or fill "
                                        "that row.")
        if y is None or (isinstance(y, str) and not y.strip()):
            raise InvalidParameterError(f"{who} {name}: row {i} has no label in {label_column!r}. Drop or label "
                                        "that row.")
    return [t.strip() for t in texts], labels


@dataclass(frozen=True)
class LengthTarget:
    """What the sample's lengths ask of generation: a word range (the 20th-80th percentile), the
    typical sentence count (register: one critic's sentence vs a paragraph), a ``max_new_tokens``
    budget (the 95th percentile in words x tokens per word x margin) and a stop rule (the first blank
    line, when the sample's texts are single paragraphs)."""

    words_low: int
    words_high: int
    words_p95: int
    sentences: int
    max_new_tokens: int
    stop: tuple[str, ...]

    @property
    def phrase(self) -> str:
        """The asked length, e.g. ``"one sentence, 8 to 25 words"``.

        >>> LengthTarget(8, 25, 30, 1, 63, ("\\n\\n",)).phrase
        'one sentence, 8 to 25 words'
        """
        count = "one sentence" if self.sentences <= 1 else f"{self.sentences} sentences"
        return f"{count}, {self.words_low} to {self.words_high} words"

    def describe(self) -> dict[str, Any]:
        return {**asdict(self), "stop": list(self.stop), "phrase": self.phrase}


class Examples:
    """A checked real sample (``texts``, ``labels`` mapped to the builder's label set), split into a
    ``train`` part (demos, length targets, the realness gate) and a held-out ``test`` part (the card's
    TSTR/TRTR and distribution distance). Make it with :func:`load_examples`."""

    def __init__(self, texts: Sequence[str], labels: Sequence[Any], *, name: str, sha256: str,
                 held_out: float = 0.3, seed: int = 0, original_labels: Mapping[Any, Any] | None = None):
        self.texts, self.labels, self.name, self.sha256 = list(texts), list(labels), name, sha256
        self.held_out, self.seed = held_out, seed
        self.original_labels = dict(original_labels or {})
        rng = random.Random(seed)
        test: list[int] = []
        for y in sorted(set(self.labels), key=str):  # stratified: the held-out part has every label
            idx = [i for i, v in enumerate(self.labels) if v == y]
            rng.shuffle(idx)
            test += idx[:max(1, min(len(idx) - 1, round(held_out * len(idx))))]
        self.test_index = sorted(test)
        self.train_index = sorted(set(range(len(self.texts))) - set(test))

    def _part(self, idx: list[int]) -> dict[str, list]:
        return {"text": [self.texts[i] for i in idx], "label": [self.labels[i] for i in idx]}

    @property
    def train(self) -> dict[str, list]:
        """The part demos, length targets and the gate come from: ``{"text": [...], "label": [...]}``."""
        return self._part(self.train_index)

    @property
    def test(self) -> dict[str, list]:
        """The held-out part, used only to measure the result."""
        return self._part(self.test_index)

    def length(self, *, tokens_per_word: float = 1.4, margin: float = 1.5, min_tokens: int = 16) -> LengthTarget:
        """Length targets from the train part's word counts (``tokens_per_word``: 1.4 fits SmolLM2's and
        Qwen2.5's tokenizers on English prose; ``margin`` leaves room for a model that overshoots)."""
        texts = self.train["text"]
        words = np.array([len(t.split()) for t in texts])
        lo, hi, p95 = (int(round(float(np.percentile(words, q)))) for q in (20, 80, 95))
        sentences = int(round(float(np.median([max(1, len(_SENTENCE_END.findall(t))) for t in texts]))))
        one_paragraph = sum("\n\n" in t for t in texts) <= 0.05 * len(texts)
        budget = max(min_tokens, math.ceil(max(p95, hi) * tokens_per_word * margin))
        return LengthTarget(max(1, lo), max(lo, hi, 1), p95, sentences, budget, ("\n\n",) if one_paragraph else ())

    def demonstrations(self, k: int = 4, *, strategy: str = "random", query: str | None = None,
                       same_label: str = "label", seed: int | None = None, output: str = "demos"):
        """A fitted :class:`~synth_datasets.Demonstrations` over the train part: ``k`` real texts of the
        row's label (column ``same_label``), ``random`` or ``nearest`` to ``query`` (Jinja over the row)."""
        from ..prompts import Demonstrations

        if strategy not in ("random", "nearest"):
            raise InvalidParameterError(f"demo strategy {strategy!r}: use 'random' or 'nearest'.")
        demos = Demonstrations(k, strategy=strategy, query=query, label_column="label", same_label=same_label,
                               seed=self.seed if seed is None else seed, output=output)
        return demos.fit(self.train, source={"source": f"examples {self.name}", "sha256": self.sha256,
                                             "part": "train"})

    def describe(self) -> dict[str, Any]:
        """Name (file name or Hub id, never a machine path), content sha256, rows, labels, split sizes."""
        return {"type": "Examples", "name": self.name, "sha256": self.sha256, "rows": len(self.texts),
                "labels": dict(sorted(Counter(map(str, self.labels)).items())), "train_rows": len(self.train_index),
                "held_out_rows": len(self.test_index), "held_out": self.held_out, "seed": self.seed,
                "label_map": {str(k): str(v) for k, v in self.original_labels.items()}}


def load_examples(source: str | Path, *, labels: Sequence[str] | None = None, text_column: str = "text",
                  label_column: str = "label", label_map: Mapping[Any, str] | None = None,
                  min_rows: int = MIN_ROWS, max_rows: int = MAX_ROWS, held_out: float = 0.3, seed: int = 0,
                  who: str = "--examples") -> Examples:
    """Read and check a small labelled real sample: a csv/jsonl/parquet file, or the id of a Hub dataset
    already in the local cache (its train files; nothing is downloaded).

    Args:
        source (`str` or `Path`): the file or the Hub dataset id.
        labels (`list[str]`, *optional*): the builder's label set; every (mapped) label must be in it.
        text_column (`str`), label_column (`str`): the sample's columns (default ``text``, ``label``).
        label_map (`dict`, *optional*): the sample's label -> the builder's (``{"fresh": "positive"}``);
            labels already in ``labels`` pass unchanged.
        min_rows (`int`), max_rows (`int`): rows allowed (default 20 to 200).
        held_out (`float`): share of each label held out to measure the result (at least one row each).
        seed (`int`): seed of the split.
        who (`str`): how errors name the input (the command-line option).

    Raises:
        InvalidParameterError: a missing or unreadable file, an empty text or label, too few or too many
            rows, a label outside ``labels``, a label with fewer than two rows.
        MissingColumnError: the text or label column is missing (the message lists the columns).
    """
    if not 0 < held_out < 1:
        raise InvalidParameterError(f"held_out={held_out!r} must be in (0, 1): the share of the sample held out.")
    p = Path(str(source)).expanduser()
    if p.suffix.lower() in FILE_TYPES or p.exists():
        if p.suffix.lower() not in FILE_TYPES:
            raise InvalidParameterError(f"{who} {p.name}: cannot read a {p.suffix or 'suffix-less'} file. Use one of "
                                        f"{sorted(FILE_TYPES)} with {text_column!r} and {label_column!r} columns.")
        if not p.is_file():
            raise InvalidParameterError(f"{who} {p}: no such file. Pass the path of a csv/jsonl/parquet file of "
                                        f"{min_rows}-{max_rows} real labelled rows.")
        files, name = [p], p.name
    elif re.fullmatch(r"[\w.-]+/[\w.-]+", str(source)):
        files, name = _hub_files(str(source), who), str(source)
    else:
        raise InvalidParameterError(f"{who} {source!r}: no such file, and not a Hub dataset id (owner/name). Pass a "
                                    "csv/jsonl/parquet file with text and label columns.")
    texts, raw = [], []
    for f in files:
        t, y = _texts_labels(_read_table(f, who), text_column, label_column, name, who)
        texts += t
        raw += y
    if not texts:
        raise EmptyDatasetError(f"{who} {name} has no rows. Pass {min_rows}-{max_rows} real labelled rows.")
    if not min_rows <= len(texts) <= max_rows:
        fix = "add real rows" if len(texts) < min_rows else f"pass a random sample of at most {max_rows} rows"
        raise InvalidParameterError(f"{who} {name} has {len(texts)} rows; it takes {min_rows} to {max_rows} labelled "
                                    f"rows: {fix}.")
    label_map = dict(label_map or {})
    mapped = [label_map.get(y, y) for y in raw]
    if labels is not None:
        allowed = list(labels)
        for i, y in enumerate(mapped):
            if y not in allowed:
                raise InvalidParameterError(f"{who} {name}: row {i} has label {raw[i]!r}, not one of {allowed}"
                                            + (f" (or {sorted(label_map)})" if label_map else "")
                                            + ". Relabel or drop the row, or pass the builder these labels.")
    counts = Counter(mapped)
    few = sorted((str(y) for y, c in counts.items() if c < 2))
    if few or len(counts) < 2:
        raise InvalidParameterError(f"{who} {name}: labels {few or sorted(map(str, counts))} have fewer than 2 rows "
                                    f"(counts {dict(counts)}); every label needs at least 2 (one to learn from, one "
                                    "held out) and the sample needs 2 labels. Add rows of those labels.")
    blob = json.dumps([texts, [str(y) for y in raw]], ensure_ascii=False).encode()
    used = {y: label_map[y] for y in set(raw) if y in label_map}
    return Examples(texts, mapped, name=name, sha256=hashlib.sha256(blob).hexdigest(), held_out=held_out, seed=seed,
                    original_labels=used)


class DropColumns:
    """A map-callable that adds nothing, for ``Recipe.map(DropColumns(cols), remove_columns=cols)``: the real
    demos a prompt showed are not published with the synthetic rows.

    >>> from datasets import Dataset
    >>> Dataset.from_dict({"a": [1], "demos": ["x"]}).map(DropColumns(["demos"]), batched=True,
    ...                                                   remove_columns=["demos"]).column_names
    ['a']
    """

    def __init__(self, columns: Sequence[str]):
        self.columns = list(columns)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"type": "DropColumns", "columns": self.columns}
