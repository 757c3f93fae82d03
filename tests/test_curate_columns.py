"""Curators find a built dataset's text column by themselves: publish/Recipe declare it in the
features (a feature id that survives parquet and load_dataset), curators read it when no column= is
given; an explicit column= wins; with neither a declaration nor a `text` column the error lists the
columns."""

from __future__ import annotations

import pytest
from datasets import Dataset, load_dataset

from synth_datasets import Recipe, curate, declare_text_column, declared_text_column, publish, texts_of
from synth_datasets.errors import MissingColumnError

REVIEWS = ["A warm, funny and sharply written film that never drags.",
           "A warm, funny and sharply written film that never drags.",
           "As an AI language model, I cannot review this movie.",
           "Dull.",
           "The plot wanders, the jokes land flat and the ending is a shrug.",
           "Beautifully shot, but the story is thin and the pacing slow."]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A dataset as a user gets it: published with text_column="review", loaded back with load_dataset."""
    folder = tmp_path_factory.mktemp("built") / "movie-reviews"
    ds = Dataset.from_dict({"id": list(range(6)), "review": REVIEWS, "label": ["pos", "pos", "neg", "neg", "neg", "pos"],
                            "review_finish_reason": ["stop", "stop", "stop", "stop", "length", "stop"],
                            "review_logprobs": [[-0.1], [-0.1], [-3.0], [-0.2], [-0.5], [-0.4]]})
    publish(ds, folder, text_column="review", report=False)
    # own cache_dir: another test's "movie-reviews" folder can share this one's cache key in datasets
    return load_dataset(str(folder), split="train", cache_dir=str(tmp_path_factory.mktemp("hf-cache")))


def test_built_dataset_declares_its_text_column(built):
    assert declared_text_column(built) == "review"
    assert declared_text_column(built.filter(lambda r: True).select([0, 1])) == "review"   # kept through ops
    assert declared_text_column(built.map(lambda b: {"n": [1] * len(b["id"])}, batched=True)) == "review"
    assert texts_of(built) == REVIEWS
    assert declared_text_column(Dataset.from_dict({"review": REVIEWS})) is None


def test_curators_pick_up_the_declared_column(built):
    length = curate.Length(min_words=3)
    assert list(built.map(length.mark, batched=True)["length_reason"]) == [None, None, None, "too_few_words", None, None]
    assert length.describe()["text_column"] == "review"
    assert built.filter(curate.Refusals(), batched=True).num_rows == 5
    assert list(built.map(curate.Truncated().mark, batched=True)["truncated_reason"]) == [None] * 4 + ["truncated", None]
    gp = curate.GenerationProbability(min_mean_logprob=-1.0)
    assert list(built.map(gp.mark, batched=True)["genprob_reason"]) == [None, None, "low_probability", None, None, None]
    exact = curate.ExactDuplicates().fit(built)
    assert exact.keep_mask.tolist() == [True, False, True, True, True, True]
    assert exact.describe()["text_column"] == "review"
    near = curate.NearDuplicates(threshold=0.7).fit(built)
    assert near.keep_mask.tolist() == [True, False, True, True, True, True]
    assert curate.Novelty(reference=[REVIEWS[3]], method="exact").fit(built).keep_mask.tolist() == \
        [True, False, True, False, True, True]
    nc = curate.NeighbourConsistency(k=2).fit(built)
    assert nc.describe()["text_column"] == "review" and nc.describe()["embeddings"]["dim"] == 384


def test_explicit_column_wins_and_errors_list_the_columns(built, tmp_path):
    both = declare_text_column(built.add_column("text", ["x y"] * 6), "review")
    marked = both.map(curate.Length(min_words=2).mark, batched=True)             # declared "review" wins
    assert list(marked["length_reason"]) == [None, None, None, "too_few_words", None, None]
    marked = both.map(curate.Length(column="text", min_words=3).mark, batched=True)  # explicit column wins
    assert set(marked["length_reason"]) == {"too_few_words"}
    plain = Dataset.from_dict({"review": REVIEWS})                                 # no declaration, no "text"
    with pytest.raises(MissingColumnError, match=r"Length: no column= was given.*Current columns: \['review'\]"
                                                 r".*Pass column="):
        plain.filter(curate.Length(min_words=3), batched=True)
    with pytest.raises(MissingColumnError, match=r"ExactDuplicates: column 'body' is not in the dataset\. "
                                                 r"Current columns: \['review'\]"):
        curate.ExactDuplicates(column="body").fit(plain)
    with pytest.raises(KeyError):                                                  # MissingColumnError is a KeyError
        curate.ClassifierConsistency().fit(plain)
    n = curate.export_for_review(built.add_column("conf", [0.1] * 6), tmp_path / "r.jsonl", confidence_column="conf")
    assert n == 6 and REVIEWS[0] in (tmp_path / "r.jsonl").read_text()


def test_recipe_run_declares_the_card_text_column():
    r = Recipe("t", source=Dataset.from_dict({"review": REVIEWS}), text_column="review")
    r.filter(curate.Length(min_words=3), name="length")
    ds, _ = r.run()
    assert declared_text_column(ds) == "review" and ds.num_rows == 5
