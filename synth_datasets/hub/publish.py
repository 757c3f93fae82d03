"""``publish``: data + dataset card + provenance.json + report, to a local folder or to the Hub in one commit."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._versions import extra_versions, library_versions, source_version
from ..errors import EmptyDatasetError, HubAuthError, InvalidParameterError, PublishError
from ..io import check_output_dir, file_sha256, json_value, temp_dir, write_folder_atomically, write_parquet_shards
from ..record import CARD_KEYS, RunRecord
from ..secrets import known_secrets, refuse_secrets_in, scrub
from . import card as _card
from . import quality as _quality
from .report import infer_label_columns, infer_text_column, render_report

logger = logging.getLogger(__name__)

_PROVENANCE_FORMAT = 1
_TOKEN_HELP = ("Log in with `hf auth login`, or set the HF_TOKEN environment variable, or pass "
               "publish(..., token=...). The token needs write access to the repo's namespace.")


@dataclass
class PublishResult:
    """Where the dataset went: ``folder`` (local) and/or ``repo_id``, ``commit`` and ``url`` (Hub)."""

    folder: Path | None = None
    repo_id: str | None = None
    commit: str | None = None
    url: str | None = None
    pr_url: str | None = None
    files: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)


# -- targets ---------------------------------------------------------------------------------
def is_local_target(target: Any) -> bool:
    """A ``Path``, or a string that starts with ``/ . ~``, has more than one ``/`` or exists locally."""
    if isinstance(target, os.PathLike):
        return True
    if not isinstance(target, str) or not target:
        raise InvalidParameterError(f"target={target!r}: pass a Hub repo id ('user/name') or a local folder (Path).")
    return target.startswith(("/", ".", "~")) or target.count("/") > 1 or "\\" in target or Path(target).exists()


def check_repo_id(repo_id: str) -> str:
    """Validate with huggingface_hub's own rules; an error says what a valid id looks like."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise InvalidParameterError(f"Invalid Hub repo id {repo_id!r}: {e} Use 'namespace/name' with letters, "
                                    "digits, '-', '_' and '.' (or a pathlib.Path for a local folder).") from e
    return repo_id


def resolve_token(token: str | None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise HubAuthError(f"No Hugging Face token found, and pushing to the Hub needs one. {_TOKEN_HELP}")
    return token


#: transient push failures (connection reset or dropped, timeouts, HTTP 429/5xx) are retried this many
#: times, waiting PUSH_BACKOFF_S, then twice that, ... (the client already retries uploads itself)
PUSH_RETRIES = 3
PUSH_BACKOFF_S = 2.0
_TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)


def _retry_hint(repo_id: str, folder: Path | None) -> str:
    if folder:
        return f" Retry with `synth-datasets push {folder} {repo_id}`."
    return (" Retry the publish (generated answers are cached, so a rebuild makes no model calls), or write the "
            f"dataset to a folder and push it with `synth-datasets push FOLDER {repo_id}`.")


def _hub_error(e: Exception, action: str, repo_id: str, secrets: set[str], folder: Path | None,
               attempts: int = 1) -> Exception:
    status = getattr(getattr(e, "response", None), "status_code", None)
    detail = scrub(str(e).splitlines()[0] if str(e) else type(e).__name__, secrets=secrets, patterns=False)
    if status in (401, 403):
        return HubAuthError(f"The Hub refused the token (HTTP {status}) for {action} {repo_id}: {detail}. {_TOKEN_HELP}")
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return PublishError(f"{action} {repo_id} failed (HTTP {status or 'error'}){tries}: {detail}. Nothing was published "
                        f"(a push is one commit).{_retry_hint(repo_id, folder)}")


def _network_errors() -> tuple[type[BaseException], ...]:
    """The exceptions of an unreachable Hub (no network, DNS, refused connection, timeout)."""
    try:
        from httpx2 import TransportError
    except ImportError:  # an older huggingface_hub on httpx
        from httpx import TransportError
    return (TransportError, ConnectionError, TimeoutError)


