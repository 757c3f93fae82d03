"""Decontamination (survey §3.2.1): drop rows that quote a reference set, e.g. the test split a model
trained on the synthetic data will be evaluated on (fit, then filter).

Texts are normalised (NFKC, lower case, apostrophes removed so that ``don't`` = ``dont``, any other
character that is not a letter, digit or mark becomes a space, whitespace collapsed) and split into
words. A row of the dataset is contaminated when it shares a word ``n``-gram (13 by default, as in
GPT-3's decontamination) with a reference row. Rows shorter than ``n`` words, on either side, are
checked whole: a short row matches a short reference row with the same words (an exact duplicate
after normalisation), never a part of a longer row.

Each distinct word is hashed once with blake2b (stable across processes, unlike ``hash()``); an
n-gram's hash is ``sum_k word_hash[i+k] * P^k`` in wrapping uint64 arithmetic, built with numpy. The
reference is indexed once as a sorted array of distinct n-gram hashes (plus the first reference row of
each); a dataset's n-grams are looked up with ``np.searchsorted``. Words are split in Arrow's C++
kernels, so there is no Python loop per word nor per n-gram.

>>> from datasets import Dataset
>>> test = ["The quick brown fox jumps over the lazy dog near the quiet river bank today."]
>>> ds = Dataset.from_dict({"text": [
...     "A story: the QUICK brown fox jumps over the lazy dog, near the quiet river bank. The end.",
...     "A completely different sentence about cats and weather and nothing from the test set."]})
>>> dec = Decontaminate(test, n=13).fit(ds)
>>> marked = ds.map(dec.mark, batched=True, with_indices=True)
>>> list(marked["decontaminate_reason"]), list(marked["decontaminate_of"])
(['contaminated', None], [0, None])
>>> marked["decontaminate_ngram"][0]
'the quick brown fox jumps over the lazy dog near the quiet river'
>>> ds.filter(dec, batched=True, with_indices=True).num_rows
1
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ..columns import TextColumn, check_column_option
from ..errors import EmptyDatasetError, InvalidParameterError, MissingColumnError
from .base import FittedFilter, check_range

# odd multiplier of the polynomial n-gram hash (the golden-ratio constant)
_P = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_APOSTROPHES = r"['\x{2019}\x{2018}`\x{00B4}]"
_NOT_WORD = r"[^\p{L}\p{N}\p{M}\s]+"
_NOT_WORD_ASCII = r"[^a-z0-9\s]+"
_FILE_TYPES = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def _arrow_texts(values, who: str):
    """``values`` (a list of str, or an Arrow array) as one large_string Arrow array; non-strings and
    missing values are an error naming the row."""
    import pyarrow as pa

    try:
        arr = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=pa.large_string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks else pa.array([], type=pa.large_string())
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            raise TypeError(f"{arr.type}")
        arr = arr.cast(pa.large_string())
    except (pa.ArrowException, TypeError) as e:
        raise InvalidParameterError(f"{who} needs texts (strings), got {e}: pass the column that holds the "
                                    "text.") from e
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidParameterError(f"{who}: row {row} has no text (None): drop failed rows first "
                                    "(e.g. with curate.Truncated or ds.filter).")
    return arr


def words(texts) -> tuple[Any, np.ndarray]:
    """The normalised words of ``texts`` (an Arrow array of all words in order) and the row of each.

    >>> w, row = words(["Don't  PANIC!", "", "well-known"])
    >>> w.to_pylist(), row.tolist()
    (['dont', 'panic', 'well', 'known'], [0, 0, 2, 2])
    """
    import pyarrow.compute as pc

    arr = _arrow_texts(texts, "words")
    if pc.all(pc.string_is_ascii(arr)).as_py() is not False:  # same result, 2-3x faster ASCII kernels
        arr = pc.replace_substring(pc.replace_substring(pc.ascii_lower(arr), "'", ""), "`", "")
        lists = pc.ascii_split_whitespace(pc.replace_substring_regex(arr, _NOT_WORD_ASCII, " "))
    else:
        arr = pc.utf8_lower(pc.utf8_normalize(arr, "NFKC"))
        arr = pc.replace_substring_regex(pc.replace_substring_regex(arr, _APOSTROPHES, ""), _NOT_WORD, " ")
        lists = pc.utf8_split_whitespace(arr)
    tokens, owner = pc.list_flatten(lists), pc.list_parent_indices(lists)
    nonempty = pc.greater(pc.binary_length(tokens), 0)  # Arrow keeps "" at leading/trailing whitespace
    return tokens.filter(nonempty), owner.filter(nonempty).to_numpy(zero_copy_only=False).astype(np.int64)


def _word_hashes(tokens) -> np.ndarray:
    """A stable uint64 per word (blake2b of its UTF-8), each distinct word hashed once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(tokens) == 0:
        return np.zeros(0, dtype=np.uint64)
    enc = pc.dictionary_encode(tokens)
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    vocab = enc.dictionary.to_pylist()
    table = np.fromiter((int.from_bytes(hashlib.blake2b(w.encode(), digest_size=8).digest(), "little")
                         for w in vocab), dtype=np.uint64, count=len(vocab))
    return table[enc.indices.to_numpy(zero_copy_only=False)]


