"""Dataset-wise multi-step generation (survey §3.1.2): loops whose next round depends on the data so far.

A :class:`Loop` runs rounds until its stop rule holds; each round's rows and record (conditions used,
rows made, rows kept, metrics) are written to a checkpoint folder as soon as the round ends, so a
killed run resumes at its last finished round (at most one round's model calls are repeated, and those
mostly come back from the response cache), and a rerun of a finished loop makes no model calls. In a
:class:`~synth_datasets.Recipe` a loop is a step of kind ``loop`` (``recipe.loop(obj)``) whose rounds go
into the card.

- :class:`SelfInstruct` (Wang et al. 2023e): bootstrap instructions from seed tasks; each round shows
  6 human + 2 machine demos, keeps new instructions whose ROUGE-L to every kept one is <= 0.7
  (:class:`~synth_datasets.curate.Novelty`), classifies them and writes an instance for each.

A subclass writes only ``start(ds) -> state``, ``step(state, round) -> (rows, conditions, made,
metrics)``, ``absorb(state, rows)`` and ``done(state)``: the base does rounds, checkpoints and records.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._versions import library_versions
from ..errors import EmptyDatasetError, InvalidParameterError
from ..llm import LLM, ChatRequest, SamplingParams
from ..prompts import Template
from ..seeding import derive_seed
from .base import check_loop_args
from .chain import Chain
from .text import TextGenerator

_FORMAT_VERSION = 1
_USAGE = ("requests", "cache_hits", "prompt_tokens", "completion_tokens", "errors")


@dataclass
class RoundRecord:
    """What one round did: the conditions it used, rows made and kept, metrics, time and model usage;
    ``resumed`` is True when the round was read back from the checkpoint instead of run."""

    round: int
    conditions: dict[str, Any]
    made: int
    kept: int
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    resumed: bool = False


def default_checkpoint_root() -> Path:
    """``$SYNTH_DATASETS_CACHE/loops`` (or the response cache's folder) ``/loops``."""
    from ..llm.cache import default_cache_path

    return default_cache_path().parent / "loops"


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, default=str))
    os.replace(tmp, path)  # atomic: a kill never leaves half a round


