"""Heuristic filters and the shared curator contracts: reasons, counts, describe, fingerprints,
the `datasets` cache, worker processes and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from datasets import Dataset, load_from_disk
from datasets.fingerprint import Hasher

from synth_datasets import curate
from synth_datasets.errors import InvalidParameterError, MissingColumnError, NotFittedError

TEXTS = [
    "A perfectly fine review of a film about a dog.",                    # 0 kept
    "Too short",                                                           # 1 too_few_words
    "As an AI language model, I cannot write reviews.",                    # 2 refusal
    "I'm sorry, but I can't help with that request.",                      # 3 refusal
    "great great great great great great great great great great",        # 4 repeated
    "Это обзор фильма на русском языке, довольно длинный.",                # 5 wrong script
    '{"label": "positive", "text": "nice"}',                               # 6 json ok
    "This film contains a SPOILER about the ending, sadly.",               # 7 banned
    "the the cat cat sat on a mat with a hat and a bat",                   # 8 fine
]


def _ds(tmp_path, rows):
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    return load_from_disk(str(tmp_path / "ds"))


def marked(ds, f, **kw):
    return list(ds.map(f.mark, batched=True, batch_size=4, **kw)[f.reason_column])


def test_each_heuristic_drops_with_its_reason():
    ds = Dataset.from_dict({"text": TEXTS})
    assert marked(ds, curate.Length(min_words=3)) == [None, "too_few_words"] + [None] * 7
    lens = [len(t) for t in TEXTS]
    assert 0 < sum(n > 48 for n in lens) < 9
    assert marked(ds, curate.Length(max_chars=48)) == ["too_long" if n > 48 else None for n in lens]
    assert marked(ds, curate.Length(min_chars=40, max_words=8)) == [
        "too_short" if n < 40 else ("too_many_words" if len(t.split()) > 8 else None) for t, n in zip(TEXTS, lens)]
    assert marked(ds, curate.Refusals()) == [None, None, "refusal", "refusal"] + [None] * 5
    rep = marked(ds, curate.Repetition(n=2, max_ngram_ratio=0.3))
    assert rep[4] == "repeated_ngrams" and rep.count(None) == 8
    assert marked(ds, curate.Script(scripts=["Latin"])) == [None] * 5 + ["wrong_script"] + [None] * 3
    assert marked(ds, curate.Script(scripts=["Cyrillic"]))[5] is None
    assert marked(ds, curate.BannedStrings(strings=["spoiler"])) == [None] * 7 + ["banned_string", None]
    assert marked(ds, curate.BannedStrings(strings=["spoiler"], case_sensitive=True))[7] is None
    assert marked(ds, curate.BannedStrings(strings=["cat"], whole_words=True))[8] == "banned_string"
    schema = {"type": "object", "required": ["label", "text"],
              "properties": {"label": {"enum": ["positive", "negative"]}, "text": {"type": "string"}}}
    fmt = marked(ds, curate.Format(json_schema=schema))
    assert fmt[6] is None and set(fmt[:6] + fmt[7:]) == {"invalid_json"}
    bad_schema = Dataset.from_dict({"text": ['{"label": "meh", "text": "x"}', '```json\n{"label": "negative", "text": "x"}\n```']})
    assert marked(bad_schema, curate.Format(json_schema=schema)) == ["schema_violation", None]
    assert marked(ds, curate.Format(regex=r"film"))[:3] == [None, "no_match", "no_match"]
    assert marked(ds, curate.Format(regex=r"Too short", match="fullmatch"))[:2] == ["no_match", None]


def test_truncated_and_failed_generations_and_token_bounds():
    ds = Dataset.from_dict({"text": ["done.", "cut off mid", None], "text_finish_reason": ["stop", "length", "error"],
                            "text_error": [None, None, "HTTP 500"], "text_tokens": [3, 12, 0]})
    assert marked(ds, curate.Truncated()) == [None, "truncated", "failed"]
    assert marked(ds, curate.Length(max_tokens=10, tokens_column="text_tokens")) == [None, "too_many_tokens", "missing_text"]


def test_trim_to_sentence_salvages_cut_rows_then_truncated_drops_the_rest():
    texts = ["Great cast. Weak plot, and the ending", "Finished fine.", "no sentence end at all and", "Wow. And", None,
             'A "bold" film, she said. "Really bold." Yet the']
    reasons = ["length", "stop", "length", "length", "error", "length"]
    ds = Dataset.from_dict({"review": texts, "review_finish_reason": reasons,
                            "review_error": [None, None, None, None, "HTTP 500", None]})
    trim = curate.TrimToSentence(column="review", min_words=2)
    out = ds.map(trim, batched=True, batch_size=2)
    assert list(out["review"]) == ["Great cast.", "Finished fine.", "no sentence end at all and", "Wow. And", None,
                                   'A "bold" film, she said. "Really bold."']
    assert list(out["review_finish_reason"]) == ["trimmed", "stop", "length", "length", "error", "trimmed"]
    assert trim.describe()["counts"] == {"total": 6, "trimmed": 2, "untrimmable": 2}  # "Wow." is one word < 2
    assert marked(out, curate.Truncated(column="review")) == [None, None, "truncated", "truncated", "failed", None]
    assert Hasher.hash(trim) == Hasher.hash(curate.TrimToSentence(column="review", min_words=2))
    assert Hasher.hash(trim) != Hasher.hash(curate.TrimToSentence(column="review", min_words=3))
    with pytest.raises(MissingColumnError, match="review_finish_reason"):
        Dataset.from_dict({"review": ["x"]}).map(curate.TrimToSentence(column="review"), batched=True)


def test_tokenizer_bound_uses_real_token_counts(tmp_path):
    from transformers import AutoTokenizer

    from synth_datasets.llm import embedded_model_path

    path = embedded_model_path()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tok.save_pretrained(tmp_path / "tok")
    texts = ["hello", "a somewhat longer sentence with several more tokens in it"]
    n = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    f = curate.Length(max_tokens=n[0], tokenizer=str(tmp_path / "tok"))
    assert marked(Dataset.from_dict({"text": texts}), f) == [None, "too_many_tokens"]


def test_counts_in_process_from_reason_column_and_describe():
    ds = Dataset.from_dict({"text": TEXTS})
    f = curate.Refusals()
    assert "counts" not in f.describe()  # nothing known yet
    kept = ds.filter(f, batched=True, batch_size=4)
    assert kept.num_rows == 7
    assert f.stats == {"total": 9, "kept": 7, "dropped": 2, "dropped_refusal": 2}
    d = f.describe()
    assert d["counts"]["dropped_refusal"] == 2 and d["counts_source"] == "in-process calls"
    assert d["type"] == "Refusals" and d["params"]["patterns"] == list(curate.REFUSAL_PATTERNS)
    assert "datasets" in d["library"]
    json.dumps(d)
    g = curate.Refusals()
    m = ds.map(g.mark, batched=True, num_proc=2)  # workers: this process sees no calls
    assert g.stats.get("total", 0) == 0 and "counts" not in g.describe()
    assert g.counts(m) == {"total": 9, "kept": 7, "dropped": 2, "dropped_refusal": 2}
    assert g.describe()["counts_source"] == "reason column"
    assert list(m.filter(g.is_kept, batched=True)["text"]) == list(kept["text"])


def test_cache_hit_on_disk_dataset_and_fingerprint(tmp_path):
    ds = _ds(tmp_path, {"text": TEXTS})
    f = curate.Length(min_words=3, max_chars=200)
    first = ds.filter(f, batched=True)
    assert f.stats["total"] == 9
    second = ds.filter(curate.Length(min_words=3, max_chars=200), batched=True)
    assert second.cache_files == first.cache_files
    f2 = curate.Length(min_words=3, max_chars=200)
    ds.filter(f2, batched=True)
    assert f2.stats.get("total", 0) == 0  # served from the cache: the callable never ran
    assert ds.filter(curate.Length(min_words=4, max_chars=200), batched=True).cache_files != first.cache_files
    m1 = ds.map(f.mark, batched=True)
    assert ds.map(curate.Length(min_words=3, max_chars=200).mark, batched=True).cache_files == m1.cache_files
    # using the object (counts, a compiled tokenizer/regex) never changes its hash; a new process agrees
    h = Hasher.hash(f)
    assert h == Hasher.hash(curate.Length(min_words=3, max_chars=200))
    code = ("from datasets.fingerprint import Hasher\nfrom synth_datasets import curate\n"
            "print(Hasher.hash(curate.Length(min_words=3, max_chars=200)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == h
    r = curate.Refusals()
    h = Hasher.hash(r)
    ds.filter(r, batched=True)
    assert Hasher.hash(r) == h and h != Hasher.hash(curate.Refusals(name="refusal2"))


def test_bad_input_is_a_clear_error():
    ds = Dataset.from_dict({"review": ["x y z"]})
    with pytest.raises(MissingColumnError, match=r"no 'text' column and declares no text column.*\['review'\]"):
        ds.filter(curate.Length(min_words=1), batched=True)
    with pytest.raises(MissingColumnError, match=r"column 'body' is not in the dataset.*\['review'\]"):
        ds.filter(curate.Length(column="body", min_words=1), batched=True)
    with pytest.raises(InvalidParameterError, match="min_words=5 > max_words=2"):
        curate.Length(min_words=5, max_words=2)
    with pytest.raises(InvalidParameterError, match="at least one bound"):
        curate.Length()
    with pytest.raises(InvalidParameterError, match="max_ngram_ratio=1.5 must be a number in"):
        curate.Repetition(max_ngram_ratio=1.5)
    with pytest.raises(InvalidParameterError, match="Unknown Unicode script 'Klingon'"):
        curate.Script(scripts=["Klingon"])
    with pytest.raises(InvalidParameterError, match="does not compile"):
        curate.Format(regex="(")
    with pytest.raises(InvalidParameterError, match="not a valid JSON schema"):
        curate.Format(json_schema={"type": "nonsense"})
    with pytest.raises(InvalidParameterError, match="token bounds need"):
        curate.Length(max_tokens=3)
    with pytest.raises(InvalidParameterError, match="non-empty list"):
        curate.BannedStrings(strings="oops")
    with pytest.raises(NotFittedError, match=r"call \.fit\(ds\) first"):
        ds.filter(curate.ExactDuplicates(column="review"), batched=True, with_indices=True)
