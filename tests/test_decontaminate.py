"""Decontamination against a reference set: planted quotes of real Rotten Tomatoes texts are all found,
with the right reference row, and the filter agrees row by row with a brute-force set of word tuples."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import textwrap
import unicodedata

import pytest
from datasets import Dataset, DatasetDict, load_from_disk
from datasets.fingerprint import Hasher

from realdata import rotten_tomatoes_full
from synth_datasets import curate
from synth_datasets.errors import EmptyDatasetError, InvalidParameterError, MissingColumnError, NotFittedError

N = 13


def naive_words(text: str) -> list[str]:
    """The documented normalisation, written with Python's re (the implementation uses Arrow's kernels)."""
    t = re.sub("['\u2019\u2018`\u00b4]", "", unicodedata.normalize("NFKC", text).lower())
    return re.sub(r"[^\w\s]|_", " ", t).split()


def naive_index(reference: list[str], n: int = N) -> dict[tuple, int]:
    """n-gram (a tuple of words) -> first reference row holding it; short rows whole."""
    idx: dict[tuple, int] = {}
    for j, text in enumerate(reference):
        w = naive_words(text)
        grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)] if len(w) >= n else ([tuple(w)] if w else [])
        for g in grams:
            idx.setdefault(g, j)
    return idx


def naive_match(text: str, idx: dict[tuple, int], n: int = N) -> tuple[int, str] | None:
    w = naive_words(text)
    grams = [tuple(w[i:i + n]) for i in range(len(w) - n + 1)] if len(w) >= n else ([tuple(w)] if w else [])
    for g in grams:
        if g in idx:
            return idx[g], " ".join(g)
    return None


@pytest.fixture(scope="module")
def corpus():
    """10,000 reference rows, 50 planted rows quoting 13-18 consecutive words of one of them inside other
    text, 1,000 clean rows (real texts outside the reference), shuffled together."""
    texts = list(dict.fromkeys(rotten_tomatoes_full()))
    random.Random(0).shuffle(texts)
    reference, held = texts[:10_000], texts[10_000:]
    idx = naive_index(reference)
    gram_rows: dict[tuple, set] = {}
    for j, text in enumerate(reference):
        w = naive_words(text)
        for i in range(len(w) - N + 1):
            gram_rows.setdefault(tuple(w[i:i + N]), set()).add(j)
    held = [t for t in held if naive_match(t, idx) is None]  # 1 of 3,836 quotes the reference itself
    clean, fillers = held[:1000], held[1000:1200]
    rng = random.Random(1)
    # sources whose every 13-gram is in that reference row only, so the expected row is unambiguous
    sources = [j for j, t in enumerate(reference) if len(t.split()) >= 22
               and all(gram_rows[tuple(naive_words(t)[i:i + N])] == {j} for i in range(len(naive_words(t)) - N + 1))]
    planted = []
    for j in rng.sample(sources, 50):
        raw = reference[j].split()
        while True:
            length = rng.randint(13, 18)
            start = rng.randrange(len(raw) - length + 1)
            quote = " ".join(raw[start:start + length])
            if len(naive_words(quote)) >= N:
                break
        a, b = rng.sample(fillers, 2)
        planted.append((f"{a.strip()} As one critic put it, {quote} {b.strip()}", j, quote))
    rows = [(t, None, None) for t in clean] + planted
    rng.shuffle(rows)
    return reference, rows


def test_finds_every_planted_quote_and_no_clean_row(corpus, tmp_path):
    reference, rows = corpus
    ds = Dataset.from_dict({"text": [r[0] for r in rows]})
    ds.save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    dec = curate.Decontaminate(Dataset.from_dict({"text": reference}), n=N).fit(ds)
    marked = ds.map(dec.mark, batched=True, with_indices=True)
    reasons, of, grams = marked["decontaminate_reason"], marked["decontaminate_of"], marked["decontaminate_ngram"]
    planted = [i for i, r in enumerate(rows) if r[1] is not None]
    clean = [i for i, r in enumerate(rows) if r[1] is None]
    assert len(planted) == 50 and len(clean) == 1000
    found = [i for i in planted if reasons[i] == "contaminated" and of[i] == rows[i][1]]
    false_hits = [i for i in clean if reasons[i] is not None]
    print(f"decontaminate: {len(found)}/50 planted found with the right reference row, "
          f"{len(false_hits)}/1000 false hits, {dec.describe()['reference']['ngrams']} reference n-grams")
    assert len(found) == 50 and false_hits == []
    for i in planted:  # the recorded n-gram is 13 words of the quote, and of the reference row
        assert len(grams[i].split()) == N
        assert grams[i] in " ".join(naive_words(rows[i][2])) and grams[i] in " ".join(naive_words(reference[of[i]]))
    # row by row the same as the brute force over word tuples (no hash collision, same normalisation)
    idx = naive_index(reference)
    assert [(o, g) if g is not None else None for o, g in zip(of, grams)] == \
        [naive_match(r[0], idx) for r in rows]
    kept = ds.filter(dec, batched=True, with_indices=True)
    assert kept.num_rows == 1000 and set(kept["text"]) == {rows[i][0] for i in clean}
    assert dec.stats["dropped_contaminated"] == 50 and dec.describe()["counts_source"] == "fit"
    assert dec.counts(marked)["dropped"] == 50
    # the index holds exactly the distinct 13-grams of the reference (rows shorter than 13 words whole)
    assert dec.describe()["reference"]["ngrams"] == len(idx)


def test_normalisation_case_punctuation_whitespace():
    ref = ["The film's ending -- quiet, strange and  devastating -- stayed with me for days after the credits rolled.",
           "Too short to quote."]
    variants = [
        "the films ending quiet strange and devastating stayed with me for days after the credits rolled",
        "THE FILM’S ENDING: QUIET; STRANGE AND DEVASTATING!!! Stayed with me\tfor days\n after the credits...",
        "Ｔｈｅ film's ending (quiet, strange and devastating) stayed with me for days after the credits, sadly.",
        "too short, to QUOTE!",                      # a short row equal to a short reference row
    ]
    near_misses = [
        "The film's ending -- quiet, strange and truly devastating -- stayed with us for days after the credits "
        "rolled.",
        "short to quote",                            # part of a short reference row
        "the credits rolled",                        # part of a long one
        "",
    ]
    ds = Dataset.from_dict({"text": variants + near_misses})
    dec = curate.Decontaminate(ref, n=8).fit(ds)
    marked = ds.map(dec.mark, batched=True, with_indices=True)
    assert list(marked["decontaminate_reason"]) == ["contaminated"] * 4 + [None] * 4
    assert list(marked["decontaminate_of"]) == [0, 0, 0, 1, None, None, None, None]
    assert marked["decontaminate_ngram"][0] == "the films ending quiet strange and devastating stayed"
    assert marked["decontaminate_ngram"][3] == "too short to quote"
    # the inserted and the changed word in row 4 leave runs of 6 matching words: enough for n=5
    assert curate.Decontaminate(ref, n=5).fit(ds).keep_mask.tolist() == [False] * 5 + [True] * 3


def test_bad_input_is_a_clear_error_before_any_work():
    ds = Dataset.from_dict({"review": ["a b c d"], "label": ["x"]})
    for bad in (0, -3, 1.5, True, "13"):
        with pytest.raises(InvalidParameterError, match="n="):
            curate.Decontaminate(["a b c"], n=bad)
    with pytest.raises(InvalidParameterError, match="examples="):
        curate.Decontaminate(["a b c"], examples=-1)
    with pytest.raises(MissingColumnError, match=r"'body'.*\['label', 'review'\]"):
        curate.Decontaminate(["a b c"], n=2, column="body").fit(ds)
    with pytest.raises(MissingColumnError, match=r"no column=.*\['label', 'review'\]"):
        curate.Decontaminate(["a b c"], n=2).fit(ds)
    with pytest.raises(MissingColumnError, match=r"'text'.*\['label', 'review'\].*reference_column="):
        curate.Decontaminate(ds, n=2)
    with pytest.raises(InvalidParameterError, match=r"DatasetDict.*\['test'\].*reference\['test'\]"):
        curate.Decontaminate(DatasetDict(test=ds), n=2, reference_column="review")
    with pytest.raises(InvalidParameterError, match="single string or path.*from_file"):
        curate.Decontaminate("a b c", n=2)
    with pytest.raises(InvalidParameterError, match="item 1 is int"):
        curate.Decontaminate(["a b", 3], n=2)
    with pytest.raises(EmptyDatasetError, match="reference set is empty"):
        curate.Decontaminate([], n=2)
    dec = curate.Decontaminate(["a b c"], n=2, column="review")
    with pytest.raises(NotFittedError, match="fit"):
        dec.mark({"review": ["a b"]}, [0])
    with pytest.raises(InvalidParameterError, match="row 1 has no text"):
        dec.fit(Dataset.from_dict({"review": ["a b", None]}))
    dec.fit(ds)
    with pytest.raises(InvalidParameterError, match="with_indices=True"):
        ds.filter(dec, batched=True)


def _make(reference, n=N):
    return curate.Decontaminate(reference, n=n, column="text")


def test_fingerprint_stable_across_processes_and_tied_to_the_reference():
    reference = [f"row {i} of the reference with words one two three four five six seven eight nine" for i in range(50)]
    data = {"text": ["x row 3 of the reference with words one two three four five six seven eight nine", "clean"]}
    ds = Dataset.from_dict(data)
    dec = _make(reference).fit(ds)
    h = Hasher.hash(dec)
    assert h == Hasher.hash(_make(list(reference)).fit(ds))
    code = f"""
        from datasets import Dataset
        from datasets.fingerprint import Hasher
        from synth_datasets import curate
        dec = curate.Decontaminate({reference!r}, n={N}, column="text").fit(Dataset.from_dict({data!r}))
        print(Hasher.hash(dec))
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == h
    assert h != Hasher.hash(_make(reference[:-1] + ["another last row"]).fit(ds))
    assert h != Hasher.hash(_make(reference, n=12).fit(ds))
    assert Hasher.hash(_make(reference)) != h  # fitting changes it (the decisions are state)
    other = _make(reference).fit(Dataset.from_dict({"text": ["clean", "clean too"]}))
    assert Hasher.hash(other) != h
    # using it (counts, resolved column) does not change it
    ds.filter(dec, batched=True, with_indices=True)
    dec.describe()
    assert Hasher.hash(dec) == h