class Loop:
    """Base of dataset-wise loops: rounds, a stop rule, per-round records and checkpoints.

    Args:
        max_rounds (`int`): the most rounds to run (the stop rule may end the loop sooner).
        checkpoint_dir (`str`, *optional*): where finished rounds are kept, one sub-folder per
            (configuration, input data) fingerprint; defaults to ``loops/`` beside the response cache.
    """

    def __init__(self, *, max_rounds: int, checkpoint_dir: str | os.PathLike | None = None):
        if not isinstance(max_rounds, int) or max_rounds < 1:
            raise InvalidParameterError(f"max_rounds={max_rounds!r} must be an integer >= 1.")
        self.max_rounds = max_rounds
        self.checkpoint_dir = None if checkpoint_dir is None else str(checkpoint_dir)
        self.rounds: list[RoundRecord] = []

    # -- subclass hooks ---------------------------------------------------------------------------
    def start(self, ds) -> Any:
        raise NotImplementedError

    def step(self, state: Any, round: int) -> tuple[list[dict], dict, int, dict]:
        """One round: ``(kept rows, conditions used, rows made, metrics)``."""
        raise NotImplementedError

    def absorb(self, state: Any, rows: list[dict]) -> None:
        raise NotImplementedError

    def done(self, state: Any) -> bool:
        return False

    def config(self) -> dict[str, Any]:
        """The configuration (pickled state and ``describe()`` parameters)."""
        raise NotImplementedError

    # -- contract 2: configuration only (the location of checkpoints is not configuration) ----------
    def __getstate__(self) -> dict[str, Any]:
        return {"format": _FORMAT_VERSION, "type": type(self).__qualname__, **self.config()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        state.pop("format", None)
        state.pop("type", None)
        self.__dict__.update(state)
        self.checkpoint_dir, self.rounds = None, []

    def llms(self) -> list[LLM]:
        return [v for v in self.config().values() if isinstance(v, LLM)]

    def fingerprint(self, ds) -> str:
        """Hash of the configuration and the input rows: the checkpoint sub-folder."""
        from datasets.fingerprint import Hasher

        return hashlib.sha256(f"{Hasher.hash(self)}|{Hasher.hash(ds.data.table)}".encode()).hexdigest()[:16]

    def folder(self, ds) -> Path:
        root = Path(self.checkpoint_dir) if self.checkpoint_dir else default_checkpoint_root()
        return root / f"{type(self).__name__.lower()}-{self.fingerprint(ds)}"

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, ds):
        """Run rounds until ``done`` or ``max_rounds``; return the dataset of every kept row.

        Finished rounds found in the checkpoint folder are read back, not run again.
        """
        from datasets import Dataset

        if ds.num_rows == 0:
            raise EmptyDatasetError(f"{type(self).__name__} got an empty input dataset: it needs seed rows.")
        state = self.start(ds)  # checks the input before anything is written or loaded
        folder = self.folder(ds)
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "config.json", self.describe())
        self.rounds, all_rows = [], []
        for r in range(self.max_rounds):
            if self.done(state):
                break
            rows_path, rec_path = folder / f"round-{r:04d}.rows.json", folder / f"round-{r:04d}.json"
            if rows_path.exists() and rec_path.exists():
                rows = json.loads(rows_path.read_text())
                rec = RoundRecord(**{**json.loads(rec_path.read_text()), "resumed": True})
            else:
                before = [Counter(llm.stats) for llm in self.llms()]
                t0 = time.perf_counter()
                rows, conditions, made, metrics = self.step(state, r)
                usage = Counter()
                for llm, b in zip(self.llms(), before):
                    usage.update({k: llm.stats.get(k, 0) - b.get(k, 0) for k in _USAGE})
                rec = RoundRecord(round=r, conditions=conditions, made=made, kept=len(rows), metrics=metrics,
                                  seconds=round(time.perf_counter() - t0, 3),
                                  usage={k: int(usage.get(k, 0)) for k in _USAGE})
                _write_json(rows_path, rows)  # rows first: a round counts as finished once its record exists
                _write_json(rec_path, {k: v for k, v in asdict(rec).items() if k != "resumed"})
            self.absorb(state, rows)
            self.rounds.append(rec)
            all_rows.extend(rows)
        if not all_rows:
            return Dataset.from_dict({c: [] for c in self.columns})
        return Dataset.from_list(all_rows)

    columns: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        cfg = {k: (v.describe() if hasattr(v, "describe") else v) for k, v in self.config().items()}
        return {"type": type(self).__name__, "format": _FORMAT_VERSION, **cfg,
                "rounds": [asdict(r) for r in self.rounds], "library": library_versions()}


# -- Self-Instruct ---------------------------------------------------------------------------------
PROMPT = "Come up with a series of tasks:\n\n{demos}\n{next}."
_BAD_WORDS = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps", "draw",
              "plot", "go to", "video", "audio", "music", "flowchart", "diagram")
_NUMBERED = re.compile(r"(?:^|\n)\s*\d+\s*[.)]\s*")

CLASSIFY = Template(user="Can the following task be regarded as a classification task with finite output labels? "
                         "Answer Yes or No.\n\nTask: {{ instruction }}\nIs it classification?")
INSTANCE = Template(user="Write one example for the task below, as\nInput: <the input, or <noinput>>\nOutput: <the "
                         "correct output>\n\nTask: {{ instruction }}")


def parse_instructions(text: str | None) -> list[str]:
    """New instructions from a completion of :data:`PROMPT` (the text continues the numbered list)."""
    if not text:
        return []
    out = []
    for part in _NUMBERED.split(text):
        s = " ".join(part.split()).strip()
        if s:
            out.append(s)
    return out


def heuristic_reason(instruction: str) -> str | None:
    """Self-Instruct's filters: 3 to 150 words, no task a language model cannot do (images, files...),
    no "Write a program", starts with an English letter. None when kept."""
    words = instruction.split()
    if not 3 <= len(words) <= 150:
        return "length"
    low = instruction.lower()
    if any(re.search(rf"\b{re.escape(w)}\b", low) for w in _BAD_WORDS):
        return "unsupported_modality"
    if low.startswith("write a program"):
        return "program"
    if not instruction[0].isascii() or not instruction[0].isalpha():
        return "not_english_start"
    return None


def parse_classification(batch: dict[str, list]) -> dict[str, list]:
    """``is_classification`` from the classifier's answer (None when it failed)."""
    return {"is_classification": [None if t is None else t.strip().lower().startswith("yes")
                                  for t in batch["classification"]]}


