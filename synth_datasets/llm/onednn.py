"""float32 linear layers through oneDNN with pre-packed weights, on CPUs where that beats MKL.

PyTorch sends a float32 ``nn.Linear`` on the CPU to MKL's sgemm. MKL picks its AVX-512 kernels on
Intel CPUs only: on an AMD EPYC with AVX-512 (these machines) it runs AVX2 code, at half the width the
core offers. oneDNN (bundled with PyTorch, the library behind ``torch.ops.mkldnn``) dispatches on the
instruction set itself; with its weights reordered once into its blocked layout, the linear layers of
SmolLM2-135M ran 2-2.8x faster than MKL's in a micro-benchmark here (BENCHMARKS.md, "Local
generation"). Accumulation stays float32; the results differ from MKL's in the last bits only (both
libraries' row results also depend slightly on the batch they are computed in).

The packed weights are a second copy (+4 bytes per parameter); the module's own ``weight`` is kept
(tied embeddings, ``state_dict``, other users of the model).
"""

from __future__ import annotations

import types


def _packed_forward(self, x):
    import torch

    return torch.ops.mkldnn._linear_pointwise(x, self._onednn_weight, self.bias, "none", [], "")


def available() -> bool:
    """Whether this PyTorch build has oneDNN's packed linear operators."""
    import torch

    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def pack_linears(model, *, batch_hint: int = 64) -> int:
    """Route every float32 CPU ``nn.Linear`` of ``model`` (inference only) through oneDNN with packed
    weights; returns how many layers were packed (0 when oneDNN is unavailable).

    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4))
    >>> x = torch.randn(3, 8)
    >>> ref = m(x)
    >>> pack_linears(m) if available() else 1
    1
    >>> with torch.inference_mode():
    ...     bool(torch.allclose(m(x), ref, atol=1e-5))
    True
    """
    import torch

    if not available():
        return 0
    n = 0
    for module in model.modules():
        w = getattr(module, "weight", None)
        if type(module) is not torch.nn.Linear or w is None or w.dtype != torch.float32 or w.device.type != "cpu":
            continue
        with torch.no_grad():
            module._onednn_weight = torch.ops.mkldnn._reorder_linear_weight(w.detach(), batch_hint)
        module.forward = types.MethodType(_packed_forward, module)
        n += 1
    return n
