"""oneDNN packed linears: the same outputs, and the unpacked weights released (issue 23: resident memory)."""

import pytest
import torch

from synth_datasets.llm import onednn

pytestmark = pytest.mark.skipif(not onednn.available(), reason="this PyTorch build has no oneDNN packed linears")


class _Tied(torch.nn.Module):
    def __init__(self, tied: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(50, 16)
        self.up = torch.nn.Linear(16, 32)
        self.down = torch.nn.Linear(32, 16, bias=False)
        self.head = torch.nn.Linear(16, 50, bias=False)
        if tied:
            self.head.weight = self.embed.weight  # tied, as in SmolLM2

    def get_output_embeddings(self):
        return self.head

    def forward(self, ids):
        return self.head(self.down(torch.relu(self.up(self.embed(ids)))))


def test_freed_weights_give_the_same_outputs_and_keep_what_is_shared():
    ids = torch.arange(12).reshape(3, 4)
    kept, freed = _Tied().eval(), _Tied().eval()
    assert onednn.pack_linears(kept) == 3 and onednn.pack_linears(freed, free_weights=True) == 3
    with torch.inference_mode():
        assert torch.equal(kept(ids), freed(ids))
    assert freed.up.weight.numel() == 0 and freed.down.weight.numel() == 0  # released
    assert freed.up.weight.shape[1] == 16  # in_features still readable
    assert kept.up.weight.numel() == 16 * 32  # without free_weights, kept
    assert freed.head.weight.shape == (50, 16) and freed.head.weight is freed.embed.weight  # tied: kept
    untied = _Tied(tied=False).eval()  # an output layer of its own (Qwen2.5's converted GGUFs) is released too
    with torch.inference_mode():
        ref = untied(ids)
    onednn.pack_linears(untied, free_weights=True)
    with torch.inference_mode():
        assert torch.equal(untied(ids), ref)
    assert untied.head.weight.numel() == 0 and untied.head.out_features == 50


@pytest.mark.slow
def test_the_local_backend_releases_the_unpacked_weights(embedded_llm):
    backend = embedded_llm.backend
    backend._load()
    model = backend._model
    linears = [m for m in model.modules() if type(m) is torch.nn.Linear]
    assert linears and all(hasattr(m, "_onednn_weight") for m in linears)
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    tied = out.weight is inp.weight
    freed = [m for m in linears if not (tied and m is out)]
    assert freed and all(m.weight.numel() == 0 for m in freed)
    assert inp.weight.numel() > 0 and out.out_features == inp.weight.shape[0]