def parse_instance(batch: dict[str, list]) -> dict[str, list]:
    """``input`` / ``output`` from an ``Input: ... Output: ...`` instance."""
    ins, outs = [], []
    for t in batch["instance"]:
        m = re.search(r"Input:\s*(.*?)\s*Output:\s*(.*)", t or "", re.S | re.I)
        if m:
            i = m.group(1).strip()
            ins.append("" if i.lower().strip("<>") in ("noinput", "no input", "none", "") else i)
            outs.append(m.group(2).strip() or None)
        else:
            ins.append("")
            outs.append((t or "").strip() or None)
    return {"input": ins, "output": outs}


class SelfInstruct(Loop):
    """Self-Instruct's bootstrap: rounds of instruction generation from 6 human + 2 machine demos, the
    heuristic and ROUGE-L novelty filters, classification and one instance per instruction, until
    ``target`` new instructions are kept or ``max_rounds`` are done.

    Input: a dataset of seed tasks with an ``instruction`` column. Output: the new rows, with columns
    ``instruction``, ``is_classification``, ``input``, ``output``, ``round``. Every kept instruction has
    ROUGE-L F <= ``threshold`` to every seed and every instruction kept before it.

    Args:
        llm (`LLM`): the model.
        target (`int`, defaults to 100): stop once this many new instructions are kept.
        max_rounds (`int`, defaults to 10): the most rounds.
        prompts_per_round (`int`, defaults to 8): prompts per round (sent as one batch).
        human_demos / machine_demos (`int`, defaults to 6 / 2): demos per prompt (human fill in while
            there are too few machine ones).
        threshold (`float`, defaults to 0.7): the ROUGE-L rule.
        instances (`bool`, defaults to True): classify each kept instruction and write an instance.
        seed (`int`, defaults to 0): demo sampling and the model's seeds.
        max_new_tokens / temperature / top_p: sampling of the instruction prompts (paper: top_p 0.5).
        instance_tokens (`int`, defaults to 128): the most new tokens of an instance.
        checkpoint_dir (`str`, *optional*): see :class:`Loop`.

    Example:
        >>> from datasets import Dataset
        >>> seeds = Dataset.from_dict({"instruction": ["Give three tips for staying healthy.", ...]})  # doctest: +SKIP
        >>> ds = SelfInstruct(LLM(), target=20, max_rounds=3).run(seeds)                           # doctest: +SKIP
    """

    columns = ("instruction", "is_classification", "input", "output", "round")

    def __init__(self, llm: LLM, *, target: int = 100, max_rounds: int = 10, prompts_per_round: int = 8,
                 human_demos: int = 6, machine_demos: int = 2, threshold: float = 0.7, instances: bool = True,
                 seed: int = 0, max_new_tokens: int = 256, temperature: float = 0.7, top_p: float = 0.5,
                 instance_tokens: int = 128, checkpoint_dir: str | os.PathLike | None = None):
        super().__init__(max_rounds=max_rounds, checkpoint_dir=checkpoint_dir)
        if not isinstance(llm, LLM):
            raise InvalidParameterError(f"llm must be an LLM, got {type(llm).__name__}.")
        for name, v, lo in (("target", target, 1), ("prompts_per_round", prompts_per_round, 1),
                            ("human_demos", human_demos, 1), ("machine_demos", machine_demos, 0)):
            if not isinstance(v, int) or v < lo:
                raise InvalidParameterError(f"{name}={v!r} must be an integer >= {lo}.")
        if not 0 < threshold <= 1:
            raise InvalidParameterError(f"threshold={threshold!r} must be in (0, 1] (ROUGE-L F; the paper uses 0.7).")
        self.llm, self.target, self.prompts_per_round = llm, target, prompts_per_round
        self.human_demos, self.machine_demos, self.threshold = human_demos, machine_demos, threshold
        self.instances, self.seed, self.instance_tokens = instances, seed, instance_tokens
        self.params = SamplingParams.make(None, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                          seed=seed)

    def config(self) -> dict[str, Any]:
        return {"llm": self.llm, "target": self.target, "max_rounds": self.max_rounds,
                "prompts_per_round": self.prompts_per_round, "human_demos": self.human_demos,
                "machine_demos": self.machine_demos, "threshold": self.threshold, "instances": self.instances,
                "seed": self.seed, "params": self.params.model_dump(mode="json"),
                "instance_tokens": self.instance_tokens, "prompt": PROMPT,
                "classify": CLASSIFY if self.instances else None, "instance": INSTANCE if self.instances else None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = {k: v for k, v in state.items() if k not in ("prompt", "classify", "instance")}
        super().__setstate__(state)
        self.params = SamplingParams(**self.params)

    def _chain(self) -> Chain:
        kw = {"seed": self.seed, "temperature": 0.0, "metadata": False}
        return Chain([TextGenerator(self.llm, CLASSIFY, output="classification", max_new_tokens=3, **kw),
                      parse_classification,
                      TextGenerator(self.llm, INSTANCE, output="instance", max_new_tokens=self.instance_tokens,
                                    **{**kw, "temperature": 0.7}),
                      parse_instance], latent=["classification", "instance"])

    def start(self, ds) -> dict[str, Any]:
        if "instruction" not in ds.column_names:
            raise InvalidParameterError(f"SelfInstruct needs seed tasks with an 'instruction' column. Current columns: "
                                        f"{ds.column_names}. Rename the column (ds.rename_column(...)).")
        human = [str(t) for t in ds["instruction"] if t]
        return {"human": human, "machine": [], "kept": 0}

    def absorb(self, state: dict[str, Any], rows: list[dict]) -> None:
        state["machine"] += [r["instruction"] for r in rows]
        state["kept"] += len(rows)

    def done(self, state: dict[str, Any]) -> bool:
        return state["kept"] >= self.target

    def step(self, state: dict[str, Any], round: int):
        from datasets import Dataset

        from ..curate import Novelty

        human, machine = state["human"], state["machine"]
        requests, used = [], []
        for k in range(self.prompts_per_round):
            rng = random.Random(derive_seed(self.seed, "demos", round, k))
            m = rng.sample(range(len(machine)), min(self.machine_demos, len(machine)))
            h = rng.sample(range(len(human)), min(self.human_demos + self.machine_demos - len(m), len(human)))
            demos = [human[i] for i in h] + [machine[i] for i in m]
            used.append({"human": h, "machine": m})
            listing = "\n".join(f"{i}. {d}" for i, d in enumerate(demos, 1))
            prompt = PROMPT.format(demos=listing, next=len(demos) + 1)
            requests.append(ChatRequest.of([{"role": "user", "content": prompt}],
                                           derive_seed(self.seed, "round", round, k)))
        completions = self.llm.generate(requests, self.params)
        candidates = [s for c in completions for s in parse_instructions(c.text)]
        reasons = Counter()
        survivors = []
        for s in candidates:
            why = heuristic_reason(s)
            reasons[why or "kept"] += 1
            if why is None:
                survivors.append(s)
        metrics: dict[str, Any] = {"prompts": len(requests), "failed_prompts": sum(c.error is not None for c in completions),
                                   "candidates": len(candidates),
                                   **{f"dropped_{k}": v for k, v in sorted(reasons.items()) if k != "kept"}}
        rows: list[dict] = []
        if survivors:
            cand = Dataset.from_dict({"instruction": survivors})
            nov = Novelty(column="instruction", reference=human + machine, threshold=self.threshold).fit(cand)
            why = cand.map(nov.mark, batched=True, with_indices=True)["novelty_reason"]
            metrics.update({f"dropped_{k}": v for k, v in sorted(Counter(w for w in why if w).items())})
            new = [s for s, w in zip(survivors, why) if w is None]
            if new and self.instances:
                made = Dataset.from_dict({"instruction": new}).map(self._chain(), batched=True)
                for r in made:
                    if r["output"] is None:
                        metrics["dropped_no_instance"] = metrics.get("dropped_no_instance", 0) + 1
                        continue
                    rows.append({"instruction": r["instruction"], "is_classification": r["is_classification"],
                                 "input": r["input"], "output": r["output"], "round": round})
            else:
                rows = [{"instruction": s, "is_classification": None, "input": None, "output": None, "round": round}
                        for s in new]
        return rows, {"demos": used}, len(candidates), metrics

    def __repr__(self) -> str:
        return f"SelfInstruct({self.llm!r}, target={self.target}, max_rounds={self.max_rounds})"


# -- generate-then-expand ----------------------------------------------------------------------------
PARAPHRASE = Template(system="You rewrite texts in other words.",
                      user="Rewrite the following in different words, keeping its meaning. Output only the rewritten "
                           "text.\n\n{{ text }}")


class Expand(Loop):
    """Generate-then-expand (Honovich et al. 2023b, Unnatural Instructions): each round rewrites every
    row kept in the round before (the seeds in round 1) into ``variants`` paraphrases, keeps those with
    ROUGE-L <= ``threshold`` to every text kept so far (seeds included), and expands those next.

    Input: a dataset with ``column``. Output: new rows ``{column, "source", "round"}`` (``source`` is the
    text the row was expanded from). Stops at ``target`` new rows, when a round keeps nothing, or after
    ``max_rounds``.

    Args:
        llm (`LLM`): the model.
        template (`Template`, *optional*): the expansion prompt; it reads the text as ``{{ text }}``
            (default: a paraphrase prompt, :data:`PARAPHRASE`).
        column (`str`, defaults to ``"instruction"``): the text column.
        variants (`int`, defaults to 2): paraphrases per row and round.
        target / max_rounds / threshold / seed / max_new_tokens / temperature / checkpoint_dir: as in
            :class:`SelfInstruct`.

    Example:
        >>> ds = Expand(LLM(), variants=2, max_rounds=2).run(kept)          # doctest: +SKIP
    """

    columns = ("instruction", "source", "round")

    def __init__(self, llm: LLM, template: Template | None = None, *, column: str = "instruction", variants: int = 2,
                 target: int = 100, max_rounds: int = 3, threshold: float = 0.7, seed: int = 0,
                 max_new_tokens: int = 96, temperature: float = 0.9, checkpoint_dir: str | os.PathLike | None = None):
        super().__init__(max_rounds=max_rounds, checkpoint_dir=checkpoint_dir)
        template = template or PARAPHRASE
        check_loop_args("Expand", llm, template, reads={"text"}, exactly=True,
                        counts={"variants": variants, "target": target}, fraction=("threshold", threshold))
        self.llm, self.template, self.column, self.variants = llm, template, column, variants
        self.target, self.threshold, self.seed = target, threshold, seed
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.columns = (column, "source", "round")

    def config(self) -> dict[str, Any]:
        return {"llm": self.llm, "template": self.template, "column": self.column, "variants": self.variants,
                "target": self.target, "max_rounds": self.max_rounds, "threshold": self.threshold, "seed": self.seed,
                "max_new_tokens": self.max_new_tokens, "temperature": self.temperature}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.columns = (self.column, "source", "round")

    def start(self, ds) -> dict[str, Any]:
        if self.column not in ds.column_names:
            raise InvalidParameterError(f"Expand: column {self.column!r} is not in the dataset. Current columns: "
                                        f"{ds.column_names}. Pass column=.")
        texts = [str(t) for t in ds[self.column] if t]
        return {"pool": list(texts), "frontier": texts, "kept": 0, "rounds": 0}

    def absorb(self, state: dict[str, Any], rows: list[dict]) -> None:
        new = [r[self.column] for r in rows]
        state["pool"] += new
        state["frontier"] = new
        state["kept"] += len(new)
        state["rounds"] += 1

    def done(self, state: dict[str, Any]) -> bool:
        return state["kept"] >= self.target or not state["frontier"]

    def step(self, state: dict[str, Any], round: int):
        from datasets import Dataset

        from ..curate import Novelty

        gen = TextGenerator(self.llm, self.template, output="variant", n=self.variants, metadata=False,
                            seed=derive_seed(self.seed, "expand", round), temperature=self.temperature,
                            max_new_tokens=self.max_new_tokens)
        made = Dataset.from_dict({"text": state["frontier"]}).map(gen, batched=True)
        pairs = [(" ".join((v or "").split()), s) for v, s in zip(made["variant"], made["text"])]
        failed = sum(not v for v, _ in pairs)
        pairs = [(v, s) for v, s in pairs if v]
        metrics: dict[str, Any] = {"expanded": len(state["frontier"]), "failed": failed}
        rows = []
        if pairs:
            cand = Dataset.from_dict({"text": [v for v, _ in pairs]})
            nov = Novelty(column="text", reference=state["pool"], threshold=self.threshold).fit(cand)
            why = cand.map(nov.mark, batched=True, with_indices=True)["novelty_reason"]
            metrics.update({f"dropped_{k}": v for k, v in sorted(Counter(w for w in why if w).items())})
            rows = [{self.column: v, "source": s, "round": round} for (v, s), w in zip(pairs, why) if w is None]
        return rows, {"frontier": len(state["frontier"]), "variants": self.variants}, len(made), metrics
