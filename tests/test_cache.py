"""Response cache: reruns make no model calls; a SIGKILLed run resumes and finishes identically."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request

from datasets import Dataset, load_from_disk

from synth_datasets import LLM, TextGenerator
from synth_datasets.llm import ChatRequest, Completion, ResponseCache, SamplingParams


def server_requests(server) -> int:
    return json.loads(urllib.request.urlopen(server.url.replace("/v1", "/stats")).read())["requests"]


def test_second_run_makes_zero_model_calls(embedded_llm, tmp_path):
    cache = tmp_path / "c.sqlite"
    ds = Dataset.from_dict({"topic": ["snow", "bread", "jazz", "maps"]})  # in memory: datasets never caches it
    first_llm = LLM(batch_size=32, cache=cache)
    first_llm._backend = embedded_llm.backend
    gen = TextGenerator(first_llm, "A sentence about {{ topic }}.", n=2, max_new_tokens=16)
    a = ds.map(gen, batched=True)
    assert first_llm.stats["requests"] == 8 and len(ResponseCache(cache)) == 8
    second_llm = LLM(batch_size=32, cache=cache)  # fresh object, nothing loaded
    b = ds.map(TextGenerator(second_llm, "A sentence about {{ topic }}.", n=2, max_new_tokens=16), batched=True)
    assert b["text"] == a["text"]
    assert second_llm.stats["requests"] == 0 and second_llm.stats["cache_hits"] == 8
    assert second_llm.backend._model is None  # the model was never loaded, let alone called


def test_concurrent_writers_and_errors_not_cached(fault_server, tmp_path):
    fault_server.reset()
    cache = tmp_path / "c.sqlite"
    rows = [f"row {i}" for i in range(30)] + ["dead [always500]"]
    Dataset.from_dict({"p": rows}).save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    mk = lambda: TextGenerator(LLM(fault_server.url, cache=cache, max_retries=1, backoff_base=0.01), "{{ p }}")  # noqa: E731
    out = ds.map(mk(), batched=True, batch_size=4, num_proc=2)
    assert sum(e is not None for e in out["text_error"]) == 1
    assert len(ResponseCache(cache)) == 30  # both workers wrote; the failed row was not stored
    before = server_requests(fault_server)
    again = Dataset.from_dict({"p": rows}).map(mk(), batched=True)  # in memory: no datasets cache
    assert again["text"][:30] == out["text"][:30]
    assert server_requests(fault_server) - before == 2  # only the failed row, retried (1 + 1 retry)


# The embedded model on the transformers backend: its per-row seeded sampling makes a sample independent
# of which rows share its batch, which is what lets a resumed run match a clean one exactly. (The
# llama.cpp server is not deterministic across runs: its prompt-prefix reuse changes the numerics.)
KILL_SCRIPT = """
import json, sys
from datasets import Dataset
from synth_datasets import LLM, TextGenerator
cache, out = sys.argv[1], sys.argv[2]
llm = LLM(cache=cache, batch_size=4)
gen = TextGenerator(llm, "Write a short line about the number {{ i }}.", n=2, max_new_tokens=12, temperature=0.9)
ds = Dataset.from_dict({"i": list(range(16))}).map(gen, batched=True, batch_size=2)
ds.to_json(out)
print(json.dumps(dict(llm.stats)))
"""


def test_sigkill_mid_run_then_restart_gives_identical_rows(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    cache = tmp_path / "killed.sqlite"

    def cached() -> int:
        if not cache.exists():
            return 0
        try:
            with sqlite3.connect(cache, timeout=5) as c:
                return c.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        except sqlite3.OperationalError:
            return 0

    proc = subprocess.Popen([sys.executable, str(script), str(cache), str(tmp_path / "x.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while cached() < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before_kill = cached()
    assert 8 <= done_before_kill < 32, done_before_kill
    assert not (tmp_path / "x.jsonl").exists()

    resumed = subprocess.run([sys.executable, str(script), str(cache), str(tmp_path / "resumed.jsonl")],
                             capture_output=True, text=True, check=True)
    stats = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert stats["cache_hits"] == done_before_kill
    assert stats["requests"] == 32 - done_before_kill

    clean = subprocess.run([sys.executable, str(script), str(tmp_path / "clean.sqlite"), str(tmp_path / "clean.jsonl")],
                           capture_output=True, text=True, check=True)
    assert json.loads(clean.stdout.strip().splitlines()[-1])["requests"] == 32
    read = lambda p: [json.loads(line) for line in open(p)]  # noqa: E731
    assert read(tmp_path / "resumed.jsonl") == read(tmp_path / "clean.jsonl")


def test_cache_key_covers_model_params_and_seed(tmp_path):
    from synth_datasets.llm.cache import request_key

    r = ChatRequest.of([{"role": "user", "content": "hi"}], 5)
    ident = {"backend": "transformers", "name": "m.gguf", "sha256": "ab"}
    p = SamplingParams(max_new_tokens=8)
    k = request_key(ident, r, p)
    assert k == request_key(dict(ident), ChatRequest.of([{"role": "user", "content": "hi"}], 5), SamplingParams(max_new_tokens=8))
    assert k != request_key({**ident, "sha256": "cd"}, r, p)
    assert k != request_key(ident, ChatRequest.of([{"role": "user", "content": "hi"}], 6), p)
    assert k != request_key(ident, r, SamplingParams(max_new_tokens=9))
    assert k != request_key(ident, ChatRequest.of([{"role": "user", "content": "hi!"}], 5), p)


def _open_and_write(path, i, barrier, results):
    barrier.wait()  # every worker opens the new file at the same moment
    try:
        c = ResponseCache(path)
        c.put_many({f"k{i}-{j}": Completion(text=str(j), finish_reason="stop") for j in range(20)})
        results.put(len(c.get_many([f"k{i}-{j}" for j in range(20)])))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        results.put(repr(e))


def test_many_processes_opening_a_new_cache_at_once(tmp_path):
    # Switching a new SQLite file to WAL takes an exclusive lock that SQLite does not wait for;
    # several num_proc workers creating the cache together used to fail with "database is locked".
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for t in range(15):
        path = str(tmp_path / f"r{t}.sqlite")
        barrier, results = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_open_and_write, args=(path, i, barrier, results)) for i in range(8)]
        for p in procs:
            p.start()
        got = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
        assert got == [20] * 8, got
        assert len(ResponseCache(path)) == 160


# -- damage, read-only files, bad paths, deletion mid-run (issue 9, items 7-9) ------------------------
import contextlib  # noqa: E402
import shutil  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from synth_datasets.errors import CacheError, CacheWarning  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _filled_cache(path: Path, n: int = 300) -> dict[str, str]:
    c = ResponseCache(path)
    texts = {f"k{i}": f"answer {i} " + "x" * 500 for i in range(n)}
    c.put_many({k: Completion(text=t, finish_reason="stop") for k, t in texts.items()})
    c.close()  # the last connection checkpoints the WAL into the file
    assert path.exists() and not Path(str(path) + "-wal").exists()
    return texts


def _cli(*args, cache_dir):
    env = {**os.environ, "SYNTH_DATASETS_CACHE": str(cache_dir)}
    return subprocess.run([sys.executable, "-m", "synth_datasets.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env)


def test_garbage_in_the_middle_of_the_file(tmp_path):
    path = tmp_path / "cache" / "responses.sqlite"
    texts = _filled_cache(path)
    with open(path, "r+b") as f:  # 8 KB of garbage in the middle of the file
        f.seek(path.stat().st_size // 2)
        f.write(random.Random(0).randbytes(8192))
    with pytest.raises(CacheError) as e:
        ResponseCache(path).get_many(list(texts))
    assert str(path) in str(e.value) and "damaged" in str(e.value) and "synth-datasets cache repair" in str(e.value)
    assert ResponseCache(path).check() != []

    info = _cli("cache", "info", cache_dir=path.parent)
    assert info.returncode == 2 and json.loads(info.stdout)["healthy"] is False
    assert info.stderr.startswith("error: ") and "cache repair" in info.stderr and "Traceback" not in info.stderr

    rep = _cli("cache", "repair", cache_dir=path.parent)
    assert rep.returncode == 0, rep.stderr
    res = json.loads(rep.stdout)
    assert 0 < res["salvaged"] < len(texts) and Path(res["damaged_file"]).exists()
    repaired = ResponseCache(path)
    assert repaired.check() == [] and len(repaired) == res["salvaged"]
    got = repaired.get_many(list(texts))
    assert len(got) == res["salvaged"] and all(c.text == texts[k] for k, c in got.items())  # the rows, intact
    assert json.loads(_cli("cache", "info", cache_dir=path.parent).stdout)["healthy"] is True


def test_damaged_header_and_clear_on_a_damaged_file(tmp_path):
    path = tmp_path / "responses.sqlite"
    _filled_cache(path, 20)
    with open(path, "r+b") as f:
        f.write(b"\x00" * 100)  # the SQLite header is gone
    with pytest.raises(CacheError) as e:
        len(ResponseCache(path))
    assert str(path) in str(e.value) and "damaged" in str(e.value) and "writable" not in str(e.value)
    r = _cli("cache", "clear", cache_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) | {"bytes": 0} == {"path": str(path), "state": "healthy", "read_only": False,
                                                   "responses": 0, "bytes": 0, "healthy": True}
    # mid-file damage too
    path2 = tmp_path / "two" / "responses.sqlite"
    _filled_cache(path2)
    with open(path2, "r+b") as f:
        f.seek(path2.stat().st_size // 2)
        f.write(b"\xff" * 8192)
    c = ResponseCache(path2)
    c.clear()
    assert len(c) == 0 and c.check() == []


def test_cache_path_that_is_a_file_or_under_one(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    for env in (blocker, blocker / "sub"):
        monkeypatch.setenv("SYNTH_DATASETS_CACHE", str(env))
        with pytest.raises(CacheError) as e:
            LLM(cache=True).response_cache.get_many(["k"])
        assert f"{blocker} is a file" in str(e.value) and "SYNTH_DATASETS_CACHE" in str(e.value)
        r = _cli("cache", "info", cache_dir=env)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and str(blocker) in r.stderr


@contextlib.contextmanager
def _read_only(*paths: Path):
    """Make files and folders unwritable, for root too: `chattr +i` as root (root ignores modes), chmod
    otherwise. Skips when neither works here."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", *map(str, paths)]).returncode:
            pytest.skip("running as root without a working `chattr +i`: cannot make a file unwritable")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", *map(str, paths)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, m in modes.items():
                p.chmod(m)