def test_num_proc_2_same_result(corpus, tmp_path):
    reference, rows = corpus
    ds = Dataset.from_dict({"text": [r[0] for r in rows[:400]]})
    ds.save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    dec = curate.Decontaminate(reference, n=N).fit(ds)
    one = ds.map(dec.mark, batched=True, with_indices=True, batch_size=64)
    two = ds.map(dec.mark, batched=True, with_indices=True, batch_size=64, num_proc=2)
    assert one["decontaminate_of"] == two["decontaminate_of"]
    assert one["decontaminate_ngram"] == two["decontaminate_ngram"]
    expected = sum(r[1] is not None for r in rows[:400])
    assert expected > 5 and dec.counts(two)["dropped"] == expected
    kept = ds.filter(dec, batched=True, with_indices=True, num_proc=2, batch_size=64)
    assert kept.num_rows == 400 - expected


def test_describe_names_the_reference_but_holds_none_of_its_text(corpus):
    reference, rows = corpus
    ds = Dataset.from_dict({"text": [r[0] for r in rows]})
    ref = Dataset.from_dict({"text": reference})
    dec = curate.Decontaminate(ref, n=N, reference_name="rt-test").fit(ds)
    d = dec.describe()
    assert d["type"] == "Decontaminate" and d["params"]["n"] == N and d["counts"]["dropped"] == 50
    assert d["reference"]["name"] == "rt-test" and d["reference"]["rows"] == 10_000
    assert re.fullmatch(r"blake2b-128:[0-9a-f]{32}", d["reference"]["content_hash"])
    assert len(d["examples"]) == 3 and all(len(e["ngram"].split()) == N for e in d["examples"])
    dumped = json.dumps(d, ensure_ascii=False)
    assert not any(t in dumped for t in reference if len(t) > 20)
    assert not any(" ".join(naive_words(t)) in dumped for t in reference if len(naive_words(t)) > N)
    # examples=0 for a private test set: no fragment either
    quiet = curate.Decontaminate(ref, n=N, examples=0).fit(ds).describe()
    assert quiet["reference"]["name"] == "datasets.Dataset" and "examples" not in quiet
    assert not any(e["ngram"] in json.dumps(quiet, ensure_ascii=False) for e in d["examples"])
    # the pickled state (what datasets hashes and sends to workers) holds no reference text either
    state = repr(dec.__getstate__()["_index"]) + repr(dec.__getstate__()["_reference"])
    assert not any(w in state for w in ("the", "film", "movie"))
    assert curate.Decontaminate(reference[:-1], n=N).describe()["reference"]["content_hash"] != \
        d["reference"]["content_hash"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_from_file(tmp_path, suffix):
    ref = Dataset.from_dict({"question": ["What is the capital city of the country where the film was shot?",
                                          "Name, two, actors"], "id": [1, 2]})
    path = tmp_path / f"test{suffix}"
    {".csv": ref.to_csv, ".jsonl": ref.to_json, ".parquet": ref.to_parquet}[suffix](str(path))
    dec = curate.Decontaminate.from_file(path, column="question", n=6)
    assert dec.describe()["reference"] | {"content_hash": None} == {"name": path.name, "rows": 2, "ngrams": 9,
                                                                    "content_hash": None}
    ds = Dataset.from_dict({"text": ["so: the capital city of the country where it was shot", "name two actors",
                                     "the capital city of the"]})
    assert dec.fit(ds).keep_mask.tolist() == [False, False, True]
    with pytest.raises(MissingColumnError, match=r"'text'.*\['id', 'question'\]"):
        curate.Decontaminate.from_file(path)


def test_from_file_errors(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"\.txt.*'\.csv'"):
        curate.Decontaminate.from_file(tmp_path / "test.txt")
    with pytest.raises(InvalidParameterError, match="does not exist"):
        curate.Decontaminate.from_file(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(InvalidParameterError, match="could not be read as parquet"):
        curate.Decontaminate.from_file(bad)
    nums = tmp_path / "nums.csv"
    nums.write_text("text\n1\n2\n")
    with pytest.raises(InvalidParameterError, match="needs texts"):
        curate.Decontaminate.from_file(nums)


def test_short_rows_and_long_rows_do_not_mix():
    """A row of exactly n words is an n-gram; one word fewer is a whole short row: they never match
    each other even when one contains the other."""
    ref = ["one two three four", "five six seven"]
    ds = Dataset.from_dict({"text": ["zero one two three four", "one two three", "five six seven eight",
                                     "Five, six: seven!"]})
    dec = curate.Decontaminate(ref, n=4).fit(ds)
    assert dec.keep_mask.tolist() == [False, True, True, False]
    assert dec.describe()["reference"]["ngrams"] == 2


def test_card_has_a_decontamination_section(tmp_path):
    from synth_datasets import Recipe, run_and_publish

    reference = [f"test question {i}: which two films did the director make in the years before the war"
                 for i in range(30)]
    rows = ["a review with no overlap at all, just words", "quoting: Which two films did the director make in the "
            "years before the war, asked the critic", "another clean row about acting and music"]
    dec = curate.Decontaminate(reference, n=N, reference_name="my-test-split")
    recipe = Recipe("decon", source=Dataset.from_dict({"text": rows})).fit_filter(dec, with_indices=True)
    ds, record = run_and_publish(recipe, tmp_path / "out", metrics=[], report=False, progress=False)
    assert ds["text"] == [rows[0], rows[2]]
    card = (tmp_path / "out" / "README.md").read_text()
    section = card.split("## Decontamination", 1)[1].split("\n## ", 1)[0]
    assert "**my-test-split** (30 rows, " in section and "distinct word 13-grams" in section
    assert "**1 rows removed** of 3" in section
    assert "| 1 | 0 | which two films did the director make in the years before the war |" in section
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    step = prov["steps"][0]["describe"]
    assert step["reference"]["rows"] == 30 and not any(t in json.dumps(prov) for t in reference)
    # a run without the step has no such section
    run_and_publish(Recipe("plain", source=Dataset.from_dict({"text": rows})), tmp_path / "plain", metrics=[],
                    report=False, progress=False)
    plain = (tmp_path / "plain" / "README.md").read_text()
    assert "## Decontamination" not in plain and "test sets (contamination)" in plain


NOTES_BUILDER = '''"""Notes (a builder with no model)."""
from datasets import Dataset
from synth_datasets import Recipe


def add_text(batch):
    return {"text": [f"note {i}: " + ("the quick brown fox jumps over the lazy dog by the river bank" if i % 3 == 0
                                      else "nothing to see here") for i in batch["id"]]}


def recipe(*, n: int = 4):
    r = Recipe("notes", source=lambda: Dataset.from_dict({"id": list(range(n))}), license="mit", text_column="text")
    return r.map(add_text, name="text")
'''


def test_cli_build_decontaminate(tmp_path, capsys):
    from synth_datasets.cli import main

    script = tmp_path / "notes.py"
    script.write_text(NOTES_BUILDER)
    ref = tmp_path / "test.jsonl"
    ref.write_text(json.dumps({"question": "The quick brown fox jumps over the lazy dog by the river."}) + "\n")
    out = tmp_path / "out"
    assert main(["build", str(script), "--n", "6", "--decontaminate", str(ref), "--decontaminate-column", "question",
                 "--decontaminate-n", "8", "--out", str(out), "--no-report"]) == 0
    prov = json.loads((out / "provenance.json").read_text())
    assert [s["name"] for s in prov["steps"]] == ["text", "decontaminate"]
    assert (prov["steps"][1]["rows_in"], prov["steps"][1]["rows_out"]) == (6, 4)
    assert prov["reproduce"].endswith("--decontaminate test.jsonl --decontaminate-column question --decontaminate-n 8")
    card = (out / "README.md").read_text()
    assert "## Decontamination" in card and "**test.jsonl** (1 rows, 5 distinct word 8-grams" in card
    assert "**2 rows removed** of 6" in card
    assert "other than the one(s) in the Decontamination section" in card and "(contamination)" not in card
    # bad input: an error naming the fix, before any row is made (nothing written)
    capsys.readouterr()
    assert main(["build", str(script), "--decontaminate", str(ref), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "column 'text'" in err and "['question']" in err and not (tmp_path / "x").exists()
    missing = str(tmp_path / "nope.csv")
    assert main(["build", str(script), "--decontaminate", missing, "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_ascii_fast_path_equals_the_unicode_path():
    """All-ASCII texts take Arrow's ASCII kernels; one non-ASCII text sends the batch down the Unicode
    path: the words of the ASCII rows must not change."""
    from synth_datasets.curate.decontaminate import words

    texts = ["Don't PANIC -- it's `fine`, the well-known\tcase_study (v2.0) says!", "  ", "ALL-CAPS & 50% off...",
             "a\x0bb c\x0cd e\rf"]
    ascii_words, ascii_rows = words(texts)
    uni_words, uni_rows = words(texts + ["Ünïcode ’quote’"])
    k = len(ascii_words)
    assert ascii_words.to_pylist() == uni_words.to_pylist()[:k] == [w for t in texts for w in naive_words(t)]
    assert ascii_rows.tolist() == uni_rows.tolist()[:k]
    assert uni_words.to_pylist()[k:] == ["ünïcode", "quote"]
