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

import math
from collections.abc import Sequence
from typing import Any, Mapping

import numpy as np

from ..errors import InvalidParameterError
from ..judging import ask_letters, combine, pair_messages, soft_score, verdict_score  # noqa: F401 (public here too)

__all__ = ["PAIRWISE_TEMPLATE", "PAIRWISE_RUBRIC_TEMPLATE", "LEVELS_TEMPLATE", "PreferenceJudge", "bradley_terry", "elo", "rank",
           "outcome_table", "level_shares", "soft_score", "combine", "position_bias"]

PAIRWISE_SYSTEM = "You are a fair judge of answers written by AI assistants."
PAIRWISE_USER = ("Instruction:\n{{ prompt }}\n\nResponse A:\n{{ first }}\n\nResponse B:\n{{ second }}\n\n"
                 "Which response follows the instruction better? Answer with one letter: A if Response A is "
                 "better, B if Response B is better, C if they are equally good.")
LEVELS_USER = ("Instruction:\n{{ prompt }}\n\nResponse:\n{{ response }}\n\nRate the response with one letter:\n"
               "A: valid and satisfying.\nB: acceptable, with minor errors or imperfections.\n"
               "C: responds to the instruction but has significant errors.\nD: irrelevant or completely invalid.\n"
               "Answer with one letter.")
LEVELS = ("A", "B", "C", "D")
DECISIONS = ("letters", "probabilities")


def _template(user: str, system: str | None = PAIRWISE_SYSTEM, needs: Sequence[str] = ()):
    from ..prompts import Template

    t = Template(user, system=system)
    missing = sorted(set(needs) - t.variables)
    if missing:
        raise InvalidParameterError(f"The judge template does not use {missing}: it must show "
                                    f"{', '.join('{{ ' + v + ' }}' for v in needs)} to the judge.")
    return t


PAIRWISE_TEMPLATE = PAIRWISE_USER
LEVELS_TEMPLATE = LEVELS_USER
# A rubric variant of the pairwise question (what a good and a bad answer look like), measured in BENCHMARKS.md
PAIRWISE_RUBRIC_TEMPLATE = (
    "Instruction:\n{{ prompt }}\n\nResponse A:\n{{ first }}\n\nResponse B:\n{{ second }}\n\n"
    "A good response is fluent English, complete, and does what the instruction asks. A response made of "
    "random words, broken sentences, or one that stops after a few words is bad. Which response is better? "
    "Answer with one letter: A if Response A is better, B if Response B is better, C if they are equally good.")


