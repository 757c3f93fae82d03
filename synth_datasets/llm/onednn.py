"""float32 linear layers through oneDNN with pre-packed weights, on CPUs where that beats MKL.

PyTorch sends a float32 ``nn.Linear`` on the CPU to MKL's sgemm. MKL picks its AVX-512 kernels on
Intel CPUs only: on an AMD EPYC with AVX-512 (these machines) it runs AVX2 code, at half the width the
core offers. oneDNN (bundled with PyTorch, the library behind ``torch.ops.mkldnn``) dispatches on the
instruction set itself; with its weights reordered once into its blocked layout, the linear layers of
SmolLM2-135M ran 2-2.8x faster than MKL's in a micro-benchmark here (BENCHMARKS.md, "Local
generation"). Accumulation stays float32; the results differ from MKL's in the last bits only (both
libraries' row results also depend slightly on the batch they are computed in).

The packed weights are a second copy. With ``free_weights=True`` (what the local backend does: the model
is ours, inference only) a layer's own float32 ``weight`` is then released, unless another module shares
it (tied input/output embeddings) or it is the output embedding (its shape is read elsewhere): for
Qwen2.5-Coder-1.5B that is ~5.2 GB less resident memory, for SmolLM2-135M ~0.4 GB. Such a model's
``state_dict`` no longer holds those weights; do not save it.
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


def pack_linears(model, *, batch_hint: int = 64, free_weights: bool = False) -> int:
    """Route every float32 CPU ``nn.Linear`` of ``model`` (inference only) through oneDNN with packed
    weights; returns how many layers were packed (0 when oneDNN is unavailable). ``free_weights``: release
    each packed layer's own weight (see the module docstring).

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
    shared = _shared_weights(model)
    n = 0
    for module in model.modules():
        w = getattr(module, "weight", None)
        if type(module) is not torch.nn.Linear or w is None or w.dtype != torch.float32 or w.device.type != "cpu":
            continue
        with torch.no_grad():
            module._onednn_weight = torch.ops.mkldnn._reorder_linear_weight(w.detach(), batch_hint)
        module.forward = types.MethodType(_packed_forward, module)
        if free_weights and w.data_ptr() not in shared:
            module.weight = torch.nn.Parameter(torch.empty((0, w.shape[1]), dtype=w.dtype), requires_grad=False)
        del w
        n += 1
    return n


def _shared_weights(model) -> set[int]:
    """Data pointers of weights that must stay: seen in more than one module (tied embeddings), or the
    output embedding's."""
    seen: dict[int, int] = {}
    for module in model.modules():
        w = getattr(module, "weight", None)
        if w is not None and hasattr(w, "data_ptr"):
            seen[w.data_ptr()] = seen.get(w.data_ptr(), 0) + 1
    keep = {ptr for ptr, k in seen.items() if k > 1}
    out = getattr(model, "get_output_embeddings", lambda: None)()
    if out is not None and getattr(out, "weight", None) is not None:
        keep.add(out.weight.data_ptr())
    return keep