def shingles(texts, n: int) -> dict[str, Any]:
    """Hashed word n-grams of ``texts`` (and whole-row hashes of rows shorter than ``n`` words).

    Returns ``hashes`` (uint64), ``rows`` (the text each comes from), ``starts``/``lengths`` (its word
    span in ``words``), in row order, then word order; plus ``words`` and ``rows_total``.

    >>> s = shingles(["a b c d", "b c d", "x"], n=3)
    >>> s["rows"].tolist(), s["lengths"].tolist()
    ([0, 0, 1, 2], [3, 3, 3, 1])
    >>> bool(s["hashes"][1] == s["hashes"][2])  # "b c d" in row 0 and row 1
    True
    """
    tokens, owner = words(texts)
    rows_total = len(texts)
    w = _word_hashes(tokens)
    powers = [np.uint64(pow(_P, k, 1 << 64)) for k in range(n)]
    parts_h, parts_row, parts_start, parts_len = [], [], [], []
    with np.errstate(over="ignore"):
        m = len(w) - n + 1
        if m > 0:
            h, tmp = w[:m].copy(), np.empty(m, dtype=np.uint64)
            for k in range(1, n):
                h += np.multiply(w[k:k + m], powers[k], out=tmp)
            valid = owner[:m] == owner[n - 1:]       # n-grams never cross rows
            start = np.flatnonzero(valid)
            parts_h.append(h[valid])
            parts_row.append(owner[start])
            parts_start.append(start)
            parts_len.append(np.full(len(start), n, dtype=np.int64))
        counts = np.bincount(owner, minlength=rows_total)
        first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        short = np.flatnonzero((counts > 0) & (counts < n))
        if len(short):                                # rows shorter than n words: hashed whole
            h = np.zeros(len(short), dtype=np.uint64)
            for k in range(n - 1):
                sel = counts[short] > k
                h[sel] += w[first[short[sel]] + k] * powers[k]
            parts_h.append(h)
            parts_row.append(short.astype(np.int64))
            parts_start.append(first[short])
            parts_len.append(counts[short].astype(np.int64))
    out = {"hashes": _join(parts_h, np.uint64), "rows": _join(parts_row, np.int64),
           "starts": _join(parts_start, np.int64), "lengths": _join(parts_len, np.int64)}
    if len(parts_row) > 1:                             # short rows interleave with the others by row
        order = np.argsort(out["rows"], kind="stable")
        out = {k: v[order] for k, v in out.items()}
    return {**out, "words": tokens, "rows_total": rows_total}


