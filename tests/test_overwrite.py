"""--overwrite / overwrite=True replace only a folder this library wrote, holding nothing else (issue 22).

Every test works in a scratch folder it made (tmp_path) with files the library did not write; none points
an output at a system path (the root and home checks call the pure ``protected_reason`` or use a fake HOME).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset

from synth_datasets import publish
from synth_datasets.cli import main
from synth_datasets.errors import InvalidParameterError, NotOurFolderError
from synth_datasets.io import (COMPARISON_OUTPUT, check_output_dir, foreign_entries, protected_reason,
                               write_folder_atomically)


def _ds(tag: str) -> Dataset:
    return Dataset.from_dict({"text": [f"{tag} one two", f"{tag} three four"], "label": ["a", "b"]})


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _texts(folder: Path) -> list[str]:  # read the shards themselves (load_dataset's cache may answer instead)
    import pyarrow.parquet as pq

    return [t for f in sorted((folder / "data").glob("*.parquet")) for t in pq.read_table(f)["text"].to_pylist()]


def _published(tmp_path: Path, name: str = "out", tag: str = "first") -> Path:
    out = tmp_path / name
    publish(_ds(tag), out, license="cc0-1.0")
    return out


def test_the_campaign_command_out_dot_overwrite_deletes_nothing(tmp_path, monkeypatch, capsys):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "keep").write_text("mine")
    monkeypatch.chdir(scratch)
    assert main(["build", "movie-reviews", "--n", "1", "--out", ".", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "the working directory" in err and "never replaced" in err
    assert (scratch / "keep").read_text() == "mine" and sorted(os.listdir(scratch)) == ["keep"]


def test_a_folder_we_did_not_write_is_refused_by_path_too(tmp_path, capsys):
    scratch = tmp_path / "scratch"
    (scratch / "sub").mkdir(parents=True)
    (scratch / "keep").write_text("mine")
    (scratch / "sub" / "notes.md").write_text("mine too")
    before = _tree(scratch)
    assert main(["build", "movie-reviews", "--n", "1", "--out", str(scratch), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "holds no provenance.json written by synth-datasets" in err and "'keep'" in err
    assert _tree(scratch) == before
    with pytest.raises(NotOurFolderError, match="not an earlier dataset output"):
        publish(_ds("x"), scratch, overwrite=True)
    assert _tree(scratch) == before


def test_our_own_output_is_replaced_and_nothing_is_left_beside_it(tmp_path):
    out = _published(tmp_path)
    publish(_ds("second"), out, overwrite=True, license="cc0-1.0")
    assert _texts(out) == ["second one two", "second three four"]
    assert sorted(os.listdir(tmp_path)) == ["out"]  # no temporary folder, no old copy


@pytest.mark.parametrize("extra", ["notes.txt", "data/extra.csv", "report/sub/", "private/"])
def test_our_output_with_anything_added_is_refused_naming_it(tmp_path, extra):
    out = _published(tmp_path)
    target = out / extra
    if extra.endswith("/"):
        target.mkdir(parents=True)
        (target / "x").write_text("y")
    else:
        target.write_text("user data")
    before = _tree(out)
    with pytest.raises(NotOurFolderError, match=f"holds '{extra}'.*Nothing was deleted"):
        publish(_ds("second"), out, overwrite=True)
    assert _tree(out) == before


def test_human_reviews_are_never_overwritten_but_the_merge_may_replace(tmp_path):
    out = _published(tmp_path)
    (out / "reviews.jsonl").write_text('{"type": "decision"}\n')
    with pytest.raises(NotOurFolderError, match=r"reviews.jsonl.*review DIR --merge"):
        publish(_ds("second"), out, overwrite=True)
    assert (out / "reviews.jsonl").exists()

    def carry(tmp: Path) -> None:  # what the merge does: regenerate ours, copy the rest
        for p in out.iterdir():
            if p.name == "reviews.jsonl":
                (tmp / p.name).write_bytes(p.read_bytes())
        (tmp / "provenance.json").write_text((out / "provenance.json").read_text())
    write_folder_atomically(out, carry, overwrite=True, keep_foreign=True)
    assert sorted(os.listdir(out)) == ["provenance.json", "reviews.jsonl"]


def test_a_forged_marker_is_not_enough(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "provenance.json").write_text(json.dumps({"params": {}}))  # not what publish writes
    (fake / "README.md").write_text("mine")
    with pytest.raises(NotOurFolderError, match="holds no provenance.json written by synth-datasets"):
        check_output_dir(fake, overwrite=True)
    assert sorted(os.listdir(fake)) == ["README.md", "provenance.json"]


def test_protected_places_are_never_replaced(tmp_path, monkeypatch):
    assert protected_reason(Path("/")) == "a filesystem root"  # pure check: nothing is written or deleted
    home = _published(tmp_path, "home")  # even a folder that looks like ours
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(NotOurFolderError, match="your home folder"):
        publish(_ds("x"), home, overwrite=True)
    out = _published(tmp_path, "out")
    (out / "data").mkdir(exist_ok=True)
    monkeypatch.chdir(out / "data")
    with pytest.raises(NotOurFolderError, match="a parent of the working directory"):
        publish(_ds("x"), out, overwrite=True)
    assert _texts(out)[0] == "first one two"


def test_a_symbolic_link_is_never_replaced(tmp_path):
    out = _published(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(out, target_is_directory=True)
    with pytest.raises(InvalidParameterError, match="is a symbolic link"):
        publish(_ds("x"), link, overwrite=True)
    assert link.is_symlink() and _texts(out)[0] == "first one two"


def test_a_file_dropped_in_while_generating_stops_the_swap(tmp_path):
    out = _published(tmp_path)

    def write(tmp: Path) -> None:
        (tmp / "provenance.json").write_text((out / "provenance.json").read_text())
        (out / "arrived.txt").write_text("someone else's")  # while the new output is being made

    with pytest.raises(NotOurFolderError, match="'arrived.txt'"):
        write_folder_atomically(out, write, overwrite=True)
    assert (out / "arrived.txt").exists() and (out / "data").is_dir()
    assert sorted(os.listdir(tmp_path)) == ["out"]  # the new output's temporary folder is gone


def test_a_failed_write_keeps_the_old_output_whole(tmp_path):
    out = _published(tmp_path)
    before = _tree(out)

    def write(tmp: Path) -> None:
        (tmp / "provenance.json").write_text("{}")
        raise RuntimeError("crashed while writing")

    with pytest.raises(RuntimeError, match="crashed"):
        write_folder_atomically(out, write, overwrite=True)
    assert _tree(out) == before and sorted(os.listdir(tmp_path)) == ["out"]


KILLED_SWAP = """
import os, signal, sys
from pathlib import Path
import synth_datasets.io as io

