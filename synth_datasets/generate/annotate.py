"""``Annotator``: the LLM labels real unlabelled text (survey §3.1, App. A; LLMAAA), with a confidence.

On a local model the label comes from one scoring pass: the log-probability of each label's
verbalization as the reply, normalised over the label set (nothing sampled). On an endpoint, from the
log-probabilities the server returns for the reply's first token (one greedy token with
``top_logprobs``; llama.cpp's server, vLLM, TGI and OpenAI give them), and where a server gives none, or
no label's first token is among them, from ``votes`` sampled replies (the share naming each label). A temperature fitted on a few
labelled rows (:meth:`Annotator.calibrate`) rescales the distribution; the fitted temperature and
the expected calibration error before and after are recorded in :meth:`describe` (and so in the card).
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np

from ..columns import check_columns
from ..errors import InvalidParameterError
from ..llm import LLM, ChatRequest, Completion, SamplingParams
from ..llm.scoring import continuation_logprobs
from ..prompts import Template
from ..seeding import batch_size_of, derive_seed
from .base import Generator, as_template, check_llm, input_columns

METHODS = ("auto", "score", "logprobs", "vote")


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], *, bins: int = 10) -> float:
    """Expected calibration error: the mean, weighted by bin size, of |accuracy - mean confidence| over
    ``bins`` equal-width confidence bins.

    >>> round(expected_calibration_error([0.9, 0.9, 0.6, 0.6], [True, True, True, False]), 3)
    0.1
    """
    conf = np.asarray(confidence, dtype=float)
    ok = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return float("nan")
    which = np.minimum((conf * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        sel = which == b
        total += sel.sum() * abs(ok[sel].mean() - conf[sel].mean())
    return float(total / conf.size)


def _softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=float) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Annotator(Generator):
    """Labels each row of an existing dataset with one of ``labels``, a confidence and the distribution.

    Map contract: ``ds.map(annotator, batched=True)`` (optionally ``with_indices=True``, ``num_proc>1``);
    one row out per row in. New columns: ``output`` (the label), ``{output}_confidence`` (its
    probability), ``{output}_probs`` (one probability per label, in ``labels`` order) and
    ``{output}_error`` (None, or why the row has no label; the run goes on).

    Args:
        llm (`LLM`): the annotating model.
        labels (`list[str]`): the label set, as it is written in the output column.
        template (`Template` or `str`): the prompt over the row's columns (it should name the labels).
        verbalizers (`dict[str, str]`, *optional*): the reply that stands for each label (default: the
            label itself), e.g. ``{"fresh": "positive", "rotten": "negative"}``.
        output (`str`, defaults to ``"label"``): the label column.
        method (`str`, defaults to ``"auto"``): ``"score"`` (local models: one scoring pass),
            ``"logprobs"`` (endpoints: the first reply token's ``top_logprobs``; a row whose reply
            starts with no label is voted on instead), ``"vote"`` (``votes`` sampled replies),
            ``"auto"`` (``"score"`` on local models, ``"logprobs"`` on endpoints).
        top_logprobs (`int`, defaults to 20): alternatives asked for with ``"logprobs"`` (OpenAI allows 20).
        votes (`int`, defaults to 5), temperature (`float`, defaults to 0.7), max_new_tokens (`int`,
            defaults to 8), seed (`int`, defaults to 0): for voting.
        key_column (`str`, *optional*): seeds votes by this column instead of the row content.

    Example:
        >>> ann = Annotator(LLM(), labels=["positive", "negative"],                    # doctest: +SKIP
        ...                 template="Is this review positive or negative?\\n{{ text }}")
        >>> ds.map(ann, batched=True)[0]["label"]                                       # doctest: +SKIP
        'positive'
    """

    def __init__(self, llm: LLM, labels: Sequence[str], template: Template | str, *,
                 verbalizers: dict[str, str] | None = None, output: str = "label", method: str = "auto",
                 votes: int = 5, temperature: float = 0.7, max_new_tokens: int = 8, seed: int = 0,
                 key_column: str | None = None, top_logprobs: int = 20):
        check_llm(llm)
        labels = [str(x) for x in labels]
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise InvalidParameterError(f"labels={labels!r} must be at least 2 distinct labels.")
        verbalizers = dict(verbalizers or {})
        unknown = sorted(set(verbalizers) - set(labels))
        if unknown:
            raise InvalidParameterError(f"verbalizers name labels that are not in labels: {unknown}. Labels: {labels}.")
        words = [str(verbalizers.get(x, x)) for x in labels]
        if len(set(w.lower() for w in words)) != len(words) or not all(w.strip() for w in words):
            raise InvalidParameterError(f"verbalizers {words!r} must be distinct, non-empty replies.")
        if method not in METHODS:
            raise InvalidParameterError(f"method={method!r} must be one of {list(METHODS)}.")
        if method == "score" and llm.kind == "endpoint":
            raise InvalidParameterError("method='score' needs a local model (endpoints do not expose the next-token "
                                        "distribution here): use method='vote' or 'auto'.")
        if method == "logprobs" and llm.kind != "endpoint":
            raise InvalidParameterError("method='logprobs' reads an endpoint's top_logprobs; a local model scores "
                                        "the labels directly: use method='score' or 'auto'.")
        if not isinstance(top_logprobs, int) or not 1 <= top_logprobs <= 20:
            raise InvalidParameterError(f"top_logprobs={top_logprobs!r} must be an integer from 1 to 20.")
        if not isinstance(votes, int) or votes < 1:
            raise InvalidParameterError(f"votes={votes!r} must be an integer >= 1.")
        self.llm, self.labels, self.words, self.template, self.output = llm, labels, words, as_template(template), output
        self.method = method if method != "auto" else ("logprobs" if llm.kind == "endpoint" else "score")
        self.votes, self.seed, self.key_column = votes, seed, key_column
        self.vote_params = SamplingParams.make(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        self.logprob_params = SamplingParams.make(temperature=0.0, max_new_tokens=1, seed=seed,
                                                  top_logprobs=top_logprobs)
        self.temperature_ = 1.0  # calibration (1.0 = none)
        self.calibration_: dict[str, Any] | None = None
        self._init_runtime()

    def _init_runtime(self) -> None:
        self.scored_by_: dict[str, int] = {}  # rows labelled per way (logprobs / vote), this process

    # -- contract 2 ---------------------------------------------------------------------------
    _STATE = ("llm", "labels", "words", "template", "output", "method", "votes", "seed", "key_column", "vote_params",
              "logprob_params", "temperature_", "calibration_")
    _SAMPLING = ("vote_params", "logprob_params")

    def _restore(self, state: dict[str, Any]) -> dict[str, Any]:
        if not state.get("logprob_params"):  # pickled before the option existed
            state["logprob_params"] = SamplingParams.make(temperature=0.0, max_new_tokens=1, seed=state.get("seed", 0),
                                                          top_logprobs=20).model_dump()
        return super()._restore(state)

    @property
    def output_columns(self) -> list[str]:
        o = self.output
        return [o, f"{o}_confidence", f"{o}_probs", f"{o}_error"]

    # -- scoring --------------------------------------------------------------------------------
    def _requests(self, batch: dict[str, list], indices: Sequence[int] | None) -> list[ChatRequest]:
        self.template.check_columns(list(batch))
        return list(self._row_requests(batch, indices, self.template, self.seed, self.key_column))

    def logits(self, batch: dict[str, list], indices: Sequence[int] | None = None) -> tuple[np.ndarray, list[str | None]]:
        """Uncalibrated log-scores per label ``(rows, labels)`` and a per-row error (None when fine)."""
        requests = self._requests(batch, indices)
        if self.method == "score":
            comps = continuation_logprobs(self.llm, requests, self.words)
            z = np.array([c.logprobs if c.error is None else [0.0] * len(self.words) for c in comps], dtype=float)
            return z, [c.error for c in comps]
        if self.method == "logprobs":
            comps = self._complete(requests, self.logprob_params)
            z = np.zeros((len(requests), len(self.words)))
            errors = [None] * len(requests)
            need = []
            for i, c in enumerate(comps):
                s = self._first_token_scores(c)
                if s is None:
                    need.append(i)
                else:
                    z[i] = s
            if need:  # no logprobs from the server, or the reply starts with no label: vote on these rows
                zv, ev = self._vote([requests[i] for i in need])
                for j, i in enumerate(need):
                    z[i], errors[i] = zv[j], ev[j]
            self._count("logprobs", len(requests) - len(need))
            self._count("vote", len(need))
            return z, errors
        return self._vote(requests)

    def _count(self, way: str, n: int) -> None:
        if n:
            self.scored_by_[way] = self.scored_by_.get(way, 0) + n

    def _first_token_scores(self, c: Completion) -> np.ndarray | None:
        """Per label, the log-probability (summed over spellings) of the first reply token that begins
        exactly one label's verbalization (case and surrounding spaces ignored); a label missing from
        the returned alternatives gets the smallest returned value (an upper bound). None when the
        server returned no alternatives or none begins a label."""
        if c.error is not None or not c.top_logprobs:
            return None
        top = c.top_logprobs[0]
        words = [w.lower() for w in self.words]
        z = np.full(len(words), -np.inf)
        for tok, lp in top.items():
            t = tok.strip().strip("\"'*").lower()
            hits = [j for j, w in enumerate(words) if t and w.startswith(t)]
            if len(hits) == 1:
                z[hits[0]] = np.logaddexp(z[hits[0]], lp)
        if not np.isfinite(z).any():
            return None
        return np.where(np.isfinite(z), z, min(top.values()))

    def _vote(self, requests: list[ChatRequest]) -> tuple[np.ndarray, list[str | None]]:
        if not requests:
            return np.zeros((0, len(self.words))), []
        k = self.votes
        asked = [ChatRequest(r.messages, derive_seed(r.seed, j)) for r in requests for j in range(k)]
        comps = self._complete(asked, self.vote_params)
        z = np.zeros((len(requests), len(self.words)))
        errors: list[str | None] = []
        for i in range(len(requests)):
            counts = np.zeros(len(self.words))
            for c in comps[i * k:(i + 1) * k]:
                j = self._parse(c)
                if j is not None:
                    counts[j] += 1
            if counts.sum() == 0:
                errors.append(f"no label named in {k} replies (e.g. {(comps[i * k].text or comps[i * k].error or '')[:80]!r})")
            else:
                errors.append(None)
            z[i] = np.log((counts + 1e-3) / (counts.sum() + 1e-3 * len(counts)))  # shares as log-scores
        return z, errors

    def _parse(self, c: Completion) -> int | None:
        """The label a reply names first (whole words, case-insensitive)."""
        if c.error is not None or not c.text:
            return None
        text = c.text.lower()
        hits = [(m.start(), j) for j, w in enumerate(self.words)
                for m in [re.search(r"(?<!\w)" + re.escape(w.lower()) + r"(?!\w)", text)] if m]
        return min(hits)[1] if hits else None

    def __call__(self, batch: dict[str, list], indices: Sequence[int] | None = None):
        import pyarrow as pa

        self._check_batch(batch)
        size = batch_size_of(batch)
        arrays, names = input_columns(batch, list(batch), size, 1)
        z, errors = self.logits(batch, indices) if size else (np.zeros((0, len(self.labels))), [])
        p = _softmax(z, self.temperature_) if size else z
        best = p.argmax(-1) if size else []
        o = self.output
        new = {o: pa.array([None if e else self.labels[b] for b, e in zip(best, errors)], type=pa.string()),
               f"{o}_confidence": pa.array([None if e else float(p[i, b]) for i, (b, e) in enumerate(zip(best, errors))],
                                           type=pa.float32()),
               f"{o}_probs": pa.array([None if e else [float(v) for v in p[i]] for i, e in enumerate(errors)],
                                      type=pa.list_(pa.float32())),
               f"{o}_error": pa.array(errors, type=pa.string())}
        return pa.Table.from_arrays(arrays + list(new.values()), names=names + list(new))

    # -- calibration ----------------------------------------------------------------------------
    def calibrate(self, ds, label_column: str, *, bins: int = 10) -> dict[str, Any]:
        """Fit a temperature on labelled rows (minimum negative log-likelihood of the gold labels) and
        keep it for every later call; returns (and records) the accuracy and the expected calibration
        error before and after. ``ds`` is a ``datasets.Dataset`` (or a dict of columns) whose
        ``label_column`` holds labels from ``labels``."""
        from scipy.optimize import minimize_scalar

        cols = ds.to_dict() if hasattr(ds, "to_dict") else dict(ds)
        check_columns(cols, [label_column], "Annotator.calibrate (label_column=)")
        gold = cols[label_column]
        bad = sorted({str(g) for g in gold} - set(self.labels))
        if bad:
            raise InvalidParameterError(f"Calibration labels {bad[:5]} are not in labels={self.labels}. Map them first.")
        z, errors = self.logits(cols)
        keep = [i for i, e in enumerate(errors) if e is None]
        if len(keep) < 2:
            raise InvalidParameterError(f"Only {len(keep)} calibration rows could be scored: give more labelled rows.")
        z = z[keep]
        y = np.array([self.labels.index(str(gold[i])) for i in keep])

        def nll(log_t: float) -> float:
            p = _softmax(z, math.exp(log_t))
            return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

        before = _softmax(z, 1.0)
        res = minimize_scalar(nll, bounds=(math.log(0.02), math.log(50.0)), method="bounded")
        self.temperature_ = float(math.exp(res.x))
        after = _softmax(z, self.temperature_)
        correct = before.argmax(-1) == y
        self.calibration_ = {"method": "temperature", "temperature": self.temperature_, "rows": int(len(y)),
                             "accuracy": float(correct.mean()),
                             "ece_before": expected_calibration_error(before.max(-1), correct, bins=bins),
                             "ece_after": expected_calibration_error(after.max(-1), correct, bins=bins),
                             "nll_before": nll(0.0), "nll_after": float(res.fun), "bins": bins}
        return dict(self.calibration_)

    # -- contract 4 -----------------------------------------------------------------------------
    def describe_config(self) -> dict[str, Any]:
        return {"output": self.output, "labels": list(self.labels), "verbalizers": dict(zip(self.labels, self.words)),
                "method": self.method, "template": self.template.describe(), "llm": self.llm.describe(),
                "seed": self.seed, "key_column": self.key_column, "calibration": self.calibration_}

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.method in ("vote", "logprobs"):  # logprobs falls back to votes row by row
            d.update(votes=self.votes, sampling=self.vote_params.model_dump(mode="json"))
        if self.method == "logprobs":
            d.update(top_logprobs=self.logprob_params.top_logprobs, scored_by=dict(self.scored_by_))
        return d

    def __repr__(self) -> str:
        return f"Annotator({self.llm!r}, labels={self.labels!r}, method={self.method!r}, output={self.output!r})"


def annotation_report(ds, output: str, label_column: str, *, bins: int = 10) -> dict[str, float]:
    """Accuracy and expected calibration error of an annotated dataset against gold labels (rows with an
    annotation error count as wrong, with confidence 0)."""
    cols = ds.to_dict() if hasattr(ds, "to_dict") else dict(ds)
    check_columns(cols, [output, f"{output}_confidence", label_column], "annotation_report")
    pred, conf, gold = cols[output], cols[f"{output}_confidence"], cols[label_column]
    correct = [p is not None and str(p) == str(g) for p, g in zip(pred, gold)]
    conf = [0.0 if c is None else float(c) for c in conf]
    return {"rows": len(correct), "accuracy": float(np.mean(correct)) if correct else float("nan"),
            "ece": expected_calibration_error(conf, correct, bins=bins),
            "mean_confidence": float(np.mean(conf)) if conf else float("nan")}
