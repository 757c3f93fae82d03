"""Exact and near-duplicate removal, checked against exact Jaccard computed directly, and datasketch."""

from __future__ import annotations

import random
import re
import unicodedata

import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from datasets.fingerprint import Hasher

from realdata import rotten_tomatoes
from synth_datasets import curate
from synth_datasets.curate.minhash import estimated_jaccard, shingle_sets, signatures
from synth_datasets.errors import InvalidParameterError

THRESHOLD = 0.7


def _norm(t: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", t).lower()).strip()


def _shingles(t: str, k: int = 5) -> set[str]:
    t = _norm(t)
    return {t[i:i + k] for i in range(len(t) - k + 1)} if len(t) >= k else {t}


def _exact_jaccard_matrix(texts):
    """All-pairs exact Jaccard of character 5-gram sets, computed directly (scipy sparse products)."""
    from scipy.sparse import csr_matrix

    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, t in enumerate(texts):
        for s in _shingles(t):
            rows.append(i)
            cols.append(vocab.setdefault(s, len(vocab)))
    x = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocab)))
    inter = (x @ x.T).toarray()
    size = np.asarray(x.sum(1)).ravel()
    return inter / (size[:, None] + size[None, :] - inter)


def _edit(text: str, rng: random.Random, vocab: list[str]) -> str:
    """A few word edits: replace, delete or insert 1-3 words."""
    words = text.split()
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(["replace", "delete", "insert"])
        i = rng.randrange(len(words))
        if op == "replace":
            words[i] = rng.choice(vocab)
        elif op == "delete" and len(words) > 5:
            del words[i]
        else:
            words.insert(i, rng.choice(vocab))
    return " ".join(words)


@pytest.fixture(scope="module")
def planted():
    """1,500 real snippets + 300 near-copies (few-word edits) appended after them, shuffled copy order."""
    rng = random.Random(7)
    base = [r["text"] for r in rotten_tomatoes(1500, seed=3) if len(r["text"].split()) >= 12][:1500]
    vocab = sorted({w for t in base for w in t.split()})
    sources = rng.sample(range(len(base)), 300)
    copies = [_edit(base[i], rng, vocab) for i in sources]
    return base + copies, sources


def test_near_duplicates_find_planted_copies_vs_exact_jaccard(planted, tmp_path):
    texts, sources = planted
    n_base = len(texts) - len(sources)
    jac = _exact_jaccard_matrix(texts)
    np.fill_diagonal(jac, 0)
    true_pairs = [(s, n_base + k) for k, s in enumerate(sources) if jac[s, n_base + k] >= THRESHOLD]
    assert len(true_pairs) >= 200  # the planted edits mostly stay above the threshold
    Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    near = curate.NearDuplicates(column="text", threshold=THRESHOLD).fit(ds)
    marked = ds.map(near.mark, batched=True, batch_size=256, with_indices=True)
    reasons = np.array(marked["near_dup_reason"], dtype=object)
    dropped = reasons != None  # noqa: E711
    found = sum(bool(dropped[c]) for _, c in true_pairs)
    recall = found / len(true_pairs)
    has_partner = (jac >= THRESHOLD).any(1)
    false_removals = int((dropped & ~has_partner).sum())
    print(f"near-dup: {len(true_pairs)} planted pairs >= {THRESHOLD}, recall {recall:.3f}, "
          f"removed {int(dropped.sum())}, false removals {false_removals}")
    assert recall >= 0.95
    assert false_removals / len(texts) < 0.01
    # the recorded link and similarity are the exact ones, and the kept row is the first of its cluster
    of, sim = marked["near_dup_of"], marked["near_dup_jaccard"]
    for i in np.flatnonzero(dropped):
        assert of[i] < i and not dropped[of[i]]
        assert sim[i] == pytest.approx(jac[i, of[i]], abs=1e-6)
    assert near.stats["dropped_near_duplicate"] == int(dropped.sum()) and near.describe()["counts_source"] == "fit"
    kept = ds.filter(near, batched=True, with_indices=True)
    assert kept.num_rows == len(texts) - int(dropped.sum())
    # cache: same fitted state -> same files; refit on other data -> new fingerprint
    again = curate.NearDuplicates(column="text", threshold=THRESHOLD).fit(ds)
    assert ds.filter(again, batched=True, with_indices=True).cache_files == kept.cache_files
    other = curate.NearDuplicates(column="text", threshold=THRESHOLD).fit(ds.select(range(100)))
    assert Hasher.hash(other) != Hasher.hash(near)