def rename(a, b, _real=os.rename):
    _real(a, b)
    if ".old-" in str(b):  # the old output has just been moved aside: die before the new one is in place
        os.kill(os.getpid(), signal.SIGKILL)

io.os.rename = rename
io.write_folder_atomically(sys.argv[1], lambda tmp: (tmp / "provenance.json").write_text("{}"), overwrite=True)
"""


def test_a_kill_during_the_swap_loses_no_version(tmp_path):
    out = _published(tmp_path)
    before = _tree(out)
    r = subprocess.run([sys.executable, "-c", KILLED_SWAP, str(out)], capture_output=True)
    assert r.returncode == -9, r.stderr.decode()
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(".out.old-")]
    assert not out.exists() and len(aside) == 1 and _tree(aside[0]) == before  # the old one is kept aside
    publish(_ds("second"), out)  # the next write does not touch it while no complete output is in place
    assert aside[0].exists()
    publish(_ds("third"), out, overwrite=True)  # now one is: the dead process's copy goes
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_a_comparison_folder_has_its_own_marker(tmp_path):
    out = tmp_path / "cmp"
    write_folder_atomically(out, lambda tmp: (tmp / "compare.json").write_text(
        json.dumps({"per_seed": [], "summary": [], "keys": []})), kind=COMPARISON_OUTPUT)
    assert check_output_dir(out, overwrite=True, kind=COMPARISON_OUTPUT) == out
    with pytest.raises(NotOurFolderError, match="no provenance.json"):  # not a dataset output
        check_output_dir(out, overwrite=True)
    (out / "plots").mkdir()
    (out / "plots" / "keep.csv").write_text("x")
    assert foreign_entries(out, COMPARISON_OUTPUT) == ["plots/keep.csv"]
    with pytest.raises(NotOurFolderError, match="plots/keep.csv"):
        check_output_dir(out, overwrite=True, kind=COMPARISON_OUTPUT)
