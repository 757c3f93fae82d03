"""Open evaluation by ranking (survey §3.3.2): an LLM judge compares the outputs of two or more
generators on the same prompts, and the preferences become Elo and Bradley–Terry scores with
bootstrap confidence intervals (as Chatbot Arena / AlpacaEval do); the Self-Instruct four-level
rating (A valid and satisfying ... D irrelevant) is the second mode.

Position bias: every pair is judged in both orders. The judge's preference for the first slot is
measured (``first_position_rate``: 0.5 is none) and cancelled: a pair's outcome is the mean of its two
verdicts mapped back to the systems (both orders agree: a win; they disagree: a tie).

>>> import numpy as np
>>> wins = np.array([[0, 8, 9], [2, 0, 6], [1, 4, 0]], dtype=float)    # wins[i, j]: i beat j
>>> np.round(bradley_terry(wins), 3).tolist()
[1.17, -0.342, -0.828]
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from typing import Any, Mapping

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["PAIRWISE_TEMPLATE", "LEVELS_TEMPLATE", "PreferenceJudge", "bradley_terry", "elo", "rank",
           "outcome_table", "plot_scores", "level_shares"]

PAIRWISE_SYSTEM = "You are a fair judge of answers written by AI assistants."
PAIRWISE_USER = ("Instruction:\n{{ prompt }}\n\nResponse A:\n{{ first }}\n\nResponse B:\n{{ second }}\n\n"
                 "Which response follows the instruction better? Answer with one letter: A if Response A is "
                 "better, B if Response B is better, C if they are equally good.")
LEVELS_USER = ("Instruction:\n{{ prompt }}\n\nResponse:\n{{ response }}\n\nRate the response with one letter:\n"
               "A: valid and satisfying.\nB: acceptable, with minor errors or imperfections.\n"
               "C: responds to the instruction but has significant errors.\nD: irrelevant or completely invalid.\n"
               "Answer with one letter.")
LEVELS = ("A", "B", "C", "D")


def _template(user: str):
    from ..prompts import Template

    return Template(user, system=PAIRWISE_SYSTEM)


PAIRWISE_TEMPLATE = PAIRWISE_USER
LEVELS_TEMPLATE = LEVELS_USER


def _letter(text: str | None, letters: str) -> str | None:
    """The verdict letter of a free reply: the first standalone letter among ``letters``."""
    if not text:
        return None
    m = re.search(rf"\b([{letters}])\b", text.strip().upper())
    return m.group(1) if m else None


class PreferenceJudge:
    """Pairwise preferences (both orders) and four-level ratings from an LLM judge.

    With a local model the verdict is the likeliest of the letters as the reply's next token (one
    forward pass, no parsing); with an endpoint it is a greedy reply, parsed. Requests are cached.

    Args:
        llm (`LLM`): the judge.
        max_new_tokens (`int`): reply length for endpoints (parsed for the first verdict letter).
        seed (`int`): the requests' seed.

    Example:
        >>> judge = PreferenceJudge(LLM())                                                # doctest: +SKIP
        >>> table = judge.compare(prompts, {"normal": normal, "truncated": short})           # doctest: +SKIP
        >>> rank(table)["bradley_terry"]                                                     # doctest: +SKIP
    """

    def __init__(self, llm, *, max_new_tokens: int = 4, seed: int = 0):
        from ..llm import LLM

        if not isinstance(llm, LLM):
            raise InvalidParameterError(f"llm must be an LLM, got {type(llm).__name__}: use LLM() or LLM(url, model=...)")
        self.llm, self.max_new_tokens, self.seed = llm, max_new_tokens, seed

    def _ask(self, messages: list[list[dict]], letters: str) -> list[str | None]:
        from ..llm import ChatRequest, SamplingParams

        requests = [ChatRequest.of(m, self.seed) for m in messages]
        try:
            from ..llm.choices import choice_logprobs, supports_choice_logprobs
        except ImportError:  # pragma: no cover - older tree
            supports_choice_logprobs = None
        if supports_choice_logprobs is not None and supports_choice_logprobs(self.llm):
            done = choice_logprobs(self.llm, requests, list(letters), prefix="")
            return [None if c.error else c.text for c in done]
        done = self.llm.generate(requests, SamplingParams.make(temperature=0.0, max_new_tokens=self.max_new_tokens,
                                                               seed=self.seed))
        return [None if c.error else _letter(c.text, letters) for c in done]

    def compare(self, prompts: Sequence[str], responses: Mapping[str, Sequence[str]]) -> dict[str, list]:
        """Judge every pair of systems on every prompt, in both orders. Returns a table (columns
        ``prompt_index, model_a, model_b, first, verdict_ab, verdict_ba, winner``): ``verdict_ab`` is
        the judge's letter with ``model_a`` shown first, ``verdict_ba`` with ``model_b`` first; ``winner``
        is ``"a"``, ``"b"`` or ``"tie"`` after cancelling the order (None when a verdict is missing)."""
        names = list(responses)
        if len(names) < 2:
            raise InvalidParameterError(f"responses= needs at least two systems, got {names}.")
        for name, rs in responses.items():
            if len(rs) != len(prompts):
                raise InvalidParameterError(f"responses[{name!r}] has {len(rs)} texts for {len(prompts)} prompts: "
                                            "give one response per prompt, in the same order.")
        template = _template(PAIRWISE_USER)
        rows, messages = [], []
        for (a, b), i in itertools.product(itertools.combinations(names, 2), range(len(prompts))):
            for first, second in ((a, b), (b, a)):
                messages.append(template.render({"prompt": prompts[i], "first": responses[first][i] or "",
                                                 "second": responses[second][i] or ""}, row_index=i))
            rows.append((i, a, b))
        verdicts = self._ask(messages, "ABC")
        table: dict[str, list] = {k: [] for k in ("prompt_index", "model_a", "model_b", "verdict_ab", "verdict_ba",
                                                  "winner")}
        for k, (i, a, b) in enumerate(rows):
            vab, vba = verdicts[2 * k], verdicts[2 * k + 1]
            table["prompt_index"].append(i)
            table["model_a"].append(a)
            table["model_b"].append(b)
            table["verdict_ab"].append(vab)
            table["verdict_ba"].append(vba)
            table["winner"].append(combine(vab, vba))
        return table

    def rate_levels(self, prompts: Sequence[str], responses: Mapping[str, Sequence[str]]) -> dict[str, list]:
        """Self-Instruct's four-level rating of every response: a table ``model, prompt_index, level``."""
        template = _template(LEVELS_USER)
        keys = [(name, i) for name in responses for i in range(len(prompts))]
        msgs = [template.render({"prompt": prompts[i], "response": responses[n][i] or ""}, row_index=i) for n, i in keys]
        levels = self._ask(msgs, "ABCD")
        return {"model": [n for n, _ in keys], "prompt_index": [i for _, i in keys], "level": levels}