def _unreachable(e: BaseException, action: str, repo_id: str, secrets: set[str], folder: Path | None = None,
                 attempts: int = 1) -> PublishError:
    from huggingface_hub import constants

    detail = scrub(str(e).splitlines()[0] if str(e) else type(e).__name__, secrets=secrets, patterns=False)
    tries = f", {attempts} attempts" if attempts > 1 else ""
    again = _retry_hint(repo_id, folder) if folder else " Run the command again."
    return PublishError(f"Cannot reach the Hub at {constants.ENDPOINT} while {action} {repo_id} "
                        f"({type(e).__name__}: {detail}{tries}). Nothing was published. Check the network connection "
                        f"(or HF_ENDPOINT).{again}")


def _push_failure(e: BaseException, action: str, repo_id: str, secrets: set[str], folder: Path | None,
                  attempts: int) -> Exception:
    """One clean error for any way a push can fail: HTTP answers, transport errors, refused uploads."""
    from huggingface_hub.errors import HfHubHTTPError

    cause = e.__cause__ if isinstance(e, RuntimeError) and e.__cause__ is not None else None
    if cause is not None:  # "Error while uploading 'data/...parquet' to the Hub." (after the client's retries)
        what = scrub(str(e).removesuffix(" to the Hub.").removeprefix("Error while "), secrets=secrets, patterns=False)
        status = getattr(getattr(cause, "response", None), "status_code", None)
        if what.startswith("uploading") and status in (401, 403):  # the file storage said no, not the Hub API
            detail = scrub(str(cause).splitlines()[0] if str(cause) else type(cause).__name__, secrets=secrets,
                           patterns=False)
            return PublishError(
                f"The Hub's file storage refused {what} for {repo_id} (HTTP {status}): {detail}. This is the LFS "
                "upload, not the token (the Hub accepted the token for the calls before it): an upload link that "
                "expired, a storage quota or file-size limit, or a proxy in between. Nothing was published (a push "
                f"is one commit).{_retry_hint(repo_id, folder)}")
        inner = _push_failure(cause, f"{what} for", repo_id, secrets, folder, attempts)
        return inner if isinstance(inner, HubAuthError) else PublishError(str(inner))
    if isinstance(e, HfHubHTTPError):
        return _hub_error(e, action, repo_id, secrets, folder, attempts)
    return _unreachable(e, action, repo_id, secrets, folder, attempts)


def _is_transient(e: BaseException) -> bool:
    """Worth another attempt: a dropped or reset connection, a timeout, HTTP 408/429/5xx. Not a refused
    connection (nothing listens there: retrying only delays the error), not an upload the client
    already retried."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(e, HfHubHTTPError):
        return getattr(e.response, "status_code", None) in _TRANSIENT_STATUS
    try:
        from httpx2 import ConnectError
    except ImportError:
        from httpx import ConnectError
    return isinstance(e, _network_errors()) and not isinstance(e, (ConnectError, ConnectionRefusedError))


def _landed(api, repo_id: str, revision: str | None, parent: str | None, message: str):
    """After a commit whose answer was lost: the commit that landed on top of ``parent`` with our
    message, or None (then nothing was committed)."""
    if parent is None:
        return None
    try:
        commits = api.list_repo_commits(repo_id, repo_type="dataset", revision=revision)
    except Exception:  # noqa: BLE001 - cannot tell: treated as not landed, the retry's parent check decides
        return None
    if len(commits) >= 2 and commits[1].commit_id == parent and commits[0].title == message.splitlines()[0]:
        from types import SimpleNamespace

        oid = commits[0].commit_id
        return SimpleNamespace(oid=oid, commit_url=f"{api.endpoint}/datasets/{repo_id}/commit/{oid}", pr_url=None)
    return None


def check_hub_access(repo_id: str, *, token: str | None = None) -> str:
    """Before any work: a valid repo id, a token, and a token the Hub accepts (``whoami``)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    check_repo_id(repo_id)
    token = resolve_token(token)
    try:
        HfApi(token=token).whoami()
    except HfHubHTTPError as e:
        raise _hub_error(e, "checking the token for", repo_id, known_secrets(token, hub_login=True), None) from e
    except _network_errors() as e:
        raise _unreachable(e, "checking the token for", repo_id, known_secrets(token, hub_login=True)) from e
    return token