def test_minhash_estimate_and_candidates_match_datasketch(planted):
    from datasketch import MinHash, MinHashLSH

    texts, sources = planted
    sh = shingle_sets([_norm(t) for t in texts], ngram=5)
    # shingle sets are exactly the direct ones (sizes equal, no hash collisions at this scale)
    assert [len(sh[i]) for i in range(len(texts))] == [len(_shingles(t)) for t in texts]
    sig = signatures(sh, num_perm=128, seed=1)
    jac = _exact_jaccard_matrix(texts)
    rng = np.random.default_rng(0)
    pairs = np.c_[rng.integers(0, len(texts), 3000), rng.integers(0, len(texts), 3000)]
    pairs = np.r_[pairs, np.argwhere(np.triu(jac, 1) >= 0.3)]
    err = np.abs(estimated_jaccard(sig, pairs) - jac[pairs[:, 0], pairs[:, 1]])
    assert err.mean() < 0.03 and err.max() < 0.2  # standard error of 128 permutations is <= 0.045
    near = curate.NearDuplicates(column="text", threshold=THRESHOLD)
    anchor, _, _ = near.clusters(texts)
    ours = {i for i in range(len(texts)) if anchor[i] != i}
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128, weights=(0.05, 0.95))
    theirs = set()
    for i, t in enumerate(texts):
        m = MinHash(num_perm=128)
        m.update_batch([s.encode() for s in _shingles(t)])
        if any(jac[i, j] >= THRESHOLD for j in lsh.query(m)):
            theirs.add(i)
        lsh.insert(i, m)
    truth = {i for i in range(len(texts)) if (jac[i, :i] >= THRESHOLD).any()}
    assert len(truth) >= 200
    assert len(ours & truth) >= len(theirs & truth) - 2 and len(ours & truth) / len(truth) >= 0.95


def test_exact_duplicates_and_reference():
    ds = Dataset.from_dict({"text": ["Hello  World", "hello world", "hello, world", "other", "other"]})
    ex = curate.ExactDuplicates().fit(ds)
    m = ds.map(ex.mark, batched=True, with_indices=True)
    assert list(m["exact_dup_reason"]) == [None, "exact_duplicate", None, None, "exact_duplicate"]
    assert list(m["exact_dup_of"]) == [-1, 0, -1, -1, 3]
    punct = curate.ExactDuplicates(punctuation=True).fit(ds)
    assert punct.keep_mask.tolist() == [True, False, False, True, False]
    near = curate.NearDuplicates(threshold=0.9, reference=["other"]).fit(ds)
    r = ds.map(near.mark, batched=True, with_indices=True)
    assert list(r["near_dup_reason"]) == [None, "near_duplicate", None, "near_reference", "near_reference"]
    assert list(r["near_dup_of"])[3:] == [-1, -1]  # -1 - position in the reference
    assert near.describe()["params"]["reference_size"] == 1
    ids = Dataset.from_dict({"id": ["a", "b", "c"], "text": ["x y z", "x y z", "q"]})
    by_id = curate.ExactDuplicates(id_column="id").fit(ids)
    assert set(ids.shuffle(seed=1).filter(by_id, batched=True)["id"]) == {"a", "c"}  # aligned by id, not position


def test_dedup_errors():
    ds = Dataset.from_dict({"text": ["a", None]})
    with pytest.raises(InvalidParameterError, match="row 1 is NoneType"):
        curate.ExactDuplicates().fit(ds)
    with pytest.raises(InvalidParameterError, match="threshold=1.5"):
        curate.NearDuplicates(threshold=1.5)
    with pytest.raises(InvalidParameterError, match="unit='line'"):
        curate.NearDuplicates(unit="line")
    ok = Dataset.from_dict({"text": ["a b", "a b", "c"]})
    f = curate.ExactDuplicates().fit(ok)
    with pytest.raises(InvalidParameterError, match="with_indices=True"):
        ok.filter(f, batched=True)
    big = Dataset.from_dict({"text": ["x"] * 5})
    with pytest.raises(InvalidParameterError, match="fitted on 3 rows but got row index 4"):
        big.filter(f, batched=True, with_indices=True)
    with pytest.raises(InvalidParameterError, match="duplicate value"):
        curate.ExactDuplicates(id_column="text").fit(ok)
