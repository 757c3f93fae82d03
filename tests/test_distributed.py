"""``ray_map`` on a real local Ray cluster: the same rows as ``ds.map``, produced by Ray actors."""

from __future__ import annotations

import os
import sys
import threading

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # read by ray at import / init
ray = pytest.importorskip("ray", reason="Ray is not installed: `pip install 'synth-datasets[ray]'`")

from datasets import Dataset  # noqa: E402

from synth_datasets import LLM, Conditions, InvalidParameterError, TextGenerator, curate  # noqa: E402
from synth_datasets.distributed import ray_map  # noqa: E402
from synth_datasets.errors import MissingDependencyError  # noqa: E402
from synth_datasets.llm.cache import ResponseCache  # noqa: E402

# Ray's DataContext warns about its own deprecated fields when it is copied to the executor.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="session")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture()
def seeds() -> Dataset:
    return Dataset.from_dict({"id": list(range(40)), "topic": [f"topic {i % 7}" for i in range(40)]})


@pytest.mark.parametrize("with_indices", [False, True])
def test_conditions_match_ds_map(ray_cluster, seeds, with_indices):
    c = Conditions(label=["positive", "negative", "neutral"], style=["calm", "intense"], seed=5)
    out = ray_map(seeds, c, batch_size=8, num_actors=2, num_blocks=3, with_indices=with_indices, progress=False)
    ref = seeds.map(c, batched=True, batch_size=8, with_indices=with_indices)
    assert out.column_names == ["id", "topic", "label", "style"]
    assert out.features == ref.features
    assert out.to_list() == ref.to_list()
    assert out["id"] == list(range(40))                          # order kept across blocks
    assert set(out["label"]) == {"positive", "negative", "neutral"}
    other = seeds.map(c, batched=True, batch_size=8, with_indices=not with_indices)
    assert out["label"] != other["label"]                         # keyed by index vs content: the flag reached fn


@pytest.mark.slow
def test_more_actors_than_cpus_share_the_cpus(ray_cluster, seeds):
    """The README's example asks for 4 actors on a 2-CPU machine: each reserves half a CPU, so the pool
    starts (at 1 CPU each it would wait forever: Ray's "Cluster resources are not enough")."""
    c = Conditions(label=["positive", "negative"], seed=1)
    out = ray_map(seeds, c, batch_size=8, num_actors=4, progress=False)
    assert out.to_list() == seeds.map(c, batched=True, batch_size=8).to_list()
    with pytest.raises(InvalidParameterError, match=r"num_cpus=3 must be a number in \(0, 2\]"):
        ray_map(seeds, c, num_actors=1, num_cpus=3, progress=False)


def test_text_generator_runs_in_actors_and_matches_ds_map(ray_cluster, tmp_path):
    cache = tmp_path / "responses.sqlite"
    ds = Dataset.from_dict({"id": list(range(6)),
                            "topic": ["rain", "tea", "trains", "cats", "the sea", "bread"]})
    gen = TextGenerator(LLM(batch_size=8, cache=cache), "One sentence about {{ topic }}.", n=2,
                        max_new_tokens=8, temperature=0.8)
    out = ray_map(ds, gen, batch_size=2, num_actors=2, num_blocks=3, with_indices=True, progress=False)
    assert len(ResponseCache(cache)) == 12                        # the actors generated (and cached) every sample
    assert gen.llm.stats["requests"] == 0                         # nothing ran in this process
    assert out.num_rows == 12
    assert out["id"] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]      # n samples per row, order by block kept
    assert out["text_sample"] == [0, 1] * 6
    assert all(t for t in out["text"]) and out["text_error"] == [None] * 12
    assert len(set(out["text"])) >= 10                            # per-row, per-sample seeds

    ref = ds.map(gen, batched=True, batch_size=2, with_indices=True)
    assert gen.llm.stats["cache_hits"] == 12 and gen.llm.stats["requests"] == 0  # served from the actors' cache
    assert out.features == ref.features
    assert out.to_list() == ref.to_list()


def test_curate_mark_matches_ds_map(ray_cluster):
    texts = ["a fine film", "meh", "", "two words", "the plot drags on and on", "ok", "short one", None]
    ds = Dataset.from_dict({"text": texts * 3})
    length = curate.Length(column="text", min_words=2)
    out = ray_map(ds, length.mark, batch_size=4, num_actors=2, num_blocks=2, progress=False)
    ref = ds.map(length.mark, batched=True, batch_size=4)
    assert out.to_list() == ref.to_list()
    assert out.column_names == ["text", "length_reason"]
    assert out["length_reason"][:8] == [None, "too_few_words", "too_few_words", None, None, "too_few_words", None,
                                        "missing_text"]
    assert length.counts(out) == {"total": 24, "kept": 12, "dropped": 12, "dropped_missing_text": 3,
                                 "dropped_too_few_words": 9}


def test_unpicklable_callable_fails_before_ray_work(monkeypatch, seeds):
    lock = threading.Lock()

    def boom(*a, **k):
        raise AssertionError("Ray work started")

    monkeypatch.setattr(ray, "init", boom)
    monkeypatch.setattr(ray.data, "from_arrow", boom)
    with pytest.raises(InvalidParameterError, match=r"cannot be pickled .*lock.*contract 2"):
        ray_map(seeds, lambda batch: {"held": [lock.locked()] * len(batch["id"])})
    with pytest.raises(InvalidParameterError, match=r"batch_size=0 must be an integer >= 1"):
        ray_map(seeds, Conditions(label=["a"]), batch_size=0)


def test_missing_ray_names_the_pip_command(monkeypatch, seeds):
    monkeypatch.setitem(sys.modules, "ray", None)                 # `import ray` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'synth-datasets\[ray\]'") as e:
        ray_map(seeds, Conditions(label=["a"]))
    assert isinstance(e.value, ImportError)
