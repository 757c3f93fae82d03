"""A GGUF file's weights, dequantized once into a plain transformers folder that loads in seconds.

transformers reads a GGUF by parsing the file three times (config, tokenizer, weights) and
dequantizing every tensor: ~13 s for the embedded 135M model on 2 cores, at every start. The folder
made here (float32 safetensors, tokenizer, chat template) holds exactly the same tensors and tokenizer
(tested), loads in ~2 s, and is named after the file's sha256, so an edited file never reuses a stale
folder. Both local engines use it: transformers (the default) and vLLM (which cannot read a GGUF).

>>> from synth_datasets.llm import embedded_model_path
>>> folder_from_gguf(embedded_model_path()).name                      # doctest: +SKIP
'SmolLM2-135M-Instruct.Q4_1-b179c9523d0e-hf'
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from .identity import file_sha256

logger = logging.getLogger(__name__)


def models_home() -> Path:
    """Where converted models live: ``$SYNTH_DATASETS_HOME`` if set, else ``~/.cache/synth-datasets``."""
    return Path(os.environ.get("SYNTH_DATASETS_HOME") or Path.home() / ".cache" / "synth-datasets")


def folder_from_gguf(gguf: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """A plain transformers folder (float32 safetensors, tokenizer, chat template) holding the
    dequantized weights of ``gguf``, made once under ``cache_dir`` (default :func:`models_home`) and
    named after the file's sha256. Made in a temporary folder and renamed into place, so a killed
    conversion leaves nothing half-written and two processes converting at once both end with the
    same complete folder.

    A folder of that name without ``model.safetensors`` (not made here) is replaced. Raises ``OSError``
    when the folder cannot be written (read-only or full disk).
    """
    gguf = Path(gguf)
    root = Path(cache_dir) if cache_dir else models_home()
    out = root / f"{gguf.stem}-{file_sha256(gguf)[:12]}-hf"
    if (out / "model.safetensors").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.info("converting %s into %s (once)", gguf, out)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    clean = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    clean.load_state_dict(model.state_dict())
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        clean.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(out)
        except OSError:
            if not (out / "model.safetensors").is_file():  # not a lost race: a leftover that is no model
                shutil.rmtree(out)
                tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
