"""The report: the plotted numbers equal the data, and the PNGs are real images of the expected size."""

from collections import Counter

import numpy as np
import pytest
from datasets import Dataset
from PIL import Image

from synth_datasets import Recipe
from synth_datasets.curate import Length
from synth_datasets.hub.report import DPI, FIGSIZE, infer_label_columns, infer_text_column, render_report

SIZE = (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))


@pytest.fixture()
def data():
    rng = np.random.default_rng(0)
    words = ["good", "bad", "film", "plot", "actor", "scene", "boring", "great"]
    lengths = rng.integers(1, 40, size=60)
    texts = [" ".join(rng.choice(words, size=k)) for k in lengths]
    labels = ["positive" if i % 3 else "negative" for i in range(60)]
    styles = [["calm", "intense", "funny"][i % 3] for i in range(60)]
    return Dataset.from_dict({"text": texts, "label": labels, "style": styles,
                              "text_model": ["m@1"] * 60, "text_error": [None] * 60})


def _png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()  # decodes every pixel
        pixels = np.asarray(im.convert("RGB"))
    return im.size, pixels


def test_numbers_plotted_equal_the_data(data, tmp_path):
    out = render_report(data, tmp_path, title="toy")
    assert out["text_column"] == "text"
    assert list(out["labels"]) == ["label", "style"]  # metadata columns and the text are not labels
    assert out["labels"]["label"] == dict(Counter(data["label"]).most_common())
    assert out["labels"]["style"] == {"calm": 20, "funny": 20, "intense": 20}
    lengths = [len(t.split()) for t in data["text"]]
    expected, edges = np.histogram(lengths, bins=np.histogram_bin_edges(lengths, bins="auto"))
    assert out["lengths"]["counts"] == expected.tolist() and sum(out["lengths"]["counts"]) == 60
    assert out["lengths"]["edges"] == pytest.approx(edges.tolist())
    assert out["steps"] == []  # no record, no steps plot
    assert sorted(out["files"]) == ["labels_label.png", "labels_style.png", "lengths.png", "report.md"]


def test_pngs_decode_at_the_expected_size_and_are_not_blank(data, tmp_path):
    render_report(data, tmp_path)
    for name in ("lengths.png", "labels_label.png", "labels_style.png"):
        size, pixels = _png(tmp_path / name)
        assert size == SIZE == (640, 400)
        colours = np.unique(pixels.reshape(-1, 3), axis=0)
        assert len(colours) > 20  # axes, bars, anti-aliased text: not an empty canvas
        assert (pixels != 255).any(axis=2).mean() > 0.02  # a visible share of the canvas is drawn on


def test_report_md_tables_and_steps(data, tmp_path):
    r = Recipe("toy", source=data).filter(Length(column="text", min_words=10), name="long-enough")
    ds, rec = r.run()
    out = render_report(ds, tmp_path, record=rec, metrics={"diversity": {"distinct_1": 0.25}}, title="toy")
    kept = sum(len(t.split()) >= 10 for t in data["text"])
    assert out["steps"] == [("input", 60), ("long-enough", kept)]
    size, _ = _png(tmp_path / "steps.png")
    assert size == SIZE
    md = (tmp_path / "report.md").read_text()
    assert f"{ds.num_rows} rows" in md and "![Rows after each step](steps.png)" in md
    assert f"| long-enough | filter | 60 | {kept} | {kept / 60:.1%} |" in md
    assert "| distinct_1 | 0.25 |" in md
    # the filtered rows, not the rows before the filter (a filter leaves an indices mapping)
    assert sum(out["lengths"]["counts"]) == kept
    assert sum(out["labels"]["label"].values()) == kept
    for name, count in out["labels"]["style"].items():
        assert f"| {name} | {count} |" in md


def test_column_inference():
    ds = Dataset.from_dict({"id": [1, 2, 3], "topic": ["a", "b", "a"], "review": ["x " * 30, "y " * 50, "z"],
                            "long_label": ["w" * 80, "v" * 80, "w" * 80], "review_finish_reason": ["stop", "length", "stop"],
                            "flag": [True, False, True]})
    assert infer_text_column(ds) == "long_label"  # the longest strings
    assert infer_text_column(ds.remove_columns("long_label")) == "review"
    assert infer_label_columns(ds, text_column="review") == ["topic", "flag"]