def check_target(target: str | os.PathLike, *, overwrite: bool = False, token: str | None = None,
                 push_to_hub: str | None = None) -> None:
    """Everything ``publish(ds, target, ...)`` would refuse about the target, checked before any work: a
    non-empty folder without ``overwrite=True``, a path that cannot be written, an invalid repo id, a
    missing or refused token."""
    if is_local_target(target):
        check_output_dir(Path(target).expanduser(), overwrite=overwrite)
        if push_to_hub:
            check_hub_access(push_to_hub, token=token)
    else:
        check_hub_access(str(target), token=token)


# -- staging -----------------------------------------------------------------------------------
def _main_script() -> Path | None:
    """The user's script this process runs (``python make_data.py``), if any: not a tool's entry point
    (pytest, a notebook kernel, our CLI or builders) and not an interactive session."""
    f = getattr(sys.modules.get("__main__"), "__file__", None)
    if not f:
        return None
    p = Path(f).resolve()
    if p.suffix != ".py" or p.name == "__main__.py" or not p.is_file():
        return None
    ours = Path(__file__).resolve().parent.parent
    paths = sysconfig.get_paths()
    for base in {ours, ours.parent / "builders", *(Path(paths[k]).resolve() for k in ("stdlib", "purelib", "platlib"))}:
        if p.is_relative_to(base):
            return None
    return p


def _shown_path(p: Path) -> str:
    """A path fit to publish: relative to the working folder, else the file name (never a machine path)."""
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return p.name


def _script_record(script: str | os.PathLike | None) -> dict[str, Any] | None:
    """What made a dataset published from Python: the script's path and sha256; ``file`` is set when the
    script is shipped beside the data (``publish(..., script=...)``)."""
    path = Path(script).expanduser() if script is not None else _main_script()
    if path is None:
        return None
    if not path.is_file():
        raise InvalidParameterError(f"script={str(script)!r} is not a file. Pass the Python script that made the "
                                    "dataset (e.g. script=__file__), or leave it out.")
    shipped = script is not None
    return {"path": _shown_path(path), "sha256": file_sha256(path), "file": "script.py" if shipped else None,
            "rerun": "python script.py" if shipped else f"python {_shown_path(path)}"}


def _ship(src: str | os.PathLike, dst: Path, secrets: set[str]) -> None:
    """Copy the code that made the rows beside them, byte for byte (its sha256 is recorded), unless it
    holds a secret this process knows: then nothing is published."""
    data = Path(src).read_bytes()
    if any(sec.encode() in data for sec in secrets):
        raise InvalidParameterError(f"{src} contains a token or API key this process uses, and it would be "
                                    "published beside the data. Read the key from the environment in the script "
                                    "(e.g. os.environ['HF_TOKEN']) and publish again.")
    dst.write_bytes(data)


def _with_class_labels(ds, class_labels: Mapping[str, Sequence[str]] | None):
    """``ds`` with each named string column cast to a ``ClassLabel`` over its known label set."""
    from datasets import ClassLabel, Value

    for col, names in (class_labels or {}).items():
        if col not in ds.column_names:
            raise InvalidParameterError(f"class_labels names column {col!r}, which the dataset lacks. Current "
                                        f"columns: {ds.column_names}.")
        if ds.features[col] != Value("string"):
            continue
        unknown = sorted(set(ds.unique(col)) - set(names), key=str)
        if unknown:
            raise InvalidParameterError(f"Column {col!r} holds {unknown[:5]}, outside its label set {list(names)}. "
                                        "Fix class_labels or the rows.")
        ds = ds.cast_column(col, ClassLabel(names=list(names)))
    return ds