class PreferenceJudge:
    """Pairwise preferences (both orders) and four-level ratings from an LLM judge.

    With a local model the verdict is read from the next-token distribution over the letters (one
    forward pass, no parsing); with an endpoint it is a greedy reply, parsed. Requests are cached.

    Args:
        llm (`LLM`): the judge.
        decision (`str`, defaults to ``"letters"``): how a pair's two verdicts (one per order) become
            its winner. ``"letters"``: each order's likeliest letter; the orders agree: a win, they
            disagree: a tie. ``"probabilities"`` (local models): the expected score of ``model_a``
            under the judge's letter probabilities (C counts half), averaged over both orders, so the
            judge's lean towards a slot cancels (balanced position calibration, Wang et al. 2023); a
            win when it is more than ``tie_margin`` from 0.5.
        tie_margin (`float`, defaults to 0.02): with ``"probabilities"``, the band around 0.5 called a tie.
        pairwise_template (`str`, *optional*): the pairwise question (Jinja; uses ``prompt``, ``first``,
            ``second``; must ask for A, B or C); default :data:`PAIRWISE_TEMPLATE`.
        levels_template (`str`, *optional*): the four-level question (uses ``prompt``, ``response``; asks
            for A-D); default :data:`LEVELS_TEMPLATE`.
        system (`str`, *optional*): the judge's system message.
        max_new_tokens (`int`): reply length for endpoints (parsed for the first verdict letter).
        seed (`int`): the requests' seed.

    Example:
        >>> judge = PreferenceJudge(LLM(), decision="probabilities")                       # doctest: +SKIP
        >>> table = judge.compare(prompts, {"normal": normal, "truncated": short})           # doctest: +SKIP
        >>> rank(table)["bradley_terry"]                                                     # doctest: +SKIP
    """

    def __init__(self, llm, *, decision: str = "letters", tie_margin: float = 0.02,
                 pairwise_template: str = PAIRWISE_USER, levels_template: str = LEVELS_USER,
                 system: str | None = PAIRWISE_SYSTEM, max_new_tokens: int = 4, seed: int = 0):
        from ..llm import LLM
        from ..llm.choices import supports_choice_logprobs

        if not isinstance(llm, LLM):
            raise InvalidParameterError(f"llm must be an LLM, got {type(llm).__name__}: use LLM() or LLM(url, model=...)")
        if decision not in DECISIONS:
            raise InvalidParameterError(f"decision={decision!r}: one of {DECISIONS}.")
        if decision == "probabilities" and not supports_choice_logprobs(llm):
            raise InvalidParameterError(f"decision='probabilities' needs the judge's next-token distribution, which "
                                        f"{llm!r} does not expose: use decision='letters' with an endpoint.")
        if not 0 <= tie_margin < 0.5:
            raise InvalidParameterError(f"tie_margin={tie_margin!r} must be in [0, 0.5).")
        self.llm, self.decision, self.tie_margin = llm, decision, tie_margin
        self.pairwise = _template(pairwise_template, system, ("prompt", "first", "second"))
        self.levels = _template(levels_template, system, ("prompt", "response"))
        self.max_new_tokens, self.seed = max_new_tokens, seed

    def describe(self) -> dict[str, Any]:
        """The judge's identity, templates verbatim and decision rule (for provenance)."""
        return {"kind": "PreferenceJudge", "model": self.llm.identity(), "decision": self.decision,
                "tie_margin": self.tie_margin, "system": self.pairwise.system, "pairwise_template": self.pairwise.user,
                "levels_template": self.levels.user, "seed": self.seed, "max_new_tokens": self.max_new_tokens}

    def _ask(self, messages: list[list[dict]], letters: str) -> tuple[list[str | None], list[list[float] | None]]:
        """The verdict letter of every request, and (local models) the letters' probabilities, normalized
        over ``letters`` (None from an endpoint, whose reply is parsed)."""
        from ..llm import ChatRequest

        return ask_letters(self.llm, [ChatRequest.of(m, self.seed) for m in messages], letters,
                           max_new_tokens=self.max_new_tokens, seed=self.seed)

    def compare(self, prompts: Sequence[str], responses: Mapping[str, Sequence[str]]) -> dict[str, list]:
        """Judge every pair of systems on every prompt, in both orders. Returns a table, one row per
        pair and prompt: ``prompt_index, model_a, model_b, verdict_ab, verdict_ba, probs_ab, probs_ba,
        score_a, winner``. ``verdict_ab`` is the judge's letter with ``model_a`` shown first,
        ``verdict_ba`` with ``model_b`` first; ``probs_*`` the probabilities of A, B, C (None from an
        endpoint); ``score_a`` the order-averaged expected score of ``model_a`` (None without
        probabilities); ``winner`` is ``"a"``, ``"b"`` or ``"tie"`` by the judge's ``decision`` (None
        when a verdict is missing)."""
        names = list(responses)
        if len(names) < 2:
            raise InvalidParameterError(f"responses= needs at least two systems, got {names}.")
        for name, rs in responses.items():
            if len(rs) != len(prompts):
                raise InvalidParameterError(f"responses[{name!r}] has {len(rs)} texts for {len(prompts)} prompts: "
                                            "give one response per prompt, in the same order.")
        rows, messages = pair_messages(self.pairwise, prompts, responses)
        verdicts, probs = self._ask(messages, "ABC")
        table: dict[str, list] = {k: [] for k in ("prompt_index", "model_a", "model_b", "verdict_ab", "verdict_ba",
                                                  "probs_ab", "probs_ba", "score_a", "winner")}
        for k, (i, a, b) in enumerate(rows):
            vab, vba, pab, pba = verdicts[2 * k], verdicts[2 * k + 1], probs[2 * k], probs[2 * k + 1]
            score = soft_score(pab, pba)
            if self.decision == "probabilities":
                winner = None if score is None else ("a" if score > 0.5 + self.tie_margin else
                                                     "b" if score < 0.5 - self.tie_margin else "tie")
            else:
                winner = combine(vab, vba)
            for key, v in (("prompt_index", i), ("model_a", a), ("model_b", b), ("verdict_ab", vab),
                           ("verdict_ba", vba), ("probs_ab", pab), ("probs_ba", pba),
                           ("score_a", None if score is None else round(score, 6)), ("winner", winner)):
                table[key].append(v)
        return table

    def rate_levels(self, prompts: Sequence[str], responses: Mapping[str, Sequence[str]]) -> dict[str, list]:
        """Self-Instruct's four-level rating of every response: a table ``model, prompt_index, level,
        level_probs, level_score`` (the likeliest letter; the probabilities of A-D, None from an
        endpoint; the expected rating with A=4 ... D=1, from the letter when there are no probabilities)."""
        template = self.levels
        keys = [(name, i) for name in responses for i in range(len(prompts))]
        msgs = [template.render({"prompt": prompts[i], "response": responses[n][i] or ""}, row_index=i) for n, i in keys]
        levels, probs = self._ask(msgs, "ABCD")
        scores = [None if lv is None else round(sum((4 - j) * q for j, q in enumerate(p)), 6) if p is not None
                  else 4 - LEVELS.index(lv) for lv, p in zip(levels, probs)]
        return {"model": [n for n, _ in keys], "prompt_index": [i for _, i in keys], "level": levels,
                "level_probs": probs, "level_score": scores}