def _score(verdict: str | None, shown_first: bool) -> float | None:
    """Score of the system shown first (``shown_first``) or second, from one verdict letter."""
    if verdict is None:
        return None
    if verdict == "C":
        return 0.5
    return 1.0 if (verdict == "A") == shown_first else 0.0


def combine(verdict_ab: str | None, verdict_ba: str | None) -> str | None:
    """The order-cancelled winner of a pair from its two verdicts (``"a"``, ``"b"``, ``"tie"``).

    >>> combine("A", "B"), combine("A", "A"), combine("C", "B"), combine(None, "A")
    ('a', 'tie', 'a', None)
    """
    s1, s2 = _score(verdict_ab, True), _score(verdict_ba, False)
    if s1 is None or s2 is None:
        return None
    s = (s1 + s2) / 2
    return "a" if s > 0.5 else "b" if s < 0.5 else "tie"


def position_bias(table: Mapping[str, Sequence]) -> dict[str, Any]:
    """How often the judge picked the first slot (over decisive verdicts), and how often its two orders
    agree on a pair (``consistency``)."""
    firsts, decisive, agree, pairs = 0, 0, 0, 0
    for vab, vba in zip(table["verdict_ab"], table["verdict_ba"]):
        for v in (vab, vba):
            if v in ("A", "B"):
                decisive += 1
                firsts += v == "A"
        if vab is not None and vba is not None:
            pairs += 1
            agree += _score(vab, True) == _score(vba, False)
    return {"first_position_rate": firsts / decisive if decisive else None,
            "order_consistency": agree / pairs if pairs else None, "judged_pairs": pairs}