def compute_metrics(ds, metrics: Sequence[Any] | None, text_column: str | None) -> dict[str, dict[str, Any]]:
    """``None``: lexical diversity of the text column. Items: a dict of precomputed results (or of
    ``{name: results}``), an ``evaluate`` module (``compute(predictions=texts)``), or ``f(texts) -> dict``."""
    texts = [t for t in ds[text_column] if t] if text_column else []
    if metrics is None:
        if not texts:
            return {}
        from ..metrics.diversity import diversity

        metrics = [lambda t: diversity(t, self_bleu_sample=1000 if len(t) > 1000 else None)]
        names = ["diversity"]
    else:
        names = [None] * len(metrics)
    out: dict[str, dict[str, Any]] = {}
    for i, (m, name) in enumerate(zip(metrics, names)):
        if isinstance(m, Mapping):
            nested = all(isinstance(v, Mapping) for v in m.values()) and m
            items = dict(m) if nested else {f"metric_{i}": m}
        elif hasattr(m, "compute"):
            items = {getattr(m, "name", None) or type(m).__name__: m.compute(predictions=texts)}
        elif callable(m):
            items = {name or getattr(m, "__name__", f"metric_{i}"): m(texts)}
        else:
            raise InvalidParameterError(f"metrics[{i}] is a {type(m).__name__}: pass a dict of results, an evaluate "
                                        "module or a function texts -> dict.")
        for k, v in items.items():
            out[str(k)] = {str(a): json_value(b) for a, b in dict(v).items()}
    return out


def _provenance(ds, record: RunRecord, metrics: dict, text_column: str | None, files: dict[str, str],
                published=None, label_columns: Sequence[str] = (), script: dict | None = None) -> dict:
    import matplotlib
    import numpy
    import pyarrow

    published = ds if published is None else published
    lib = {**library_versions(), **extra_versions(), "pyarrow": pyarrow.__version__, "numpy": numpy.__version__,
           "matplotlib": matplotlib.__version__, "python": platform.python_version()}
    rec = record.to_dict()
    return {**rec, "provenance_format": _PROVENANCE_FORMAT,
            "created": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
            "metrics": metrics, "metrics_column": text_column, "library": lib, "synth_datasets": source_version(),
            "script": script,
            "quality": {**_quality.quality_findings(ds, rec, label_columns=[c for c in label_columns
                                                                             if c in ds.column_names]),
                        "not_checked": _quality.not_checked(rec, metrics)},
            "dataset": {"rows": published.num_rows, "columns": published.column_names, "split": "train",
                        "features": published.features.to_dict(), "files": files,
                        "fields": _quality.field_descriptions(published.column_names, rec)}}


