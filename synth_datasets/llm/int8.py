"""int8 linear layers for CPU decoding: weights per output channel, activations per token, integer products.

``LLM(name, dtype="int8")`` loads the model in bfloat16 and then sends every ``nn.Linear`` (the output
projection included) through :func:`quantize_linears`:

- each weight row is rounded once to int8 with its own scale (``max |w| / 127``): half the bytes of
  bfloat16;
- at each call, each row of the input (one token) is rounded to int8 with its own scale, the product is
  computed in int8 with int32 accumulation (``torch._int_mm``: oneDNN's VNNI kernels, ~1.6x bfloat16's
  speed at batch 64-128 on the AVX-512 CPUs here), and scaled back (in float32, plus the bias, rounded
  once to the input's dtype).

The output projection (``lm_head``) stays in bfloat16: the logits the sampler reads are the model's own,
and in int8 it gained little (a 128 x 151,936 output costs as much to scale back as it saves).

The rounding and scaling around the integer product are compiled with ``torch.compile`` (fused loops
instead of eight passes over the data; a few seconds once per process, cached by PyTorch across runs);
where that fails (no C++ compiler), the same arithmetic runs op by op, slower, and a warning says so. The
two may differ in the last bit of a biased layer's output (the compiler may fuse a multiply and an add).

The int8 codes of a converted model folder are stored beside it, once (``<folder>.int8-linears-v1.safetensors``,
written under a temporary name and renamed; never inside it, where other loaders would take it for weights), so later loads read them instead of rounding 1.3 billion
weights again (~10 s on 2 cores).

What changes bit-wise: every linear layer's output but the logits', by the rounding of its weights and
inputs (Qwen2.5-Coder-1.5B on real reviews and news: 1.05% more negative log-likelihood per token than
bfloat16, KL 0.021 nats per token; SmolLM2-135M on prose: 0.8%, bfloat16 0.1%; BENCHMARKS.md). An integer product is exact, so a
linear layer's output for a row depends on that row alone; a sample still depends slightly on its
batch-mates, as in bfloat16 (attention runs in bfloat16 over differently padded rows).

The bfloat16 weights of quantized layers are released (their pages given back to the kernel, see
llm/onednn.py), unless another module shares them (tied input/output embeddings: the embedding keeps its
bfloat16 table, the output projection gets its own int8 copy). Such a model's ``state_dict`` no longer
holds those weights; do not save it.
"""

from __future__ import annotations

import logging
import types
from pathlib import Path

logger = logging.getLogger(__name__)

#: the most |value| an int8 code takes (symmetric: -127..127, so a negated row rounds the same way)
QMAX = 127.0


