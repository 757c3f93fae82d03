"""Continuous batching for the local backend: a decode loop that keeps its batch full.

``model.generate`` decodes a static batch: a row that ends early (EOS, a stop string) keeps its slot,
and is computed, until the longest row of the batch ends. Here a finished row leaves the running
batch and the next waiting prompt takes its slot: newcomers are prefilled together (on the rows'
shared-prefix KV, computed once), their caches are merged into the running ones (left padding: every
token keeps its position, padding is masked), and decoding goes on. Rows are compacted and refilled
when at least ``refill_every`` slots are free, so a refill's copy of the cache is paid rarely.

Each row keeps its own ``torch.Generator`` (one uniform per draw of that row, see :func:`draw`) and its own grammar matcher, indexed by row and never by slot: a row's draws do not
depend on which rows share its batch, nor on when it entered.

The KV cache of a layer is a preallocated buffer that a decode step writes into in place
(:class:`GrowingLayer`); transformers' ``DynamicLayer`` concatenates, copying the whole cache at every
step.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import torch
from transformers.cache_utils import Cache, DynamicLayer


class Scratch:
    """Reusable float32 work buffers of the sampler. A fresh tensor of a 128 x 151,936 vocabulary is 78 MB:
    glibc hands out blocks that large as new memory maps, so every pass over the vocabulary in a fresh
    tensor first pays the kernel to zero its pages (2-3x the pass itself, measured here); buffers kept
    from step to step are paid once."""

    def __init__(self):
        self._bufs: dict[str, torch.Tensor] = {}

    def get(self, name: str, rows: int, cols: int) -> torch.Tensor:
        buf = self._bufs.get(name)
        if buf is None or buf.numel() < rows * cols:
            buf = self._bufs[name] = torch.empty(rows * cols, dtype=torch.float32)
        return buf[:rows * cols].view(rows, cols)


#: what :func:`draw` is, in the local backend's identity (so in every cache key): the Gumbel-max sampler
#: before it drew other tokens from the same seeds, and its cached answers are not served as this one's
SAMPLER = "inverse-cdf-1"

#: rejection rounds before a row's nucleus is computed exactly (see :func:`draw`)
REJECT_ROUNDS = 8


def _uniforms(generators: list[torch.Generator], rows=None) -> torch.Tensor:
    idx = range(len(generators)) if rows is None else rows
    return torch.cat([torch.rand(1, dtype=torch.float64, generator=generators[i]) for i in idx])


def draw(scores: torch.Tensor, generators: list[torch.Generator], temperature: float, top_p: float,
         first_k: int = 64, scratch: Scratch | None = None) -> torch.Tensor:
    """One token per row: an exact draw (up to float rounding) from softmax(scores / temperature)
    restricted to the top-p nucleus, with row ``i``'s randomness from ``generators[i]`` alone, so a row's
    draw never depends on its batch-mates.

    Inverse transform: one uniform per row picks the token where the row's cumulative distribution (in
    vocabulary order) crosses it. With ``top_p < 1`` the draw is accepted when the token is in the nucleus
    (the mass of the other tokens at least as likely is below ``top_p``; certain without looking when the
    token's own probability exceeds ``1 - top_p``) and otherwise drawn again with the row's next uniform:
    rejection from the full distribution leaves exactly the nucleus distribution. After
    :data:`REJECT_ROUNDS` rejections the row's nucleus is found with ``topk`` on a growing candidate count
    (complete as soon as the top-k mass reaches ``top_p``) and the draw made inside it. A step costs a few
    passes over the vocabulary (cast, softmax, cumulative sum) and one random number per row; the Gumbel-max
    draw it replaced needed a random number and two logarithms per token.

    >>> g = [torch.Generator().manual_seed(0)]
    >>> int(draw(torch.tensor([[0.0, 30.0, 0.0]]), g, 1.0, 0.9)[0])
    1
    """
    rows, vocab = scores.shape
    scratch = scratch or Scratch()
    work, probs = scratch.get("work", rows, vocab), scratch.get("probs", rows, vocab)
    work.copy_(scores)
    if temperature != 1.0:
        work.div_(temperature)
    torch.ops.aten._softmax.out(work, -1, False, out=probs)
    cdf = torch.cumsum(probs, -1, out=work)  # accumulated in float64 by PyTorch's CPU kernel

    def pick(r, u):
        c = cdf if r is None else cdf[r]
        at = torch.searchsorted(c, (u.to(c.dtype) * c[:, -1]).unsqueeze(-1), right=True).squeeze(-1).clamp_(max=vocab - 1)
        pr = probs if r is None else probs[r]
        for j in (pr.gather(-1, at.unsqueeze(-1)).squeeze(-1) <= 0).nonzero().flatten().tolist():
            # a uniform that rounds to 1 in float32 lands past the last token with mass: take that token
            at[j] = int((pr[j, :at[j] + 1] > 0).nonzero().max()) if bool((pr[j, :at[j] + 1] > 0).any()) \
                else int((pr[j] > 0).nonzero().min())
        return at

    choice = pick(None, _uniforms(generators))
    if top_p >= 1.0:
        return choice
    todo = torch.arange(rows)
    for _ in range(REJECT_ROUNDS):
        p_c = probs[todo, choice[todo]]
        unsure = todo[p_c <= 1.0 - top_p + 1e-4]  # the others are in the nucleus whatever the rest holds
        if unsure.numel() == 0:
            return choice
        pr, pc = probs[unsure], probs[unsure, choice[unsure]].unsqueeze(-1)
        above = (pr * (pr >= pc)).sum(-1) - pc.squeeze(-1)
        todo = unsure[above >= top_p]
        if todo.numel() == 0:
            return choice
        choice[todo] = pick(todo, _uniforms(generators, todo.tolist()))
    # still outside after every round (a small top_p): the nucleus itself, by topk on a growing count
    pr = probs[todo]
    k = min(vocab, first_k)
    while True:
        top, idx = torch.topk(pr, k, dim=-1)  # sorted, descending
        if k == vocab or bool((top.sum(-1) >= top_p).all()):
            break
        k = min(vocab, k * 8)
    top = top.masked_fill_(top.cumsum(-1) - top >= top_p, 0.0)  # mass before the token < top_p: keeps >= 1
    c = top.cumsum(-1)
    u = _uniforms(generators, todo.tolist()).to(c.dtype)
    at = torch.searchsorted(c, (u * c[:, -1]).unsqueeze(-1), right=True).clamp_(max=k - 1)
    choice[todo] = idx.gather(-1, at).squeeze(-1)
    return choice


class GrowingLayer(DynamicLayer):
    """One layer's KV in a buffer with spare room along the sequence: ``update`` writes in place and
    returns views; the buffer grows by half its size when full."""

    def lazy_initialization(self, key_states, value_states) -> None:
        self.device = key_states.device
        self.kbuf = self.vbuf = None
        self.n = 0
        self.is_initialized = True

    def _set(self, kbuf, vbuf, n: int) -> None:
        self.kbuf, self.vbuf, self.n = kbuf, vbuf, n
        self.keys, self.values = kbuf[:, :, :n], vbuf[:, :, :n]

    @classmethod
    def of(cls, keys: torch.Tensor, values: torch.Tensor, room: int) -> "GrowingLayer":
        layer = cls()
        layer.lazy_initialization(keys, values)
        b, h, n, d = keys.shape
        kbuf, vbuf = keys.new_empty(b, h, n + room, d), values.new_empty(b, h, n + room, d)
        kbuf[:, :, :n], vbuf[:, :, :n] = keys, values
        layer._set(kbuf, vbuf, n)
        return layer

    def release(self) -> None:
        """Drop the buffers (the layer is not used again)."""
        self.kbuf = self.vbuf = self.keys = self.values = None

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, m = self.n, key_states.shape[-2]
        if self.kbuf is None or n + m > self.kbuf.shape[-2]:
            b, h, _, d = key_states.shape
            cap = n + m + max(32, (n + m) // 2)
            kbuf, vbuf = key_states.new_empty(b, h, cap, d), value_states.new_empty(b, h, cap, d)
            if n:
                kbuf[:, :, :n], vbuf[:, :, :n] = self.keys, self.values
            self.kbuf, self.vbuf = kbuf, vbuf
        self.kbuf[:, :, n:n + m] = key_states
        self.vbuf[:, :, n:n + m] = value_states
        self._set(self.kbuf, self.vbuf, n + m)
        return self.keys, self.values


def _cache(layers: list[GrowingLayer] | None = None) -> Cache:
    return Cache(layers=layers) if layers else Cache(layer_class_to_replicate=GrowingLayer)


@dataclasses.dataclass
class _Row:
    index: int            # the request's position in the caller's list
    prompt: list[int]
    generator: torch.Generator | None
    grammar: Any | None   # a one-row grammar LogitsProcessor, or None
    tokens: list[int] = dataclasses.field(default_factory=list)
    logprobs: list[float] = dataclasses.field(default_factory=list)
    finish: str | None = None
    seconds: float = 0.0  # wall time spent on this row: its share of each prefill and step it took part in


class _Batch:
    """The running rows with their KV cache, 2-D attention mask and next positions."""

    def __init__(self, rows: list[_Row], cache: Cache, mask: torch.Tensor, pos: torch.Tensor):
        self.rows, self.cache, self.mask, self.pos = rows, cache, mask, pos

    def alive(self) -> list[int]:
        return [i for i, r in enumerate(self.rows) if r.finish is None]


@dataclasses.dataclass
class Decoder:
    """Continuous-batching decode over one loaded causal LM.

    Args:
        model, tokenizer: a transformers causal LM (eval mode) and its tokenizer.
        batch_size: most rows decoded at once.
        device: torch device of the model.
        min_shared_prefix: rows of a prefill group that start with at least this many common tokens
            compute that prefix's KV once (0 turns it off).
        refill_every: compact the batch and refill it once this many rows have finished (default:
            an eighth of ``batch_size``); 0 means never refill: rows only leave (static batches that
            shrink).
    """

    model: Any
    tokenizer: Any
    batch_size: int = 64
    device: str = "cpu"
    min_shared_prefix: int = 8
    refill_every: int | None = None
    stats: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self._scratch = Scratch()
        self._shared = 0
        self._prefix_kv: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = {}

    # -- prefill ------------------------------------------------------------------------------
    def common_prefix(self, ids: list[list[int]]) -> int:
        """Tokens every row of ``ids`` starts with (each keeps at least one of its own), or 0 when fewer
        than ``min_shared_prefix`` or a single row."""
        shared = 0
        if self.min_shared_prefix and len(ids) > 1:
            first, shortest = ids[0], min(map(len, ids))
            while shared < shortest - 1 and all(x[shared] == first[shared] for x in ids):
                shared += 1
        return shared if shared >= self.min_shared_prefix else 0

    def _prefix(self, prefix: list[int]):
        key = tuple(prefix)
        if key not in self._prefix_kv:
            if len(self._prefix_kv) > 8:
                self._prefix_kv.clear()
            cache = _cache()
            self.model(input_ids=torch.tensor([prefix], device=self.device), cache=cache, use_cache=True,
                       logits_to_keep=1)
            self._prefix_kv[key] = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
        return self._prefix_kv[key]

    def _prefill(self, rows: list[_Row], room: int) -> tuple[_Batch, torch.Tensor]:
        """The group's cache, mask and positions after its prompts, and the logits of each last token."""
        ids = [r.prompt for r in rows]
        pad = self.tokenizer.pad_token_id
        shared = self._shared or self.common_prefix(ids)
        rest = [x[shared:] for x in ids]
        width = max(map(len, rest))
        if shared:
            kv = self._prefix(ids[0][:shared])
            cache = _cache([GrowingLayer.of(k.expand(len(ids), -1, -1, -1), v.expand(len(ids), -1, -1, -1),
                                            width + room) for k, v in kv])
        else:
            cache = _cache()
        mask = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rest], device=self.device)
        position = mask.cumsum(-1) - 1
        feed = torch.tensor([[pad] * (width - len(r)) + r for r in rest], device=self.device)
        out = self.model(input_ids=feed, attention_mask=mask, position_ids=position[:, shared:].clamp(min=0),
                         cache=cache, use_cache=True, logits_to_keep=1)
        self.stats["prefills"] = self.stats.get("prefills", 0) + 1
        self.stats["shared_prefix_rows"] = self.stats.get("shared_prefix_rows", 0) + (len(rows) if shared else 0)
        return _Batch(rows, cache, mask, position[:, -1] + 1), out.logits[:, -1]

    # -- batch surgery ------------------------------------------------------------------------
    @staticmethod
    def _merge(parts: list[tuple[_Batch, list[int]]], room: int) -> _Batch:
        """One batch of the ``keep`` rows of each part, left-padded to a common length; columns that
        are padding in every kept row are dropped."""
        masks = [b.mask[keep] for b, keep in parts if keep]
        lead = [int((m.cumsum(-1) == 0).sum(-1).min()) for m in masks]  # all-padding columns on the left
        width = max(m.shape[1] - s for m, s in zip(masks, lead))
        rows = [b.rows[i] for b, keep in parts for i in keep]
        dev = masks[0].device
        mask = torch.zeros(len(rows), width, dtype=masks[0].dtype, device=dev)
        pos = torch.cat([b.pos[keep] for b, keep in parts if keep])
        kept, at = [], 0  # (part, its kept rows, their columns, leading all-padding columns)
        for (b, keep), m, s in zip([p for p in parts if p[1]], masks, lead):
            n = m.shape[1] - s
            mask[at:at + len(keep), width - n:] = m[:, s:]
            kept.append((b, torch.tensor(keep, device=dev), n, s))
            at += len(keep)
        layers = []
        for li in range(len(parts[0][0].cache.layers)):
            k0 = parts[0][0].cache.layers[li].keys
            _, h, _, d = k0.shape
            layer = GrowingLayer()
            layer.lazy_initialization(k0, k0)
            layer._set(k0.new_zeros(len(rows), h, width + room, d), k0.new_zeros(len(rows), h, width + room, d), width)
            at = 0
            for b, sel, n, s in kept:
                old = b.cache.layers[li]
                layer.kbuf[at:at + len(sel), :, width - n:width] = old.keys.index_select(0, sel)[:, :, s:]
                layer.vbuf[at:at + len(sel), :, width - n:width] = old.values.index_select(0, sel)[:, :, s:]
                at += len(sel)
            for b, _ in parts:  # the parts are not used after a merge: free each layer as soon as it is copied
                b.cache.layers[li].release()
            layers.append(layer)
        return _Batch(rows, _cache(layers), mask, pos)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, rows: list[_Row], *, max_new_tokens: int, eos_token_id: int | None, temperature: float,
            top_p: float, logprobs: bool, stop: tuple[str, ...] = (),
            on_done: Callable[[_Row], None] | None = None) -> None:
        """Decode every row (in the given order of admission) until EOS, a stop string or
        ``max_new_tokens``; ``on_done(row)`` is called as each row finishes."""
        waiting = list(reversed(rows))
        self._shared = self.common_prefix([r.prompt for r in rows])  # one prefix for all, also for groups of one
        size = max(1, self.batch_size)
        refill = max(1, size // 8) if self.refill_every is None else self.refill_every
        room = min(max_new_tokens, 64)
        batch: _Batch | None = None
        logits: torch.Tensor | None = None
        stats = self.stats
        with torch.inference_mode():
            while True:
                t0 = time.perf_counter()
                alive = batch.alive() if batch is not None else []
                free, dead = size - len(alive), (len(batch.rows) - len(alive)) if batch is not None else 0
                if waiting and (not alive or (refill > 0 and free >= refill)):
                    group = [waiting.pop() for _ in range(min(free, len(waiting)))]
                    fresh, fresh_logits = self._prefill(group, room)
                    for r in group:
                        r.seconds += (time.perf_counter() - t0) / len(group)
                    if alive:
                        batch = self._merge([(batch, alive), (fresh, list(range(len(group))))], room)
                        logits = torch.cat([logits[alive], fresh_logits])
                        stats["refilled_rows"] = stats.get("refilled_rows", 0) + len(group)
                    else:
                        batch, logits = fresh, fresh_logits
                    alive = list(range(len(batch.rows)))
                    t0 = time.perf_counter()
                elif alive and dead and 8 * dead >= len(batch.rows):  # drop finished rows: they cost nothing more
                    batch = self._merge([(batch, alive)], room)
                    logits = logits[alive]
                    alive = list(range(len(batch.rows)))
                if not alive:
                    break
                stats["max_batch"] = max(stats.get("max_batch", 0), len(alive))
                rows_now = [batch.rows[i] for i in alive]
                nxt = self._choose(rows_now, logits if len(alive) == logits.shape[0] else logits[alive],
                                   temperature, top_p, logprobs, self._scratch)
                done: list[_Row] = []
                for row, t in zip(rows_now, nxt):
                    row.tokens.append(t)
                    if t == eos_token_id:
                        row.finish = "stop"
                    elif stop and any(s in self.tokenizer.decode(row.tokens, skip_special_tokens=True) for s in stop):
                        row.finish = "stop"
                    elif len(row.tokens) >= max_new_tokens:
                        row.finish = "length"
                    if row.finish is not None:
                        done.append(row)
                if len(done) < len(rows_now):  # else the next round refills or ends
                    feed = torch.tensor([[r.tokens[-1] if r.finish is None else 0] for r in batch.rows], device=self.device)
                    batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(batch.rows), 1)], dim=1)
                    out = self.model(input_ids=feed, attention_mask=batch.mask, position_ids=batch.pos.unsqueeze(-1),
                                     cache=batch.cache, use_cache=True)
                    batch.pos = batch.pos + 1
                    logits = out.logits[:, -1]
                    stats["steps"] = stats.get("steps", 0) + 1
                    stats["row_steps"] = stats.get("row_steps", 0) + len(batch.rows)
                share = (time.perf_counter() - t0) / len(rows_now)  # a step's time, split over the rows it served
                for row in rows_now:
                    row.seconds += share
                if on_done is not None:
                    for row in done:
                        on_done(row)

    @staticmethod
    def _choose(rows: list[_Row], logits: torch.Tensor, temperature: float, top_p: float, logprobs: bool,
                scratch: Scratch | None = None) -> list[int]:
        # a float32 copy only where a grammar masks it: draw() casts into its own buffers
        scores = logits.float().clone() if any(r.grammar is not None for r in rows) else logits
        for j, r in enumerate(rows):  # the grammar mask goes before the sampler: it samples among allowed tokens
            if r.grammar is not None:
                last = torch.tensor([[r.tokens[-1] if r.tokens else 0]])
                scores[j:j + 1] = r.grammar(last, scores[j:j + 1].contiguous())
        if temperature > 0:
            chosen = draw(scores, [r.generator for r in rows], temperature, top_p, scratch=scratch)
        else:
            chosen = scores.argmax(-1)
        if logprobs:
            lp = torch.log_softmax(logits.float(), dim=-1).gather(-1, chosen.unsqueeze(-1)).squeeze(-1).tolist()
            for r, v in zip(rows, lp):
                r.logprobs.append(v)
        return chosen.tolist()
