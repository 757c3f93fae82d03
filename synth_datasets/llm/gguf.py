"""A GGUF file's weights, dequantized once into a plain transformers folder that loads in seconds.

transformers reads a GGUF by parsing the file three times (config, tokenizer, weights) and
dequantizing every tensor: ~13 s for the embedded 135M model on 2 cores, at every start. The folder
made here (float32 safetensors, tokenizer, chat template) holds exactly the same tensors and tokenizer
(tested), loads in ~2 s, and is named after the file's sha256, so an edited file never reuses a stale
folder. Both local engines use it: transformers (the default) and vLLM (which cannot read a GGUF).

Everything written into the model cache is made under a temporary name (``.<final>.tmp-<pid>-<hex>``)
and renamed into place; a folder made here holds a :data:`MARKER` file. Only those two kinds of path are
ever removed (a temporary one only once its process is gone): a folder we did not make stays untouched.

>>> from synth_datasets.llm import embedded_model_path
>>> folder_from_gguf(embedded_model_path()).name                      # doctest: +SKIP
'SmolLM2-135M-Instruct.Q4_1-b179c9523d0e-hf'
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path

from ..errors import ModelFileError
from .identity import file_sha256

logger = logging.getLogger(__name__)


def models_home() -> Path:
    """Where converted models live: ``$SYNTH_DATASETS_HOME`` if set, else ``~/.cache/synth-datasets``."""
    return Path(os.environ.get("SYNTH_DATASETS_HOME") or Path.home() / ".cache" / "synth-datasets")


#: written into every folder made here: only a folder holding it is ever replaced
MARKER = ".synth-datasets-model.json"


def temp_path(final: Path) -> Path:
    """A temporary sibling of ``final`` named for this process: ``.<name>.tmp-<pid>-<8 hex>``."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but not ours to signal
        return True
    return True


def remove_stale_temps(final: Path) -> list[Path]:
    """Remove the temporary files or folders of ``final`` (see :func:`temp_path`) left by processes that
    are gone (a killed conversion or assembly); anything else beside it is left alone. Returns what was
    removed."""
    pattern = re.compile(rf"\.{re.escape(final.name)}\.tmp-(\d+)-[0-9a-f]{{8}}")
    removed = []
    if not final.parent.is_dir():
        return removed
    for p in final.parent.iterdir():
        m = pattern.fullmatch(p.name)
        if m is None or _alive(int(m.group(1))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _not_ours(out: Path) -> ModelFileError:
    return ModelFileError(
        f"{out} exists but holds no model.safetensors and no {MARKER}, so synth-datasets did not make it and "
        "leaves it alone. Move or delete it yourself, or set SYNTH_DATASETS_HOME to another folder.")


def folder_from_gguf(gguf: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                     dtype: str = "float32") -> Path:
    """A plain transformers folder (float32 safetensors, tokenizer, chat template) holding the
    dequantized weights of ``gguf``, made once under ``cache_dir`` (default :func:`models_home`) and
    named after the file's sha256. Made in a temporary folder and renamed into place, so a killed
    conversion leaves nothing half-written and two processes converting at once both end with the
    same complete folder.

    ``dtype="bfloat16"``: a second folder (``...-hf-bf16``) holding the float32 weights rounded to
    bfloat16, exactly what loading the float32 folder with ``dtype=torch.bfloat16`` gives, at half the
    size: a bfloat16 model then maps its weights straight from the file instead of reading 4 bytes per
    parameter and converting (for Qwen2.5-Coder-1.5B, peak memory at load 10.9 -> ~4 GB).

    An incomplete folder of that name is replaced only when it holds our :data:`MARKER`; any other
    folder there raises :class:`~synth_datasets.errors.ModelFileError` (an ``OSError``) and is left
    untouched, before any conversion work. Raises ``OSError`` when the folder cannot be written
    (read-only or full disk).
    """
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype={dtype!r}: a converted folder is 'float32' or 'bfloat16'.")
    gguf = Path(gguf)
    root = Path(cache_dir) if cache_dir else models_home()
    tag = file_sha256(gguf)[:12]
    stem = gguf.stem if gguf.stem.endswith(f"-{tag}") else f"{gguf.stem}-{tag}"  # a named model's file has it
    out = root / f"{stem}-hf{'-bf16' if dtype == 'bfloat16' else ''}"
    if (out / "model.safetensors").is_file():
        return out
    if out.exists() and not (out / MARKER).is_file():
        raise _not_ours(out)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype == "bfloat16":  # rounded from the float32 folder (made first if needed): the same weights as a cast
        base = folder_from_gguf(gguf, cache_dir=cache_dir)
        logger.info("converting %s into %s (once)", base, out)
        tok = AutoTokenizer.from_pretrained(base)
        clean = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    else:
        logger.info("converting %s into %s (once)", gguf, out)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        cfg = model.config
        if hasattr(cfg, "quantization_config"):
            delattr(cfg, "quantization_config")
        clean = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        clean.load_state_dict(model.state_dict())
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)
    tmp = temp_path(out)
    try:
        clean.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps({"made_by": "synth-datasets", "gguf": gguf.name,
                                              "gguf_sha256": file_sha256(gguf), "dtype": dtype}) + "\n")
        try:
            tmp.rename(out)
        except OSError:
            if not (out / "model.safetensors").is_file():  # not a lost race: a leftover that is no model
                if not (out / MARKER).is_file():
                    raise _not_ours(out) from None
                shutil.rmtree(out)
                tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