def available() -> bool:
    """Whether this PyTorch has the CPU int8 matrix product (``torch._int_mm``) and this CPU has the VNNI
    instructions that make it fast (``avx512_vnni``, ``avx_vnni`` or ``amx_int8``)."""
    import torch

    if not hasattr(torch, "_int_mm"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool(set(line.split(":", 1)[1].split()) & {"avx512_vnni", "avx_vnni", "amx_int8"})
    except OSError:
        pass
    return False


def quantize_weight(w):
    """``(codes, scales)``: ``w`` (out x in, any float dtype) rounded to int8 row by row, and each row's
    float32 scale, so that ``codes * scales[:, None]`` approximates ``w``.

    >>> import torch
    >>> codes, scales = quantize_weight(torch.tensor([[0.5, -1.0], [2.0, 0.0]]))
    >>> codes.tolist(), [round(s * 127, 6) for s in scales.tolist()]
    ([[64, -127], [127, 0]], [1.0, 2.0])
    """
    import torch

    wf = w.detach().float()
    scales = wf.abs().amax(dim=1).clamp_(min=1e-12).div_(QMAX)
    codes = torch.round(wf / scales[:, None]).to(torch.int8)
    return codes, scales


def int8_linear(x, codes_t, scales, bias=None):
    """``x @ W.T + bias`` with ``W`` given as int8 ``codes_t`` (in x out, the transposed view of
    :func:`quantize_weight`'s codes) and per-row ``scales``; ``x`` is rounded to int8 per row (token).
    Returns ``x``'s dtype. This is the op-by-op form; layers run it compiled (:func:`kernel`).

    >>> import torch
    >>> w = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 1.0]]); x = torch.tensor([[3.0, 1.0, -1.0]])
    >>> codes, scales = quantize_weight(w)
    >>> [round(v, 2) for v in int8_linear(x, codes.t(), scales)[0].tolist()], (x @ w.T).tolist()
    ([0.54, 0.0], [[0.5, 0.0]])
    """
    shape = x.shape
    return _int8_2d(x.reshape(-1, shape[-1]), codes_t, scales, bias).view(*shape[:-1], codes_t.shape[1])


def _int8_2d(x, codes_t, scales, bias=None):
    """:func:`int8_linear` of a 2-d ``x``: what is compiled (one graph per bias/no bias), returning a
    contiguous 2-d result."""
    import torch

    xf = x.float()
    s = xf.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / QMAX
    xq = torch.round(xf / s).to(torch.int8)  # never in place: xf may be x itself
    y = torch._int_mm(xq, codes_t) * s * scales  # the integer product is exact
    if bias is not None:
        y = y + bias
    return y.to(x.dtype).contiguous()


#: compile the rounding and scaling around the integer product (set False for the op-by-op form)
COMPILE = True
_compiled = None


def kernel():
    """The 2-d function int8 layers call: compiled (once per process), or the op-by-op form when
    :data:`COMPILE` is off or compiling failed."""
    global _compiled
    if not COMPILE or _compiled is False:
        return _int8_2d
    if _compiled is None:
        import torch

        _compiled = torch.compile(_int8_2d, dynamic=True)
    return _compiled


def _int8_forward(self, x):
    global _compiled
    shape = x.shape
    x2 = x.reshape(-1, shape[-1])
    f = kernel()
    try:
        y = f(x2, self._int8_codes_t, self._int8_scales, self.bias)
    except Exception as e:  # noqa: BLE001 - any compiler failure: the op-by-op form computes the same
        if f is _int8_2d:
            raise
        logger.warning("int8 layers run op by op, slower: torch.compile failed (%s: %s)", type(e).__name__,
                       str(e).splitlines()[0][:200] if str(e) else "")
        _compiled = False
        y = _int8_2d(x2, self._int8_codes_t, self._int8_scales, self.bias)
    return y.view(*shape[:-1], y.shape[-1])


CACHE_NAME = "int8-linears-v1.safetensors"


def cache_file_for(folder: Path) -> Path:
    """Where the int8 codes of a converted model ``folder`` are stored: beside it, never inside (vLLM and
    other loaders read every ``*.safetensors`` of a model folder as weights)."""
    return folder.parent / f"{folder.name}.{CACHE_NAME}"


def _targets(model, skip) -> dict:
    import torch

    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    found = {}
    for name, module in model.named_modules():
        w = getattr(module, "weight", None)
        if type(module) is not torch.nn.Linear or name in skip or module is out or w is None \
                or w.device.type != "cpu" or not w.dtype.is_floating_point or w.numel() == 0:
            continue
        found[name] = module
    return found


def stored_names(path: Path) -> list[str]:
    """The tensor names in a stored codes file (``<layer>.codes``, ``<layer>.scales``)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


def _load_codes(path: Path, targets: dict) -> dict | None:
    """The stored codes and scales of ``targets`` from ``path``, or None when the file is missing or does
    not match the model (other layer names or shapes)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            if keys != {f"{n}.{k}" for n in targets for k in ("codes", "scales")}:
                return None
            got = {n: (f.get_tensor(f"{n}.codes"), f.get_tensor(f"{n}.scales")) for n in targets}
    except Exception as e:  # noqa: BLE001 - a damaged cache file is only a missed saving
        logger.warning("ignoring %s (%s); rounding the weights again", path, e)
        return None
    for n, (codes, _) in got.items():
        if tuple(codes.shape) != tuple(targets[n].weight.shape):
            return None
    return got


def _store_codes(path: Path, codes: dict) -> None:
    from safetensors.torch import save_file

    from .gguf import remove_stale_temps, temp_path

    remove_stale_temps(path)  # a killed process's half-written copy (ours by its name), nothing else
    tmp = temp_path(path)
    try:
        save_file({f"{n}.{k}": t.contiguous() for n, (c, sc) in codes.items() for k, t in
                   (("codes", c), ("scales", sc))}, str(tmp), metadata={"made_by": "synth-datasets"})
        tmp.replace(path)
    except OSError as e:
        logger.warning("could not store the int8 codes in %s (%s); they are rounded again next time", path, e)
    finally:
        tmp.unlink(missing_ok=True)


def quantize_linears(model, *, skip=(), cache_file=None) -> int:
    """Route every CPU ``nn.Linear`` of ``model`` but the output projection (inference only) through
    int8 (:func:`int8_linear`), releasing each one's own floating-point weight (see the module docstring);
    returns how many layers were quantized. ``skip``: module names (as ``model.named_modules()`` gives
    them) to leave as they are. ``cache_file``: where the codes are stored once and read on later calls
    (a file of a folder we made; nothing else is ever written).

    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(64, 32))
    >>> x = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    >>> with torch.inference_mode():
    ...     ref = m(x)
    ...     n = quantize_linears(m)
    ...     err = float((m(x) - ref).norm() / ref.norm())
    >>> n, err < 0.02, m[0].weight.numel()
    (1, True, 0)
    """
    import torch

    from .onednn import _own_memory, _page_out, _shared_weights

    targets = _targets(model, set(skip))
    if not targets:
        return 0
    path = Path(cache_file) if cache_file is not None else None
    codes = _load_codes(path, targets) if path is not None else None
    if codes is None:
        with torch.no_grad():
            codes = {n: quantize_weight(m.weight) for n, m in targets.items()}
        if path is not None:
            _store_codes(path, codes)
    shared = _shared_weights(model)
    for name, module in targets.items():
        w = module.weight
        module._int8_codes_t, module._int8_scales = codes[name][0].t(), codes[name][1]
        module.forward = types.MethodType(_int8_forward, module)
        if w.data_ptr() not in shared:
            module.weight = torch.nn.Parameter(torch.empty((0, w.shape[1]), dtype=w.dtype), requires_grad=False)
            _page_out(w)
        del w
    _own_memory(model)
    return len(targets)