def outcome_table(model_a: Sequence[str], model_b: Sequence[str], winner: Sequence[str | None],
                  models: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """``(models, wins)`` with ``wins[i, j]`` = matches i won against j; a tie is half a win each way;
    rows whose winner is None are left out."""
    models = list(models or sorted(set(model_a) | set(model_b)))
    idx = {m: k for k, m in enumerate(models)}
    wins = np.zeros((len(models), len(models)))
    for a, b, w in zip(model_a, model_b, winner):
        if w is None:
            continue
        if w not in ("a", "b", "tie"):
            raise InvalidParameterError(f"winner {w!r}: one of 'a', 'b', 'tie' (or None for no verdict).")
        s = {"a": 1.0, "b": 0.0, "tie": 0.5}[w]
        wins[idx[a], idx[b]] += s
        wins[idx[b], idx[a]] += 1 - s
    return models, wins


def bradley_terry(wins: np.ndarray, *, prior: float = 0.0, max_iter: int = 10_000, tol: float = 1e-10) -> np.ndarray:
    """Bradley–Terry log-strengths (mean 0) maximizing ``sum_ij wins[i,j] log(p_i / (p_i + p_j))`` by
    Hunter's (2004) MM algorithm; ``prior`` adds that many virtual ties to every pair (keeps the
    estimate finite when a system wins or loses every match)."""
    w = np.asarray(wins, dtype=np.float64)
    k = w.shape[0]
    if w.ndim != 2 or w.shape != (k, k) or k < 2 or (w < 0).any():
        raise InvalidParameterError("wins must be a square (k, k) array of non-negative counts, k >= 2.")
    w = w + prior / 2 * (1 - np.eye(k))
    n = w + w.T
    total = w.sum(1)
    if (total == 0).any() or (n.sum(1) == total).any():
        bad = [i for i in range(k) if total[i] == 0 or n[i].sum() == total[i]]
        raise InvalidParameterError(f"system(s) {bad} won no match or every match: the maximum-likelihood strengths "
                                    "are infinite. Pass prior > 0 (virtual ties), or compare on more prompts.")
    p = np.ones(k)
    for _ in range(max_iter):
        denom = (n / (p[:, None] + p[None, :])).sum(1)
        new = total / denom
        new /= np.exp(np.log(new).mean())
        if np.abs(np.log(new) - np.log(p)).max() < tol:
            p = new
            break
        p = new
    return np.log(p) - np.log(p).mean()


def elo(model_a: Sequence[str], model_b: Sequence[str], winner: Sequence[str | None], models: Sequence[str], *,
        k: float = 4.0, base: float = 1000.0, scale: float = 400.0, order: Sequence[int] | None = None) -> np.ndarray:
    """Online Elo over the matches (in ``order``; default: as given): ``K`` per match, ties score 0.5."""
    idx = {m: i for i, m in enumerate(models)}
    r = np.full(len(models), base)
    for t in (range(len(winner)) if order is None else order):
        w = winner[t]
        if w is None:
            continue
        a, b = idx[model_a[t]], idx[model_b[t]]
        ea = 1 / (1 + 10 ** ((r[b] - r[a]) / scale))
        s = {"a": 1.0, "b": 0.0, "tie": 0.5}[w]
        r[a] += k * (s - ea)
        r[b] -= k * (s - ea)
    return r


def rank(table: Mapping[str, Sequence], *, prior: float = 0.5, bootstrap: int = 1000, seed: int = 0,
         elo_k: float = 4.0, confidence: float = 0.95) -> dict[str, Any]:
    """Elo and Bradley–Terry scores with bootstrap intervals from a preference table (``model_a,
    model_b, winner``; what :meth:`PreferenceJudge.compare` returns). Bradley–Terry is also given on the
    Elo scale (``400 log10(p) + 1000``). Intervals: percentiles of ``bootstrap`` resamples of the
    matches (with replacement); Elo is computed on each resample in a freshly shuffled order."""
    a, b, w = list(table["model_a"]), list(table["model_b"]), list(table["winner"])
    models, wins = outcome_table(a, b, w)
    valid = [t for t in range(len(w)) if w[t] is not None]
    if not valid:
        raise InvalidParameterError("No match has a verdict (every winner is None): nothing to rank.")
    rng = np.random.default_rng(seed)
    bt = bradley_terry(wins, prior=prior)
    el = elo(a, b, w, models, k=elo_k, order=rng.permutation(valid).tolist())
    bt_samples, elo_samples = [], []
    for _ in range(bootstrap):
        pick = rng.choice(valid, size=len(valid), replace=True)
        _, wb = outcome_table([a[t] for t in pick], [b[t] for t in pick], [w[t] for t in pick], models)
        bt_samples.append(bradley_terry(wb, prior=prior))
        elo_samples.append(elo(a, b, w, models, k=elo_k, order=rng.permutation(pick).tolist()))
    lo, hi = (1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100
    to_elo = 400 / math.log(10)

    def interval(samples, scale=1.0, shift=0.0):
        if not samples:
            return [[None, None] for _ in models]
        s = np.array(samples) * scale + shift
        return np.stack([np.percentile(s, lo, axis=0), np.percentile(s, hi, axis=0)], 1).round(4).tolist()

    ties = sum(x == "tie" for x in w)
    out = {"models": models, "matches": len(valid), "ties": ties, "no_verdict": len(w) - len(valid),
           "bradley_terry": dict(zip(models, bt.round(4).tolist())),
           "bradley_terry_ci": dict(zip(models, interval(bt_samples))),
           "bradley_terry_elo_scale": dict(zip(models, (bt * to_elo + 1000).round(1).tolist())),
           "bradley_terry_elo_scale_ci": dict(zip(models, interval(bt_samples, to_elo, 1000))),
           "elo": dict(zip(models, el.round(1).tolist())), "elo_ci": dict(zip(models, interval(elo_samples))),
           "win_rate": dict(zip(models, (wins.sum(1) / (wins + wins.T).sum(1)).round(4).tolist())),
           "prior": prior, "bootstrap": bootstrap, "confidence": confidence}
    if "verdict_ab" in table:
        out["position_bias"] = position_bias(table)
    return out


def level_shares(table: Mapping[str, Sequence]) -> dict[str, dict[str, float]]:
    """Per model, the share of each Self-Instruct level (A-D) and of missing verdicts."""
    out: dict[str, dict[str, float]] = {}
    for m in dict.fromkeys(table["model"]):
        lv = [x for n, x in zip(table["model"], table["level"]) if n == m]
        out[m] = {k: round(sum(x == k for x in lv) / len(lv), 4) for k in LEVELS}
        out[m]["none"] = round(sum(x is None for x in lv) / len(lv), 4)
    return out


def plot_scores(result: Mapping[str, Any], path, *, key: str = "bradley_terry_elo_scale", title: str | None = None):
    """A PNG of the scores with their intervals (one row per system, best on top)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores, ci = result[key], result.get(f"{key}_ci") or {}
    models = sorted(scores, key=scores.get)
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(models) + 1.2))
    y = np.arange(len(models))
    x = np.array([scores[m] for m in models])
    lo = np.array([(ci.get(m) or [None, None])[0] if (ci.get(m) or [None])[0] is not None else scores[m] for m in models])
    hi = np.array([(ci.get(m) or [None, None])[1] if (ci.get(m) or [None, None])[1] is not None else scores[m]
                   for m in models])
    ax.errorbar(x, y, xerr=[x - lo, hi - x], fmt="o", capsize=4)
    ax.set_yticks(y, models)
    ax.set_xlabel(f"{key.replace('_', ' ')} ({int(result.get('confidence', 0.95) * 100)}% bootstrap interval)")
    ax.set_title(title or f"Preference ranking ({result.get('matches')} matches)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
