"""Structured outputs on the embedded model: constrained decoding vs unconstrained + validate-and-retry.

1. ``--rows`` records (default 200) of a nested schema (an object with an enum, a list of objects, a
   bounded integer) made by StructuredGenerator twice from the same prompts and seeds: with the
   grammar (response_format="auto" -> llguidance) and without it (response_format=None, retries=2).
   Valid share, attempts, wall time and tokens of each.
2. The grammar's cost per token at batch 32: one generate call of 32 requests with and without the
   mask, at the same max_new_tokens; seconds per decoding step (the batch runs until its longest row).
3. The mask engines' own cost per step at batch 32 (fill the 32 rows' bitmasks, advance by one token)
   for whichever of llguidance, xgrammar and outlines-core are installed.

    python benchmarks/bench_structured.py --rows 200
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Literal

from pydantic import BaseModel, Field

from _common import start_llama_server, write_result

from synth_datasets import LLM, StructuredGenerator, Template
from synth_datasets.llm import ChatRequest, SamplingParams


class Character(BaseModel):
    name: str = Field(min_length=1, max_length=24)
    role: Literal["lead", "support", "villain"]


class Movie(BaseModel):
    title: str = Field(min_length=1, max_length=40)
    genre: Literal["drama", "comedy", "horror", "action", "romance"]
    rating: int = Field(ge=1, le=10)
    characters: list[Character] = Field(min_length=1, max_length=3)


MOODS = ["dark", "funny", "sad", "thrilling", "romantic", "strange", "quiet", "epic"]
TEMPLATE = Template(user="Invent a {{ mood }} movie number {{ i }}: its title, genre, a rating from 1 to 10 and "
                         "its main characters.")


def records(llm: LLM, rows: int, response_format, batch: int, max_new_tokens: int) -> dict:
    from datasets import Dataset

    ds = Dataset.from_dict({"mood": [MOODS[i % len(MOODS)] for i in range(rows)], "i": list(range(rows))})
    gen = StructuredGenerator(llm, TEMPLATE, schema=Movie, response_format=response_format, retries=2,
                              temperature=0.7, max_new_tokens=max_new_tokens, seed=0)
    before = dict(llm.stats)
    t0 = time.perf_counter()
    out = ds.map(gen, batched=True, batch_size=batch, load_from_cache_file=False)
    wall = time.perf_counter() - t0
    valid = [e is None for e in out["record_error"]]
    for row, ok in zip(out, valid):  # the error column is the truth: re-check the valid rows independently
        if ok:
            Movie.model_validate({k: row[k] for k in ("title", "genre", "rating", "characters")})
    errors = [e for e in out["record_error"] if e]
    return {"rows": rows, "valid_share": sum(valid) / rows, "valid_first_try": sum(a == 1 for a, ok in zip(
                out["record_attempts"], valid) if ok) / rows,
            "mean_attempts": sum(out["record_attempts"]) / rows, "wall_s": round(wall, 1),
            "completion_tokens": llm.stats["completion_tokens"] - before.get("completion_tokens", 0),
            "requests": llm.stats["requests"] - before.get("requests", 0),
            "example_errors": errors[:3], "used": gen.describe().get("response_format_used")}


def per_token(llm: LLM, batch: int, max_new_tokens: int, reps: int) -> dict:
    from synth_datasets.generate.structured import _response_format
    from synth_datasets.generate.schema import Schema

    rf = _response_format("json_schema", Schema(Movie), "Movie")
    out = {}
    for name, fmt in (("unconstrained", None), ("constrained", rf)):
        steps = secs = toks = 0.0
        for r in range(reps):
            reqs = [ChatRequest.of(TEMPLATE.render({"mood": MOODS[i % len(MOODS)], "i": 1000 * r + i}), seed=r * 100 + i)
                    for i in range(batch)]
            t0 = time.perf_counter()
            comps = llm.generate(reqs, SamplingParams(temperature=0.7, max_new_tokens=max_new_tokens, response_format=fmt))
            secs += time.perf_counter() - t0
            lengths = [c.usage["completion_tokens"] for c in comps]
            steps += max(lengths)
            toks += sum(lengths)
        out[name] = {"s_per_step": secs / steps, "s_per_token": secs / toks, "steps": steps, "tokens": toks,
                     "seconds": round(secs, 2)}
    out["ratio_per_step"] = out["constrained"]["s_per_step"] / out["unconstrained"]["s_per_step"]
    out["ratio_per_token"] = out["constrained"]["s_per_token"] / out["unconstrained"]["s_per_token"]
    return out


def engines(llm: LLM, batch: int) -> dict:
    """Mask cost per step at ``batch`` rows, replaying one valid record's tokens."""
    import importlib.util

    import torch

    tok = llm.backend.tokenizer
    vocab = int(llm.backend._model.get_output_embeddings().weight.shape[0])
    schema = json.dumps(Movie.model_json_schema())
    doc = Movie(title="The Last Train", genre="drama", rating=7,
                characters=[{"name": "Ann", "role": "lead"}, {"name": "Bob", "role": "villain"}]).model_dump_json()
    steps = tok(doc, add_special_tokens=False)["input_ids"]
    out = {}
    if importlib.util.find_spec("llguidance"):
        import llguidance
        import llguidance.hf

        t0 = time.perf_counter()
        lltok = llguidance.hf.from_tokenizer(tok, n_vocab=vocab)
        g = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
        ms = [llguidance.LLMatcher(lltok, g) for _ in range(batch)]
        setup = time.perf_counter() - t0
        mask = torch.zeros((batch, (vocab + 31) // 32), dtype=torch.int32)
        ex = llguidance.LLExecutor()
        t0 = time.perf_counter()
        for t in steps:
            ex.unsafe_compute_mask_ptr([(m, i) for i, m in enumerate(ms)], mask.data_ptr(), mask.shape[1] * 4, batch)
            for m in ms:
                assert m.consume_token(t)
        out["llguidance"] = {"setup_s": round(setup, 2), "ms_per_step": 1000 * (time.perf_counter() - t0) / len(steps)}
    if importlib.util.find_spec("xgrammar"):
        import xgrammar as xgr

        t0 = time.perf_counter()
        info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=vocab)
        comp = xgr.GrammarCompiler(info).compile_json_schema(schema, any_whitespace=False, separators=(",", ":"))
        ms = [xgr.GrammarMatcher(comp) for _ in range(batch)]
        setup = time.perf_counter() - t0
        bm = xgr.allocate_token_bitmask(batch, vocab)
        t0 = time.perf_counter()
        for t in steps:
            for i, m in enumerate(ms):
                m.fill_next_token_bitmask(bm, i)
            for m in ms:
                assert m.accept_token(t)
        out["xgrammar"] = {"setup_s": round(setup, 2), "ms_per_step": 1000 * (time.perf_counter() - t0) / len(steps)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--reps", type=int, default=2, help="batches of 32 for the per-token cost")
    ap.add_argument("--per-token-max-new-tokens", type=int, default=64,
                    help="equal step counts with and without the grammar (both batches run to the limit)")
    ap.add_argument("--skip-records", action="store_true")
    ap.add_argument("--records", nargs="+", default=["constrained", "unconstrained"],
                    help="which local record runs to make")
    ap.add_argument("--skip-per-token", action="store_true", help="skip the engine and per-token measurements")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared machine)")
    ap.add_argument("--llama-rows", type=int, default=0,
                    help="also make this many records through llama.cpp's server (response_format vs retry)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    llm = LLM(batch_size=a.batch, cache=False)
    llm.backend._load()
    result = {"schema": Movie.model_json_schema(), "batch": a.batch, "max_new_tokens": a.max_new_tokens}
    if not a.skip_per_token:
        result["engines"] = engines(llm, a.batch)
        print(json.dumps(result["engines"]), flush=True)
        result["per_token_batch32"] = per_token(llm, a.batch, a.per_token_max_new_tokens, a.reps)
        print(json.dumps(result["per_token_batch32"]), flush=True)
    if not a.skip_records and "constrained" in a.records:
        result["constrained"] = records(llm, a.rows, "auto", a.batch, a.max_new_tokens)
        print(json.dumps(result["constrained"]), flush=True)
    if not a.skip_records and "unconstrained" in a.records:
        result["unconstrained_retry"] = records(llm, a.rows, None, a.batch, a.max_new_tokens)
        print(json.dumps(result["unconstrained_retry"]), flush=True)
    if a.llama_rows:
        from synth_datasets.llm.identity import embedded_model_path

        server, url = start_llama_server(str(embedded_model_path()), threads=a.threads)
        try:
            remote = LLM(url, model="smollm2", cache=False, concurrency=1)
            result["llama_cpp_server"] = {
                "constrained": records(remote, a.llama_rows, "auto", a.batch, a.max_new_tokens),
                "unconstrained_retry": records(remote, a.llama_rows, None, a.batch, a.max_new_tokens)}
            print(json.dumps(result["llama_cpp_server"]), flush=True)
        finally:
            server.stop()
    write_result("structured", result)


if __name__ == "__main__":
    main()
