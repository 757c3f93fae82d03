"""The Hub-compatible test server (tests/hub_server.py) against the REAL huggingface_hub and datasets clients.

Every test pushes and reads back over HTTP on 127.0.0.1 with the installed clients; nothing is mocked.
Repo ids are unique per test (the clients' download cache is keyed by repo id, not by endpoint).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    DatasetCard,
    HfApi,
    HfFileSystem,
    hf_hub_download,
)
from huggingface_hub.errors import HfHubHTTPError, RemoteEntryNotFoundError, RepositoryNotFoundError
from hub_server import USER, HubServer


def _repo(name: str) -> str:
    return f"hubtest/{name}-{uuid.uuid4().hex[:8]}"


def _commit_count(hub_server, repo_id, **kw) -> int:
    return len(hub_server.commits(repo_id, **kw))


@pytest.fixture()
def api(hub_server) -> HfApi:
    assert os.environ["HF_ENDPOINT"] == hub_server.url  # conftest wiring: the clients talk to this server
    return HfApi()


def test_create_repo_twice_and_private_flag(api, hub_server):
    repo_id = _repo("create")
    first = api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    second = api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    assert first == second == f"{hub_server.url}/datasets/{repo_id}"
    assert second.repo_id == repo_id and second.repo_type == "dataset"
    with pytest.raises(HfHubHTTPError) as e:
        api.create_repo(repo_id, repo_type="dataset")
    assert e.value.response.status_code == 409
    # A new repo has the Hub's initial commit with .gitattributes, and is public unless asked.
    assert [c["summary"] for c in hub_server.commits(repo_id)] == ["initial commit"]
    assert api.list_repo_files(repo_id, repo_type="dataset") == [".gitattributes"]
    assert api.repo_info(repo_id, repo_type="dataset").private is False

    private = api.create_repo(_repo("private"), repo_type="dataset", private=True)
    assert api.repo_info(private.repo_id, repo_type="dataset").private is True
    assert hub_server.is_private(private.repo_id)
    # Without a namespace the repo goes to the user's namespace, as on the Hub.
    name = f"bare-{uuid.uuid4().hex[:8]}"
    assert api.create_repo(name).repo_id == f"{USER}/{name}"
    assert api.whoami(token="hf_any")["name"] == USER  # any token is accepted
    with pytest.raises(RepositoryNotFoundError):
        api.repo_info(_repo("missing"), repo_type="dataset")


def test_regular_and_lfs_files_round_trip(api, hub_server, tmp_path):
    repo_id = _repo("files")
    api.create_repo(repo_id, repo_type="dataset")
    text = b"# notes\nplain text\n"
    binary = os.urandom(5000)
    parquet_like = b"PAR1" + b"x" * 300  # .parquet is LFS by extension, whatever its size
    info = api.create_commit(repo_id, repo_type="dataset", commit_message="add files", operations=[
        CommitOperationAdd("notes.md", text),
        CommitOperationAdd("data/blob.bin", binary),
        CommitOperationAdd("data/sub/part.parquet", parquet_like),
    ])
    assert info.oid == hub_server.commits(repo_id)[0]["oid"]
    assert hub_server.commits(repo_id)[0]["summary"] == "add files"

    for path, content in [("notes.md", text), ("data/blob.bin", binary), ("data/sub/part.parquet", parquet_like)]:
        local = hf_hub_download(repo_id, path, repo_type="dataset", cache_dir=tmp_path)
        assert Path(local).read_bytes() == content
        assert hub_server.read_file(repo_id, path) == content

    files = ["data/blob.bin", "data/sub/part.parquet", "notes.md"]
    assert api.list_repo_files(repo_id, repo_type="dataset") == [".gitattributes", *files]
    tree = {e.path: e for e in api.list_repo_tree(repo_id, repo_type="dataset", recursive=True)}
    assert set(tree) == {".gitattributes", "data", "data/sub", *files}
    # Preupload decided: text -> regular git blob; binary and parquet -> LFS, with the sha256 as LFS oid.
    assert tree["notes.md"].lfs is None and tree["notes.md"].size == len(text)
    assert tree["notes.md"].blob_id == hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()
    assert tree["data/blob.bin"].lfs.sha256 == hashlib.sha256(binary).hexdigest()
    assert tree["data/sub/part.parquet"].lfs.size == len(parquet_like)
    top = [e.path for e in api.list_repo_tree(repo_id, repo_type="dataset")]
    assert top == ["data", ".gitattributes", "notes.md"]
    assert [e.path for e in api.list_repo_tree(repo_id, "data", repo_type="dataset")] == ["data/sub", "data/blob.bin"]
    infos = api.get_paths_info(repo_id, ["notes.md", "data", "missing.txt"], repo_type="dataset")
    assert [(type(i).__name__, i.path) for i in infos] == [("RepoFile", "notes.md"), ("RepoFolder", "data")]
    assert api.file_exists(repo_id, "data/blob.bin", repo_type="dataset")
    assert not api.file_exists(repo_id, "data/nope.bin", repo_type="dataset")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "data/nope.bin", repo_type="dataset", cache_dir=tmp_path)

    # HfFileSystem reads with Range requests.
    fs = HfFileSystem()
    with fs.open(f"datasets/{repo_id}/data/blob.bin", "rb", block_size=1024) as f:
        f.seek(1000)
        assert f.read(3000) == binary[1000:4000]
    assert ("GET", f"/datasets/{repo_id}/resolve/main/data/blob.bin") in hub_server.requests


def test_unchanged_upload_makes_no_commit_and_deletes_are_commits(api, hub_server):
    repo_id = _repo("noop")
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"same", path_in_repo="a.txt", repo_id=repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"\0same", path_in_repo="d/b.bin", repo_id=repo_id, repo_type="dataset")
    n = _commit_count(hub_server, repo_id)
    # The preupload answer carries the remote oid: the client sees nothing changed and makes no commit.
    api.upload_file(path_or_fileobj=b"same", path_in_repo="a.txt", repo_id=repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"\0same", path_in_repo="d/b.bin", repo_id=repo_id, repo_type="dataset")
    assert _commit_count(hub_server, repo_id) == n

    api.create_commit(repo_id, repo_type="dataset", commit_message="rm", operations=[
        CommitOperationDelete("a.txt"), CommitOperationDelete("d/", is_folder=True)])
    assert api.list_repo_files(repo_id, repo_type="dataset") == [".gitattributes"]
    assert _commit_count(hub_server, repo_id) == n + 1
    with pytest.raises(RemoteEntryNotFoundError, match="differentiate file and folder"):
        api.delete_file("a.txt", repo_id, repo_type="dataset")


def test_stale_parent_commit_is_refused_with_412(api, hub_server):
    repo_id = _repo("stale")
    api.create_repo(repo_id, repo_type="dataset")
    old = api.repo_info(repo_id, repo_type="dataset").sha
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=repo_id, repo_type="dataset")
    before = hub_server.commits(repo_id)
    with pytest.raises(HfHubHTTPError) as e:
        api.create_commit(repo_id, repo_type="dataset", commit_message="late", parent_commit=old,
                          operations=[CommitOperationAdd("a.txt", b"v2")])
    assert e.value.response.status_code == 412
    assert hub_server.commits(repo_id) == before
    # The current head (also as a 7-character shorthand) is accepted.
    head = before[0]["oid"]
    api.create_commit(repo_id, repo_type="dataset", commit_message="ok", parent_commit=head[:7],
                      operations=[CommitOperationAdd("a.txt", b"v2")])
    assert hub_server.read_file(repo_id, "a.txt") == b"v2"


def test_commit_with_unknown_lfs_object_is_refused(api, hub_server):
    repo_id = _repo("lfsref")
    api.create_repo(repo_id, repo_type="dataset")
    body = b"\n".join(json.dumps(line).encode() for line in [
        {"key": "header", "value": {"summary": "dangling pointer"}},
        {"key": "lfsFile", "value": {"path": "x.parquet", "algo": "sha256", "oid": "0" * 64, "size": 3}},
    ])
    request = urllib.request.Request(f"{hub_server.url}/api/datasets/{repo_id}/commit/main", data=body,
                                     headers={"Content-Type": "application/x-ndjson"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request)
    with e.value:
        assert e.value.code == 400
        assert "LFS pointer pointed to a file that does not exist" in json.loads(e.value.read())["error"]
    assert _commit_count(hub_server, repo_id) == 1


def test_injected_commit_failure_leaves_repo_unchanged(api, hub_server):
    repo_id = _repo("fail")
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id=repo_id, repo_type="dataset")
    before_commits, before_files = hub_server.commits(repo_id), api.list_repo_files(repo_id, repo_type="dataset")
    hub_server.fail_next("commit", status=500, repo_id=repo_id)
    with pytest.raises(HfHubHTTPError, match="Injected failure of commit") as e:
        api.create_commit(repo_id, repo_type="dataset", commit_message="boom",
                          operations=[CommitOperationAdd("a.txt", b"v2"), CommitOperationAdd("big.bin", b"\0" * 10)])
    assert e.value.response.status_code == 500
    assert hub_server.commits(repo_id) == before_commits
    assert api.list_repo_files(repo_id, repo_type="dataset") == before_files
    assert hub_server.read_file(repo_id, "a.txt") == b"v1"
    # Only the next call failed; the same commit now goes through.
    api.create_commit(repo_id, repo_type="dataset", commit_message="again",
                      operations=[CommitOperationAdd("a.txt", b"v2"), CommitOperationAdd("big.bin", b"\0" * 10)])
    assert hub_server.commits(repo_id)[0]["files"] == {".gitattributes": 1757, "a.txt": 2, "big.bin": 10}

    # The client retries 5xx on the LFS PUT (after ~1 s): one injected 503 does not fail the upload.
    hub_server.fail_next("lfs_upload", status=503)
    api.upload_file(path_or_fileobj=b"\0retry", path_in_repo="r.bin", repo_id=repo_id, repo_type="dataset")
    assert hub_server.read_file(repo_id, "r.bin") == b"\0retry"
    puts = [p for m, p in hub_server.requests if m == "PUT" and p.endswith(hashlib.sha256(b"\0retry").hexdigest())]
    assert len(puts) == 2
    with pytest.raises(ValueError, match="unknown call 'push'"):
        hub_server.fail_next("push")


def test_push_to_hub_then_load_dataset(hub_server, tmp_path):
    import datasets

    repo_id = _repo("push")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"]),
                                  "score": datasets.Value("float64"), "tags": datasets.List(datasets.Value("string"))})
    rows = {"text": ["a good film", "dull", "ünïcødé ✓"], "label": [1, 0, 1], "score": [0.5, -1.25, 3.0],
            "tags": [["x"], [], ["y", "z"]]}
    start = len(hub_server.requests)
    datasets.Dataset.from_dict(rows, features=features).push_to_hub(repo_id)
    loaded = datasets.load_dataset(repo_id, split="train", cache_dir=str(tmp_path / "c1"))
    assert loaded.to_dict() == rows
    assert loaded.features == features
    assert [c["summary"] for c in hub_server.commits(repo_id)] == ["Upload dataset", "initial commit"]
    files = hub_server.commits(repo_id)[0]["files"]
    assert sorted(files) == [".gitattributes", "README.md", "data/train-00000-of-00001.parquet"]
    # Every call the clients made was one the server knows.
    assert [r for r in hub_server.unknown if repo_id in r[1]] == []
    assert any(p.endswith("/info/lfs/objects/batch") for _, p in hub_server.requests[start:])

    # A second push replaces the shard: a new commit, and the newest rows are served.
    rows2 = {k: v[:2] for k, v in rows.items()}
    datasets.Dataset.from_dict(rows2, features=features).push_to_hub(repo_id, commit_message="second")
    commits = hub_server.commits(repo_id)
    assert [c["summary"] for c in commits] == ["second", "Upload dataset", "initial commit"]
    assert sorted(commits[0]["files"]) == sorted(files)
    assert datasets.load_dataset(repo_id, split="train", cache_dir=str(tmp_path / "c2")).to_dict() == rows2
    card = DatasetCard.load(repo_id)
    assert [(s["name"], s["num_examples"]) for s in card.data.dataset_info["splits"]] == [("train", 2)]


def test_dataset_card_round_trip_and_yaml_check(api, hub_server):
    repo_id = _repo("card")
    api.create_repo(repo_id, repo_type="dataset")
    content = "---\nlicense: mit\nlanguage:\n- en\ntags:\n- synthetic\n---\n\n# My set\n\nMade by tests.\n"
    DatasetCard(content).push_to_hub(repo_id)
    card = DatasetCard.load(repo_id)
    assert card.data.license == "mit" and card.data.tags == ["synthetic"]
    assert card.text.strip() == "# My set\n\nMade by tests."
    assert hub_server.read_file(repo_id, "README.md").decode() == content
    assert api.dataset_info(repo_id).card_data.language == ["en"]  # repo info carries cardData

    n = _commit_count(hub_server, repo_id)
    with pytest.raises(ValueError, match="Invalid metadata in README.md"):
        api.upload_file(path_or_fileobj=b"---\nlicense: [mit\n---\nbody\n", path_in_repo="README.md",
                        repo_id=repo_id, repo_type="dataset")
    assert _commit_count(hub_server, repo_id) == n


def test_refused_token_gives_a_401_the_user_can_act_on(tmp_path):
    with HubServer(tmp_path / "hub", refused_tokens={"bad"}) as server:
        bad = HfApi(endpoint=server.url, token="bad")
        with pytest.raises(HfHubHTTPError) as e:
            bad.create_repo("org/x", repo_type="dataset")
        assert e.value.response.status_code == 401
        assert "Invalid credentials in Authorization header" in str(e.value)
        assert not server.repo_exists("org/x")
        with pytest.raises(HfHubHTTPError) as e:
            bad.whoami()
        assert e.value.response.status_code == 401
        good = HfApi(endpoint=server.url, token="hf_good")
        assert good.create_repo("org/x", repo_type="dataset").repo_id == "org/x"
        assert server.repo_exists("org/x")


def test_branches_and_pull_requests(api, hub_server, tmp_path):
    import datasets

    repo_id = _repo("branch")
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"main", path_in_repo="a.txt", repo_id=repo_id, repo_type="dataset")
    api.create_branch(repo_id, branch="some-branch", repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as e:
        api.create_branch(repo_id, branch="some-branch", repo_type="dataset")
    assert e.value.response.status_code == 409
    api.create_branch(repo_id, branch="some-branch", repo_type="dataset", exist_ok=True)
    api.upload_file(path_or_fileobj=b"branch", path_in_repo="a.txt", repo_id=repo_id, repo_type="dataset",
                    revision="some-branch")
    assert Path(hf_hub_download(repo_id, "a.txt", repo_type="dataset", revision="some-branch",
                                cache_dir=tmp_path)).read_bytes() == b"branch"
    assert Path(hf_hub_download(repo_id, "a.txt", repo_type="dataset", cache_dir=tmp_path)).read_bytes() == b"main"
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    assert {b.name for b in refs.branches} == {"main", "some-branch"}
    assert api.list_repo_commits(repo_id, repo_type="dataset", revision="some-branch")[0].title.startswith("Upload")

    ds = datasets.Dataset.from_dict({"x": [1, 2, 3]})
    ds.push_to_hub(repo_id, revision="other-branch")
    loaded = datasets.load_dataset(repo_id, split="train", revision="other-branch", cache_dir=str(tmp_path / "c"))
    assert loaded["x"] == [1, 2, 3]
    assert "README.md" not in api.list_repo_files(repo_id, repo_type="dataset")  # main untouched

    pr = api.upload_file(path_or_fileobj=b"proposal", path_in_repo="a.txt", repo_id=repo_id, repo_type="dataset",
                         create_pr=True)
    assert pr.pr_num == 1 and pr.pr_revision == "refs/pr/1"
    assert hub_server.read_file(repo_id, "a.txt", revision="refs/pr/1") == b"proposal"
    assert hub_server.read_file(repo_id, "a.txt") == b"main"


def test_xet_token_is_refused_clearly(hub_server):
    api = HfApi()
    repo_id = api.create_repo(_repo("xet"), repo_type="dataset").repo_id
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{hub_server.url}/api/datasets/{repo_id}/xet-write-token/main")
    with e.value:
        assert e.value.code == 501
        assert "HF_HUB_DISABLE_XET=1" in e.value.headers["X-Error-Message"]


def test_dataset_dict_with_shards_configs_and_streaming(hub_server, tmp_path):
    import datasets

    repo_id = _repo("dict")
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"x": list(range(10))}),
                               "test": datasets.Dataset.from_dict({"x": [100, 200]})})
    dd.push_to_hub(repo_id, private=True, num_shards={"train": 3})
    dd.push_to_hub(repo_id, config_name="other")
    assert hub_server.is_private(repo_id)
    files = list(hub_server.commits(repo_id)[0]["files"])
    assert sorted(f for f in files if f.endswith(".parquet")) == [
        "data/test-00000-of-00001.parquet", *(f"data/train-0000{i}-of-00003.parquet" for i in range(3)),
        "other/test-00000-of-00001.parquet", "other/train-00000-of-00001.parquet"]
    assert datasets.get_dataset_config_names(repo_id) == ["default", "other"]
    loaded = datasets.load_dataset(repo_id, cache_dir=str(tmp_path / "c"))
    assert loaded["train"]["x"] == list(range(10)) and loaded["test"]["x"] == [100, 200]
    assert datasets.load_dataset(repo_id, "other", split="test", cache_dir=str(tmp_path / "c"))["x"] == [100, 200]
    streamed = datasets.load_dataset(repo_id, split="train", streaming=True)  # HfFileSystem reads
    assert [row["x"] for row in streamed] == list(range(10))