def test_unwritable_parent_is_a_cache_error_with_the_path(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    with _read_only(locked):
        with pytest.raises(CacheError) as e:
            ResponseCache(locked / "cache" / "responses.sqlite").get_many(["k"])
    assert str(locked / "cache") in str(e.value) and "writable folder" in str(e.value)


@pytest.mark.parametrize("writer_open", [True, False], ids=["wal-files-present", "closed-file"])
def test_read_only_cache_still_serves_its_answers(fault_server, tmp_path, writer_open):
    """A copy of a cache taken while its writer ran (-wal and -shm beside it), or a closed one, on a file
    system that refuses writes: the answers are served, new ones are not kept, one warning says so."""
    fault_server.reset()
    msgs = lambda i: ChatRequest.of([{"role": "user", "content": f"question {i}"}], 0)  # noqa: E731
    writer = LLM(fault_server.url, model="echo", cache=tmp_path / "w" / "responses.sqlite")
    first = writer.generate([msgs(i) for i in range(3)])
    if not writer_open:
        writer.close()  # the last connection folds the -wal into the file and removes -wal/-shm
    folder = tmp_path / "ro"
    shutil.copytree(tmp_path / "w", folder)
    writer.close()
    path = folder / "responses.sqlite"
    assert Path(f"{path}-wal").exists() == writer_open
    before = server_requests(fault_server)
    with _read_only(*folder.iterdir(), folder):
        llm = LLM(fault_server.url, model="echo", cache=path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = llm.generate([msgs(i) for i in range(4)])
            again = llm.generate([msgs(3)])
        assert [c.text for c in out[:3]] == [c.text for c in first] and all(c.cached for c in out[:3])
        assert out[3].error is None and again[0].error is None and not again[0].cached  # the new one: not kept
        assert server_requests(fault_server) - before == 2
        ro = [w for w in caught if issubclass(w.category, CacheWarning)]
        assert len(ro) == 1 and "won't be kept" in str(ro[0].message) and str(path) in str(ro[0].message)
        llm.close()
    assert len(ResponseCache(path)) == 3


def test_cache_folder_deleted_mid_run_warns_once_and_keeps_persisting(fault_server, tmp_path):
    fault_server.reset()
    folder = tmp_path / "cache"
    llm = LLM(fault_server.url, model="echo", cache=folder / "responses.sqlite")
    req = lambda i: ChatRequest.of([{"role": "user", "content": f"q {i}"}], 0)  # noqa: E731
    llm.generate([req(i) for i in range(3)])
    shutil.rmtree(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        llm.generate([req(i) for i in range(3, 6)])
        llm.generate([req(i) for i in range(6, 8)])
    gone = [w for w in caught if issubclass(w.category, CacheWarning)]
    assert len(gone) == 1 and "deleted or replaced" in str(gone[0].message)
    assert len(ResponseCache(folder / "responses.sqlite")) == 5  # what came after the deletion was persisted
    # replaced by another file (e.g. `cache repair` in another shell): detected the same way
    llm2 = LLM(fault_server.url, model="echo", cache=folder / "responses.sqlite")
    llm2.generate([req(100)])
    other = ResponseCache(tmp_path / "other.sqlite")
    other.put_many({"x": Completion(text="x", finish_reason="stop")})
    other.close()
    for side in ("", "-wal", "-shm"):  # what `cache repair` does: the old file and its WAL files go aside
        os.replace(f"{folder}/responses.sqlite{side}", f"{tmp_path}/aside{side}")
    os.replace(other.path, folder / "responses.sqlite")
    with pytest.warns(CacheWarning, match="deleted or replaced"):
        llm2.generate([req(101)])
    assert len(ResponseCache(folder / "responses.sqlite")) == 2  # the replacement's row + the new answer


# -- salvage of truncated files and garbage headers; missing, empty, read-only and foreign files (issue 22) --
import hashlib  # noqa: E402


def _real_cache(path: Path, n: int = 2000) -> dict[str, Completion]:
    """A cache shaped like a real one: sha256 keys, answers of various lengths (a few span overflow pages)."""
    c = ResponseCache(path)
    rows = {hashlib.sha256(str(i).encode()).hexdigest():
            Completion(text=f"answer {i} " + "words " * (30 if i % 50 else 1500), finish_reason="stop",
                       usage={"prompt_tokens": 20, "completion_tokens": 40}) for i in range(n)}
    c.put_many(rows)
    c.close()
    assert not Path(f"{path}-wal").exists()
    return rows


def _repaired_rows_round_trip(path: Path, rows: dict[str, Completion], res: dict) -> None:
    repaired = ResponseCache(path)
    assert repaired.check() == [] and len(repaired) == res["salvaged"]
    got = repaired.get_many(list(rows))
    assert len(got) == res["salvaged"]
    assert all(c.text == rows[k].text and c.usage == rows[k].usage for k, c in got.items())
    repaired.close()


def test_repair_salvages_a_truncated_cache(tmp_path):
    path = tmp_path / "responses.sqlite"
    rows = _real_cache(path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    rep = _cli("cache", "repair", cache_dir=tmp_path)
    assert rep.returncode == 0, rep.stderr
    res = json.loads(rep.stdout)
    assert res["state"] == "damaged" and res["salvaged"] >= 0.4 * len(rows), res
    assert res["unreadable"] is None  # the cut-off pages' rows cannot be counted: "unknown", not a false 0
    assert 0 < res["unreadable_at_least"] <= len(rows) - res["salvaged"]  # keys the surviving index lists
    assert Path(res["damaged_file"]).exists()  # the damaged file is kept aside, never deleted
    _repaired_rows_round_trip(path, rows, res)


def test_repair_salvages_a_cache_with_a_garbage_header(tmp_path):
    path = tmp_path / "responses.sqlite"
    rows = _real_cache(path)
    with open(path, "r+b") as f:
        f.write(random.Random(1).randbytes(100))
    info = _cli("cache", "info", cache_dir=tmp_path)
    assert info.returncode == 2 and json.loads(info.stdout)["state"] == "damaged"  # ours, by its content
    rep = _cli("cache", "repair", cache_dir=tmp_path)
    assert rep.returncode == 0, rep.stderr
    res = json.loads(rep.stdout)
    assert res["salvaged"] == len(rows) and res["unreadable"] == 0, res
    _repaired_rows_round_trip(path, rows, res)


def test_info_on_a_read_only_cache_reports_it_healthy(tmp_path):
    path = tmp_path / "responses.sqlite"
    _filled_cache(path, 40)
    with _read_only(path, tmp_path):
        info = _cli("cache", "info", cache_dir=tmp_path)
    assert info.returncode == 0, info.stderr
    st = json.loads(info.stdout)
    assert st["state"] == "healthy" and st["healthy"] is True and st["read_only"] is True and st["responses"] == 40
    assert "read-only" in info.stderr and "damaged" not in info.stderr


def test_missing_cache_is_reported_and_not_created(tmp_path):
    folder = tmp_path / "nothing-here"
    info = _cli("cache", "info", cache_dir=folder)
    assert info.returncode == 0, info.stderr
    st = json.loads(info.stdout)
    assert st["state"] == "missing" and st["healthy"] is False and st["responses"] == 0
    assert f"no cache at {folder / 'responses.sqlite'}" in info.stderr
    assert not folder.exists()  # looking does not create anything
    rep = _cli("cache", "repair", cache_dir=folder)
    assert rep.returncode == 2 and f"no cache at {folder / 'responses.sqlite'}" in rep.stderr
    assert "Traceback" not in rep.stderr and not folder.exists()


def test_a_folder_at_the_cache_path_is_a_clear_error(tmp_path):
    (tmp_path / "responses.sqlite").mkdir()
    (tmp_path / "responses.sqlite" / "keep.txt").write_text("mine")
    for action in ("info", "repair", "clear"):
        r = _cli("cache", action, cache_dir=tmp_path)
        assert r.returncode == 2 and r.stderr.startswith("error: "), (action, r.stderr)
        assert f"{tmp_path / 'responses.sqlite'} is a folder" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "responses.sqlite" / "keep.txt").read_text() == "mine"


def _foreign_files(tmp_path: Path):
    text = tmp_path / "text" / "responses.sqlite"
    text.parent.mkdir()
    text.write_text("my notes, not a database\n" * 400)
    db = tmp_path / "db" / "responses.sqlite"
    db.parent.mkdir()
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers VALUES (1, 'Ada')")
    return [text, db]


def test_a_foreign_file_is_reported_and_never_changed(tmp_path):
    for path in _foreign_files(tmp_path):
        before = path.read_bytes()
        for action in ("info", "repair", "clear"):
            r = _cli("cache", action, cache_dir=path.parent)
            assert r.returncode == 2, (path, action, r.stdout, r.stderr)
            assert "not a synth-datasets" in r.stderr and str(path) in r.stderr and "Traceback" not in r.stderr
        with pytest.raises(CacheError) as e:  # a run pointed at it: refused before anything is written
            ResponseCache(path).put_many({"k": Completion(text="x", finish_reason="stop")})
        assert "not a synth-datasets response cache" in str(e.value) and "SYNTH_DATASETS_CACHE" in str(e.value)
        assert path.read_bytes() == before
        assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [path.name]


def test_an_empty_cache_file_warns_and_info_says_empty(tmp_path):
    path = tmp_path / "responses.sqlite"
    path.touch()
    old = time.time() - 3600
    os.utime(path, (old, old))  # an old 0-byte file, not one a concurrent opener has just created
    info = _cli("cache", "info", cache_dir=tmp_path)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout) | {"path": ""} == {"path": "", "state": "empty", "healthy": False,
                                                     "read_only": False, "responses": 0, "bytes": 0}
    assert "empty (0 bytes)" in info.stderr
    with pytest.warns(CacheWarning, match="empty \\(0-byte\\) file: answers stored earlier are not in it") as w:
        ResponseCache(path).get_many(["k"])
    assert str(path) in str(w[0].message)
    fresh = tmp_path / "new.sqlite"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ResponseCache(fresh).get_many(["k"])  # a new cache file: no warning
