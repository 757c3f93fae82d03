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
it (tied input/output embeddings): for Qwen2.5-Coder-1.5B that is ~6.2 GB less resident memory, for
SmolLM2-135M ~0.4 GB. A released weight keeps its number of columns (``weight.shape[1]``); read a layer's
sizes from ``in_features``/``out_features``. Such a model's ``state_dict`` no longer holds those weights; do
not save it.
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
            _page_out(w)
        del w
        n += 1
    if free_weights and n:
        _own_memory(model)
    return n


def _page_out(t) -> None:
    """Ask the kernel to reclaim the pages under ``t`` now (``MADV_PAGEOUT``, Linux 5.4+). It never changes
    what the memory holds: a clean page of a memory-mapped weights file is dropped (and read again from the
    file if touched), an anonymous page stays where there is no swap. Without it, a model loaded from a
    memory-mapped safetensors file keeps every page it read resident until the whole file is unmapped:
    float32 Qwen2.5-Coder-1.5B peaked at 12.6 GB while packing instead of ~7."""
    import ctypes
    import mmap
    import sys

    advice = getattr(mmap, "MADV_PAGEOUT", 21 if sys.platform.startswith("linux") else None)  # 21: Linux's value
    if t.numel() == 0 or advice is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        page = mmap.PAGESIZE
        start = t.data_ptr() // page * page
        end = -(-(t.data_ptr() + t.numel() * t.element_size()) // page) * page
        libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), advice)
    except (OSError, AttributeError):  # no libc madvise: only a missed saving
        pass


def _own_memory(model) -> None:
    """Copy the parameters and buffers still backed by the loaded file (embeddings, norms, biases) into
    memory of their own, keeping ties, so the memory-mapped weights file is unmapped once loading ends."""
    import torch

    copies: dict[int, torch.nn.Parameter] = {}
    with torch.no_grad():
        for module in model.modules():
            for name, p in list(module._parameters.items()):
                if p is None or p.numel() == 0:
                    continue
                if p.data_ptr() not in copies:
                    copies[p.data_ptr()] = torch.nn.Parameter(p.detach().clone(), requires_grad=False)
                    _page_out(p)
                module._parameters[name] = copies[p.data_ptr()]
            for name, b in list(module._buffers.items()):
                if b is not None and b.numel():
                    module._buffers[name] = b.clone()


def _shared_weights(model) -> set[int]:
    """Data pointers of weights seen in more than one module (tied embeddings): they must stay."""
    seen: dict[int, int] = {}
    for module in model.modules():
        w = getattr(module, "weight", None)
        if w is not None and hasattr(w, "data_ptr"):
            seen[w.data_ptr()] = seen.get(w.data_ptr(), 0) + 1
    return {ptr for ptr, k in seen.items() if k > 1}