def position_bias(table: Mapping[str, Sequence]) -> dict[str, Any]:
    """How often the judge picked the first slot (over decisive verdicts), how often its two orders agree
    on a pair (``consistency``), and, with probabilities, the mean probability it gives the first slot
    over the two (``first_position_probability``; 0.5 is no lean)."""
    firsts, decisive, agree, pairs = 0, 0, 0, 0
    for vab, vba in zip(table["verdict_ab"], table["verdict_ba"]):
        for v in (vab, vba):
            if v in ("A", "B"):
                decisive += 1
                firsts += v == "A"
        if vab is not None and vba is not None:
            pairs += 1
            agree += verdict_score(vab, True) == verdict_score(vba, False)
    leans = [p[0] / (p[0] + p[1]) for key in ("probs_ab", "probs_ba") for p in table.get(key) or []
             if p is not None and p[0] + p[1] > 0]
    return {"first_position_rate": firsts / decisive if decisive else None,
            "order_consistency": agree / pairs if pairs else None, "judged_pairs": pairs,
            "first_position_probability": round(float(np.mean(leans)), 4) if leans else None}


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
         elo_k: float = 4.0, confidence: float = 0.95, resample: str = "auto") -> dict[str, Any]:
    """Elo and Bradley–Terry scores with bootstrap intervals from a preference table (``model_a,
    model_b, winner``; what :meth:`PreferenceJudge.compare` returns). Bradley–Terry is also given on the
    Elo scale (``400 log10(p) + 1000``). Intervals: percentiles of ``bootstrap`` resamples (with
    replacement) of the prompts, each bringing all its matches (``resample="prompts"``: matches on one
    prompt are correlated, so this is the honest interval; needs ``prompt_index``), or of the single
    matches (``"matches"``); ``"auto"``: prompts when the table has ``prompt_index``. Elo is computed on
    each resample in a freshly shuffled order."""
    a, b, w = list(table["model_a"]), list(table["model_b"]), list(table["winner"])
    models, wins = outcome_table(a, b, w)
    valid = [t for t in range(len(w)) if w[t] is not None]
    if not valid:
        raise InvalidParameterError("No match has a verdict (every winner is None): nothing to rank.")
    if resample == "auto":
        resample = "prompts" if "prompt_index" in table else "matches"
    if resample not in ("prompts", "matches") or (resample == "prompts" and "prompt_index" not in table):
        raise InvalidParameterError(f"resample={resample!r}: 'prompts' (needs a prompt_index column), 'matches' or "
                                    "'auto'.")
    groups: dict[Any, list[int]] = {}
    for t in valid:
        groups.setdefault(table["prompt_index"][t] if resample == "prompts" else t, []).append(t)
    clusters = list(groups.values())
    rng = np.random.default_rng(seed)
    bt = bradley_terry(wins, prior=prior)
    el = elo(a, b, w, models, k=elo_k, order=rng.permutation(valid).tolist())
    bt_samples, elo_samples = [], []
    for _ in range(bootstrap):
        pick = [t for c in rng.integers(0, len(clusters), size=len(clusters)) for t in clusters[c]]
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
           "prior": prior, "bootstrap": bootstrap, "resample": resample, "confidence": confidence}
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
