"""The local backend's seeded sampler (llm/decode.py ``draw``): its draws follow the exact top-p
distribution (checked against a full-sort reference by a chi-square test over many seeded draws), never
leave the nucleus, and depend on a row's own generator only."""

from __future__ import annotations

import pytest
import torch
from scipy.stats import chisquare

from synth_datasets.llm import decode
from synth_datasets.llm.decode import Scratch, draw
from synth_datasets.llm.transformers_backend import _seeded_sampler_cls


def nucleus_distribution(scores: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The reference: sort the whole vocabulary, keep the tokens whose preceding mass is below top_p,
    renormalize (float64)."""
    p = torch.softmax(scores.double() / temperature, dim=-1)
    if top_p >= 1.0:
        return p
    sorted_p, order = torch.sort(p, descending=True)
    keep = sorted_p.cumsum(-1) - sorted_p < top_p
    out = torch.zeros_like(p).scatter(-1, order, sorted_p * keep)
    return out / out.sum(-1, keepdim=True)


@pytest.mark.parametrize("top_p", [0.05, 0.5, 0.95, 1.0])
@pytest.mark.parametrize("sharpness", [0.3, 2.0])  # flat rows reject often: small top_p reaches the topk path
def test_draws_follow_the_exact_nucleus_distribution(top_p, sharpness, monkeypatch):
    gen = torch.Generator().manual_seed(int(top_p * 1000 + sharpness * 10))
    vocab, rows, steps = 40, 16, 500
    scores = torch.randn(vocab, generator=gen) * sharpness
    want = nucleus_distribution(scores, 0.8, top_p)
    gens = [torch.Generator().manual_seed(100 + i) for i in range(rows)]
    rounds = []
    real_topk = torch.topk
    monkeypatch.setattr(torch, "topk", lambda *a, **k: rounds.append(1) or real_topk(*a, **k))
    scratch = Scratch()
    counts = torch.zeros(vocab, dtype=torch.float64)
    for _ in range(steps):  # consecutive steps continue each row's own random stream
        got = draw(scores.expand(rows, vocab), gens, 0.8, top_p, scratch=scratch)
        counts += torch.bincount(got, minlength=vocab)
    assert counts[want == 0].sum() == 0  # never a token outside the nucleus
    kept = want > 0
    expected = want[kept] * counts.sum()
    if kept.sum() > 1:  # else the one token was drawn every time
        assert chisquare(counts[kept].numpy(), expected.numpy()).pvalue > 1e-4
    if top_p == 0.05 and sharpness == 0.3:
        assert rounds  # flat rows with a small nucleus were drawn inside it after the rejection rounds


def test_a_row_draw_does_not_depend_on_its_batch_mates():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(1, 3000, generator=gen) * 2.0
    for top_p in (0.95, 0.1):
        alone = [_seeded_sampler_cls()([7], 0.8, top_p)(None, scores).argmax(-1) for _ in range(2)]
        # flat batch-mates are rejected and redrawn, some reach the topk path; row 0's draw must not change
        mates = torch.cat([scores, torch.zeros(7, 3000)])
        together = _seeded_sampler_cls()([7] + list(range(7)), 0.8, top_p)(None, mates).argmax(-1)
        assert together[0] == alone[0][0]


def test_the_same_generators_give_the_same_draws_and_each_processed_row_keeps_one_token():
    gen = torch.Generator().manual_seed(3)
    scores = torch.randn(6, 500, generator=gen)
    a = draw(scores, [torch.Generator().manual_seed(s) for s in range(6)], 0.7, 0.9)
    b = draw(scores.bfloat16().float(), [torch.Generator().manual_seed(s) for s in range(6)], 0.7, 0.9,
             scratch=Scratch())
    c = draw(scores, [torch.Generator().manual_seed(s) for s in range(6)], 0.7, 0.9)
    assert torch.equal(a, c)
    assert (a == b).float().mean() > 0.5  # rounded scores: mostly the same tokens
    processed = _seeded_sampler_cls()(list(range(6)), 0.7, 0.9)(None, scores)
    assert (torch.isfinite(processed).sum(-1) == 1).all()  # greedy decoding of it picks the drawn token


def test_a_row_of_one_certain_token_and_masked_tokens():
    scores = torch.full((2, 10), float("-inf"))
    scores[0, 3] = 0.0
    scores[1, 7] = 5.0
    scores[1, 2] = 5.0
    gens = [torch.Generator().manual_seed(s) for s in range(2)]
    for _ in range(20):
        got = draw(scores, gens, 1.0, 0.9).tolist()
        assert got[0] == 3 and got[1] in (2, 7)  # masked (-inf) tokens are never drawn


def test_reject_rounds_is_a_setting(monkeypatch):
    monkeypatch.setattr(decode, "REJECT_ROUNDS", 0)  # straight to the exact nucleus: the same distribution
    test_draws_follow_the_exact_nucleus_distribution(0.5, 0.3, monkeypatch)


def test_a_uniform_at_the_top_of_the_range_still_draws_a_token_with_mass(monkeypatch):
    """A float64 uniform just below 1 rounds to 1.0 in float32: the crossing then lies past the last token
    with mass (here the masked tail), and the draw must fall back to that last token."""
    monkeypatch.setattr(decode, "_uniforms", lambda gens, rows=None: torch.full(
        (len(gens) if rows is None else len(rows),), 1.0 - 2.0 ** -40, dtype=torch.float64))
    scores = torch.full((3, 12), float("-inf"))
    scores[0, :5] = 1.0  # mass on 0-4, masked tail 5-11
    scores[1, 3] = 0.0  # a single token
    scores[2, 4:9] = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.1])
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    assert draw(scores, gens, 1.0, 1.0).tolist() == [4, 3, 8]