def _join(parts: list[np.ndarray], dtype) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=dtype)
    return (np.concatenate(parts) if len(parts) > 1 else parts[0]).astype(dtype, copy=False)


def _content_hash(arr) -> str:
    """blake2b-128 of a large_string Arrow array: its offsets (from 0, int64 little-endian), then its UTF-8."""
    offsets = np.frombuffer(arr.buffers()[1], dtype="<i8")[arr.offset:arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    h = hashlib.blake2b(digest_size=16)
    h.update((offsets - offsets[0]).tobytes())
    if data is not None and offsets[-1] > offsets[0]:
        h.update(memoryview(data)[int(offsets[0]):int(offsets[-1])])
    return "blake2b-128:" + h.hexdigest()


def read_texts(path: str | Path, *, column: str = "text"):
    """The ``column`` of a csv, jsonl/json (one object per line) or parquet file, as an Arrow array of texts.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "test.jsonl"
    >>> _ = p.write_text('{"text": "a b c"}\\n{"text": "d e"}\\n')
    >>> read_texts(p).to_pylist()
    ['a b c', 'd e']
    >>> p.unlink(); p.parent.rmdir()
    """
    import pyarrow as pa

    p = Path(path)
    kind = _FILE_TYPES.get(p.suffix.lower())
    if kind is None:
        raise InvalidParameterError(f"{p.name}: cannot read a {p.suffix or 'suffix-less'} file as a reference set. "
                                    f"Use one of {sorted(_FILE_TYPES)}.")
    if not p.is_file():
        raise InvalidParameterError(f"Reference file {p} does not exist: pass the path of your test split "
                                    "(csv, jsonl or parquet).")
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(p)
        elif kind == "csv":
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(p)
        else:
            import pyarrow.json as pjson

            table = pjson.read_json(p)
    except (pa.ArrowException, OSError) as e:
        raise InvalidParameterError(f"Reference file {p} could not be read as {kind} ({e}): fix or convert it.") from e
    if column not in table.column_names:
        raise MissingColumnError(f"Reference file {p.name}: column {column!r} is not in it. Current columns: "
                                 f"{sorted(table.column_names)}. Pass the column that holds the text.")
    return _arrow_texts(table.column(column), f"Reference file {p.name}, column {column!r}")


class Decontaminate(TextColumn, FittedFilter):
    """Drop rows that share a word ``n``-gram with a reference set (your test split).

    ``ds.filter(dec, batched=True, with_indices=True)`` after ``dec.fit(ds)``, or
    ``ds.map(dec.mark, batched=True, with_indices=True)`` to keep the rows and see why: reason
    ``contaminated``, ``<name>_of`` (the first reference row holding the matched n-gram) and
    ``<name>_ngram`` (the first matched n-gram, normalised). Works with ``num_proc>1``.

    Args:
        reference (`datasets.Dataset` or `list[str]`): the texts to protect, indexed once here.
        n (`int`, defaults to 13): n-gram length in words.
        column (`str`, *optional*): the text column of the dataset (default: its declared text column,
            else ``text``).
        reference_column (`str`, defaults to ``"text"``): the text column of a reference ``Dataset``.
        reference_name (`str`, *optional*): what the card calls the reference (default: the dataset's
            name and split, or ``"list of texts"``).
        examples (`int`, defaults to 3): matched n-grams shown by ``describe()`` and the card (they are
            fragments of the reference: pass 0 for a private test set).
        id_column (`str`, *optional*): find rows by this column instead of by position.

    ``describe()`` holds the reference's name, rows, number of distinct n-grams and a content hash,
    never its texts. The pickled state (the ``datasets`` fingerprint) holds the configuration, the
    reference's n-gram hashes (8 + 4 bytes per distinct n-gram) and the fitted per-row decisions.

    Example:
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["x one two three y", "one two"]})
        >>> dec = Decontaminate(["one two three four"], n=3).fit(ds)
        >>> dec.keep_mask.tolist(), dec.describe()["reference"]["ngrams"]
        ([False, True], 2)
    """

    _FORMAT = 1
    _PARAMS = ("column", "n", "reference_column", "id_column", "examples")
    name = "decontaminate"

    def __init__(self, reference, *, n: int = 13, column: str | None = None, reference_column: str = "text",
                 reference_name: str | None = None, examples: int = 3, id_column: str | None = None,
                 name: str | None = None):
        check_range("n", n, 1, integer=True)
        check_range("examples", examples, 0, integer=True)
        check_column_option(column)
        if not isinstance(reference_column, str) or not reference_column:
            raise InvalidParameterError(f"reference_column={reference_column!r} must be a column name of the "
                                        "reference.")
        texts, default_name = self._reference_texts(reference, reference_column)
        if not len(texts):
            raise EmptyDatasetError("Decontaminate: the reference set is empty: pass your test split (a Dataset or "
                                    "a list of texts).")
        self.column, self.n, self.reference_column, self.id_column = column, int(n), reference_column, id_column
        self.examples = int(examples)
        s = shingles(texts, self.n)
        order = np.argsort(s["hashes"], kind="stable")  # rows ascend within a hash: the first row of each n-gram
        h, rows = s["hashes"][order], s["rows"][order]
        first = np.ones(len(h), dtype=bool)
        first[1:] = h[1:] != h[:-1]
        self._index = {"hashes": h[first], "rows": rows[first].astype(np.int32 if len(texts) < 2**31 else np.int64)}
        self._reference = {"name": reference_name or default_name, "rows": len(texts), "ngrams": int(first.sum()),
                           "content_hash": _content_hash(texts)}
        self._fitted = None
        super().__init__(name=name)

    @staticmethod
    def _reference_texts(reference, column: str) -> tuple[Any, str]:
        if isinstance(reference, (str, bytes, Path)):
            raise InvalidParameterError("Decontaminate: reference must be a datasets.Dataset or a list of texts, not a "
                                        "single string or path: for a file, use Decontaminate.from_file(path).")
        if hasattr(reference, "column_names") and isinstance(reference.column_names, dict):
            raise InvalidParameterError(f"Decontaminate: reference is a DatasetDict with splits "
                                        f"{sorted(reference.column_names)}: pass one split, e.g. reference['test'].")
        if hasattr(reference, "column_names") and hasattr(reference, "with_format"):
            if column not in reference.column_names:
                raise MissingColumnError(f"Decontaminate: reference column {column!r} is not in the reference dataset. "
                                         f"Current columns: {sorted(reference.column_names)}. Pass reference_column=.")
            texts = _arrow_texts(reference.with_format("arrow")[column], f"Decontaminate reference column {column!r}")
            info = getattr(reference, "info", None)
            label = getattr(info, "dataset_name", None) or getattr(info, "builder_name", None) or "datasets.Dataset"
            split = getattr(reference, "split", None)
            return texts, f"{label}{f' ({split})' if split else ''}"
        import pyarrow as pa

        if isinstance(reference, (pa.Array, pa.ChunkedArray)):
            return _arrow_texts(reference, "Decontaminate reference"), "Arrow array of texts"
        try:
            texts = list(reference)
        except TypeError as e:
            raise InvalidParameterError(f"Decontaminate: reference must be a datasets.Dataset or a list of texts, got "
                                        f"{type(reference).__name__}.") from e
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise InvalidParameterError(f"Decontaminate: reference item {bad} is {type(texts[bad]).__name__}, not a "
                                        "string: pass a list of texts.")
        return _arrow_texts(texts, "Decontaminate reference"), "list of texts"

    @classmethod
    def from_file(cls, path: str | Path, *, column: str = "text", **options: Any) -> "Decontaminate":
        """A ``Decontaminate`` against the ``column`` of a csv, jsonl or parquet file (named by its file name).

        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "test.csv"
        >>> _ = p.write_text("text\\none two three\\n")
        >>> Decontaminate.from_file(p, n=2).describe()["reference"]["name"]
        'test.csv'
        >>> p.unlink(); p.parent.rmdir()
        """
        options.setdefault("reference_name", Path(path).name)
        return cls(read_texts(path, column=column), reference_column=column, **options)

    def params(self) -> dict[str, Any]:
        return {**super().params(), "reference_name": self._reference["name"],
                "reference_rows": self._reference["rows"], "reference_hash": self._reference["content_hash"]}

    @property
    def score_columns(self) -> list[str]:
        return [f"{self.name}_of", f"{self.name}_ngram"]

    @property
    def score_types(self) -> dict[str, Any]:
        return {f"{self.name}_of": "int64", f"{self.name}_ngram": "string"}

    def _fit(self, ds):
        col = self._text_column(ds)
        texts = _arrow_texts(ds.with_format("arrow")[col], f"Decontaminate: column {col!r}")
        q = shingles(texts, self.n)
        rows_n = len(texts)
        hit = _lookup(self._index["hashes"], q["hashes"])
        hit_rows, first = np.unique(q["rows"][hit], return_index=True)  # the first matched n-gram of each row
        e = hit[first]
        codes = np.zeros(rows_n, dtype=np.int16)
        codes[hit_rows] = 1
        # per row: the reference row and an index into the matched n-gram texts (-1 = none); arrays, so the
        # pickled state (hashed by datasets on every map) stays a few buffers however many rows there are
        of = np.full(rows_n, -1, dtype=np.int64)
        of[hit_rows] = self._index["rows"][np.searchsorted(self._index["hashes"], q["hashes"][e])]
        ngram_id = np.full(rows_n, -1, dtype=np.int64)
        ngram_id[hit_rows] = np.arange(len(hit_rows))
        words_ = q["words"]
        ngrams = [" ".join(words_.slice(s, k).to_pylist()) for s, k in zip(q["starts"][e].tolist(),
                                                                            q["lengths"][e].tolist())]
        return codes, ["contaminated"], {"of": of, "ngram_id": ngram_id, "ngrams": ngrams}

    def annotate(self, batch, indices=None):
        pos = self._positions(batch, indices)
        cols = self._fitted["columns"]
        texts = cols["ngrams"]
        return {f"{self.name}_of": [None if j < 0 else j for j in cols["of"][pos].tolist()],
                f"{self.name}_ngram": [None if g < 0 else texts[g] for g in cols["ngram_id"][pos].tolist()]}

    def _describe_extra(self) -> dict[str, Any]:
        d: dict[str, Any] = {"reference": dict(self._reference)}
        f = self._fitted
        if f is not None and self.examples:
            cols = f["columns"]
            rows = np.flatnonzero(f["codes"])[: self.examples].tolist()
            d["examples"] = [{"row": i, "reference_row": int(cols["of"][i]),
                              "ngram": cols["ngrams"][cols["ngram_id"][i]]} for i in rows]
        return d


def _lookup(sorted_hashes: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Positions of ``queries`` found in ``sorted_hashes``. A bitmap on the hashes' top bits (16 slots per
    reference n-gram, at most 2^27) rules out most misses with one memory access each; only the rest are
    binary-searched."""
    if not len(sorted_hashes) or not len(queries):
        return np.zeros(0, dtype=np.int64)
    bits = int(min(27, max(10, np.ceil(np.log2(16 * len(sorted_hashes))))))
    shift = np.uint64(64 - bits)
    bitmap = np.zeros(1 << bits, dtype=bool)
    bitmap[sorted_hashes >> shift] = True
    cand = np.flatnonzero(bitmap[queries >> shift])
    pos = np.searchsorted(sorted_hashes, queries[cand])
    pos[pos == len(sorted_hashes)] = 0
    return cand[sorted_hashes[pos] == queries[cand]]