def stage(ds, folder: Path, *, record: RunRecord, metrics=None, repo_id: str | None = None,
          local_name: str | None = None, report: bool = True, token: str | None = None,
          builder_file: str | os.PathLike | None = None, script: dict | None = None,
          script_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """Write data shards, report, provenance.json and README.md (and ``builder.py`` / ``script.py``, the
    code that made the rows) into ``folder``; return the provenance."""
    folder = Path(folder)
    secrets = known_secrets(token, hub_login=True)
    published = _with_class_labels(ds, record.card.get("class_labels"))
    if record.card.get("text_column") in published.column_names:  # declared in the features: curators find it
        from ..columns import declare_text_column

        published = declare_text_column(published, record.card["text_column"])
    shards = write_parquet_shards(published, folder)
    if builder_file is not None:
        _ship(builder_file, folder / "builder.py", secrets)
        record = dataclasses.replace(record, builder={**(record.builder or {}), "file": "builder.py"})
    if script_file is not None:
        _ship(script_file, folder / "script.py", secrets)
    text_column = record.card.get("text_column") or infer_text_column(ds)
    labels = record.card.get("label_columns")
    if labels is None:
        labels = infer_label_columns(ds, text_column=text_column)
    labels = [c for c in labels if c in ds.column_names]  # a declared column a step did not make is not plotted
    results = compute_metrics(ds, metrics, text_column)
    report_files = []
    if report:
        plotted = render_report(ds, folder / "report", record=record, text_column=text_column, label_columns=labels,
                                metrics=results, title=record.card.get("pretty_name") or record.name)
        report_files = plotted["files"]
        md = folder / "report" / "report.md"
        md.write_text(scrub(md.read_text(encoding="utf-8"), secrets=secrets, patterns=False), encoding="utf-8")
    files = {p.relative_to(folder).as_posix(): file_sha256(p) for p in shards}
    prov = _provenance(ds, record, results, text_column, files, published=published, label_columns=labels,
                       script=script)
    text = scrub(json.dumps(prov, indent=2, ensure_ascii=False, default=str), secrets=secrets, patterns=False)
    (folder / "provenance.json").write_text(text + "\n", encoding="utf-8")
    prov = json.loads(text)
    card = _card.build_card(prov, repo_id=repo_id, local_name=local_name, report_files=report_files)
    (folder / "README.md").write_text(scrub(str(card), secrets=secrets, patterns=False), encoding="utf-8")
    return prov


# -- pushing -----------------------------------------------------------------------------------
def _card_for_repo(folder: Path, prov: dict, repo_id: str, files: list[str], secrets: set[str]) -> bytes | None:
    """The card re-rendered for ``repo_id`` (its load snippet names the repo, not the local folder)."""
    if "dataset" not in prov:
        return None
    report = [f.removeprefix("report/") for f in files if f.startswith("report/")]
    card = _card.build_card(prov, repo_id=repo_id, report_files=report)
    return scrub(str(card), secrets=secrets, patterns=False).encode("utf-8")


def push_folder(folder: str | os.PathLike, repo_id: str, *, private: bool = False, revision: str | None = None,
                create_pr: bool = False, token: str | None = None, commit_message: str | None = None,
                retry_hint: bool = True) -> PublishResult:
    """Push a published folder (``data/``, README.md, provenance.json, ``report/``) in one commit.

    Data shards and report files on the Hub that the folder no longer has are deleted in the same
    commit. A failed commit changes nothing on the Hub.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    folder = Path(folder)
    if not (folder / "README.md").is_file() or not (folder / "data").is_dir():
        raise InvalidParameterError(f"{folder} is not a published dataset folder (no README.md or data/). "
                                    "Make one with publish(ds, Path(...)) or `synth-datasets build ... --out`.")
    check_repo_id(repo_id)
    token = resolve_token(token)
    secrets = known_secrets(token, hub_login=True)
    refuse_secrets_in(folder, secrets)  # a known secret in the data: nothing is pushed
    api = HfApi(token=token)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    prov = json.loads((folder / "provenance.json").read_text()) if (folder / "provenance.json").exists() else {}
    rows = prov.get("dataset", {}).get("rows")
    message = commit_message or f"synth-datasets: {prov.get('name', 'dataset')} ({rows} rows)"
    hint_folder = folder if retry_hint else None
    attempt = 0
    while True:  # transient failures are retried; a commit whose answer was lost is looked up, not redone
        attempt += 1
        step, parent = "creating", None
        try:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            if revision and revision != "main" and not create_pr:
                step = "creating the branch of"
                api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
            step = "listing"
            try:
                existing = api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
                parent = api.repo_info(repo_id, repo_type="dataset", revision=revision).sha
            except (RepositoryNotFoundError, RevisionNotFoundError):
                existing = []
            stale = [p for p in existing if p.startswith(("data/", "report/")) and p not in files]
            ops = [CommitOperationDelete(path_in_repo=p) for p in stale]
            readme = _card_for_repo(folder, prov, repo_id, files, secrets)
            ops += [CommitOperationAdd(path_in_repo=p, path_or_fileobj=readme if p == "README.md" and readme
                                       else str(folder / p)) for p in files]
            step = "committing to"
            info = api.create_commit(  # parent_commit: a commit that landed unseen is never made twice
                repo_id, ops, repo_type="dataset", revision=revision, create_pr=create_pr, parent_commit=parent,
                commit_message=message,
                commit_description=scrub(prov.get("reproduce") or "", secrets=secrets, patterns=False) or None)
            break
        except (HfHubHTTPError, RuntimeError, *_network_errors()) as e:
            if isinstance(e, RuntimeError) and not (isinstance(e, HfHubHTTPError) or "Error while uploading" in str(e)):
                raise
            if step == "committing to" and isinstance(e, _network_errors()) and _is_transient(e):
                if create_pr:  # a lost answer: the pull request may exist; opening another would duplicate it
                    raise PublishError(
                        f"The connection dropped while opening a pull request on {repo_id} ({type(e).__name__}: "
                        f"{scrub(str(e), secrets=secrets, patterns=False)}): it may or may not have been opened. "
                        "Check the repo's discussions before pushing again.") from e
                info = _landed(api, repo_id, revision, parent, message)
                if info is not None:
                    break
            if attempt > PUSH_RETRIES or not _is_transient(e):
                raise _push_failure(e, step, repo_id, secrets, hint_folder, attempt) from e
            wait = PUSH_BACKOFF_S * 2 ** (attempt - 1)
            logger.warning("%s %s failed (%s); nothing was published; retrying in %.0f s (attempt %d of %d).",
                           step, repo_id, type(e).__name__, wait, attempt + 1, PUSH_RETRIES + 1)
            time.sleep(wait)
    return PublishResult(folder=folder, repo_id=repo_id, commit=info.oid, url=info.commit_url,
                         pr_url=info.pr_url, files=files, provenance=prov)


def publish(ds, target: str | os.PathLike, *, record: RunRecord | None = None, steps: Sequence[Any] = (),
            metrics: Sequence[Any] | None = None, name: str | None = None, push_to_hub: str | None = None,
            private: bool = False, revision: str | None = None, create_pr: bool = False, token: str | None = None,
            commit_message: str | None = None, overwrite: bool = False, report: bool = True,
            script: str | os.PathLike | None = None, builder_file: str | os.PathLike | None = None,
            **card: Any) -> PublishResult:
    """Publish ``ds`` with its dataset card, ``provenance.json`` and report.

    Args:
        ds (`Dataset`): the data (written as parquet shards under ``data/``).
        target (`str` or `Path`): a Hub repo id (``"user/name"``) or a local folder (a ``Path``, or a
            string starting with ``/``, ``.`` or ``~``). A local folder is written atomically.
        record (`RunRecord`, *optional*): what ``Recipe.run`` returned: steps, rows, tokens.
        steps (`list`, *optional*): step objects to describe when there is no record.
        metrics (`list`, *optional*): dicts of results, evaluate modules or ``f(texts) -> dict``;
            default: lexical diversity of the text column; ``[]`` for none.
        push_to_hub (`str`, *optional*): with a local ``target``, also push that folder to this repo.
        private, revision, create_pr: Hub options (``revision`` is a branch, created if missing).
        token (`str`, *optional*): Hub token; else ``HF_TOKEN`` or the stored login. Only HfApi sees it.
        overwrite (`bool`): replace a non-empty local folder (without it, a non-empty folder is refused).
        script (`str` or `Path`, *optional*): the Python script that made ``ds`` (e.g. ``__file__``): shipped
            as ``script.py`` beside the data, its sha256 recorded, and the card says to rerun it. Without
            it, a script run as ``python x.py`` is still recorded by path and sha256 (not shipped).
            Ignored when the record comes from a builder (``builder.py`` is shipped instead).
        builder_file (`str` or `Path`, *optional*): the builder script of ``record`` to ship as
            ``builder.py`` (the CLI passes it), so ``--from-provenance`` runs from the dataset's folder.
        **card: ``license``, ``task_categories``, ``tags``, ``pretty_name``, ``description``,
            ``source_datasets``, ``language``, ``text_column``, ``label_columns``, ``class_labels``
            (``{"label": ["negative", "positive"]}``: that column is published as a ``ClassLabel``).

    Raises:
        InvalidParameterError: invalid repo id, unwritable or non-empty folder (before anything is written).
        EmptyDatasetError: no rows to publish (the message gives the rows after each step).
        HubAuthError: no token, or the Hub refused it. PublishError: the commit failed (nothing published).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from datasets import Dataset
        >>> ds = Dataset.from_dict({"text": ["a b c", "d e"], "label": ["x", "y"]})
        >>> res = publish(ds, Path(tempfile.mkdtemp()) / "out", license="cc0-1.0")
        >>> sorted(p for p in res.files if not p.startswith("report/"))
        ['README.md', 'data/train-00000-of-00001.parquet', 'provenance.json']
        >>> publish(ds, "user/my-dataset", private=True)   # one commit; needs a token  # doctest: +SKIP
    """
    if ds.num_rows == 0:
        counts = ", ".join(f"{s.name}: {s.rows_in} -> {s.rows_out}" for s in (record.steps if record else []))
        raise EmptyDatasetError(f"Nothing to publish: the dataset has no rows{f' (rows per step: {counts})' if counts else ''}"
                                ". Loosen the filters or generate more rows.")
    local = is_local_target(target)
    repo_id = push_to_hub if local else str(target)
    if not local and push_to_hub:
        raise InvalidParameterError("push_to_hub= goes with a local target; target is already a repo id.")
    if repo_id is not None:
        check_repo_id(repo_id)
        token = resolve_token(token)
    if record is None:
        record = RunRecord.from_steps(steps, name=name or card.get("pretty_name") or "dataset")
    elif steps:
        raise InvalidParameterError("Pass either record= (from Recipe.run) or steps=, not both.")
    unknown = set(card) - CARD_KEYS
    if unknown:
        raise InvalidParameterError(f"Unknown publish option(s) {sorted(unknown)}. Card options: "
                                    f"{sorted(CARD_KEYS)}.")
    record = dataclasses.replace(record, card={**record.card, **card}, name=name or record.name)
    refuse_secrets_in(ds, known_secrets(token, hub_login=True))  # a known secret in the data: nothing is written
    made_by = {} if record.builder else {"script": _script_record(script),
                                         "script_file": Path(script).expanduser() if script is not None else None}
    code = dict(builder_file=builder_file if record.builder else None, **made_by)
    if local:
        out = Path(target).expanduser()
        write_folder_atomically(out, lambda tmp: stage(ds, tmp, record=record, metrics=metrics, repo_id=repo_id,
                                                       local_name=_shown_path(out), report=report, token=token, **code),
                                overwrite=overwrite)
        prov = json.loads((out / "provenance.json").read_text())
        files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        result = PublishResult(folder=out, files=files, provenance=prov)
        if repo_id:
            pushed = push_folder(out, repo_id, private=private, revision=revision, create_pr=create_pr,
                                 token=token, commit_message=commit_message)
            pushed.folder = out
            return pushed
        return result
    tmp = temp_dir(tempfile.gettempdir(), "synth-datasets-push-")  # also removes those of killed pushes
    try:
        stage(ds, tmp, record=record, metrics=metrics, repo_id=repo_id, report=report, token=token, **code)
        result = push_folder(tmp, repo_id, private=private, revision=revision, create_pr=create_pr, token=token,
                             commit_message=commit_message, retry_hint=False)
        result.folder = None
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
