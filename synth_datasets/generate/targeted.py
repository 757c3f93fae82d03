"""Error-targeted loops (survey §3.1.2): the next round's budget goes where a downstream model fails.

- :class:`S3` (Wang et al. 2023b, "Let's Synthesize Step by Step"): each round trains a small
  classifier (all-MiniLM-L6-v2 embeddings + logistic regression) on the rows so far, evaluates it on a
  small real labelled validation set, and spends the round's budget on the classes it gets wrong, in
  proportion to their errors, prompting with the misclassified real examples of each class as
  demonstrations for their true label (error extrapolation).
- :class:`ExploreInstruct` (Wan et al. 2023): a task tree grown from root domains level by level, by
  depth (sub-tasks) and breadth (new siblings), novel nodes kept by ROUGE-L, an instruction per node.

Built on :class:`~synth_datasets.generate.loops.Loop`: rounds, stop rule, per-round records and
checkpoints, resume after a kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..llm import LLM, ChatRequest, SamplingParams
from ..prompts import Template
from ..seeding import derive_seed
from .base import check_loop_args
from .loops import Loop

__all__ = ["S3", "EXTRAPOLATE", "allocate", "ExploreInstruct", "parse_items"]

EXTRAPOLATE = Template(
    system="You write short texts for a dataset.",
    user="Here are examples of {{ label }}:\n{{ examples }}\n\nWrite one new, different example of {{ label }}. "
         "Output only the text.")


def allocate(errors: Mapping[Any, int], budget: int) -> dict[Any, int]:
    """Split ``budget`` over the classes in proportion to their ``errors`` (largest remainder; ties go
    to the class listed first). With no errors at all the budget is spread evenly.

    >>> allocate({"a": 3, "b": 1}, 8)
    {'a': 6, 'b': 2}
    >>> allocate({"a": 0, "b": 0}, 3)
    {'a': 2, 'b': 1}
    """
    keys = list(errors)
    weights = [float(errors[k]) for k in keys]
    if sum(weights) <= 0:
        weights = [1.0] * len(keys)
    total = sum(weights)
    exact = [budget * w / total for w in weights]
    out = [int(e) for e in exact]
    order = sorted(range(len(keys)), key=lambda i: (-(exact[i] - out[i]), -weights[i], i))
    for i in order[:budget - sum(out)]:
        out[i] += 1
    return dict(zip(keys, out))


def _clean(text: str | None) -> str | None:
    """The first paragraph of a completion, whitespace collapsed, quotes stripped; None when empty."""
    if not text:
        return None
    para = text.strip().split("\n\n")[0]
    s = " ".join(para.split()).strip().strip('"').strip()
    return s or None


class S3(Loop):
    """S3 (Wang et al. 2023b): synthesize step by step, extrapolating a small model's errors.

    Input: the rows so far (a first synthetic set, e.g. from one-shot generation) with ``text_column``
    and ``label_column``. Each round: embed them, fit a logistic regression, predict the real
    ``validation`` rows, split ``per_round`` new rows over the classes in proportion to their
    validation errors (:func:`allocate`), and write each new row of class *c* from a prompt showing up
    to ``demos`` real validation examples of *c* the model got wrong (examples of *c* it got right when
    there are none). Output: the new rows ``{text_column, label_column, "round"}``.

    Per-round record: ``conditions`` = ``{"budget": {class: rows asked}, "demos": {class: [validation
    indices shown]}}``; ``metrics`` = ``val_accuracy`` and ``val_accuracy_per_class`` of the model
    trained before the round (what the budget follows), the same ``*_after`` for the model trained with
    the round's rows, ``made_per_class`` / ``kept_per_class`` and ``failed``.

    Stops after ``max_rounds``, or when the validation accuracy reaches ``target_accuracy``.

    Args:
        llm (`LLM`): the model.
        validation (`Mapping` or `Dataset`): real labelled rows with ``text_column`` and ``label_column``
            (keep them disjoint from any test set you report on).
        template (`Template`, *optional*): the prompt; reads ``{{ label }}`` (the class's description)
            and ``{{ examples }}`` (the demos, one ``- text`` line each). Default :data:`EXTRAPOLATE`.
        label_names (`dict`, *optional*): class -> description shown in the prompt (default: the class).
        text_column / label_column (`str`, defaults to ``"text"`` / ``"label"``).
        per_round (`int`, defaults to 16): new rows asked per round.
        demos (`int`, defaults to 3): demonstrations per prompt.
        max_rounds (`int`, defaults to 3), target_accuracy (`float`, defaults to 1.0).
        seed, max_new_tokens, temperature: sampling.
        checkpoint_dir: see :class:`~synth_datasets.generate.loops.Loop`.

    Example:
        >>> val = {"text": ["A joy from start to end.", "Dull and far too long."], "label": ["fresh", "rotten"]}
        >>> s3 = S3(LLM(), validation=val, label_names={"fresh": "a positive movie review",
        ...                                              "rotten": "a negative movie review"})  # doctest: +SKIP
        >>> more = s3.run(first_synthetic_set)                                                 # doctest: +SKIP
        >>> [r.metrics["val_accuracy_per_class"] for r in s3.rounds]                           # doctest: +SKIP
    """

    def __init__(self, llm: LLM, *, validation: Any, template: Template | None = None,
                 label_names: Mapping[Any, str] | None = None, text_column: str = "text", label_column: str = "label",
                 per_round: int = 16, demos: int = 3, max_rounds: int = 3, target_accuracy: float = 1.0,
                 seed: int = 0, max_new_tokens: int = 64, temperature: float = 0.9,
                 checkpoint_dir: str | os.PathLike | None = None):
        super().__init__(max_rounds=max_rounds, checkpoint_dir=checkpoint_dir)
        template = template or EXTRAPOLATE
        check_loop_args("S3", llm, template, reads={"label", "examples"}, exactly=False,
                        counts={"per_round": per_round, "demos": demos}, fraction=("target_accuracy", target_accuracy))
        texts, labels = self._validation(validation, text_column, label_column)
        self.llm, self.template, self.text_column, self.label_column = llm, template, text_column, label_column
        self.validation = {"texts": texts, "labels": labels}
        self.label_names = dict(label_names or {})
        self.per_round, self.demos, self.target_accuracy, self.seed = per_round, demos, target_accuracy, seed
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.columns = (text_column, label_column, "round")

    @staticmethod
    def _validation(validation: Any, text_column: str, label_column: str) -> tuple[list[str], list]:
        cols = getattr(validation, "column_names", None)
        if cols is None:
            if not isinstance(validation, Mapping):
                raise InvalidParameterError(f"validation must be a Dataset or a dict of columns, got "
                                            f"{type(validation).__name__}.")
            cols = list(validation)
        missing = [c for c in (text_column, label_column) if c not in cols]
        if missing:
            raise InvalidParameterError(f"validation lacks the column(s) {missing} (it has {list(cols)}). Pass "
                                        f"text_column= / label_column=.")
        texts, labels = list(validation[text_column]), list(validation[label_column])
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise InvalidParameterError(f"validation row {i}: {text_column!r} is {t!r}, not a text. Drop the row.")
        for i, y in enumerate(labels):
            if y is None:
                raise InvalidParameterError(f"validation row {i}: {label_column!r} is None. Drop the row.")
        if len(set(labels)) < 2:
            raise InvalidParameterError(f"validation has {len(set(labels))} class(es): S3 needs >= 2 labelled classes.")
        return texts, labels

    def config(self) -> dict[str, Any]:
        return {"llm": self.llm, "template": self.template, "validation": self.validation,
                "label_names": self.label_names, "text_column": self.text_column, "label_column": self.label_column,
                "per_round": self.per_round, "demos": self.demos, "max_rounds": self.max_rounds,
                "target_accuracy": self.target_accuracy, "seed": self.seed, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.columns = (self.text_column, self.label_column, "round")

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        texts, labels = self.validation["texts"], self.validation["labels"]
        digest = hashlib.sha256(json.dumps([texts, labels], default=str).encode()).hexdigest()
        out["validation"] = {"rows": len(texts), "classes": dict(Counter(map(str, labels))), "sha256": digest}
        return out  # the validation rows themselves stay out of cards and provenance

    # -- the loop ----------------------------------------------------------------------------------
    def start(self, ds) -> dict[str, Any]:
        missing = [c for c in (self.text_column, self.label_column) if c not in ds.column_names]
        if missing:
            raise InvalidParameterError(f"S3's input lacks the column(s) {missing}. Current columns: "
                                        f"{ds.column_names}. Pass text_column= / label_column=.")
        rows = [(t, y) for t, y in zip(ds[self.text_column], ds[self.label_column]) if isinstance(t, str) and t.strip()
                and y is not None]
        classes = sorted(set(self.validation["labels"]), key=lambda v: (type(v).__name__, v))
        unknown = sorted({str(y) for _, y in rows} - {str(c) for c in classes})
        if unknown:
            raise InvalidParameterError(f"S3's input has label(s) {unknown} absent from the validation set "
                                        f"({[str(c) for c in classes]}). Map the labels to the same classes.")
        if len({y for _, y in rows}) < 2:
            raise InvalidParameterError("S3's input needs rows of >= 2 classes to train the first classifier "
                                        "(one-shot generate a few rows per class first).")
        state = {"texts": [t for t, _ in rows], "labels": [y for _, y in rows], "classes": classes,
                 "accuracy": None}
        state["eval"] = self._evaluate(state["texts"], state["labels"], classes)
        return state

    def _evaluate(self, texts: list[str], labels: list, classes: list) -> dict[str, Any]:
        """Fit on the rows so far, predict the validation rows: accuracy overall and per class, and the
        indices of the misclassified / right validation rows of each class."""
        from ..embeddings import embed_texts_cached
        from ..metrics.downstream import make_classifier

        x = embed_texts_cached(list(texts))
        xv = embed_texts_cached(list(self.validation["texts"]))
        ids = {c: i for i, c in enumerate(classes)}
        clf = make_classifier("logreg", seed=self.seed).fit(x, np.array([ids[y] for y in labels]))
        predicted = [classes[i] for i in clf.predict(xv)]
        truth = self.validation["labels"]
        wrong = {c: [i for i, (p, y) in enumerate(zip(predicted, truth)) if y == c and p != y] for c in classes}
        right = {c: [i for i, (p, y) in enumerate(zip(predicted, truth)) if y == c and p == y] for c in classes}
        per_class = {str(c): round(len(right[c]) / max(1, len(right[c]) + len(wrong[c])), 4) for c in classes}
        accuracy = round(sum(len(v) for v in right.values()) / len(truth), 4)
        return {"accuracy": accuracy, "per_class": per_class, "wrong": wrong, "right": right}

    def absorb(self, state: dict[str, Any], rows: list[dict]) -> None:
        state["texts"] += [r[self.text_column] for r in rows]
        state["labels"] += [r[self.label_column] for r in rows]
        after = state.pop("after", None)  # step() already trained with these rows
        if after is None and rows:  # a resumed round: train again (the embeddings come from the cache)
            after = self._evaluate(state["texts"], state["labels"], state["classes"])
        if after is not None:
            state["eval"] = after

    def done(self, state: dict[str, Any]) -> bool:
        return state["eval"]["accuracy"] >= self.target_accuracy

    def step(self, state: dict[str, Any], round: int):
        classes, ev = state["classes"], state["eval"]
        budget = allocate({c: len(ev["wrong"][c]) for c in classes}, self.per_round)
        params = SamplingParams.make(None, max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                     seed=derive_seed(self.seed, "s3", round))
        requests, asked, shown = [], [], {}
        texts = self.validation["texts"]
        for c in classes:
            pool = ev["wrong"][c] or ev["right"][c]
            shown[str(c)] = []
            for k in range(budget[c]):
                rng = random.Random(derive_seed(self.seed, "s3-demos", round, str(c), k))
                pick = sorted(rng.sample(pool, min(self.demos, len(pool))))
                shown[str(c)].append(pick)
                examples = "\n".join(f"- {' '.join(texts[i].split())}" for i in pick)
                messages = self.template.render({"label": self.label_names.get(c, str(c)), "examples": examples})
                requests.append(ChatRequest.of(messages, derive_seed(self.seed, "s3-row", round, str(c), k)))
                asked.append(c)
        completions = self.llm.generate(requests, params) if requests else []
        rows, failed = [], 0
        kept = Counter()
        for c, comp in zip(asked, completions):
            text = _clean(comp.text) if comp.error is None else None
            if text is None:
                failed += 1
                continue
            kept[str(c)] += 1
            rows.append({self.text_column: text, self.label_column: c, "round": round})
        after = self._evaluate(state["texts"] + [r[self.text_column] for r in rows],
                               state["labels"] + [r[self.label_column] for r in rows], classes) if rows else ev
        state["after"] = after
        metrics = {"val_accuracy": ev["accuracy"], "val_accuracy_per_class": ev["per_class"],
                   "val_accuracy_after": after["accuracy"], "val_accuracy_per_class_after": after["per_class"],
                   "made_per_class": {str(c): budget[c] for c in classes},
                   "kept_per_class": {str(c): kept.get(str(c), 0) for c in classes},
                   "failed": failed, "train_rows": len(state["texts"])}
        conditions = {"budget": {str(c): budget[c] for c in classes}, "demos": shown}
        return rows, conditions, len(requests), metrics

    def __repr__(self) -> str:
        return f"S3({self.llm!r}, per_round={self.per_round}, max_rounds={self.max_rounds})"



# -- Explore-Instruct ----------------------------------------------------------------------------------
DEPTH = Template(system="You are an expert who breaks a task domain into sub-tasks.",
                 user="Domain: {{ path }}\n\nList {{ k }} specific sub-tasks of \"{{ task }}\", one per line, each a "
                      "short phrase of a few words.")
BREADTH = Template(system="You are an expert who breaks a task domain into sub-tasks.",
                   user="Sub-tasks of \"{{ parent }}\" so far:\n{{ siblings }}\n\nName one more sub-task of "
                        "\"{{ parent }}\", different from all of these. Output only a short phrase.")
INSTRUCT = Template(user="Write one instruction a user could give an assistant for the task \"{{ path }}\". "
                         "Output only the instruction.")
_BULLET = r"^\s*(?:[-*\u2022]|\d+\s*[.):])\s*"


def parse_items(text: str | None, k: int) -> list[str]:
    """Up to ``k`` short phrases (1 to 12 words) from a list the model wrote: bullets, numbers and bold
    marks removed, lines ending in ``:`` (a preamble) skipped.

    >>> parse_items("Here are sub-tasks:\\n1. Movie reviews\\n2) **Poetry**\\n- Product descriptions for shops", 5)
    ['Movie reviews', 'Poetry', 'Product descriptions for shops']
    """
    import re

    out = []
    for line in (text or "").splitlines():
        if line.strip().endswith(":"):  # a preamble or a heading ("Here are two sub-tasks:")
            continue
        s = " ".join(re.sub(_BULLET, "", line).replace("**", "").split()).strip().strip('"').rstrip(".").strip()
        if s and 1 <= len(s.split()) <= 12 and s not in out:
            out.append(s)
        if len(out) == k:
            break
    return out


class ExploreInstruct(Loop):
    """Explore-Instruct (Wan et al. 2023): grow a task tree from root domains, one level per round.

    Each round expands every node of the frontier (the nodes added in the round before; the roots in
    round 1) by **depth** (one prompt asking for ``k`` sub-tasks) and **breadth** (one prompt showing
    the sub-tasks kept so far, asking for one more, different sibling). A proposed node is kept when
    its ROUGE-L F to every node of the tree is <= ``threshold``. With ``instructions=True`` each kept
    node gets one instruction, made from its path (``root > ... > node``).

    Input: a dataset with a ``task`` column (the root domains). Output: the new nodes, ``{"task",
    "parent", "path", "depth", "how" ("depth" / "breadth"), "instruction", "round"}``. Round records:
    ``conditions`` = the frontier expanded; ``metrics`` = proposals, drops, ``nodes``, ``leaves``
    (distinct nodes without children) and ``max_depth`` of the tree so far.

    Args:
        llm (`LLM`): the model.
        k (`int`, defaults to 3): sub-tasks asked per depth prompt.
        max_rounds (`int`, defaults to 2): the tree's depth below the roots.
        threshold (`float`, defaults to 0.7): the ROUGE-L novelty rule.
        instructions (`bool`, defaults to True), seed, max_new_tokens, instruction_tokens, checkpoint_dir.

    Example:
        >>> tree = ExploreInstruct(LLM(), k=3, max_rounds=2).run(Dataset.from_dict({"task": ["rewriting"]}))  # doctest: +SKIP
    """

    columns = ("task", "parent", "path", "depth", "how", "instruction", "round")

    def __init__(self, llm: LLM, *, k: int = 3, max_rounds: int = 2, threshold: float = 0.7, instructions: bool = True,
                 seed: int = 0, max_new_tokens: int = 64, instruction_tokens: int = 48, temperature: float = 0.7,
                 checkpoint_dir: str | os.PathLike | None = None):
        super().__init__(max_rounds=max_rounds, checkpoint_dir=checkpoint_dir)
        if not isinstance(llm, LLM):
            raise InvalidParameterError(f"llm must be an LLM, got {type(llm).__name__}.")
        if not isinstance(k, int) or k < 1:
            raise InvalidParameterError(f"k={k!r} must be an integer >= 1.")
        if not 0 < threshold <= 1:
            raise InvalidParameterError(f"threshold={threshold!r} must be in (0, 1].")
        self.llm, self.k, self.threshold, self.instructions, self.seed = llm, k, threshold, instructions, seed
        self.max_new_tokens, self.instruction_tokens, self.temperature = max_new_tokens, instruction_tokens, temperature

    def config(self) -> dict[str, Any]:
        return {"llm": self.llm, "k": self.k, "max_rounds": self.max_rounds, "threshold": self.threshold,
                "instructions": self.instructions, "seed": self.seed, "max_new_tokens": self.max_new_tokens,
                "instruction_tokens": self.instruction_tokens, "temperature": self.temperature,
                "prompts": {"depth": DEPTH, "breadth": BREADTH, "instruct": INSTRUCT}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__({k: v for k, v in state.items() if k != "prompts"})

    def start(self, ds) -> dict[str, Any]:
        if "task" not in ds.column_names:
            raise InvalidParameterError(f"ExploreInstruct needs root domains in a 'task' column. Current columns: "
                                        f"{ds.column_names}. Rename the column (ds.rename_column(...)).")
        roots = list(dict.fromkeys(" ".join(str(t).split()) for t in ds["task"] if t and str(t).strip()))
        nodes = [{"task": t, "parent": None, "path": t, "depth": 0} for t in roots]
        return {"nodes": nodes, "frontier": nodes}

    def absorb(self, state: dict[str, Any], rows: list[dict]) -> None:
        state["nodes"] = state["nodes"] + rows
        state["frontier"] = rows

    def done(self, state: dict[str, Any]) -> bool:
        return not state["frontier"]

    @staticmethod
    def coverage(nodes: list[dict]) -> dict[str, int]:
        """``nodes``, ``leaves`` (distinct nodes no other node has as parent) and ``max_depth``."""
        parents = {n["parent"] for n in nodes}
        return {"nodes": len(nodes), "leaves": len({n["path"] for n in nodes if n["path"] not in parents}),
                "max_depth": max((n["depth"] for n in nodes), default=0)}

    def _ask(self, template: Template, rows: list[dict], tag: str, round: int, tokens: int, temperature: float):
        params = SamplingParams.make(None, max_new_tokens=tokens, temperature=temperature,
                                     seed=derive_seed(self.seed, "explore", tag, round))
        requests = [ChatRequest.of(template.render(r), derive_seed(self.seed, "explore", tag, round, i))
                    for i, r in enumerate(rows)]
        return self.llm.generate(requests, params) if requests else []

    def step(self, state: dict[str, Any], round: int):
        from ..curate import rouge_l, rouge_tokens

        pool = [rouge_tokens(n["task"]) for n in state["nodes"]]
        frontier = state["frontier"]
        metrics: dict[str, Any] = Counter()
        kept: list[dict] = []

        def consider(task: str, parent: dict, how: str) -> bool:
            toks = rouge_tokens(task)
            if not toks:
                metrics["dropped_empty"] += 1
                return False
            if pool and max(rouge_l(toks, p) for p in pool) > self.threshold:
                metrics["dropped_rouge_l"] += 1
                return False
            pool.append(toks)
            kept.append({"task": task, "parent": parent["path"], "path": f"{parent['path']} > {task}",
                         "depth": parent["depth"] + 1, "how": how, "instruction": None, "round": round})
            return True

        deep = self._ask(DEPTH, [{"path": n["path"], "task": n["task"], "k": self.k} for n in frontier], "depth",
                         round, self.max_new_tokens, self.temperature)
        children: list[list[str]] = []
        for node, comp in zip(frontier, deep):
            items = parse_items(comp.text if comp.error is None else None, self.k)
            metrics["proposed_depth"] += len(items)
            children.append([t for t in items if consider(t, node, "depth")])
        broad = self._ask(BREADTH, [{"parent": n["task"], "siblings": "\n".join(f"- {c}" for c in ch) or "(none yet)"}
                                    for n, ch in zip(frontier, children)], "breadth", round, 24, self.temperature)
        for node, comp in zip(frontier, broad):
            items = parse_items(comp.text if comp.error is None else None, 1)
            metrics["proposed_breadth"] += len(items)
            for t in items:
                consider(t, node, "breadth")
        made = metrics["proposed_depth"] + metrics["proposed_breadth"]
        if kept and self.instructions:
            for row, comp in zip(kept, self._ask(INSTRUCT, kept, "instruct", round, self.instruction_tokens, 0.7)):
                row["instruction"] = _clean(comp.text) if comp.error is None else None
            metrics["failed_instructions"] = sum(r["instruction"] is None for r in kept)
        metrics = {**dict(sorted(metrics.items())), **self.coverage(state["nodes"] + kept)}
        return kept, {"frontier": [n["path"] for n in frontier]}, made, metrics

    def __repr__(self) -> str:
        return f"ExploreInstruct({self.llm!r}, k={self.k}, max_rounds={self.max_rounds})"
